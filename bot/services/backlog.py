"""How much work is waiting: the outbox's backlog and the hand-off queue, as plain counts (for /metrics)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from bot.store.models import Handoff, HandoffStatus, OutboxItem, OutboxStatus


def backlog(session: Session, now: datetime) -> dict[str, int]:
    """outbox_due: promises due (pending with due_at <= now, or claimed by a runner and not yet sent);
    outbox_pending: promises not due yet; handoffs_waiting: conversations waiting for an agent;
    handoffs_claimed: conversations an agent holds."""
    due = session.execute(select(func.count(OutboxItem.id)).where(or_(
        and_(OutboxItem.status == OutboxStatus.pending.value, OutboxItem.due_at <= now),
        OutboxItem.status == OutboxStatus.claimed.value))).scalar_one()
    later = session.execute(select(func.count(OutboxItem.id)).where(
        OutboxItem.status == OutboxStatus.pending.value, OutboxItem.due_at > now)).scalar_one()
    handoffs = dict(session.execute(select(Handoff.status, func.count(Handoff.id)).where(
        Handoff.status.in_([HandoffStatus.waiting.value, HandoffStatus.claimed.value])).group_by(Handoff.status)).all())
    return {"outbox_due": due, "outbox_pending": later,
            "handoffs_waiting": handoffs.get(HandoffStatus.waiting.value, 0),
            "handoffs_claimed": handoffs.get(HandoffStatus.claimed.value, 0)}
