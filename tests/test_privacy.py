"""Personal data (PIPL): the mask for log lines and the console (bot/pii.py), `python -m bot privacy export | erase |
purge` against a real SQLite records database and tracker store, and `db seed` refusing to wipe tickets."""
from __future__ import annotations

import json
import logging
import os
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from bot.pii import PersonalDataFilter, install_log_masking, mask_text
from bot.services.tickets import TicketBook
from bot.store.db import UnitOfWork, make_engine, session_factory
from bot.store.models import Attachment, Customer, Ticket, TicketEvent, Visit
from tests.test_cli import run_cli

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime.now(timezone.utc)


@pytest.mark.parametrize("text, secret", [
    ("我的电话是13812345678，谢谢", "13812345678"),
    ("call me on +86 138-1234-5678 please", "1234-5678"),
    ("座机 010-12345678", "12345678"),
    # the formats the bot reads and stores since issue 15 (phonenumbers, E.164)
    ("stored +8613812345678", "13812345678"),
    ("座机 021-6438 1234", "6438 1234"),
    ("座机02164381234", "64381234"),
    ("HK +852 9123 4567", "9123 4567"),
    ("UK +44 20 7946 0958", "7946 0958"),
    ("E.164 +442079460958", "2079460958"),
    ("台湾 +886 2 2345 6789", "2345 6789"),
    ("身份证110101199003071234", "110101199003071234"),
    ("mail wang.fang@example.com now", "wang.fang@example.com"),
    ("邮箱wang@example.cn", "wang@example.cn"),
    ("北京市朝阳区望京西路8号院3号楼1单元502", "望京西路"),
    ("送到广州市天河区体育西路18号1202室", "体育西路18号"),
    ("上海市浦东新区张江镇", "浦东新区"),
    ("Room 1202, 18 Tiyu West Road, Tianhe District, Guangzhou", "Tiyu West Road"),
    ("I live at 88 Jianguo Road", "88 Jianguo"),
])
def test_personal_data_is_masked(text, secret):
    assert secret not in mask_text(text)


@pytest.mark.parametrize("text", ["订单号JD240512345678", "不知道型号", "我的冰箱不制冷了", "XQG100-HBD14126L",
                                  "SV-20261122-0001", "order TM2026101500123 ok", "明天下午3点", "5", "good, 4 stars"])
def test_what_is_not_personal_stays(text):
    assert mask_text(text) == text


def test_the_mask_never_backtracks_on_long_input():
    for text in ("北" * 300_000, "1" * 300_000, "1 " * 150_000, "Aa " * 100_000, "a@" * 150_000, "路8号" * 100_000):
        started = time.perf_counter()
        mask_text(text)
        assert time.perf_counter() - started < 2.0, text[:10]


def test_log_lines_are_masked_whatever_the_handler(caplog):
    install_log_masking()
    install_log_masking()  # twice is once
    logger = logging.getLogger("tests.privacy")
    with caplog.at_level(logging.INFO, logger="tests.privacy"):
        logger.info("customer %s at %s", "13812345678", "北京市朝阳区望京西路8号院3号楼1单元502")
        try:
            raise ValueError("bad phone 13998765432")
        except ValueError:
            logger.exception("failed for wang@example.com")
    text = "\n".join(caplog.messages) + "\n".join(r.exc_text or "" for r in caplog.records)
    assert "13812345678" not in text and "望京西路" not in text and "wang@example.com" not in text
    assert "13998765432" not in text and "[phone …78]" in text and "ValueError" in text
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s", ("13812345678",), None)
    assert PersonalDataFilter().filter(record) and record.getMessage() == "[phone …78]"


