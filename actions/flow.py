"""The one custom action behind every service conversation: reads the turn, calls the script, returns events."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.services.conversation import Turn

log = logging.getLogger(__name__)

_app = None


def get_app():
    """Bootstrapped on first use, not at import (the action server imports every module up front)."""
    global _app
    if _app is None:
        from bot.bootstrap import bootstrap

        _app = bootstrap()
    return _app


def _language_hint(message: dict) -> str | None:
    hint = message.get("language_hint")
    if hint in ("zh", "en"):
        return hint
    metadata = message.get("metadata") or {}
    code = str(metadata.get("language") or metadata.get("language_code") or "").lower()
    if code.startswith("zh"):
        return "zh"
    if code.startswith("en"):
        return "en"
    return None


def turn_from_tracker(tracker: Tracker, now: datetime | None = None) -> Turn:
    message = tracker.latest_message or {}
    detected = (message.get("language_detected") or {}).get("code")
    detected_confidence = float((message.get("language_detected") or {}).get("confidence") or 0.0)
    slot_language = tracker.get_slot("language")
    language = detected if detected in ("zh", "en") else (slot_language or _language_hint(message) or "zh")
    intent = (message.get("intent") or {}).get("name")
    ranking = tuple((r.get("name"), float(r.get("confidence") or 0.0)) for r in message.get("intent_ranking") or [])
    return Turn(
        text=message.get("text") or "",
        intent=intent,
        confidence=float((message.get("intent") or {}).get("confidence") or 0.0),
        ranking=ranking,
        entities=tuple(message.get("entities") or []),
        language=language,
        detected=detected,
        detected_confidence=detected_confidence,
        anger=float(message.get("anger") or 0.0),
        now=now or datetime.now(timezone.utc),
        conversation_id=tracker.sender_id,
        channel=tracker.get_latest_input_channel() or "rest",
    )


class ActionFlowTurn(Action):
    def name(self) -> str:
        return "action_flow_turn"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list:
        app = get_app()
        turn = turn_from_tracker(tracker)
        state = tracker.get_slot("flow_state") or {}
        try:
            work = asyncio.get_running_loop().run_in_executor(app.turn_executor, app.assistant.handle, turn, state)
            reply = await asyncio.wait_for(work, timeout=app.settings.action_timeout_seconds)
        except Exception:  # one registered place that turns a failure into an apology, never silence
            log.exception("conversation script failed for %s", tracker.sender_id)
            dispatcher.utter_message(response="utter_technical_problem")
            return [SlotSet("language", turn.language)]
        for message in reply.messages:
            dispatcher.utter_message(**message.as_dict())
        return [
            SlotSet("flow_state", reply.state),
            SlotSet("flow", reply.flow),
            SlotSet("language", turn.language),
            SlotSet("anger", turn.anger),
        ]
