"""The script's side of a person handing the conversation back (the agent console calls `after_handoff`): what
the bot says, and the state it continues from: "anything else?" first; the survey flow asks for the rating only once
the customer has answered that (issue 16: one question at a time). No database here:
the console (bot/channels/agent_console.py) turns this into tracker events."""
from __future__ import annotations

from dataclasses import dataclass

from bot.flows.state import FlowName, dump_state
from bot.services.conversation import Button, Message
from bot.services.takeover import ANYTHING_ELSE

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
    """A person hands the conversation back (or closed the case): say so and ask whether there is anything else (its
    button answers "no"); the survey flow then asks how satisfied the customer is."""
    first = (texts.get("handoff_closed_by_agent", lang, number=ticket) if closed
             else texts.get("handoff_returned", lang))
    state = dump_state({"flow": FlowName.survey.value, "step": ANYTHING_ELSE, "last_ticket": ticket})
    return HandBack([Message(first, [Button(texts.get("btn_nothing_else", lang), "/deny")])], state,
                    FlowName.survey.value)