# ---------------------------------------------------------------------------------------------- the CLI
@pytest.fixture
def env(tmp_path):
    env = dict(os.environ, BOT_VAR_DIR=str(tmp_path), BOT_DATABASE_URL=f"sqlite:///{tmp_path / 'records.db'}",
               BOT_TRACKER_STORE_URL=f"sqlite:///{tmp_path / 'tracker.db'}", SQLALCHEMY_SILENCE_UBER_WARNING="1")
    env.pop("BOT_RETENTION_DAYS", None)
    result = run_cli(env, "db", "seed")
    assert result.returncode == 0, result.stderr
    return env


def test_seed_refuses_to_wipe_tickets_unless_forced(env):
    engine = make_engine(env["BOT_DATABASE_URL"])
    with UnitOfWork(session_factory(engine)) as uow:
        TicketBook(uow.session, TZ).open(conversation_id="seed-1", channel="rest", kind="inquiry", language="zh",
                                         now=NOW)
        uow.commit()
    refused = run_cli(env, "db", "seed")
    assert refused.returncode == 2 and "1 tickets" in refused.stderr and "--force" in refused.stderr
    assert run_cli(env, "db", "seed", "--if-empty").returncode == 0  # unchanged: leaves the data as it is
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from tickets")).scalar_one() == 1
    forced = run_cli(env, "db", "seed", "--force")
    assert forced.returncode == 0, forced.stderr
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from tickets")).scalar_one() == 0
    engine.dispose()


EVENTS = sa.Table("events", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                  sa.Column("sender_id", sa.String(255)), sa.Column("type_name", sa.String(255)),
                  sa.Column("timestamp", sa.Float), sa.Column("intent_name", sa.String(255)),
                  sa.Column("action_name", sa.String(255)), sa.Column("data", sa.Text))


def _say(tracker_url: str, sender: str, text: str, at: datetime) -> None:
    """A user event as Rasa's SQL tracker store writes it."""
    engine = sa.create_engine(tracker_url, future=True)
    EVENTS.create(engine, checkfirst=True)
    with engine.begin() as conn:
        conn.execute(EVENTS.insert().values(sender_id=sender, type_name="user", timestamp=at.timestamp(),
                                            data=json.dumps({"event": "user", "text": text})))
    engine.dispose()


def _case(env, tmp_path, conversation: str, phone: str, status: str, at: datetime) -> str:
    engine = make_engine(env["BOT_DATABASE_URL"])
    with UnitOfWork(session_factory(engine)) as uow:
        book = TicketBook(uow.session, TZ)
        ticket, _ = book.open(conversation_id=conversation, channel="rest", kind="repair", language="zh", now=at)
        book.record_facts(ticket, {"product": "fridge", "phone": phone,
                                   "address": "北京市朝阳区望京西路8号院3号楼1单元502", "customer_name": "王芳"}, at)
        book.append_account(ticket, f"冰箱不制冷，电话{phone}", at)
        photo = tmp_path / f"{conversation}.jpg"
        photo.write_bytes(b"\xff\xd8\xff photo")
        uow.session.add(Attachment(ticket=ticket, path=str(photo), mime_type="image/jpeg", size=9, channel="rest",
                                   created_at=at))
        uow.session.add(Visit(ticket=ticket, engineer_id=1, start=at, end=at + timedelta(hours=2), status="done",
                              address="北京市朝阳区望京西路8号院3号楼1单元502"))
        ticket.status, ticket.satisfaction = status, 4
        uow.session.flush()
        ticket.updated_at = at
        number = ticket.number
        uow.commit()
    engine.dispose()
    _say(env["BOT_TRACKER_STORE_URL"], conversation, f"我的电话{phone}", at)
    return number


