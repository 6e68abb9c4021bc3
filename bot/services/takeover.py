"""Who the customer is talking to (issue 16): agents' names per language, the takeover greeting as the desk
configures it, and where a conversation stands for the web widget's header (the assistant, the queue, an agent).

The greeting setting is `takeover.greeting` in data/seed/desk.yml:
  auto           the console greets the customer once when an agent takes over (texts.yml `agent_joined`, with the
                 agent's name in the customer's language); not again for the same agent and hand-off
  first_message  no automatic greeting: the agent's own first message is the greeting
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable

import re

import yaml

GREETING_MODES = ("auto", "first_message")
NAME_LIMIT = 100
LANGUAGES = ("zh", "en")


@dataclass(frozen=True)
class TakeoverConfig:
    greeting: str = "auto"


def parse_takeover(data: Any, source: str = "<desk>") -> TakeoverConfig:
    section = (data.get("takeover") if isinstance(data, dict) else None) or {}
    if not isinstance(section, dict):
        raise ValueError(f"{source}: takeover is a mapping (greeting: auto | first_message)")
    greeting = str(section.get("greeting", "auto"))
    if greeting not in GREETING_MODES:
        raise ValueError(f"{source}: takeover.greeting is one of {', '.join(GREETING_MODES)}, not {greeting!r}")
    return TakeoverConfig(greeting=greeting)


@lru_cache(maxsize=4)
def load_takeover(path: str | Path) -> TakeoverConfig:
    path = Path(path)
    return parse_takeover(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


# ---------------------------------------------------------------------------------------------- names
def agent_name(agent: Any, language: str | None) -> str:
    """The name the customer sees: the agent's name in the customer's language, else their display name."""
    if agent is None:
        return ""
    own = getattr(agent, f"display_name_{language}", None) if language in LANGUAGES else None
    return (own or agent.display_name or agent.name or "").strip()


def agent_names(agent: Any) -> dict:
    """{"zh": ..., "en": ...}: what `agent_name` gives in each language."""
    return {lang: agent_name(agent, lang) for lang in LANGUAGES}


def set_display_names(agent: Any, *, zh: str | None = None, en: str | None = None) -> None:
    """Set the per-language names (None: leave as is; "": remove, the display name is used again)."""
    for lang, value in (("zh", zh), ("en", en)):
        if value is None:
            continue
        value = " ".join(value.split())[:NAME_LIMIT]
        setattr(agent, f"display_name_{lang}", value or None)


# ---------------------------------------------------------------------------------------------- the greeting
def greeting_due(config: TakeoverConfig, events: Iterable[dict], handoff_id: int, agent: str) -> bool:
    """Whether taking over sends the automatic greeting: only in `auto` mode, and only if this agent has not
    greeted in this hand-off already (serialised tracker events)."""
    if config.greeting != "auto":
        return False
    for event in events:
        meta = event.get("metadata") or {}
        if event.get("event") == "bot" and meta.get("greeting") and meta.get("handoff_id") == handoff_id \
                and meta.get("agent") == agent:
            return False
    return True


# ---------------------------------------------------------------------------------------------- after the hand-back
ANYTHING_ELSE = "anything_else"  # the survey flow's first step after a hand-back: the rating question waits for it
NOTHING_ELSE_INTENTS = ("deny", "goodbye", "thank", "stop", "affirm_nothing_else")
_NO_MORE = (r"(没有了?|没了|没事了?|没别的|不用了|就这样|就这些|好的|谢谢(你|您)?|no|nope|nothing( else)?|that'?s (all|it)|"
            r"all good|i'?m (good|fine)|thanks|thank you)")
NOTHING_ELSE_RE = re.compile(rf"^\s*{_NO_MORE}([\s,，。.!！~]*{_NO_MORE})*[\s。.!！~]*$", re.IGNORECASE)


def nothing_else(text: str | None, intent: str | None) -> bool:
    """The customer's answer to "anything else?" says no: the rating question may come now."""
    if intent in NOTHING_ELSE_INTENTS:
        return True
    text = (text or "").strip()
    return bool(text) and len(text) <= 40 and bool(NOTHING_ELSE_RE.search(text)) and intent not in (
        "complain", "request_repair", "request_return", "request_exchange", "check_status", "request_human",
        "request_installation", "reschedule_visit", "cancel_visit", "usage_help", "ask_warranty", "ask_fee",
        "ask_service_center")


# ---------------------------------------------------------------------------------------------- the widget header
def presence(session, conversation_id: str, language: str | None) -> dict:
    """Where a conversation stands, for the customer's widget: {"state": "assistant"} (no person involved),
    {"state": "waiting", "position", "ahead"} in the queue, or {"state": "agent", "agent_name"} while an agent holds
    it. No personal data: only the agent's display name in the customer's language."""
    from bot.services.handoff import HandoffDesk
    from bot.store.models import HandoffStatus

    desk = HandoffDesk(session)
    handoff = desk.open_for(conversation_id)
    if handoff is None:
        return {"state": "assistant"}
    if handoff.status == HandoffStatus.waiting.value:
        position = desk.position(handoff) or 1
        return {"state": "waiting", "position": position, "ahead": position - 1}
    return {"state": "agent", "agent_name": agent_name(handoff.agent, language)}


def presence_in(sessions: Callable, conversation_id: str, language: str | None) -> dict:
    """`presence` in its own (read-only) unit of work over a session factory."""
    from bot.store.db import UnitOfWork

    with UnitOfWork(sessions) as uow:
        return presence(uow.session, conversation_id, language)
