"""The service desk's figures for its operators: complaint rate, omission rate and dissatisfaction rate.

`python -m bot tickets report [--since DATE] [--until DATE] [--json]`. Definitions (over the tickets opened in the
period, [since, until)):

- complaint rate: complaint tickets / all tickets (how many contacts were complaints);
- omission rate (漏): tickets on which a promise was missed — still open after their resolution deadline
  (`resolution_due`, the SLA), or after their follow-up due time (`follow_up_due`: nobody checked back) — as a
  share of all tickets; each omitted ticket is listed with why, so the desk can act on it;
- dissatisfaction rate: ratings of 1 or 2 (of 5) / all ratings given, with the number of ratings beside it
  (a rate over a handful of ratings says little).

A promise to a customer not kept (an outbox row `failed`, or still unsent well after its due time) also makes a
ticket omitted, and `promises` says how many of the promises due were kept on time (`promise_figures`).

Hand-offs to a person are counted by reason. Times are compared in UTC; dates given on the command line are days in
the desk's time zone.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.services.tickets import as_utc, iso
from bot.store.models import Handoff, OutboxItem, OutboxStatus, Ticket, TicketKind, TicketStatus

FINISHED = (TicketStatus.resolved.value, TicketStatus.closed.value)
LOW_RATING = 2


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def omissions(ticket: Ticket, now: datetime) -> list[str]:
    """Why a ticket counts as omitted at `now` (empty: it does not)."""
    if ticket.status in FINISHED:
        return []
    why = []
    if ticket.resolution_due is not None and as_utc(ticket.resolution_due) < now:
        why.append("resolution_overdue")
    if ticket.follow_up_due is not None and as_utc(ticket.follow_up_due) < now:
        why.append("follow_up_overdue")
    return why


def desk_figures(session: Session, *, since: datetime, until: datetime, now: datetime) -> dict:
    """The figures of the tickets opened in [since, until), judged at `now` (all aware datetimes)."""
    tickets = list(session.execute(
        select(Ticket).where(Ticket.created_at >= since, Ticket.created_at < until).order_by(Ticket.id)
    ).scalars())
    total = len(tickets)
    by_kind = Counter(t.kind for t in tickets)
    broken = broken_promises(session, [t.id for t in tickets], now)
    omitted = [{"number": t.number, "status": t.status, "why": why}
               for t in tickets if (why := omissions(t, now) + broken.get(t.id, []))]
    ratings = [t.satisfaction for t in tickets if t.satisfaction is not None]
    low = sum(1 for r in ratings if r <= LOW_RATING)
    handoffs = list(session.execute(
        select(Handoff.reason).join(Ticket, Handoff.ticket_id == Ticket.id)
        .where(Ticket.created_at >= since, Ticket.created_at < until)
    ).scalars())
    return {
        "period": {"since": iso(since), "until": iso(until)},
        "judged_at": iso(now),
        "tickets": total,
        "by_kind": dict(sorted(by_kind.items())),
        "complaints": by_kind.get(TicketKind.complaint.value, 0),
        "complaint_rate": _rate(by_kind.get(TicketKind.complaint.value, 0), total),
        "omitted": omitted,
        "omission_rate": _rate(len(omitted), total),
        "ratings": {"count": len(ratings), "low": low,
                    "mean": round(sum(ratings) / len(ratings), 2) if ratings else None},
        "dissatisfaction_rate": _rate(low, len(ratings)),
        "handoffs": {"count": len(handoffs), "by_reason": dict(sorted(Counter(handoffs).items()))},
        "promises": promise_figures(session, [t.id for t in tickets], now),
    }


# --- promises (the outbox): kept on time, or not kept -------------------------------------------------------
def _promise_rows(session: Session, ticket_ids: list[int], now: datetime) -> list[OutboxItem]:
    """The promises of these tickets that were due by `now` (cancelled ones were withdrawn, not broken)."""
    if not ticket_ids:
        return []
    rows = []
    for start in range(0, len(ticket_ids), 500):
        rows += session.execute(select(OutboxItem).where(
            OutboxItem.ticket_id.in_(ticket_ids[start:start + 500]), OutboxItem.due_at <= now,
            OutboxItem.status != OutboxStatus.cancelled.value)).scalars()
    return rows


def _grace() -> timedelta:
    from bot.services.promises import default_config

    return timedelta(minutes=default_config().overdue_grace_minutes)


def broken_promises(session: Session, ticket_ids: list[int], now: datetime) -> dict[int, list[str]]:
    """Ticket id -> why a promise to its customer was not kept: `promise_failed:<kind>` (the outbox gave up) or
    `promise_overdue:<kind>` (still not sent well past its due time)."""
    late_after = now - _grace()
    broken: dict[int, list[str]] = {}
    for row in _promise_rows(session, ticket_ids, now):
        if row.status == OutboxStatus.failed.value:
            broken.setdefault(row.ticket_id, []).append(f"promise_failed:{row.kind}")
        elif row.status in (OutboxStatus.pending.value, OutboxStatus.claimed.value) and as_utc(row.due_at) < late_after:
            broken.setdefault(row.ticket_id, []).append(f"promise_overdue:{row.kind}")
    return broken


def promise_figures(session: Session, ticket_ids: list[int], now: datetime) -> dict:
    """Promises due by now: how many reached the customer within the grace of their due time (`held` counts: the
    widget had it for them), the rate, and how many failed or are overdue."""
    grace = _grace()
    rows = _promise_rows(session, ticket_ids, now)
    on_time = sum(1 for r in rows if r.status in (OutboxStatus.sent.value, OutboxStatus.held.value)
                  and (r.sent_at is None or as_utc(r.sent_at) <= as_utc(r.due_at) + grace))
    failed = sum(1 for r in rows if r.status == OutboxStatus.failed.value)
    overdue = sum(1 for r in rows if r.status in (OutboxStatus.pending.value, OutboxStatus.claimed.value)
                  and as_utc(r.due_at) < now - grace)
    return {"due": len(rows), "kept_on_time": on_time, "failed": failed, "overdue": overdue,
            "kept_on_time_rate": _rate(on_time, len(rows))}
