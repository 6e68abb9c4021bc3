"""The service desk's figures for its operators: complaint rate, omission rate and dissatisfaction rate.

`python -m bot tickets report [--since DATE] [--until DATE] [--json]`. Definitions (over the tickets opened in the
period, [since, until)):

- complaint rate: complaint tickets / all tickets (how many contacts were complaints);
- omission rate (漏): tickets on which a promise was missed — still open after their resolution deadline
  (`resolution_due`, the SLA), or after their follow-up due time (`follow_up_due`: nobody checked back) — as a
  share of all tickets; each omitted ticket is listed with why, so the desk can act on it;
- dissatisfaction rate: ratings of 1 or 2 (of 5) / all ratings given, with the number of ratings beside it
  (a rate over a handful of ratings says little).

Hand-offs to a person are counted by reason. Times are compared in UTC; dates given on the command line are days in
the desk's time zone.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.services.tickets import as_utc, iso
from bot.store.models import Handoff, Ticket, TicketKind, TicketStatus

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
    omitted = [{"number": t.number, "status": t.status, "why": why}
               for t in tickets if (why := omissions(t, now))]
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
    }
