"""Store and ticket service against real databases: SQLite and the PostgreSQL server on the machine."""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.services.records import Records, load_seed
from bot.services.tickets import TicketBook, TicketError, ticket_json
from bot.settings import ROOT
from bot.store.db import UnitOfWork, session_factory
from bot.store.models import Customer, Purchase, Ticket, TicketEvent
from tests.conftest import NOW

TZ = ZoneInfo("Asia/Shanghai")
SEED = ROOT / "data" / "seed" / "catalogue.yml"


def open_ticket(uow_factory, conversation="c1", kind="complaint", channel="rest"):
    with uow_factory() as uow:
        book = TicketBook(uow.session, TZ)
        ticket, created = book.open(conversation_id=conversation, channel=channel, kind=kind, language="zh", now=NOW)
        uow.commit()
        return ticket.number, created


def test_ticket_number_is_human_friendly_and_daily(uow_factory):
    first, created = open_ticket(uow_factory, "a")
    second, _ = open_ticket(uow_factory, "b")
    assert created
    assert re.fullmatch(r"SV-20261122-\d{4}", first)
    assert first == "SV-20261122-0001" and second == "SV-20261122-0002"


def test_retried_creation_returns_the_same_ticket(uow_factory):
    first, created1 = open_ticket(uow_factory, "conv-retry")
    again, created2 = open_ticket(uow_factory, "conv-retry")
    assert (created1, created2) == (True, False)
    assert first == again
    with uow_factory() as uow:
        assert uow.session.execute(select(func.count(Ticket.id))).scalar_one() == 1
        kinds = [e.kind for e in uow.session.execute(select(TicketEvent)).scalars()]
        assert kinds.count("ticket_created") == 1


def test_a_resolved_ticket_frees_the_conversation_for_a_new_problem(uow_factory):
    first, _ = open_ticket(uow_factory, "conv-2")
    with uow_factory() as uow:
        book = TicketBook(uow.session, TZ)
        ticket = book.get(first)
        book.set_status(ticket, "in_progress", NOW)
        book.set_status(ticket, "resolved", NOW)
        uow.commit()
    second, created = open_ticket(uow_factory, "conv-2")
    assert created and second != first


def test_status_transitions_follow_the_table_and_are_logged(uow_factory):
    number, _ = open_ticket(uow_factory)
    with uow_factory() as uow:
        book = TicketBook(uow.session, TZ)
        ticket = book.get(number)
        with pytest.raises(TicketError) as err:
            book.set_status(ticket, "reopened", NOW)
        assert err.value.code == "bad_transition"
        book.set_status(ticket, "in_progress", NOW, actor="agent")
        book.set_status(ticket, "resolved", NOW, actor="agent")
        book.set_status(ticket, "reopened", NOW, actor="customer")
        uow.commit()
    with uow_factory() as uow:
        ticket = TicketBook(uow.session, TZ).get(number)
        changes = [(e.actor, e.data["from"], e.data["to"]) for e in ticket.events if e.kind == "status_changed"]
        assert changes == [("agent", "new", "in_progress"), ("agent", "in_progress", "resolved"),
                           ("customer", "resolved", "reopened")]
        assert ticket.status == "reopened"


def test_facts_steps_remedy_and_json_shape(uow_factory):
    number, _ = open_ticket(uow_factory, "conv-json")
    with uow_factory() as uow:
        book = TicketBook(uow.session, TZ)
        ticket = book.get(number)
        changed = book.record_facts(ticket, {"product": "fridge", "phone": "13812345678",
                                             "purchase_date": date(2026, 11, 1)}, NOW, actor="customer")
        assert set(changed) == {"product", "phone", "purchase_date"}
        assert book.record_facts(ticket, {"product": "fridge"}, NOW) == {}  # no change, no event
        assert book.stamp_step(ticket, "vent", NOW) is True
        assert book.stamp_step(ticket, "vent", NOW + timedelta(minutes=1)) is False  # first stamp stays
        book.propose_remedy(ticket, "exchange", "3B-15D-QUALITY", "text", NOW)
        book.accept_remedy(ticket, "exchange", "3B-15D-QUALITY", NOW)
        book.request_handoff(ticket, "safety", NOW)
        book.set_follow_up(ticket, NOW + timedelta(hours=24), NOW)
        book.record_satisfaction(ticket, 4, NOW)
        with pytest.raises(TicketError):
            book.record_satisfaction(ticket, 9, NOW)
        uow.commit()
    with uow_factory() as uow:
        data = ticket_json(TicketBook(uow.session, TZ).get(number), with_events=True)
    for key in ("number", "kind", "status", "language", "channel", "conversation_id", "customer", "facts", "steps",
                "remedy", "follow_up_due", "handoff_requested", "created_at", "events"):
        assert key in data
    assert data["customer"] == {"name": None, "phone": "13812345678"}
    assert data["facts"]["purchase_date"] == "2026-11-01"
    assert set(data["steps"]) == {"vent", "apologise", "gather", "propose", "opinion", "follow_up"}
    assert data["steps"]["vent"].startswith("2026-11-22T02:30")
    assert data["steps"]["gather"] is None
    assert data["remedy"] == {"proposed": "exchange", "accepted": "exchange", "clause": "3B-15D-QUALITY",
                              "clause_text": "text"}
    assert data["handoff_requested"] is True and data["severity"] == "critical"
    assert data["follow_up_due"].startswith("2026-11-23T02:30")
    kinds = [e["kind"] for e in data["events"]]
    assert kinds[0] == "ticket_created"
    assert {"facts_recorded", "step_reached", "remedy_proposed", "remedy_accepted", "handoff_requested",
            "follow_up_scheduled", "satisfaction_recorded"} <= set(kinds)


