"""Two fixes to the Rasa 3.6 server for issue 18, applied by `python -m bot.serve` before the server starts.

1. Never silence. `MessageProcessor._run_action` catches any exception of an action ("Bot will continue, but the
   actions events are lost") and goes on with no events: when the action server is down, refuses the call (401) or
   fails (500, time-out), the customer gets an empty reply. Here, in that one place, a failed call of a custom
   action (RemoteAction) instead says `assistant_unavailable` in the conversation's language (bot/texts.yml) and
   keeps the message: its parse (text, intent, entities, metadata) is added to `flow_state["pending"]` (at most
   PENDING_KEPT), and actions/flow.py runs the kept messages through the script, in order, before the next one once
   the action server answers again; the conversation goes on from where it was.
2. While a person holds the conversation (ConversationPaused), Rasa still runs `/restart` (its
   `_should_handle_message` lets the restart intent through a pause), which would wipe the pause and the script's
   state under the agent. Here nothing is handled while paused; the message is still logged for the agent.
"""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

PENDING_KEPT = 5
_applied = False


def unavailable_text(language: str | None) -> str:
    from bot.texts import load_texts

    return load_texts().get("assistant_unavailable", language if language in ("zh", "en") else "zh")


def kept_message(tracker) -> dict | None:
    """What the script needs of the latest user message, to run it later."""
    message = tracker.latest_message
    if message is None or not message.text and not message.intent:
        return None
    data = dict(message.parse_data)
    data["entities"] = list(message.entities or [])
    data["metadata"] = dict(message.metadata or {})
    data["text"] = message.text
    return data


def failure_events(tracker, action_name: str) -> list:
    """The events a failed custom action call leaves instead of none: a plain answer, and the message kept."""
    from rasa.shared.core.events import BotUttered, SlotSet

    events: list[Any] = [BotUttered(unavailable_text(tracker.get_slot("language")),
                                    metadata={"assistant_unavailable": True, "action": action_name})]
    if "flow_state" in tracker.slots:
        state = dict(tracker.get_slot("flow_state") or {})
        kept = kept_message(tracker)
        if kept is not None:
            state["pending"] = (list(state.get("pending") or []) + [kept])[-PENDING_KEPT:]
            events.append(SlotSet("flow_state", state))
    return events


class NeverSilent:
    """A RemoteAction whose failures become `failure_events` instead of an exception Rasa turns into silence."""

    def __init__(self, action):
        self._action = action

    def __getattr__(self, name: str):
        return getattr(self._action, name)

    async def run(self, output_channel, nlg, tracker, domain) -> list:
        from rasa.core.actions.action import ActionExecutionRejection

        try:
            return await self._action.run(output_channel, nlg, tracker, domain)
        except ActionExecutionRejection:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of the call: down, 401, 500, time-out, bad answer
            log.error("custom action %s failed (%s): the customer is told, the message kept",
                      self._action.name(), exc.__class__.__name__)
            return failure_events(tracker, self._action.name())


def apply() -> None:
    global _applied
    if _applied:
        return
    from bot.rasa_runtime import supported

    if not supported("message processor fixes"):
        return
    from rasa.core.actions.action import RemoteAction
    from rasa.core.processor import MessageProcessor

    run_action = MessageProcessor._run_action

    async def _run_action(self, action, tracker, output_channel, nlg, prediction):
        if isinstance(action, RemoteAction):
            action = NeverSilent(action)
        return await run_action(self, action, tracker, output_channel, nlg, prediction)

    def _should_handle_message(tracker) -> bool:
        return not tracker.is_paused()

    MessageProcessor._run_action = _run_action
    MessageProcessor._should_handle_message = staticmethod(_should_handle_message)
    _applied = True
