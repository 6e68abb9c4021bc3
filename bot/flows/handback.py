"""The script's side of a person handing the conversation back (the agent console calls `after_handoff`): what
the bot says, and the state it continues from (the satisfaction question of the survey flow). No database here:
the console (bot/channels/agent_console.py) turns this into tracker events."""
from __future__ import annotations

from dataclasses import dataclass

from bot.flows.state import FlowName, dump_state
from bot.services.conversation import Button, Message

RATINGS = (5, 4, 3, 2, 1)


def survey_ask(texts, lang: str) -> Message:
    """The satisfaction question, its five scores as buttons."""
    return Message(texts.get("survey_ask", lang), [Button(str(n), str(n)) for n in RATINGS])


@dataclass(frozen=True)
class HandBack:
    messages: list[Message]
    state: dict  # the `flow_state` slot's new value
    flow: str  # the `flow` slot's new value


def after_handoff(texts, ticket: str, lang: str, closed: bool) -> HandBack:
    """A person hands the conversation back (or closed the case): say so, and ask how satisfied the customer is."""
    first = (texts.get("handoff_closed_by_agent", lang, number=ticket) if closed
             else texts.get("handoff_returned", lang))
    state = dump_state({"flow": FlowName.survey.value, "last_ticket": ticket})
    return HandBack([Message(first), survey_ask(texts, lang)], state, FlowName.survey.value)