def test_export_then_erase_forgets_the_customer_but_keeps_the_figures(env, tmp_path):
    number = _case(env, tmp_path, "privacy-wang", "13812345678", "resolved", NOW)
    other = _case(env, tmp_path, "privacy-other", "13900001111", "resolved", NOW)

    exported = run_cli(env, "privacy", "export", "--phone", "+86 138 1234 5678")
    assert exported.returncode == 0, exported.stderr
    data = json.loads(exported.stdout)
    assert data["phone"] == "13812345678"
    assert [c["name"] for c in data["customers"]] == ["王芳"]  # the demo customer with this phone
    assert number in [t["number"] for t in data["tickets"]] and other not in [t["number"] for t in data["tickets"]]
    assert data["transcripts"]["privacy-wang"][0]["text"] == "我的电话13812345678"
    assert data["attachments"][0]["mime_type"] == "image/jpeg"
    assert data["tickets"][-1]["visits"][0]["address"].startswith("北京市")

    erased = run_cli(env, "privacy", "erase", "--phone", "13812345678")
    assert erased.returncode == 0, erased.stderr
    assert not (tmp_path / "privacy-wang.jpg").exists() and (tmp_path / "privacy-other.jpg").exists()
    engine = make_engine(env["BOT_DATABASE_URL"])
    with UnitOfWork(session_factory(engine)) as uow:
        ticket = uow.session.execute(sa.select(Ticket).where(Ticket.number == number)).scalar_one()
        assert (ticket.phone, ticket.address, ticket.customer_name, ticket.account) == (None, None, None, "")
        assert ticket.conversation_id == f"erased:{number}" and not ticket.attachments
        assert (ticket.kind, ticket.product, ticket.status, ticket.satisfaction) == ("repair", "fridge", "resolved", 4)
        events = uow.session.execute(sa.select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)).scalars()
        stored = json.dumps([e.data for e in events], ensure_ascii=False)
        assert "13812345678" not in stored and "望京西路" not in stored
        visit = uow.session.execute(sa.select(Visit).where(Visit.ticket_id == ticket.id)).scalar_one()
        assert visit.address == "[erased]"
        assert uow.session.execute(sa.select(Customer).where(Customer.phone == "13812345678")).first() is None
        kept = uow.session.execute(sa.select(Ticket).where(Ticket.number == other)).scalar_one()
        assert kept.phone == "13900001111"
    engine.dispose()
    tracker = sa.create_engine(env["BOT_TRACKER_STORE_URL"], future=True)
    with tracker.connect() as conn:
        senders = [r[0] for r in conn.execute(sa.text("select sender_id from events"))]
    tracker.dispose()
    assert senders == ["privacy-other"]
    again = json.loads(run_cli(env, "privacy", "export", "--phone", "13812345678").stdout)
    assert again["tickets"] == [] and again["transcripts"] == {}


def test_purge_deletes_transcripts_and_attachments_of_cases_closed_long_ago(env, tmp_path):
    long_ago = NOW - timedelta(days=400)
    old = _case(env, tmp_path, "purge-old", "13700000001", "closed", long_ago)
    _case(env, tmp_path, "purge-open", "13700000002", "in_progress", long_ago)  # still open: kept
    _case(env, tmp_path, "purge-recent", "13700000003", "closed", NOW - timedelta(days=10))
    env = dict(env, BOT_RETENTION_DAYS="365")
    result = run_cli(env, "privacy", "purge")
    assert result.returncode == 0, result.stderr
    assert "1 conversations" in result.stdout and "1 attachments" in result.stdout
    assert not (tmp_path / "purge-old.jpg").exists()
    assert (tmp_path / "purge-open.jpg").exists() and (tmp_path / "purge-recent.jpg").exists()
    tracker = sa.create_engine(env["BOT_TRACKER_STORE_URL"], future=True)
    with tracker.connect() as conn:
        senders = sorted(r[0] for r in conn.execute(sa.text("select sender_id from events")))
    tracker.dispose()
    assert senders == ["purge-open", "purge-recent"]
    engine = make_engine(env["BOT_DATABASE_URL"])
    with engine.connect() as conn:  # the case itself stays, for the figures
        status = conn.execute(sa.text("select status from tickets where number = :n"), {"n": old}).scalar_one()
    assert status == "closed"
    engine.dispose()
    assert run_cli(env, "privacy", "purge", "--older-than", "0").returncode == 1
