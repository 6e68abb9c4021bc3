"""Who holds a conversation: the bot or a person. One answer, one owner.

The source of truth is the conversation's latest hand-off (bot/store `handoffs`): while its status is `claimed`, a
person holds the conversation; otherwise the bot does. Rasa's tracker carries a copy of it (`pause` / `resume`
events: Rasa predicts nothing while paused, bot/rasa_runtime/hardening.py), which is derived from the status here and
never written otherwise: whoever changes the status appends the events `tracker_events` returns, in the same step,
and they also repair a tracker that disagrees (e.g. a pause left by a crash between the two writes).
"""
from __future__ import annotations

from bot.store.models import Handoff, HandoffStatus

PERSON = "person"
BOT = "bot"


def holder_of(handoff: Handoff | None) -> str:
    """PERSON while an agent has taken the conversation over (hand-off `claimed`), else BOT."""
    return PERSON if handoff is not None and handoff.status == HandoffStatus.claimed.value else BOT


def held_by_person(uow, conversation_id: str) -> bool:
    """The answer for a conversation, read from its latest hand-off."""
    from sqlalchemy import select

    handoff = uow.session.execute(select(Handoff).where(Handoff.conversation_id == conversation_id)
                                  .order_by(Handoff.id.desc()).limit(1)).scalar_one_or_none()
    return holder_of(handoff) == PERSON


def tracker_events(holder: str, tracker_paused: bool) -> list[dict]:
    """The events (Rasa's JSON form) that make the tracker agree with `holder`; none when it already does."""
    if holder == PERSON and not tracker_paused:
        return [{"event": "pause"}]
    if holder == BOT and tracker_paused:
        return [{"event": "resume"}]
    return []
