"""A dialogue policy that hands every customer turn to the conversation script while a flow is open.

The six-step complaint script and the other multi-turn flows live in the service layer (bot/services/);
Rasa's rules cover the idle state. While the `flow` slot is set, this policy predicts `action_flow_turn`
after each user message and `action_listen` after the script has answered, outranking the RulePolicy.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Text

from rasa.core.policies.policy import Policy, PolicyPrediction
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, UserUttered
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker

FLOW_ACTION = "action_flow_turn"
FLOW_SLOT = "flow"


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True
)
class FlowPolicy(Policy):
    """Routes turns to the conversation script while a flow is open."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        # Above RulePolicy (6) so an open flow is never interrupted by an idle-state rule.
        return {"priority": 7, "flow_slot": FLOW_SLOT, "flow_action": FLOW_ACTION}

    def train(
        self,
        training_trackers: List[TrackerWithCachedStates],
        domain: Domain,
        **kwargs: Any,
    ) -> Resource:
        # Nothing to learn; persist the config so that `load` finds a resource.
        with self._model_storage.write_to(self._resource) as path:
            (path / "flow_policy.json").write_text(json.dumps(self.config, default=str))
        return self._resource

    def predict_action_probabilities(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: Optional[Dict[Text, Any]] = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        probabilities = self._default_predictions(domain)
        flow_action = self.config.get("flow_action", FLOW_ACTION)
        if not tracker.get_slot(self.config.get("flow_slot", FLOW_SLOT)):
            return self._prediction(probabilities)
        last = _last_dialogue_event(tracker)
        if isinstance(last, UserUttered):
            probabilities[domain.index_for_action(flow_action)] = 1.0
        elif isinstance(last, ActionExecuted) and last.action_name == flow_action:
            probabilities[domain.index_for_action(ACTION_LISTEN_NAME)] = 1.0
        return self._prediction(probabilities)


def _last_dialogue_event(tracker: DialogueStateTracker) -> Any:
    """The latest user message or executed action, skipping slot sets and the like."""
    for event in reversed(tracker.events):
        if isinstance(event, UserUttered):
            return event
        if isinstance(event, ActionExecuted):
            # action_extract_slots runs right after each user message; look through it.
            if event.action_name in ("action_extract_slots", "action_session_start"):
                continue
            return event
    return None
