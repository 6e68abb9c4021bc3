"""Tickets: numbering, idempotent creation, facts, the six step stamps, remedies, hand-offs, and their event log."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload

from bot.nlu import phones
from bot.store.models import (
    OPEN_STATUSES,
    STEPS,
    TRANSITIONS,
    Customer,
    Purchase,
    Ticket,
    TicketCounter,
    TicketEvent,
    TicketKind,
    TicketStatus,
    Visit,
)

log = logging.getLogger(__name__)

FACT_FIELDS = ("customer_name", "phone", "product", "model", "symptom", "purchase_date", "order_id", "address",
               "contact_time", "impact")


class TicketError(Exception):
    """A domain error the caller turns into a message for the customer or operator."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


@dataclass(frozen=True)
class SLA:
    first_response_hours: int = 2
    resolution_hours: int = 48


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything is stored in UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def iso(value: datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat() if value else None


def _insert_ignore(session: Session, table, values: dict) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - other databases are not supported
        raise RuntimeError(f"unsupported database {dialect}")
    session.execute(stmt)


def next_number(session: Session, day: date) -> str:
    """SV-YYYYMMDD-NNNN; the counter row is locked by the UPDATE until the transaction ends."""
    key = day.strftime("%Y%m%d")
    _insert_ignore(session, TicketCounter.__table__, {"day": key, "last": 0})
    session.execute(update(TicketCounter).where(TicketCounter.day == key).values(last=TicketCounter.last + 1))
    last = session.execute(select(TicketCounter.last).where(TicketCounter.day == key)).scalar_one()
    return f"SV-{key}-{last:04d}"


def add_event(session: Session, ticket: Ticket, kind: str, actor: str, at: datetime, /, **data: Any) -> TicketEvent:
    event = TicketEvent(ticket=ticket, kind=kind, actor=actor, at=at, data=_jsonable(data))
    session.add(event)
    return event


def _jsonable(data: dict) -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, (date, datetime)):
            out[key] = value.isoformat()
        elif isinstance(value, dict):
            out[key] = _jsonable(value)
        else:
            out[key] = value
    return out


