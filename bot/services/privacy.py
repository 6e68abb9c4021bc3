"""A customer's personal data under PIPL: all that is held about a phone number (`export`), forgetting it (`erase`:
tickets anonymised, transcripts and attachments deleted, the anonymous figures kept), and `purge`: transcripts and
attachments of cases closed longer ago than the retention period (BOT_RETENTION_DAYS).

Records are in the caller's session (the caller commits); transcripts are the Rasa tracker store's `events` table,
reached through `Transcripts` (its own engine: the tracker store may be another database). Files are deleted only
after the rows are committed (`PrivacyResult.files`, removed by `remove_files`), so a failed commit loses nothing.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from bot.pii import mask_value
from bot.services.conversation import conversation_id as conversation_of
from bot.services.tickets import add_event, as_utc, iso, ticket_json
from bot.store.models import (
    OPEN_HANDOFF_STATUSES,
    OPEN_STATUSES,
    Customer,
    Handoff,
    Ticket,
    TicketStatus,
    Visit,
)

log = logging.getLogger(__name__)

ERASED = "[erased]"
# Keys of ticket event data that hold what the customer said or who they are; everything else is masked text.
PERSONAL_KEYS = {"phone", "address", "name", "customer_name", "text", "order_id", "contact_time", "account",
                 "filename", "path", "value", "values", "facts", "changes", "note"}
CLOSED = (TicketStatus.resolved.value, TicketStatus.closed.value)


def normalise_phone(raw: str) -> str:
    """Digits only, without China's +86: what tickets and customers store."""
    digits = re.sub(r"\D", "", raw or "")
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    if not 5 <= len(digits) <= 20:
        raise ValueError(f"not a phone number: {raw!r}")
    return digits


# ---------------------------------------------------------------------------------------------- transcripts
class Transcripts:
    """The conversations as Rasa's SQL tracker store keeps them (table `events`: sender_id, timestamp, data)."""

    EVENTS = sa.table("events", sa.column("id"), sa.column("sender_id"), sa.column("type_name"),
                      sa.column("timestamp"), sa.column("data"))

    def __init__(self, url: str):
        self.engine = sa.create_engine(url, future=True)

    def _exists(self, conn) -> bool:
        return sa.inspect(conn).has_table("events")

    def of(self, conversation_ids: list[str]) -> dict[str, list[dict]]:
        if not conversation_ids:
            return {}
        out: dict[str, list[dict]] = {}
        with self.engine.connect() as conn:
            if not self._exists(conn):
                return {}
            rows = conn.execute(select(self.EVENTS.c.sender_id, self.EVENTS.c.data)
                                .where(self.EVENTS.c.sender_id.in_(conversation_ids)).order_by(self.EVENTS.c.id))
            for sender, data in rows:
                try:
                    out.setdefault(sender, []).append(json.loads(data))
                except (TypeError, ValueError):
                    out.setdefault(sender, []).append({"unreadable": True})
        return out

    def last_at(self, conversation_ids: list[str]) -> dict[str, float]:
        if not conversation_ids:
            return {}
        with self.engine.connect() as conn:
            if not self._exists(conn):
                return {}
            rows = conn.execute(select(self.EVENTS.c.sender_id, sa.func.max(self.EVENTS.c.timestamp))
                                .where(self.EVENTS.c.sender_id.in_(conversation_ids))
                                .group_by(self.EVENTS.c.sender_id))
            return {sender: float(at or 0) for sender, at in rows}

    def delete(self, conversation_ids: list[str]) -> int:
        if not conversation_ids:
            return 0
        with self.engine.begin() as conn:
            if not self._exists(conn):
                return 0
            return conn.execute(sa.delete(self.EVENTS).where(self.EVENTS.c.sender_id.in_(conversation_ids))).rowcount

    def dispose(self) -> None:
        self.engine.dispose()


# ---------------------------------------------------------------------------------------------- look-ups
def _customers(session: Session, phone: str) -> list[Customer]:
    return list(session.execute(select(Customer).where(Customer.phone == phone)
                                .options(selectinload(Customer.identities), selectinload(Customer.purchases)))
                .scalars())


def _tickets(session: Session, phone: str, customers: list[Customer]) -> list[Ticket]:
    conditions = [Ticket.phone == phone]
    if customers:
        conditions.append(Ticket.customer_id.in_([c.id for c in customers]))
    return list(session.execute(select(Ticket).where(or_(*conditions)).order_by(Ticket.id)).scalars())


def _conversations(customers: list[Customer], tickets: list[Ticket]) -> list[str]:
    ids = {t.conversation_id for t in tickets}
    ids |= {conversation_of(i.channel, i.sender_id) for c in customers for i in c.identities}
    return sorted(ids)


