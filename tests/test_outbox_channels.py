"""The outbox end to end: real Rasa and action servers with the trained model, the outbox gate on the Rasa server,
and the runner as its own process (`python -m bot outbox run --once --now ...`), exactly as operators run it.

Telegram (against the loopback Bot API of tests/fake_bot_api.py): a customer books a visit; the runner at 24 h and
at 2 h before the window sends exactly one reminder each to that chat; again, nothing; a runner killed between
claim and send (BOT_OUTBOX_CRASH_AT=after_claim) and started again sends it once; the reminder's button works.
The web widget in Chromium: a reminder for a customer who is away is held and shown when they come back; one for a
customer with the widget open arrives at once.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from bot.services.conversation import conversation_id
from bot.settings import ROOT
from bot.store.models import OutboxItem, Ticket, Visit
from tests.fake_bot_api import FakeBotAPI
from tests.stack import Stack, need_model
from tests.test_telegram import SECRET, TOKEN, api  # noqa: F401 - api: the loopback Bot API fixture

OUTBOX_TOKEN = "outbox-test-token-0123456789"
GATE = "bot.channels.outbox_gate.OutboxGateInput:\n"
# An order number alone never links a customer (issue 18): the phone on the order is the second fact.
BOOKING = ["我家空调不制冷了，麻烦安排师傅上门修一下", "对", "KFR-35GW/BP3DN8Y", "订单号JD230312345670", "13812345678",
           "北京市朝阳区望京西路8号院3号楼1单元502", "后天下午"]


def runner(stack: Stack, *args: str, crash: bool = False) -> subprocess.CompletedProcess:
    env = stack.env()
    env.update(BOT_RASA_URL=stack.url, BOT_OUTBOX_TOKEN=OUTBOX_TOKEN)
    if crash:
        env["BOT_OUTBOX_CRASH_AT"] = "after_claim"
    return subprocess.run([sys.executable, "-m", "bot", "outbox", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def run_once(stack: Stack, now: datetime, crash: bool = False) -> subprocess.CompletedProcess:
    return runner(stack, "run", "--once", "--now", now.isoformat(), crash=crash)


def listed(stack: Stack) -> dict[int, dict]:
    proc = runner(stack, "list", "--json")
    assert proc.returncode == 0, proc.stderr
    return {row["id"]: row for row in json.loads(proc.stdout)}


def visit_and_reminders(stack: Stack, conversation: str) -> tuple[Visit, list[OutboxItem]]:
    engine = create_engine(stack.db_url, future=True)
    try:
        with Session(engine) as session:
            ticket = session.execute(select(Ticket).where(Ticket.conversation_id == conversation)
                                     .order_by(Ticket.id.desc())).scalars().first()
            assert ticket is not None, f"no ticket for {conversation}"
            visit = session.execute(select(Visit).where(Visit.ticket_id == ticket.id)).scalar_one()
            rows = list(session.execute(select(OutboxItem).where(OutboxItem.ticket_id == ticket.id,
                                                                 OutboxItem.kind.like("visit_reminder%"))
                                        .order_by(OutboxItem.due_at)).scalars())
            session.expunge_all()
            return visit, rows
    finally:
        engine.dispose()


def quiet_moved(moment: datetime) -> datetime:
    from bot.services.outbox import load_outbox_config, out_of_quiet_hours
    from bot.settings import load_settings

    return out_of_quiet_hours(moment, load_settings().timezone, load_outbox_config())


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


# ---------------------------------------------------------------------------------------------- Telegram
@pytest.fixture(scope="module")
def tg_stack(api, tmp_path_factory):
    need_model()
    tmp = tmp_path_factory.mktemp("outbox-tg")
    credentials = tmp / "credentials.yml"
    credentials.write_text("bot.channels.rest.RestInput:\nbot.channels.telegram.TelegramInput:\n" + GATE)
    stack = Stack(tmp, credentials=credentials, extra_env={
        "TELEGRAM_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": SECRET, "TELEGRAM_API_URL": api.url,
        "BOT_OUTBOX_TOKEN": OUTBOX_TOKEN})
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def _buttons(message: dict) -> list[str]:
    markup = message.get("reply_markup") or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


def book_over_telegram(stack: Stack, api: FakeBotAPI, chat: int) -> None:
    from tests.test_telegram import callback_update, deliver, text_update

    for line in BOOKING:
        assert deliver(stack, api, text_update(chat, line)), line
    for _ in range(8):  # decline the self-check, accept the repair, take the first window, confirm
        last = api.messages_to(chat)[-1]
        buttons = _buttons(last)
        if any("预约好" in m["text"] for m in api.messages_to(chat)[-2:]):
            return
        if "SELF-CHECK" in last["text"]:
            press = "/deny"
        elif "1" in buttons:
            press = "1"
        elif "/affirm" in buttons:
            press = "/affirm"
        else:
            raise AssertionError(f"unexpected step: {last['text']}")
        deliver(stack, api, callback_update(chat, press))
    texts = [m["text"] for m in api.messages_to(chat)]
    assert any("预约好" in t for t in texts), texts[-3:]


@pytest.mark.slow
def test_telegram_reminders_are_sent_once_each_even_when_a_runner_dies(tg_stack, api):
    from tests.test_telegram import callback_update, deliver

    stack = tg_stack
    chat = 880000000 + (os.getpid() % 100000)
    book_over_telegram(stack, api, chat)
    visit, reminders = visit_and_reminders(stack, conversation_id("telegram", str(chat)))
    start = utc(visit.start)
    assert [r.kind for r in reminders] == ["visit_reminder_day_before", "visit_reminder_two_hours"]
    # 24 h and 2 h before the window (moved to 08:00 had one fallen in the quiet hours)
    assert [utc(r.due_at) for r in reminders] == [quiet_moved(start - timedelta(hours=24)),
                                                  quiet_moved(start - timedelta(hours=2))]
    day_before, two_hours = reminders

    # 24 h before the window: exactly one reminder to that chat, with the engineer, the window and three buttons.
    before = len(api.messages_to(chat))
    at_day_before, at_two_hours = utc(day_before.due_at), utc(two_hours.due_at)
    proc = run_once(stack, at_day_before)
    assert proc.returncode == 0 and "sent 1," in proc.stdout, proc.stdout + proc.stderr
    [reminder] = api.messages_to(chat)[before:]
    assert "明天" in reminder["text"] and "工程师" in reminder["text"]
    assert _buttons(reminder) == ["/affirm", "/reschedule_visit", "/cancel_visit"]
    rows = listed(stack)
    assert rows[day_before.id]["status"] == "sent" and rows[day_before.id]["sent_at"]
    assert set(rows[day_before.id]) == {"id", "kind", "ticket", "channel", "due", "status", "sent_at"}
    # Again: nothing.
    proc = run_once(stack, at_day_before + timedelta(minutes=1))
    assert "sent 0," in proc.stdout and len(api.messages_to(chat)) == before + 1

    # The button on the reminder works: the script knows the question is open.
    answer = deliver(stack, api, callback_update(chat, "/affirm"))
    assert any("谢谢确认" in m["text"] for m in answer), answer

    # 2 h before: a runner dies between claim and send ...
    before = len(api.messages_to(chat))
    crashed = run_once(stack, at_two_hours, crash=True)
    assert crashed.returncode == 75, crashed.stdout + crashed.stderr
    assert len(api.messages_to(chat)) == before and listed(stack)[two_hours.id]["status"] == "claimed"
    # ... another started at once does not send it twice while the claim is fresh ...
    assert "sent 0," in run_once(stack, at_two_hours + timedelta(minutes=1)).stdout
    # ... and after the lease it is sent, once.
    proc = run_once(stack, at_two_hours + timedelta(minutes=6))
    assert "sent 1," in proc.stdout, proc.stdout + proc.stderr
    [reminder] = api.messages_to(chat)[before:]
    assert "两小时" in reminder["text"]
    assert "sent 0," in run_once(stack, start - timedelta(minutes=30)).stdout
    assert len(api.messages_to(chat)) == before + 1
    # Everything sent is in the conversation's transcript, marked with its outbox row.
    events = stack.tracker(conversation_id("telegram", str(chat)))["events"]
    sent_ids = [(e.get("metadata") or {}).get("outbox_id") for e in events if e["event"] == "bot"]
    assert sent_ids.count(day_before.id) == 1 and sent_ids.count(two_hours.id) == 1


@pytest.mark.slow
def test_the_gate_refuses_a_wrong_token_and_a_bad_body(tg_stack):
    import urllib.error
    import urllib.request

    def post(body: bytes, token: str) -> int:
        req = urllib.request.Request(f"{tg_stack.url}/webhooks/outbox/deliver", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    good = json.dumps({"outbox_id": 1, "kind": "thank_you", "channel": "rest", "conversation_id": "nobody",
                       "messages": [{"text": "hi"}]}).encode()
    assert post(good, "wrong") == 401
    assert post(b"{not json", OUTBOX_TOKEN) == 400
    assert post(json.dumps({"outbox_id": "x"}).encode(), OUTBOX_TOKEN) == 400
    assert post(b"x" * (70 * 1024), OUTBOX_TOKEN) == 413


# ---------------------------------------------------------------------------------------------- web widget
@pytest.fixture(scope="module")
def web_stack(tmp_path_factory):
    from tests.test_webchat import _browser_missing

    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    need_model()
    tmp = tmp_path_factory.mktemp("outbox-web")
    credentials = tmp / "credentials.yml"
    credentials.write_text("bot.channels.rest.RestInput:\nbot.channels.webchat.WebChatInput:\n  user_message_evt: user_uttered\n"
                           "  bot_message_evt: bot_uttered\n  session_persistence: true\n" + GATE, encoding="utf-8")
    stack = Stack(tmp, credentials=credentials, extra_env={"BOT_OUTBOX_TOKEN": OUTBOX_TOKEN})
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.mark.slow
def test_widget_reminder_is_held_for_an_absent_customer_and_live_for_a_present_one(web_stack):
    from playwright.sync_api import sync_playwright

    from tests.test_webchat import CHROMIUM, LAUNCH_ARGS, Chat

    stack = web_stack
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            chat = Chat(browser, stack)
            chat.open()
            for line in BOOKING:
                chat.say(line)
            for _ in range(8):
                last = chat.bot_texts()[-1] if chat.bot_texts() else ""
                if "预约好" in "\n".join(chat.bot_texts()[-2:]):
                    break
                replies = chat.quick_replies()
                assert replies, chat.bot_texts()[-3:]
                if "SELF-CHECK" in last:
                    chat.press(replies[-1])  # "another option"
                else:
                    chat.press("可以" if "可以" in replies else replies[0])
            session_id = chat.session_id
            visit, (day_before, two_hours) = visit_and_reminders(stack, conversation_id("webchat", session_id))
            start = utc(visit.start)

            # The customer leaves: the day-before reminder is held, not lost.
            chat.page.goto("about:blank")
            proc = run_once(stack, utc(day_before.due_at))
            assert "held 1," in proc.stdout, proc.stdout + proc.stderr
            assert listed(stack)[day_before.id]["status"] == "held"
            # They come back: it is shown (from the conversation's history), with its buttons, and counted as sent.
            chat.page.goto(chat.url)
            chat.open()
            chat.page.wait_for_selector(".asc-root[data-history]", state="attached", timeout=20_000)
            assert "明天" in chat.bot_texts()[-1] and "工程师" in chat.bot_texts()[-1]
            assert "确认上门" in chat.quick_replies()
            row = listed(stack)[day_before.id]
            assert row["status"] == "sent" and row["sent_at"]

            # With the widget open, the two-hour reminder arrives at once.
            before = len(chat.bot_texts())
            proc = run_once(stack, utc(two_hours.due_at))
            assert "sent 1," in proc.stdout, proc.stdout + proc.stderr
            chat.page.wait_for_function(
                "n => document.querySelectorAll('.asc-msg--bot:not(.asc-welcome)').length > n", arg=before,
                timeout=20_000)
            assert "两小时" in chat.bot_texts()[-1]
            assert "sent 0," in run_once(stack, start - timedelta(minutes=30)).stdout
            assert not chat.errors, chat.errors
            chat.close()
        finally:
            browser.close()


@pytest.mark.slow
def test_rest_promise_is_kept_in_the_conversation_for_the_client_to_fetch(tg_stack):
    from bot.services.outbox import load_outbox_config, schedule
    from bot.services.tickets import TicketBook
    from bot.settings import load_settings

    stack = tg_stack
    sender = f"rest-promise-{os.getpid()}"
    stack.send(sender, "你好")
    conversation = conversation_id("rest", sender)
    tz = load_settings().timezone
    now = datetime.now(timezone.utc)
    engine = create_engine(stack.db_url, future=True)
    try:
        with Session(engine) as session:
            ticket, _ = TicketBook(session, tz).open(conversation_id=conversation, channel="rest", kind="repair",
                                                     language="en", now=now)
            TicketBook(session, tz).set_status(ticket, "resolved", now)
            number = ticket.number
            item_id = schedule(session, kind="thank_you", channel="rest", conversation_id=conversation,
                               due_at=now, language="en", now=now, tz=tz, config=load_outbox_config(),
                               ticket=ticket).id
            session.commit()
    finally:
        engine.dispose()
    due = listed(stack)[item_id]["due"]
    proc = run_once(stack, datetime.fromisoformat(due) + timedelta(minutes=1))
    assert "sent 1," in proc.stdout, proc.stdout + proc.stderr
    bots = [e for e in stack.tracker(conversation)["events"] if e["event"] == "bot"]
    assert bots[-1]["metadata"]["outbox_id"] == item_id
    assert "Thank you letter" in bots[-1]["text"] and number in bots[-1]["text"]
    assert listed(stack)[item_id]["status"] == "sent"