class TicketBook:
    """Ticket operations inside one session (the caller's unit of work commits)."""

    def __init__(self, session: Session, tz: ZoneInfo, sla: SLA = SLA()):
        self.session = session
        self.tz = tz
        self.sla = sla

    # --- creation -------------------------------------------------------------------------------
    def open(self, *, conversation_id: str, channel: str, kind: str, language: str, now: datetime,
             actor: str = "bot", severity: str = "normal") -> tuple[Ticket, bool]:
        """The open ticket of this conversation and kind, created if there is none. Returns (ticket, created)."""
        kind = TicketKind(kind).value
        key = f"{channel}:{conversation_id}:{kind}"
        existing = self.by_dedupe_key(key)
        if existing is not None:
            return existing, False
        number = next_number(self.session, now.astimezone(self.tz).date())
        ticket = Ticket(
            number=number, dedupe_key=key, kind=kind, status=TicketStatus.new.value, severity=severity,
            language=language, channel=channel, conversation_id=conversation_id, account="",
            first_response_due=now + timedelta(hours=self.sla.first_response_hours),
            resolution_due=now + timedelta(hours=self.sla.resolution_hours), created_at=now, updated_at=now,
        )
        try:
            with self.session.begin_nested():
                self.session.add(ticket)
                self.session.flush()
        except IntegrityError:
            # A concurrent delivery of the same message created it first.
            existing = self.by_dedupe_key(key)
            if existing is None:
                raise
            return existing, False
        add_event(self.session, ticket, "ticket_created", actor, now, ticket_kind=kind, channel=channel,
                  conversation_id=conversation_id, language=language)
        return ticket, True

    def by_dedupe_key(self, key: str) -> Ticket | None:
        return self.session.execute(select(Ticket).where(Ticket.dedupe_key == key)).scalar_one_or_none()

    def get(self, number: str) -> Ticket | None:
        """The ticket with its customer, in one statement. Its events are read when first used (most turns of a
        conversation only add to them; docs/PERFORMANCE.md, change 22)."""
        return self.session.execute(
            select(Ticket).where(Ticket.number == number.upper()).options(joinedload(Ticket.customer))
        ).scalar_one_or_none()

    def require(self, number: str) -> Ticket:
        ticket = self.get(number)
        if ticket is None:
            raise TicketError("ticket_not_found", number)
        return ticket

    # --- changes --------------------------------------------------------------------------------
    def record_facts(self, ticket: Ticket, facts: dict, now: datetime, actor: str = "bot") -> dict:
        """Set the given facts; only real changes are written and logged. Returns what changed."""
        changed = {}
        for name, value in facts.items():
            if name not in FACT_FIELDS:
                raise ValueError(f"unknown fact {name}")
            if value in (None, ""):
                continue
            if getattr(ticket, name) != value:
                changed[name] = {"from": getattr(ticket, name), "to": value}
                setattr(ticket, name, value)
        if changed:
            ticket.updated_at = now
            add_event(self.session, ticket, "facts_recorded", actor, now, changes=_jsonable(changed))
        return changed

    def append_account(self, ticket: Ticket, text: str, now: datetime) -> None:
        """The customer's own words, kept whole."""
        ticket.account = (ticket.account + "\n" if ticket.account else "") + text
        ticket.updated_at = now
        add_event(self.session, ticket, "account_added", "customer", now, chars=len(text))

    def stamp_step(self, ticket: Ticket, step: str, now: datetime, actor: str = "bot") -> bool:
        if step not in STEPS:
            raise ValueError(f"unknown step {step}")
        column = f"step_{step}_at"
        if getattr(ticket, column) is not None:
            return False
        setattr(ticket, column, now)
        ticket.updated_at = now
        add_event(self.session, ticket, "step_reached", actor, now, step=step)
        return True

    def set_status(self, ticket: Ticket, status: str, now: datetime, actor: str = "bot", note: str = "") -> None:
        new = TicketStatus(status)
        old = TicketStatus(ticket.status)
        if new == old:
            return
        if new not in TRANSITIONS[old]:
            raise TicketError("bad_transition", f"{old.value} -> {new.value}")
        ticket.status = new.value
        if new in (TicketStatus.resolved, TicketStatus.closed):
            ticket.dedupe_key = None  # a later report in the same conversation is a new problem
            from bot.services.visits import release_ticket_holds  # visits build on tickets

            release_ticket_holds(self.session, ticket.id)  # a finished case holds no window
        elif new == TicketStatus.reopened:
            key = f"{ticket.channel}:{ticket.conversation_id}:{ticket.kind}"
            if self.by_dedupe_key(key) is None:  # a newer open ticket of the same kind keeps its key
                ticket.dedupe_key = key
        ticket.updated_at = now
        add_event(self.session, ticket, "status_changed", actor, now, **{"from": old.value, "to": new.value, "note": note})

    def propose_remedy(self, ticket: Ticket, remedy: str, clause_id: str, clause_text: str, now: datetime) -> None:
        ticket.remedy_proposed = remedy
        ticket.remedy_clause = clause_id
        ticket.remedy_clause_text = clause_text
        ticket.updated_at = now
        add_event(self.session, ticket, "remedy_proposed", "bot", now, remedy=remedy, clause=clause_id)

    def accept_remedy(self, ticket: Ticket, remedy: str, clause_id: str, now: datetime) -> None:
        ticket.remedy_accepted = remedy
        ticket.remedy_clause = clause_id
        ticket.updated_at = now
        add_event(self.session, ticket, "remedy_accepted", "customer", now, remedy=remedy, clause=clause_id)

    def reject_remedy(self, ticket: Ticket, remedy: str, now: datetime) -> None:
        add_event(self.session, ticket, "remedy_rejected", "customer", now, remedy=remedy)

    def request_handoff(self, ticket: Ticket, reason: str, now: datetime, actor: str = "bot") -> bool:
        first = not ticket.handoff_requested
        ticket.handoff_requested = True
        ticket.handoff_reason = ticket.handoff_reason or reason
        if reason in ("safety", "anger") and ticket.severity != "critical":
            ticket.severity = "critical" if reason == "safety" else "high"
        ticket.updated_at = now
        add_event(self.session, ticket, "handoff_requested", actor, now, reason=reason)
        return first

    def set_follow_up(self, ticket: Ticket, due: datetime, now: datetime) -> None:
        ticket.follow_up_due = due
        ticket.updated_at = now
        add_event(self.session, ticket, "follow_up_scheduled", "bot", now, due=due)

    def record_satisfaction(self, ticket: Ticket, score: int, now: datetime) -> None:
        if not 1 <= score <= 5:
            raise TicketError("bad_score", str(score))
        ticket.satisfaction = score
        ticket.updated_at = now
        add_event(self.session, ticket, "satisfaction_recorded", "customer", now, score=score)

    def link_customer(self, ticket: Ticket, customer: Customer | None, purchase: Purchase | None, now: datetime) -> None:
        if customer is not None and ticket.customer_id != customer.id:
            ticket.customer = customer
            add_event(self.session, ticket, "customer_linked", "bot", now, customer_id=customer.id)
        if purchase is not None and ticket.purchase_id != purchase.id:
            ticket.purchase = purchase
            add_event(self.session, ticket, "purchase_linked", "bot", now, order_id=purchase.order_id)

    # --- queries --------------------------------------------------------------------------------
    def list(self, *, limit: int = 100, status: str | None = None) -> list[Ticket]:
        stmt = select(Ticket).order_by(Ticket.id.desc()).limit(limit)
        if status:
            stmt = stmt.where(Ticket.status == status)
        return list(self.session.execute(stmt).scalars())

    def of_conversation(self, conversation_id: str) -> list[Ticket]:
        return list(self.session.execute(
            select(Ticket).where(Ticket.conversation_id == conversation_id).order_by(Ticket.id)).scalars())

    def earlier_complaints(self, ticket: Ticket, days: int = 90) -> int:
        """Tickets of the same customer about the same product before this one: a repeat complaint."""
        if ticket.customer_id is None:
            return 0
        since = as_utc(ticket.created_at) - timedelta(days=days)
        stmt = select(func.count(Ticket.id)).where(
            Ticket.customer_id == ticket.customer_id, Ticket.id != ticket.id, Ticket.created_at >= since)
        if ticket.product:
            stmt = stmt.where(Ticket.product == ticket.product)
        return self.session.execute(stmt).scalar_one()

    def prior_repairs(self, ticket: Ticket) -> int:
        """Repairs already done on this purchase for the same symptom (for the repeat-repair exchange rule)."""
        if ticket.purchase_id is None:
            return 0
        stmt = select(func.count(Ticket.id)).where(
            Ticket.purchase_id == ticket.purchase_id, Ticket.id != ticket.id,
            Ticket.remedy_accepted.in_(("free_repair",)),
            Ticket.status.in_((TicketStatus.resolved.value, TicketStatus.closed.value)))
        if ticket.symptom:
            stmt = stmt.where(Ticket.symptom == ticket.symptom)
        return self.session.execute(stmt).scalar_one()

    def visible_to(self, ticket: Ticket, *, conversation_id: str | None = None, phone: str | None = None,
                   order_id: str | None = None) -> bool:
        """A customer sees a ticket from its own conversation, or with its phone plus a second fact."""
        if conversation_id and ticket.conversation_id == conversation_id:
            return True
        ticket_phone = ticket.phone or (ticket.customer.phone if ticket.customer else None)
        if phones.same_number(phone, ticket_phone):
            return True
        return False

    def find_by_phone(self, phone: str, *, order_id: str | None = None, number: str | None = None) -> list[Ticket]:
        """Status lookup by phone needs a second fact: an order number or the ticket number."""
        if not (order_id or number):
            raise TicketError("second_fact_required")
        stmt = select(Ticket).where(Ticket.phone.in_(phones.equivalent_forms(phone)))
        if number:
            stmt = stmt.where(Ticket.number == number.upper())
        if order_id:
            stmt = stmt.where(Ticket.order_id == order_id.upper())
        return list(self.session.execute(stmt.order_by(Ticket.id.desc())).scalars())