# ---------------------------------------------------------------------------------------------- export
def export(session: Session, transcripts: Transcripts, phone: str, now: datetime) -> dict:
    """Everything held about the customer with this phone number, as JSON-ready values."""
    phone = normalise_phone(phone)
    customers = _customers(session, phone)
    tickets = _tickets(session, phone, customers)
    ticket_ids = [t.id for t in tickets]
    visits = list(session.execute(select(Visit).where(Visit.ticket_id.in_(ticket_ids))).scalars()) if tickets else []
    handoffs = list(session.execute(select(Handoff).where(Handoff.ticket_id.in_(ticket_ids))
                                    .order_by(Handoff.id)).scalars()) if tickets else []
    conversations = _conversations(customers, tickets)
    return {
        "phone": phone,
        "exported_at": iso(now),
        "customers": [{
            "name": c.name, "phone": c.phone, "language": c.language, "created_at": iso(c.created_at),
            "channels": [{"channel": i.channel, "sender_id": i.sender_id} for i in c.identities],
            "purchases": [{"order_id": p.order_id, "model": p.product.model if p.product else None,
                           "purchase_date": p.purchase_date.isoformat(),
                           "delivery_date": p.delivery_date.isoformat() if p.delivery_date else None,
                           "shop": p.shop, "price": str(p.price) if p.price is not None else None}
                          for p in c.purchases],
        } for c in customers],
        "tickets": [ticket_json(t, with_events=True, visits=[v for v in visits if v.ticket_id == t.id])
                    for t in tickets],
        "handoffs": [{"ticket": h.ticket.number, "conversation_id": h.conversation_id, "channel": h.channel,
                      "reason": h.reason, "status": h.status, "requested_at": iso(h.requested_at),
                      "closed_at": iso(h.closed_at)} for h in handoffs],
        "attachments": [{"ticket": t.number, "mime_type": a.mime_type, "size": a.size, "channel": a.channel,
                         "created_at": iso(a.created_at), "path": a.path} for t in tickets for a in t.attachments],
        "transcripts": transcripts.of(conversations),
    }


# ---------------------------------------------------------------------------------------------- erase and purge
@dataclass
class PrivacyResult:
    tickets: int = 0
    customers: int = 0
    transcripts: int = 0  # conversations whose events were deleted
    events_deleted: int = 0
    attachments: int = 0
    files: list[str] = field(default_factory=list)  # to remove once the rows are committed

    def as_dict(self) -> dict:
        return {"tickets": self.tickets, "customers": self.customers, "transcripts": self.transcripts,
                "events_deleted": self.events_deleted, "attachments": self.attachments}


def _drop_attachments(session: Session, ticket: Ticket, result: PrivacyResult) -> None:
    for attachment in list(ticket.attachments):
        result.files.append(attachment.path)
        session.delete(attachment)
        result.attachments += 1


def erase(session: Session, transcripts: Transcripts, phone: str, now: datetime) -> PrivacyResult:
    """Forget the customer with this phone number: their tickets keep kind, product, symptom, status, dates and
    rating (the desk's figures) but lose name, phone, address, order, what was said and the conversation id;
    visits lose the address; the customer record loses name and phone and its channel links; transcripts and
    attachments are deleted. Transcripts go at once (another database); the caller commits the rest."""
    phone = normalise_phone(phone)
    customers = _customers(session, phone)
    tickets = _tickets(session, phone, customers)
    conversations = _conversations(customers, tickets)
    result = PrivacyResult()
    for ticket in tickets:
        anonymous = f"erased:{ticket.number}"
        for handoff in session.execute(select(Handoff).where(Handoff.ticket_id == ticket.id)).scalars():
            if handoff.status not in OPEN_HANDOFF_STATUSES:  # an open one still routes the live conversation
                handoff.conversation_id = anonymous
        ticket.customer_name = ticket.phone = ticket.address = ticket.order_id = ticket.contact_time = None
        ticket.account = ""
        ticket.customer_id = ticket.purchase_id = None
        if ticket.status not in [s.value for s in OPEN_STATUSES]:
            ticket.conversation_id, ticket.dedupe_key = anonymous, None
        for event in ticket.events:
            event.data = {k: (ERASED if k in PERSONAL_KEYS else mask_value(v)) for k, v in (event.data or {}).items()}
        for visit in session.execute(select(Visit).where(Visit.ticket_id == ticket.id)).scalars():
            visit.address = ERASED
        _drop_attachments(session, ticket, result)
        add_event(session, ticket, "personal_data_erased", "system", now)
        result.tickets += 1
    for customer in customers:
        for identity in list(customer.identities):
            session.delete(identity)
        customer.name, customer.phone = None, None
        result.customers += 1
    session.flush()
    result.events_deleted = transcripts.delete(conversations)
    result.transcripts = len(conversations)
    log.info("privacy: erased %d tickets, %d customers, %d conversations", result.tickets, result.customers,
             result.transcripts)
    return result


def purge(session: Session, transcripts: Transcripts, older_than_days: int, now: datetime) -> PrivacyResult:
    """Transcripts and attachments of closed cases: a ticket resolved or closed and untouched for `older_than_days`
    loses its attachments; a conversation whose tickets are all such, with no message since, loses its transcript."""
    if older_than_days < 1:
        raise ValueError("--older-than is at least 1 day")
    cutoff = now - timedelta(days=older_than_days)
    result = PrivacyResult()
    old = list(session.execute(select(Ticket).where(Ticket.status.in_(CLOSED), Ticket.updated_at < cutoff)
                               .options(selectinload(Ticket.attachments))).scalars())
    for ticket in old:
        if ticket.attachments:
            _drop_attachments(session, ticket, result)
            result.tickets += 1
    candidates = sorted({t.conversation_id for t in old})
    if candidates:
        still_live = set(session.execute(select(Ticket.conversation_id).where(
            Ticket.conversation_id.in_(candidates),
            or_(Ticket.status.not_in(CLOSED), Ticket.updated_at >= cutoff))).scalars())
        last = transcripts.last_at([c for c in candidates if c not in still_live])
        stale = [c for c, at in last.items() if at < as_utc(cutoff).timestamp()]
        result.events_deleted = transcripts.delete(stale)
        result.transcripts = len(stale)
    session.flush()
    log.info("privacy: purged %d transcripts and %d attachments older than %d days", result.transcripts,
             result.attachments, older_than_days)
    return result


def remove_files(paths: list[str]) -> int:
    removed = 0
    for path in paths:
        if path.startswith("db:"):  # kept in the database (bot/services/attachments.py): gone with its row
            removed += 1
            continue
        try:
            Path(path).unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed
