"""Clarification answers as labelled examples (issue 15): stored when a customer presses one of the "did you
mean" buttons, listed for the desk by `python -m bot nlu review [--json]`."""
from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.nlu.clarify import SOMETHING_ELSE
from bot.services.tickets import iso
from bot.store.models import NluChoice

TEXT_MAX = 500


def record_choice(session: Session, *, conversation_id: str, channel: str, language: str, text: str,
                  predicted: str | None, confidence: float, offered: list[str], chosen: str, now: datetime) -> NluChoice:
    choice = NluChoice(conversation_id=conversation_id, channel=channel, language=language, text=text[:TEXT_MAX],
                       predicted=predicted, confidence=round(float(confidence), 4), offered=list(offered),
                       chosen=chosen, created_at=now)
    session.add(choice)
    return choice


def choice_json(c: NluChoice) -> dict:
    return {"id": c.id, "created_at": iso(c.created_at), "conversation_id": c.conversation_id, "channel": c.channel,
            "language": c.language, "text": c.text, "predicted": c.predicted, "confidence": c.confidence,
            "offered": list(c.offered or []), "chosen": c.chosen}


def review(session: Session, limit: int = 200) -> dict:
    """Newest first, with a summary: how often the top guess was right, and how often none of the buttons was."""
    rows = list(session.execute(select(NluChoice).order_by(NluChoice.id.desc()).limit(limit)).scalars())
    chosen = Counter(c.chosen for c in rows)
    return {"choices": [choice_json(c) for c in rows],
            "summary": {"count": len(rows), "top_guess_right": sum(1 for c in rows if c.chosen == c.predicted),
                        "something_else": chosen.get(SOMETHING_ELSE, 0), "by_choice": dict(sorted(chosen.items()))}}
