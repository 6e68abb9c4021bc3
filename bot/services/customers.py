"""Customers as the desk sees them (issue 16): find one by phone, name, order number or ticket number, read the
profile (purchases, tickets, visits, conversations on every channel), and create customers from conversations so
that repeat-complaint detection knows everyone who gave a phone, not only the seeded customers."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import false, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from bot.nlu import phones
from bot.services.tickets import TicketError
from bot.store.models import Customer, Handoff, Purchase, Ticket, Visit

MAX_QUERY = 100  # characters of a search; anything longer is cut before it is read
MAX_PER_PAGE = 50
TICKET_NUMBER_RE = re.compile(r"^\s*SV-?\d{8}-?\d{4}\s*$", re.IGNORECASE)
ORDER_RE = re.compile(r"^\s*[A-Za-z]{0,4}\d{6,}\s*$")
REPEAT_DAYS = 90


class CustomerError(TicketError):
    """customer_not_found, empty_query."""


@dataclass(frozen=True)
class Page:
    items: list[dict]
    total: int
    page: int
    per_page: int

    def as_dict(self) -> dict:
        return {"items": self.items, "total": self.total, "page": self.page, "per_page": self.per_page,
                "pages": max(1, -(-self.total // self.per_page))}


# --------------------------------------------------------------------------------------------- creation
def link_by_phone(session: Session, ticket: Ticket, now) -> Customer | None:
    """A ticket that got a phone and has no customer: the customer with that phone, created if there is none, and
    the conversation recorded as one of the customer's channel identities."""
    from bot.services.records import Records
    from bot.services.tickets import add_event

    phone = phones.normalize(ticket.phone)
    if ticket.customer_id is not None or ticket.customer is not None or phone is None:
        return None
    records = Records(session)
    existing = records.customer_by_phone(phone)
    try:
        with session.begin_nested():
            customer = records.customer_for(phone=phone, name=ticket.customer_name, language=ticket.language or "zh",
                                            channel=ticket.channel, sender_id=ticket.conversation_id[:128])
            session.flush()
    except IntegrityError:  # a concurrent conversation created the same customer or identity first
        customer = records.customer_by_phone(phone)
        if customer is None:
            return None
    ticket.customer = customer
    if existing is None:
        add_event(session, ticket, "customer_created", "system", now, customer_id=customer.id)
    add_event(session, ticket, "customer_linked", "system", now, customer_id=customer.id, by="phone")
    return customer


def repeat_complaint(session: Session, ticket: Ticket, days: int = REPEAT_DAYS) -> dict | None:
    """Earlier tickets of the same customer (record or phone) in the last `days` days; None when there are none."""
    conditions = []
    if ticket.customer_id is not None:
        conditions.append(Ticket.customer_id == ticket.customer_id)
    if ticket.phone:
        conditions.append(Ticket.phone.in_(phones.equivalent_forms(ticket.phone)))
    if not conditions or ticket.created_at is None:
        return None
    from bot.services.tickets import as_utc

    since = as_utc(ticket.created_at) - timedelta(days=days)
    earlier = list(session.execute(
        select(Ticket.number, Ticket.kind, Ticket.product).where(
            or_(*conditions), Ticket.id < ticket.id, Ticket.created_at >= since).order_by(Ticket.id.desc()).limit(10)))
    if not earlier:
        return None
    same_product = [n for n, _k, p in earlier if ticket.product and p == ticket.product]
    return {"earlier": len(earlier), "same_product": len(same_product), "days": days,
            "tickets": [n for n, _k, _p in earlier]}


# --------------------------------------------------------------------------------------------- search
def _customer_row(customer: Customer, matched_by: str, counts: dict) -> dict:
    return {"id": customer.id, "name": customer.name, "phone": customer.phone, "language": customer.language,
            "since": _iso(customer.created_at), "matched_by": matched_by,
            "tickets": counts.get(customer.id, 0),
            "purchases": len(customer.purchases)}


def _match(session: Session, query: str) -> tuple[str, list[int]]:
    """What the query is (ticket, order, phone or name) and the ids of the customers it finds."""
    q = query.strip()
    if TICKET_NUMBER_RE.match(q):
        digits = re.sub(r"\D", "", q)
        number = f"SV-{digits[:8]}-{digits[8:]}"
        rows = session.execute(select(Ticket.customer_id, Ticket.phone).where(Ticket.number == number)).all()
        return "ticket", _ids_of_tickets(session, rows)
    phone = phones.normalize(q)
    if phone is not None:
        forms = phones.equivalent_forms(phone)
        ids = list(session.execute(select(Customer.id).where(Customer.phone.in_(forms))).scalars())
        ids += session.execute(select(Ticket.customer_id).where(
            Ticket.phone.in_(forms), Ticket.customer_id.is_not(None))).scalars().all()
        return "phone", ids
    if ORDER_RE.match(q):
        order = q.upper()
        ids = list(session.execute(select(Purchase.customer_id).where(Purchase.order_id == order)).scalars())
        rows = session.execute(select(Ticket.customer_id, Ticket.phone).where(Ticket.order_id == order)).all()
        return "order", ids + _ids_of_tickets(session, rows)
    if len(q) < 1:
        return "name", []
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    ids = list(session.execute(select(Customer.id).where(Customer.name.ilike(pattern, escape="\\"))).scalars())
    ids += session.execute(select(Ticket.customer_id).where(
        Ticket.customer_name.ilike(pattern, escape="\\"), Ticket.customer_id.is_not(None))).scalars().all()
    return "name", ids


