"""The service desk's figures for its operators: the three controls (complaint, omission and dissatisfaction rates)
and the figures around them.

`python -m bot tickets report [--since DATE] [--until DATE] [--json]` and the console's figures page. Definitions
(over the tickets opened in the period, [since, until), judged at `now`):

- complaint rate: complaint tickets / all tickets (how many contacts were complaints);
- omission rate (漏): tickets on which a promise was missed, as a share of all tickets. Only unfinished tickets
  (not resolved or closed) count — a ticket the bot finished and resolved is not omitted. Each is listed with why:
  `resolution_overdue` (open after `resolution_due`, the SLA), `follow_up_overdue` (after `follow_up_due`: nobody
  checked back), `callback_overdue` (an out-of-hours call-back time passed and no agent marked it done),
  `visit_outcome_missing` (a booked visit ended more than VISIT_OUTCOME_GRACE ago and nobody recorded done or
  no-show);
- dissatisfaction rate: ratings of 1 or 2 (of 5) / all ratings given, with the number of ratings beside it
  (a rate over a handful of ratings says little);
- first-contact resolution: tickets finished without a hand-off, without a home visit and never reopened / all;
- hand-off rate: tickets with a hand-off to a person / all; reopen rate: tickets reopened at least once / all;
- SLA breaches: first response (a ticket handed to a person that no agent took before `first_response_due`; the
  bot answers everything else at once) and resolution (still open — or reopened and not resolved again — past
  `resolution_due`, or first resolved after it), each ticket listed with why;
- median time to first visit: hours from the ticket's opening to the start of its first visit not cancelled;
- the same rates by ISO week (desk time zone), by product and by channel, and per agent: hand-offs handled
  (taken over or closed), median minutes from the request to the take-over, and the ratings of their tickets.

A promise to a customer not kept (an outbox row `failed`, or still unsent well after its due time) also makes a
ticket omitted, and `promises` says how many of the promises due were kept on time (`promise_figures`).

Hand-offs to a person are counted by reason. Times are compared in UTC; dates given on the command line are days in
the desk's time zone.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from statistics import median
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.services.desk_loops import is_reopen
from bot.services.tickets import as_utc, iso
from bot.store.models import (Agent, Handoff, OutboxItem, OutboxStatus, Ticket, TicketEvent, TicketKind, TicketStatus,
                              Visit)

FINISHED = (TicketStatus.resolved.value, TicketStatus.closed.value)
LOW_RATING = 2
VISIT_OUTCOME_GRACE = timedelta(hours=24)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def omissions(ticket: Ticket, now: datetime, handoffs=(), visits=()) -> list[str]:
    """Why a ticket counts as omitted at `now` (empty: it does not)."""
    if ticket.status in FINISHED:
        return []
    why = []
    if ticket.resolution_due is not None and as_utc(ticket.resolution_due) < now:
        why.append("resolution_overdue")
    if ticket.follow_up_due is not None and as_utc(ticket.follow_up_due) < now:
        why.append("follow_up_overdue")
    if any(h.callback_due is not None and h.callback_done_at is None and as_utc(h.callback_due) < now
           for h in handoffs):
        why.append("callback_overdue")
    if any(v.status == "booked" and as_utc(v.end) + VISIT_OUTCOME_GRACE < now for v in visits):
        why.append("visit_outcome_missing")
    return why


@dataclass
class _Facts:
    """What the report needs to know of one ticket."""

    ticket: Ticket
    omitted: list[str]
    handoffs: list = field(default_factory=list)
    visits: list = field(default_factory=list)
    reopened: bool = False
    finished_at: datetime | None = None
    sla: list[str] = field(default_factory=list)

    @property
    def handed_off(self) -> bool:
        return bool(self.handoffs) or bool(self.ticket.handoff_requested)

    @property
    def live_visits(self) -> list:
        return [v for v in self.visits if v.status != "cancelled"]

    @property
    def first_contact(self) -> bool:
        return self.ticket.status in FINISHED and not self.handed_off and not self.live_visits and not self.reopened


def _sla_breaches(f: _Facts, now: datetime) -> list[str]:
    t, why = f.ticket, []
    due = as_utc(t.first_response_due)
    if f.handoffs and due is not None:
        first = min(f.handoffs, key=lambda h: h.id)
        answered = as_utc(first.claimed_at) or (as_utc(first.closed_at) if first.agent_id else None)
        if (answered is not None and answered > due) or (answered is None and first.status == "waiting" and now > due):
            why.append("first_response")
    due = as_utc(t.resolution_due)
    if due is not None:
        still_open = t.status not in FINISHED
        if (still_open and now > due) or (not still_open and f.finished_at is not None and f.finished_at > due):
            why.append("resolution")
    return why


def _group(facts: list[_Facts]) -> dict:
    total = len(facts)
    complaints = sum(1 for f in facts if f.ticket.kind == TicketKind.complaint.value)
    omitted = sum(1 for f in facts if f.omitted)
    ratings = [f.ticket.satisfaction for f in facts if f.ticket.satisfaction is not None]
    low = sum(1 for r in ratings if r <= LOW_RATING)
    return {"tickets": total, "complaints": complaints, "complaint_rate": _rate(complaints, total),
            "omitted": omitted, "omission_rate": _rate(omitted, total), "ratings": len(ratings), "low_ratings": low,
            "dissatisfaction_rate": _rate(low, len(ratings)),
            "handoff_rate": _rate(sum(1 for f in facts if f.handed_off), total),
            "reopen_rate": _rate(sum(1 for f in facts if f.reopened), total),
            "first_contact_resolution_rate": _rate(sum(1 for f in facts if f.first_contact), total)}


def _by(facts: list[_Facts], key) -> dict:
    groups: dict[str, list[_Facts]] = defaultdict(list)
    for f in facts:
        groups[key(f)].append(f)
    return {k: _group(v) for k, v in sorted(groups.items())}


def _week(moment: datetime, tz) -> str:
    year, week, _ = as_utc(moment).astimezone(tz).isocalendar()
    return f"{year}-W{week:02d}"


def _agents(session: Session, facts: list[_Facts]) -> list[dict]:
    handled: dict[int, list[tuple[Handoff, Ticket]]] = defaultdict(list)
    for f in facts:
        for h in f.handoffs:
            if h.agent_id is not None:
                handled[h.agent_id].append((h, f.ticket))
    if not handled:
        return []
    agents = {a.id: a for a in session.execute(select(Agent).where(Agent.id.in_(list(handled)))).scalars()}
    out = []
    for agent_id, items in handled.items():
        agent = agents.get(agent_id)
        waits = [(as_utc(h.claimed_at) - as_utc(h.requested_at)).total_seconds() / 60 for h, _t in items
                 if h.claimed_at is not None]
        rated = {t.id: t.satisfaction for _h, t in items if t.satisfaction is not None}
        scores = list(rated.values())
        out.append({"agent": agent.name if agent else str(agent_id),
                    "display_name": agent.display_name if agent else None,
                    "handled": len(items),
                    "median_first_response_minutes": round(median(waits), 1) if waits else None,
                    "ratings": {"count": len(scores), "low": sum(1 for s in scores if s <= LOW_RATING),
                                "mean": round(sum(scores) / len(scores), 2) if scores else None}})
    out.sort(key=lambda a: (-a["handled"], a["agent"]))
    return out


def _related(session: Session, ids: list[int]) -> tuple[dict, dict, dict]:
    """Hand-offs, visits and status events of the tickets, by ticket id (read in chunks of 500 ids)."""
    handoffs_of: dict[int, list[Handoff]] = defaultdict(list)
    visits_of: dict[int, list[Visit]] = defaultdict(list)
    events_of: dict[int, list[TicketEvent]] = defaultdict(list)
    for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
        for h in session.execute(select(Handoff).where(Handoff.ticket_id.in_(chunk)).order_by(Handoff.id)).scalars():
            handoffs_of[h.ticket_id].append(h)
        for v in session.execute(select(Visit).where(Visit.ticket_id.in_(chunk)).order_by(Visit.start)).scalars():
            visits_of[v.ticket_id].append(v)
        for e in session.execute(select(TicketEvent).where(
                TicketEvent.ticket_id.in_(chunk),
                TicketEvent.kind.in_(("status_changed", "ticket_reopened", "ticket_resolved")))
                .order_by(TicketEvent.id)).scalars():
            events_of[e.ticket_id].append(e)
    return handoffs_of, visits_of, events_of


def _facts_of(tickets: list[Ticket], related: tuple[dict, dict, dict], now: datetime) -> list[_Facts]:
    handoffs_of, visits_of, events_of = related
    facts = []
    for t in tickets:
        f = _Facts(t, omissions(t, now, handoffs_of[t.id], visits_of[t.id]), handoffs_of[t.id], visits_of[t.id])
        for e in events_of[t.id]:
            if is_reopen(e):
                f.reopened = True
            to = (e.data or {}).get("to") if e.kind == "status_changed" else (
                "resolved" if e.kind == "ticket_resolved" else None)
            if to in FINISHED and f.finished_at is None:
                f.finished_at = as_utc(e.at)
        f.sla = _sla_breaches(f, now)
        facts.append(f)
    return facts


def desk_figures(session: Session, *, since: datetime, until: datetime, now: datetime,
                 tz: ZoneInfo | None = None) -> dict:
    """The figures of the tickets opened in [since, until), judged at `now` (all aware datetimes); weeks are in
    `tz` (default UTC)."""
    tickets = list(session.execute(
        select(Ticket).where(Ticket.created_at >= since, Ticket.created_at < until).order_by(Ticket.id)
    ).scalars())
    related = _related(session, [t.id for t in tickets])
    facts = _facts_of(tickets, related, now)
    figures = {"period": {"since": iso(since), "until": iso(until)}, "judged_at": iso(now)}
    figures.update(_ticket_figures(session, tickets, facts, related[0], now))
    figures.update({
        "by_week": _by(facts, lambda f: _week(f.ticket.created_at, tz or timezone.utc)),
        "by_product": _by(facts, lambda f: f.ticket.product or "unknown"),
        "by_channel": _by(facts, lambda f: f.ticket.channel),
        "agents": _agents(session, facts),
    })
    return figures


def _ticket_figures(session: Session, tickets: list[Ticket], facts: list[_Facts], handoffs_of: dict,
                    now: datetime) -> dict:
    ids = [t.id for t in tickets]
    total = len(tickets)
    by_kind = Counter(t.kind for t in tickets)
    broken = broken_promises(session, ids, now)
    omitted = [{"number": f.ticket.number, "status": f.ticket.status, "why": why}
               for f in facts if (why := f.omitted + broken.get(f.ticket.id, []))]
    ratings = [t.satisfaction for t in tickets if t.satisfaction is not None]
    low = sum(1 for r in ratings if r <= LOW_RATING)
    handoffs = [h.reason for t in tickets for h in handoffs_of[t.id]]
    first_visit_hours = [
        (as_utc(min(f.live_visits, key=lambda v: as_utc(v.start)).start) - as_utc(f.ticket.created_at))
        .total_seconds() / 3600 for f in facts if f.live_visits]
    all_visits = [v for f in facts for v in f.visits]
    breaches = [{"number": f.ticket.number, "status": f.ticket.status, "why": f.sla} for f in facts if f.sla]
    fcr = sum(1 for f in facts if f.first_contact)
    handed = sum(1 for f in facts if f.handed_off)
    reopened = sum(1 for f in facts if f.reopened)
    return {
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
        "promises": promise_figures(session, ids, now),
        "first_contact_resolution": {"count": fcr, "rate": _rate(fcr, total)},
        "handoff_rate": _rate(handed, total),
        "reopened": reopened,
        "reopen_rate": _rate(reopened, total),
        "sla_breaches": {"first_response": sum(1 for b in breaches if "first_response" in b["why"]),
                         "resolution": sum(1 for b in breaches if "resolution" in b["why"]),
                         "tickets": breaches},
        "median_hours_to_first_visit": round(median(first_visit_hours), 2) if first_visit_hours else None,
        "visits": {"count": len(all_visits),
                   "by_status": dict(sorted(Counter(v.status for v in all_visits).items())),
                   "late": sum(1 for v in all_visits if v.late_minutes)},
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
