"""Closing the loops at the service desk: remedies carried out, tickets reopened, the alert list (low ratings, "not
solved", reopened tickets) and the out-of-hours call-back work list. Every change is an event on the ticket, and every
status change goes through `TicketBook.set_status`."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from bot.services import promises
from bot.services.promises import resolve_ticket
from bot.services.tickets import TicketBook, TicketError, add_event, as_utc, iso
from bot.store.models import TRANSITIONS, Agent, Handoff, Ticket, TicketEvent, TicketStatus

# What the desk marks as carried out: each resolves the ticket.
DESK_REMEDIES = ("return", "exchange", "refund")
LOW_RATING = 2
MAX_REASON = 500
ALERT_KINDS = ("low_rating", "not_solved", "reopened")


def complete_remedy(uow, number: str, remedy: str, now: datetime, *, agent: str, tz: ZoneInfo,
                    note: str = "") -> Ticket:
    """The desk marks a return, exchange or refund as carried out: event `remedy_completed`, ticket resolved."""
    if remedy not in DESK_REMEDIES:
        raise TicketError("bad_remedy", f"{remedy!r} is not one of {', '.join(DESK_REMEDIES)}")
    book = TicketBook(uow.session, tz)
    ticket = book.require(number)
    if TicketStatus.resolved not in _next(ticket) and ticket.status != TicketStatus.resolved.value:
        raise TicketError("bad_transition", f"{ticket.status} -> resolved")
    add_event(uow.session, ticket, "remedy_completed", "agent", now, remedy=remedy, by=agent,
              **({"note": note.strip()[:MAX_REASON]} if note.strip() else {}))
    # Resolved, and the satisfaction survey promised (the outbox), as for every remedy carried out.
    resolve_ticket(uow.session, ticket, now, tz=tz, actor="agent", note=f"{remedy} completed by {agent}")
    return ticket


def reopen_ticket(uow, number: str, reason: str, now: datetime, *, agent: str, tz: ZoneInfo) -> Ticket:
    """The desk reopens a resolved or closed ticket; a reason is required and kept on the status change."""
    reason = (reason or "").strip()[:MAX_REASON]
    if not reason:
        raise TicketError("reason_required", "say why the ticket is reopened")
    book = TicketBook(uow.session, tz)
    ticket = book.require(number)
    if TicketStatus.reopened not in _next(ticket):
        raise TicketError("bad_transition", f"{ticket.status} -> reopened")
    # Reopened, and what was promised for a finished case (survey, thank-you) withdrawn.
    promises.reopen_ticket(uow.session, ticket, now, tz=tz, actor="agent", note=reason)
    add_event(uow.session, ticket, "desk_reopened", "agent", now, reason=reason, by=agent)
    return ticket


def _next(ticket: Ticket):
    return TRANSITIONS[TicketStatus(ticket.status)]


# ---------------------------------------------------------------------------------------------- alerts
def alert_reasons(event: TicketEvent) -> list[str]:
    """Why one ticket event alerts the desk (empty: it does not).

    - low_rating: `satisfaction_recorded` with a score of 1-2 (or any event whose data carries `"score"` <= 2 with
      `"survey": true`);
    - not_solved: any event whose data has `"solved": false` (the survey's "was it solved?") or a
      `check_back_answered` event with `"fixed": false`;
    - reopened: the ticket moved to `reopened` (`status_changed` to reopened, or a `ticket_reopened` event).
    """
    data = event.data if isinstance(event.data, dict) else {}
    why = []
    score = data.get("score")
    if isinstance(score, int) and not isinstance(score, bool) and score <= LOW_RATING and (
            event.kind == "satisfaction_recorded" or data.get("survey") is True):
        why.append("low_rating")
    if data.get("solved") is False or (event.kind == "check_back_answered" and data.get("fixed") is False):
        why.append("not_solved")
    if event.kind == "ticket_reopened" or (event.kind == "status_changed" and data.get("to") == "reopened"):
        why.append("reopened")
    return why


def is_reopen(event: TicketEvent) -> bool:
    return "reopened" in alert_reasons(event)


@dataclass
class Alert:
    ticket: Ticket
    reasons: list[str]
    first_at: datetime
    last_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    score: int | None

    @property
    def open(self) -> bool:
        return self.acknowledged_at is None or self.acknowledged_at < self.last_at

    def as_dict(self) -> dict:
        t = self.ticket
        return {"ticket": t.number, "kind": t.kind, "status": t.status, "channel": t.channel,
                "conversation_id": t.conversation_id, "language": t.language, "product": t.product,
                "reasons": self.reasons, "satisfaction": t.satisfaction, "score": self.score,
                "first_at": iso(self.first_at), "last_at": iso(self.last_at), "open": self.open,
                "acknowledged_at": iso(self.acknowledged_at), "acknowledged_by": self.acknowledged_by}


ALERT_EVENT_KINDS = ("satisfaction_recorded", "status_changed", "ticket_reopened", "check_back_answered",
                     "survey_answered", "alert_acknowledged")


def alerts(session, *, since: datetime | None = None, include_acknowledged: bool = False,
           limit: int = 200) -> list[Alert]:
    """Tickets that alert the desk, newest alert first, from the events at or after `since` (all when None); an
    alert acknowledged after its last trigger is left out unless asked for (a new trigger brings it back)."""
    stmt = select(TicketEvent).where(TicketEvent.kind.in_(ALERT_EVENT_KINDS))
    if since is not None:
        stmt = stmt.where(TicketEvent.at >= since)
    rows = session.execute(stmt.order_by(TicketEvent.id)).scalars()
    found: dict[int, dict] = {}
    for event in rows:
        entry = found.setdefault(event.ticket_id, {"reasons": [], "first": None, "last": None, "ack": None,
                                                   "ack_by": None, "score": None})
        if event.kind == "alert_acknowledged":
            entry["ack"], entry["ack_by"] = as_utc(event.at), (event.data or {}).get("by")
            continue
        why = alert_reasons(event)
        if not why:
            continue
        at = as_utc(event.at)
        entry["first"] = entry["first"] or at
        entry["last"] = at
        if "low_rating" in why:
            entry["score"] = (event.data or {}).get("score")
        for reason in why:
            if reason not in entry["reasons"]:
                entry["reasons"].append(reason)
    ids = [tid for tid, e in found.items() if e["last"] is not None]
    tickets = {t.id: t for t in session.execute(select(Ticket).where(Ticket.id.in_(ids))).scalars()} if ids else {}
    out = [Alert(tickets[tid], e["reasons"], e["first"], e["last"], e["ack"], e["ack_by"], e["score"])
           for tid, e in found.items() if tid in tickets]
    if not include_acknowledged:
        out = [a for a in out if a.open]
    out.sort(key=lambda a: (a.last_at, a.ticket.id), reverse=True)
    return out[:limit]


def acknowledge_alert(uow, number: str, now: datetime, *, agent: str, tz: ZoneInfo, note: str = "") -> Ticket:
    """The desk has seen the alert and taken it on: event `alert_acknowledged` (the badge counts open alerts)."""
    ticket = TicketBook(uow.session, tz).require(number)
    add_event(uow.session, ticket, "alert_acknowledged", "agent", now, by=agent,
              **({"note": note.strip()[:MAX_REASON]} if note.strip() else {}))
    return ticket


# ---------------------------------------------------------------------------------------------- call-backs
def callback_work_list(session, *, include_done: bool = True, limit: int = 200) -> list[Handoff]:
    """Hand-offs with an out-of-hours call-back time: the ones still to make first (earliest due first), then the
    ones made (latest first)."""
    rows = list(session.execute(
        select(Handoff).where(Handoff.callback_due.is_not(None))
        .options(selectinload(Handoff.ticket), selectinload(Handoff.callback_agent))
        .order_by(Handoff.callback_due, Handoff.id)).scalars())
    todo = [h for h in rows if h.callback_done_at is None]
    done = sorted((h for h in rows if h.callback_done_at is not None),
                  key=lambda h: as_utc(h.callback_done_at), reverse=True)
    return (todo + (done if include_done else []))[:limit]


def callback_json(handoff: Handoff, now: datetime) -> dict:
    t = handoff.ticket
    due = as_utc(handoff.callback_due)
    return {"handoff_id": handoff.id, "ticket": t.number if t else None, "conversation_id": handoff.conversation_id,
            "channel": handoff.channel, "language": handoff.language, "reason": handoff.reason,
            "status": handoff.status, "customer": t.customer_name if t else None, "phone": t.phone if t else None,
            "product": t.product if t else None, "callback_due": iso(due),
            "overdue": handoff.callback_done_at is None and due is not None and due < now,
            "done": handoff.callback_done_at is not None, "done_at": iso(handoff.callback_done_at),
            "done_by": handoff.callback_agent.name if handoff.callback_agent else None}


def mark_callback_done(uow, handoff_id: int, agent: Agent, now: datetime, note: str = "") -> Handoff:
    """The agent made the promised call-back: who and when are stored on the hand-off, event `callback_done`.
    Marking it again changes nothing."""
    handoff = uow.session.execute(select(Handoff).where(Handoff.id == handoff_id).with_for_update()
                                  .execution_options(populate_existing=True)).scalar_one_or_none()
    if handoff is None or handoff.callback_due is None:
        raise TicketError("callback_not_found", f"no call-back on hand-off {handoff_id}")
    if handoff.callback_done_at is not None:
        return handoff
    handoff.callback_done_at = now
    handoff.callback_done_by = agent.id
    uow.session.flush()
    add_event(uow.session, handoff.ticket, "callback_done", "agent", now, handoff_id=handoff.id, by=agent.name,
              due=iso(handoff.callback_due), **({"note": note.strip()[:MAX_REASON]} if note.strip() else {}))
    return handoff