def _ids_of_tickets(session: Session, rows) -> list[int]:
    ids = [cid for cid, _phone in rows if cid is not None]
    forms = [f for _cid, phone in rows if phone and _cid is None for f in phones.equivalent_forms(phone)]
    if forms:
        ids += session.execute(select(Customer.id).where(Customer.phone.in_(forms))).scalars().all()
    return ids


def search(session: Session, query: str, *, page: int = 1, per_page: int = 20) -> Page:
    """Customers found by a phone (any usual spelling), a name (part of it), an order number or a ticket number."""
    query = (query or "")[:MAX_QUERY]
    per_page = max(1, min(int(per_page), MAX_PER_PAGE))
    page = max(1, int(page))
    if not query.strip():
        raise CustomerError("empty_query", "type a phone, name, order number or ticket number")
    matched_by, ids = _match(session, query)
    ids = sorted(set(ids))
    chosen = ids[(page - 1) * per_page: page * per_page]
    customers = list(session.execute(select(Customer).where(Customer.id.in_(chosen)).order_by(Customer.id)
                                     .options(selectinload(Customer.purchases))).scalars()) if chosen else []
    counts = dict(session.execute(select(Ticket.customer_id, func.count(Ticket.id))
                                  .where(Ticket.customer_id.in_(chosen)).group_by(Ticket.customer_id)).all())
    return Page([_customer_row(c, matched_by, counts) for c in customers], len(ids), page, per_page)


# --------------------------------------------------------------------------------------------- the profile
def _iso(value) -> str | None:
    from bot.services.tickets import iso

    return iso(value)


def _ticket_row(t: Ticket) -> dict:
    return {"number": t.number, "kind": t.kind, "status": t.status, "channel": t.channel,
            "conversation_id": t.conversation_id, "product": t.product, "model": t.model, "symptom": t.symptom,
            "remedy": t.remedy_accepted or t.remedy_proposed, "remedy_accepted": t.remedy_accepted is not None,
            "satisfaction": t.satisfaction, "created_at": _iso(t.created_at), "order_id": t.order_id}


def profile(session: Session, customer_id: int, *, page: int = 1, per_page: int = 20) -> dict:
    """One customer: who, what they bought, their tickets (newest first, paginated), visits and conversations."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise CustomerError("customer_not_found", str(customer_id))
    per_page = max(1, min(int(per_page), MAX_PER_PAGE))
    page = max(1, int(page))
    mine = or_(Ticket.customer_id == customer.id, Ticket.phone.in_(phones.equivalent_forms(customer.phone))
               if customer.phone else false())
    total = session.execute(select(func.count(Ticket.id)).where(mine)).scalar_one()
    tickets = list(session.execute(select(Ticket).where(mine).order_by(Ticket.created_at.desc(), Ticket.id.desc())
                                   .offset((page - 1) * per_page).limit(per_page)).scalars())
    all_tickets = session.execute(select(Ticket.id, Ticket.number, Ticket.conversation_id, Ticket.channel,
                                         Ticket.created_at).where(mine)).all()
    ids = [row.id for row in all_tickets]
    visits = list(session.execute(select(Visit).where(Visit.ticket_id.in_(ids)).order_by(Visit.start.desc())
                                  .options(selectinload(Visit.engineer), selectinload(Visit.ticket))
                                  .limit(50)).scalars()) if ids else []
    purchases = list(session.execute(select(Purchase).where(Purchase.customer_id == customer.id)
                                     .options(selectinload(Purchase.product))
                                     .order_by(Purchase.purchase_date.desc())).scalars())
    return {
        "customer": {"id": customer.id, "name": customer.name, "phone": customer.phone,
                     "language": customer.language, "since": _iso(customer.created_at),
                     "identities": [{"channel": i.channel, "sender_id": i.sender_id} for i in customer.identities]},
        "purchases": [{"order_id": p.order_id, "category": p.product.category if p.product else None,
                       "model": p.product.model if p.product else None,
                       "name": {"zh": p.product.name_zh, "en": p.product.name_en} if p.product else None,
                       "purchase_date": p.purchase_date.isoformat(),
                       "delivery_date": p.delivery_date.isoformat() if p.delivery_date else None,
                       "shop": p.shop, "price": str(p.price) if p.price is not None else None} for p in purchases],
        "tickets": Page([_ticket_row(t) for t in tickets], total, page, per_page).as_dict(),
        "visits": [{"ticket": v.ticket.number, "start": _iso(v.start), "end": _iso(v.end), "status": v.status,
                    "address": v.address,
                    "engineer": {"zh": v.engineer.name_zh, "en": v.engineer.name_en} if v.engineer else None}
                   for v in visits],
        "conversations": _conversations(session, all_tickets),
    }


def _conversations(session: Session, tickets) -> list[dict]:
    """Every conversation the customer's tickets came from, on whichever channel, with its tickets and hand-offs."""
    by_id: dict[str, dict] = {}
    order: dict[str, int] = {}
    for seq, row in enumerate(sorted(tickets, key=lambda r: (_iso(r.created_at) or "", r.id))):
        order[row.conversation_id] = seq
        item = by_id.setdefault(row.conversation_id, {
            "conversation_id": row.conversation_id, "channel": row.channel, "tickets": [], "handoffs": 0,
            "first_at": _iso(row.created_at), "last_at": _iso(row.created_at)})
        item["tickets"].append(row.number)
        item["last_at"] = _iso(row.created_at)
    if by_id:
        for conversation_id, count in session.execute(
                select(Handoff.conversation_id, func.count(Handoff.id))
                .where(Handoff.conversation_id.in_(list(by_id))).group_by(Handoff.conversation_id)).all():
            by_id[conversation_id]["handoffs"] = count
    return sorted(by_id.values(), key=lambda c: (c["last_at"] or "", order[c["conversation_id"]]), reverse=True)
