"""The one custom action behind every service conversation: reads the turn, calls the script, returns events."""
from __future__ import annotations

import asyncio
import copy
import logging
from datetime import datetime, timezone
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.services.conversation import Turn
from bot.store.db import TurnGate

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


def _client(message: dict) -> str | None:
    """Who is on the other end, for look-up limits: the address our channels put in the metadata (never the
    client's own say), or the Telegram user."""
    metadata = message.get("metadata") or {}
    if metadata.get("client_address"):
        return str(metadata["client_address"])[:100]
    if metadata.get("telegram_user_id"):
        return f"telegram-user:{metadata['telegram_user_id']}"
    return None


def turn_from_tracker(tracker: Tracker, now: datetime | None = None, message: dict | None = None) -> Turn:
    """The turn of the latest message, or of `message` (a kept one: bot/hardening.py)."""
    message = message if message is not None else (tracker.latest_message or {})
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
        client=_client(message),
    )


async def run_turn(app, turn: Turn, state: dict):
    """The script on one turn, in the turn executor, within the action time-out. A turn that times out is given up
    before any of its work commits (TurnGate: its commits then fail and roll back), unless a commit has already
    begun, in which case it is waited for and its reply used: its work is never committed after the answer."""
    gate = TurnGate()
    work = asyncio.get_running_loop().run_in_executor(app.turn_executor, gate.run, app.assistant.handle, turn,
                                                      state)
    try:
        return await asyncio.wait_for(asyncio.shield(work), timeout=app.settings.action_timeout_seconds)
    except asyncio.TimeoutError:
        if gate.abandon():
            log.error("turn of %s timed out after %.1fs: given up, its work rolled back", turn.conversation_id,
                      app.settings.action_timeout_seconds)
            raise
        log.warning("turn of %s timed out while committing: waiting for it", turn.conversation_id)
        return await work


class ActionFlowTurn(Action):
    def name(self) -> str:
        return "action_flow_turn"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list:
        app = get_app()
        turn = turn_from_tracker(tracker)
        state = dict(tracker.get_slot("flow_state") or {})
        # Messages kept while the action server could not be reached (bot/hardening.py) go first, in order.
        pending = [m for m in state.pop("pending", None) or [] if isinstance(m, dict)]
        kept = [turn_from_tracker(tracker, message=m) for m in pending]
        reply = None
        for i, each in enumerate(kept + [turn]):
            try:
                reply = await run_turn(app, each, copy.deepcopy(state))
            except Exception:  # one registered place that turns a failure into an apology, never silence
                log.exception("conversation script failed for %s", tracker.sender_id)
                dispatcher.utter_message(response="utter_technical_problem")
                # What was not run yet stays kept (the message that failed is in the tracker for a person).
                rest = pending[i + 1:] + ([tracker.latest_message] if i < len(kept) else [])
                if rest:
                    state["pending"] = rest
                return [SlotSet("flow_state", state), SlotSet("language", turn.language)]
            for message in reply.messages:
                dispatcher.utter_message(**message.as_dict())
            state = reply.state
        return [
            SlotSet("flow_state", reply.state),
            SlotSet("flow", reply.flow),
            SlotSet("language", turn.language),
            SlotSet("anger", turn.anger),
        ]
