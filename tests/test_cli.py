"""`python -m bot ...` as the service desk runs it: real subprocesses against a real SQLite file."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from bot.services.tickets import TicketBook
from bot.settings import ROOT
from bot.store.db import UnitOfWork, make_engine, session_factory


def run_cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def env(tmp_path):
    env = dict(os.environ, BOT_VAR_DIR=str(tmp_path), BOT_DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}",
               SQLALCHEMY_SILENCE_UBER_WARNING="1")
    result = run_cli(env, "db", "seed")
    assert result.returncode == 0, result.stderr
    assert "13 products" in result.stdout and "engineers synced" in result.stdout
    return env


def test_tickets_show_json_has_the_contract_keys(env):
    engine = make_engine(env["BOT_DATABASE_URL"])
    now = datetime(2026, 11, 22, 2, 30, tzinfo=timezone.utc)
    with UnitOfWork(session_factory(engine)) as uow:
        book = TicketBook(uow.session, ZoneInfo("Asia/Shanghai"))
        ticket, _ = book.open(conversation_id="cli-1", channel="telegram", kind="complaint", language="en", now=now)
        book.record_facts(ticket, {"product": "tv", "phone": "13700001111", "address": "Beijing Chaoyang"}, now)
        book.append_account(ticket, "the tv is dead", now)
        book.stamp_step(ticket, "vent", now)
        book.set_follow_up(ticket, now + timedelta(hours=24), now)
        number = ticket.number
        uow.commit()
    engine.dispose()

    shown = run_cli(env, "tickets", "show", number, "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    for key in ("number", "kind", "status", "language", "channel", "conversation_id", "customer", "facts", "steps",
                "remedy", "follow_up_due", "handoff_requested", "created_at", "events"):
        assert key in data, key
    assert set(data["customer"]) >= {"name", "phone"}
    assert set(data["facts"]) >= {"product", "model", "symptom", "purchase_date", "order_id", "address"}
    assert set(data["steps"]) == {"vent", "apologise", "gather", "propose", "opinion", "follow_up"}
    assert set(data["remedy"]) >= {"proposed", "accepted", "clause"}
    assert data["channel"] == "telegram" and data["facts"]["product"] == "tv"
    assert [e["kind"] for e in data["events"]][:1] == ["ticket_created"]

    listed = json.loads(run_cli(env, "tickets", "list", "--json").stdout)
    assert [t["number"] for t in listed] == [number]
    text = run_cli(env, "tickets", "show", number).stdout
    assert number in text and "the tv is dead" in text and "ticket_created" in text
    register = json.loads(run_cli(env, "tickets", "register", "--json").stdout)
    assert register[0]["phone"] == "13700001111" and register[0]["address"] == "Beijing Chaoyang"
    assert "the tv is dead" in register[0]["reason"] and register[0]["recorded_by"] == "bot"


def test_unknown_ticket_is_a_clear_error(env):
    result = run_cli(env, "tickets", "show", "SV-20990101-0001")
    assert result.returncode == 1 and "no ticket SV-20990101-0001" in result.stderr


def test_visits_list_and_due_start_empty(env):
    assert json.loads(run_cli(env, "visits", "list", "--json").stdout) == []
    assert json.loads(run_cli(env, "visits", "due", "--json").stdout) == []