def test_status_lookup_by_phone_needs_a_second_fact(uow_factory):
    number, _ = open_ticket(uow_factory, "owner-conv")
    with uow_factory() as uow:
        book = TicketBook(uow.session, TZ)
        ticket = book.get(number)
        book.record_facts(ticket, {"phone": "13812345678", "order_id": "JD240512345678"}, NOW)
        uow.commit()
    with uow_factory() as uow:
        book = TicketBook(uow.session, TZ)
        with pytest.raises(TicketError) as err:
            book.find_by_phone("13812345678")
        assert err.value.code == "second_fact_required"
        assert [t.number for t in book.find_by_phone("13812345678", order_id="JD240512345678")] == [number]
        assert book.find_by_phone("13812345678", order_id="JD000000000000") == []
        assert book.find_by_phone("13900000000", number=number) == []
        ticket = book.get(number)
        assert book.visible_to(ticket, conversation_id="owner-conv")
        assert not book.visible_to(ticket, conversation_id="someone-else")
        assert not book.visible_to(ticket, conversation_id="someone-else", phone="13900000000")
        assert book.visible_to(ticket, conversation_id="someone-else", phone="13812345678")


def test_seed_loads_catalogue_and_is_idempotent(uow_factory):
    today = date(2026, 11, 22)
    with uow_factory() as uow:
        counts = load_seed(uow.session, SEED, today)
        uow.commit()
    with uow_factory() as uow:
        load_seed(uow.session, SEED, today)
        uow.commit()
    with uow_factory() as uow:
        assert uow.session.execute(select(func.count(Customer.id))).scalar_one() == counts["customers"]
        assert uow.session.execute(select(func.count(Purchase.id))).scalar_one() == counts["purchases"]
        purchase = Records(uow.session).purchase_by_order("jd240512345678")
        assert purchase.product.category == "fridge"
        assert purchase.purchase_date == today - timedelta(days=5)
        assert purchase.customer.phone == "13812345678"
        assert Records(uow.session).purchase_by_order("JD999") is None
        categories = {p.product.category for p in Records(uow.session).purchases_of("13812345678")}
        assert categories == {"fridge", "air_conditioner"}


def _parallel_open(engine, conversations):
    sessions = session_factory(engine)

    def work(conv):
        with UnitOfWork(sessions) as uow:
            ticket, _ = TicketBook(uow.session, TZ).open(conversation_id=conv, channel="rest", kind="complaint",
                                                          language="zh", now=NOW)
            number = ticket.number
            uow.commit()
            return number

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(work, conversations))


def test_200_tickets_from_8_parallel_workers_get_200_distinct_numbers_on_postgres(pg_engine):
    numbers = _parallel_open(pg_engine, [f"conv-{i}" for i in range(200)])
    assert len(numbers) == 200
    assert len(set(numbers)) == 200
    assert sorted(numbers)[-1] == "SV-20261122-0200"


def test_parallel_deliveries_of_one_message_make_one_ticket_on_postgres(pg_engine):
    numbers = _parallel_open(pg_engine, ["same-conversation"] * 16)
    assert len(set(numbers)) == 1
    with pg_engine.connect() as conn:
        assert conn.execute(select(func.count(Ticket.id))).scalar_one() == 1


def test_parallel_ticket_creation_on_sqlite(sqlite_engine):
    numbers = _parallel_open(sqlite_engine, [f"conv-{i}" for i in range(40)] + ["dup"] * 8)
    assert len(set(numbers)) == 41