def complaint_register(session: Session, *, limit: int = 200) -> list[dict]:
    """The service desk's complaint register (客户意见表/投诉登记表): who, address, phone, reason, recorded by."""
    rows = session.execute(
        select(Ticket).where(Ticket.kind == TicketKind.complaint.value).order_by(Ticket.id.desc()).limit(limit)
        .options(selectinload(Ticket.customer))
    ).scalars()
    register = []
    for t in rows:
        first_words = (t.account or "").strip().split("\n")[0][:120]
        register.append({
            "number": t.number, "date": iso(t.created_at),
            "customer": t.customer_name or (t.customer.name if t.customer else None),
            "address": t.address, "phone": t.phone or (t.customer.phone if t.customer else None),
            "reason": ", ".join(filter(None, (t.product, t.symptom))) + (f" — {first_words}" if first_words else ""),
            "recorded_by": t.recorded_by, "status": t.status, "handoff_requested": bool(t.handoff_requested),
            "satisfaction": t.satisfaction,
        })
    return register


def ticket_json(ticket: Ticket, *, with_events: bool = False, visits: Iterable[Visit] = ()) -> dict:
    """The JSON shape other tools read (`python -m bot tickets show --json`)."""
    data = {
        "number": ticket.number,
        "kind": ticket.kind,
        "status": ticket.status,
        "severity": ticket.severity,
        "language": ticket.language,
        "channel": ticket.channel,
        "conversation_id": ticket.conversation_id,
        "customer": {
            "name": ticket.customer_name or (ticket.customer.name if ticket.customer else None),
            "phone": ticket.phone or (ticket.customer.phone if ticket.customer else None),
        },
        "facts": {
            "product": ticket.product,
            "model": ticket.model,
            "symptom": ticket.symptom,
            "purchase_date": ticket.purchase_date.isoformat() if ticket.purchase_date else None,
            "order_id": ticket.order_id,
            "address": ticket.address,
            "contact_time": ticket.contact_time,
            "impact": ticket.impact,
        },
        "account": ticket.account,
        "anger": ticket.anger,
        "steps": {step: iso(getattr(ticket, f"step_{step}_at")) for step in STEPS},
        "remedy": {
            "proposed": ticket.remedy_proposed,
            "accepted": ticket.remedy_accepted,
            "clause": ticket.remedy_clause,
            "clause_text": ticket.remedy_clause_text,
        },
        "sla": {"first_response_due": iso(ticket.first_response_due), "resolution_due": iso(ticket.resolution_due)},
        "follow_up_due": iso(ticket.follow_up_due),
        "handoff_requested": bool(ticket.handoff_requested),
        "handoff_reason": ticket.handoff_reason,
        "satisfaction": ticket.satisfaction,
        "recorded_by": ticket.recorded_by,
        "created_at": iso(ticket.created_at),
        "updated_at": iso(ticket.updated_at),
    }
    if with_events:
        data["events"] = [
            {"at": iso(e.at), "actor": e.actor, "kind": e.kind, "data": e.data} for e in ticket.events
        ]
        data["attachments"] = [
            {"path": a.path, "mime_type": a.mime_type, "size": a.size, "channel": a.channel} for a in ticket.attachments
        ]
        data["visits"] = [
            {"engineer": v.engineer.code if v.engineer else None, "start": iso(v.start), "end": iso(v.end),
             "status": v.status, "address": v.address} for v in visits
        ]
    return data
