"""The service desk's figures (bot/services/desk_report.py, `python -m bot tickets report`), on both databases."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from bot.services.desk_report import desk_figures
from bot.services.handoff import HandoffDesk
from bot.services.tickets import TicketBook
from bot.store.db import UnitOfWork, make_engine, session_factory
from tests.test_cli import env, run_cli  # noqa: F401  (fixture)

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 22, 2, 30, tzinfo=timezone.utc)


def open_ticket(book: TicketBook, name: str, kind: str, at: datetime):
    ticket, _ = book.open(conversation_id=name, channel="rest", kind=kind, language="zh", now=at)
    return ticket


def seed(session) -> None:
    book = TicketBook(session, TZ)
    day = timedelta(days=1)
    # In the period: 4 complaints, 2 repairs, 1 inquiry, 1 installation (8 tickets).
    done = open_ticket(book, "c-done", "complaint", NOW - 5 * day)
    book.set_status(done, "in_progress", NOW - 5 * day)
    book.set_status(done, "resolved", NOW - 4 * day)
    book.record_satisfaction(done, 5, NOW - 4 * day)
    late = open_ticket(book, "c-late", "complaint", NOW - 5 * day)  # open past its 48 h resolution deadline
    book.record_satisfaction(late, 1, NOW - 4 * day)
    unchecked = open_ticket(book, "c-unchecked", "complaint", NOW - timedelta(hours=10))
    book.set_follow_up(unchecked, NOW - timedelta(hours=1), NOW - timedelta(hours=10))  # nobody checked back
    fresh = open_ticket(book, "c-fresh", "complaint", NOW - timedelta(hours=1))
    HandoffDesk(session).request(fresh, reason="anger", now=NOW - timedelta(hours=1))
    for name in ("r1", "r2"):
        repaired = open_ticket(book, name, "repair", NOW - 2 * day)
        book.set_status(repaired, "in_progress", NOW - 2 * day)
        book.set_status(repaired, "resolved", NOW - day)
        book.record_satisfaction(repaired, 2 if name == "r1" else 4, NOW - day)
    asked = open_ticket(book, "i1", "inquiry", NOW - 3 * day)  # waiting for a person for 3 days: omitted too
    HandoffDesk(session).request(asked, reason="customer_request", now=NOW - 3 * day)
    open_ticket(book, "inst", "installation", NOW - timedelta(hours=3))
    # Outside the period: not counted.
    open_ticket(book, "old", "complaint", NOW - 40 * day)


def test_the_three_rates_and_what_was_omitted(uow_factory):
    with uow_factory() as uow:
        seed(uow.session)
        uow.commit()
    with uow_factory() as uow:
        figures = desk_figures(uow.session, since=NOW - timedelta(days=30), until=NOW + timedelta(days=1), now=NOW)
    assert figures["tickets"] == 8
    assert figures["by_kind"] == {"complaint": 4, "inquiry": 1, "installation": 1, "repair": 2}
    assert figures["complaint_rate"] == 0.5
    assert {item["number"] for item in figures["omitted"]} == set(_numbers(uow_factory, "c-late", "c-unchecked", "i1"))
    why = {item["number"]: item["why"] for item in figures["omitted"]}
    assert why[_numbers(uow_factory, "c-unchecked")[0]] == ["follow_up_overdue"]
    assert "resolution_overdue" in why[_numbers(uow_factory, "c-late")[0]]
    assert figures["omission_rate"] == 0.375
    assert figures["ratings"] == {"count": 4, "low": 2, "mean": 3.0}
    assert figures["dissatisfaction_rate"] == 0.5
    assert figures["handoffs"] == {"count": 2, "by_reason": {"anger": 1, "customer_request": 1}}


def test_an_empty_period_has_no_rates(uow_factory):
    with uow_factory() as uow:
        figures = desk_figures(uow.session, since=NOW, until=NOW + timedelta(days=1), now=NOW)
    assert figures["tickets"] == 0 and figures["complaint_rate"] is None and figures["omission_rate"] is None
    assert figures["dissatisfaction_rate"] is None and figures["omitted"] == []


def test_report_command(env):  # noqa: F811
    engine = make_engine(env["BOT_DATABASE_URL"])
    with UnitOfWork(session_factory(engine)) as uow:
        book = TicketBook(uow.session, TZ)
        now = datetime.now(timezone.utc)
        ticket = open_ticket(book, "cli-report", "complaint", now - timedelta(hours=1))
        book.record_satisfaction(ticket, 1, now)
        uow.commit()
    engine.dispose()
    data = json.loads(run_cli(env, "tickets", "report", "--json").stdout)
    assert data["tickets"] == 1 and data["complaint_rate"] == 1.0 and data["dissatisfaction_rate"] == 1.0
    text = run_cli(env, "tickets", "report").stdout
    assert "complaint rate       100.0%" in text and "dissatisfaction rate 100.0%" in text
    bad = run_cli(env, "tickets", "report", "--since", "2026-13-01")
    assert bad.returncode != 0 and "not a date" in bad.stderr


def _numbers(uow_factory, *conversations: str) -> list[str]:
    from sqlalchemy import select

    from bot.store.models import Ticket

    with uow_factory() as uow:
        return [uow.session.execute(select(Ticket.number).where(Ticket.conversation_id == c)).scalar_one()
                for c in conversations]
