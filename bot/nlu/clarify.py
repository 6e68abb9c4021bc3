"""When to ask instead of guess ("猜你想问", issue 15), shared by the conversation script and `make eval`.

The intent classifier's confidence is over-confident below ~0.9: on the own held-out sets (docs/EVALUATION.md,
reliability table) messages read with 0.5-0.9 confidence are right only 67-85% of the time, above 0.9 98% of the
time. So a service intent read with less than CLARIFY_BELOW confidence (and every nlu_fallback) gets the two or
three likeliest service intents as buttons plus "something else", instead of starting a flow that may be wrong.
Small talk is never clarified (Rasa rules answer it directly). `BOT_CLARIFY_BELOW` overrides the threshold.
"""
from __future__ import annotations

import os
from typing import Iterable, Sequence

CLARIFY_BELOW_DEFAULT = 0.9
SOMETHING_ELSE = "something_else"
SOMETHING_ELSE_PAYLOAD = "/out_of_scope"
# Intents that start a flow or answer a service question: the ones worth a button.
SERVICE_INTENTS = (
    "complain", "request_repair", "request_installation", "request_return", "request_exchange", "ask_warranty",
    "ask_fee", "check_status", "reschedule_visit", "cancel_visit", "request_human", "ask_service_center",
    "usage_help", "feedback",
)
MAX_BUTTONS = 3
THIRD_BUTTON_SHARE = 0.5  # a third button only when it is at least half as likely as the second


def clarify_below() -> float:
    try:
        return float(os.environ.get("BOT_CLARIFY_BELOW", CLARIFY_BELOW_DEFAULT))
    except ValueError:
        return CLARIFY_BELOW_DEFAULT


def candidates(ranking: Iterable[Sequence]) -> list[str]:
    """The two (or three) likeliest service intents of an intent ranking [(name, confidence), ...]."""
    ranked = [(str(name), float(conf)) for name, conf in ranking if name in SERVICE_INTENTS]
    out = [name for name, _ in ranked[:2]]
    if len(ranked) >= 3 and ranked[2][1] >= THIRD_BUTTON_SHARE * ranked[1][1]:
        out.append(ranked[2][0])
    return out


# Read unsure, these still go to the script in the idle state and may hide a service request ("the repair guy
# came" read as inform); small talk and "stop" are answered as they are.
UNSURE_ROUTED = SERVICE_INTENTS + ("inform", "affirm", "deny", "out_of_scope")


def should_clarify(intent: str | None, confidence: float, threshold: float | None = None) -> bool:
    """Unsure of an intent that the script would act on, or no intent at all (nlu_fallback)."""
    if intent in (None, "nlu_fallback"):
        return True
    return intent in UNSURE_ROUTED and confidence < (clarify_below() if threshold is None else threshold)


def routed_within_two_turns(gold: str, intent: str | None, confidence: float, ranking: Iterable[Sequence],
                            threshold: float | None = None) -> tuple[bool, bool]:
    """(routed, clarified) for one in-scope message: routed at once when read confidently and right, or on the
    second turn when the buttons offered hold the right intent (the customer presses it)."""
    if should_clarify(intent, confidence, threshold):
        return gold in candidates(ranking), True
    return intent == gold, False
