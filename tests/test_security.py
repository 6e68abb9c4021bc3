"""Issue 18 below the servers: ownership of tickets and visits, look-up limits in the database, one live visit per
ticket, turns that time out, the input guard. On SQLite and PostgreSQL where the database is involved.
(tests/test_security_stack.py shows the same on the running stack.)"""
from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func, select

import actions.flow as flow
from bot.bootstrap import bootstrap
from bot.channels.guard import Guard, GuardConfig, RateLimiter, cut
from bot.services.conversation import conversation_id, sender_of
from bot.services.tickets import TicketBook
from bot.services.visits import VisitBook, VisitError
from bot.settings import load_settings
from bot.store.db import upgrade
from bot.store.models import LookupAttempt, Ticket, TicketAccess, Visit
from tests.test_script import Chat, tools  # noqa: F401 - the script's fixture, on SQLite and PostgreSQL


def live_visits(tools, number: str) -> int:
    with tools.uow() as uow:
        return uow.session.execute(select(func.count(Visit.id)).join(Ticket, Visit.ticket_id == Ticket.id).where(
            Ticket.number == number, Visit.status == "booked")).scalar_one()


def book_a_visit(chat: Chat) -> str:
    """A repair over the script up to a booked visit; returns the ticket number."""
    for text, intent in [("我家空调不制冷了，麻烦安排师傅上门修一下", "request_repair"), ("对", "affirm"),
                         ("KFR-35GW/BP3DN8Y", "inform"), ("订单号JD230312345670", "inform"), ("13812345678", "inform"),
                         ("北京市朝阳区望京西路8号院3号楼1单元502", "inform"), ("明天上午", "inform")]:
        chat.say(text, intent)
    while chat.state.get("step") == "opinion":
        chat.say("可以", "affirm")
    assert chat.state.get("step") == "visit_pick", chat.state
    chat.say("1", "inform")
    assert chat.state.get("step") == "visit_confirm"
    return chat.state["ticket"]


# ---------------------------------------------------------------------------------------------- conversation ids
def test_conversation_ids_are_namespaced_per_channel():
    assert conversation_id("rest", "123") == "rest:123" != conversation_id("telegram", 123) == "telegram:123"
    assert conversation_id("webchat", "ab" * 16) == "webchat:" + "ab" * 16
    assert sender_of("telegram", "telegram:123") == "123" and sender_of("telegram", "123") == "123"


# ---------------------------------------------------------------------------------------------- ownership
def test_a_replayed_confirmation_answers_already_booked_and_leaves_one_live_visit(tools):
    chat = Chat(tools, conversation_id("telegram", 5550001))
    number = book_a_visit(chat)
    old_state = dict(chat.state)
    first = "\n".join(chat.say("好的，确认", "affirm"))
    assert number in first and live_visits(tools, number) == 1
    chat.state = old_state  # the same confirmation again, with the state from before it
    again = "\n".join(chat.say("好的，确认", "affirm"))
    assert "已经预约" in again and number in again
    assert live_visits(tools, number) == 1


def test_the_database_allows_one_live_visit_per_ticket(tools):
    chat = Chat(tools, "rest:one-visit")
    number = book_a_visit(chat)
    chat.say("好的，确认", "affirm")
    with tools.uow() as uow:
        book = TicketBook(uow.session, tools.settings.timezone)
        ticket = book.get(number)
        visits = VisitBook(uow.session, tools.settings.timezone, tools.roster)
        live = visits.live_visit(ticket)
        window = visits.proposals(category=ticket.product, address=ticket.address, now=chat.now)[-1]
        assert (window.engineer_id, window.start) != (live.engineer_id, live.start)
        with pytest.raises(VisitError) as err:
            visits.book(ticket=ticket, window=window, address=ticket.address, now=chat.now)
        assert err.value.code == "already_booked"
        # Rescheduling still works: the old visit stops being live before the new one is booked.
        new = visits.reschedule(live, window, chat.now)
        uow.commit()
        assert new.status == "booked" and live.status == "cancelled"
    assert live_visits(tools, number) == 1


def test_another_channel_with_the_same_id_can_neither_see_nor_cancel(tools):
    owner = Chat(tools, conversation_id("telegram", 424242))
    number = book_a_visit(owner)
    owner.say("好的，确认", "affirm")
    stranger = Chat(tools, conversation_id("rest", 424242))  # a REST client choosing the Telegram chat id
    out = "\n".join(stranger.say("帮我查一下进度", "check_status"))
    assert number not in out
    out = "\n".join(stranger.say(f"取消 {number} 的上门", "cancel_visit"))
    assert "手机号" in out and "已取消" not in out  # the ticket's phone is asked; nothing is changed
    # A forged state (the visit's id and the ticket, as if proved) changes nothing either.
    with tools.uow() as uow:
        visit_id = uow.session.execute(select(Visit.id).join(Ticket, Visit.ticket_id == Ticket.id)
                                       .where(Ticket.number == number)).scalar_one()
    stranger.state = {"flow": "visit_change", "action": "cancel_visit", "visit_id": visit_id, "ticket": number,
                      "step": "cancel_confirm"}
    stranger.say("是的", "affirm")
    assert live_visits(tools, number) == 1


def test_phone_and_order_prove_ownership_and_the_proof_is_kept_in_the_database(tools):
    owner = Chat(tools, "rest:owner")
    number = book_a_visit(owner)
    owner.say("好的，确认", "affirm")
    other = Chat(tools, "webchat:0123456789abcdef0123456789abcdef", channel="webchat")
    out = "\n".join(other.say("查询工单进度，手机13812345678，订单号JD230312345670", "check_status"))
    assert number in out
    with tools.uow() as uow:
        proofs = uow.session.execute(select(TicketAccess.method).where(
            TicketAccess.conversation_id == other.conversation)).scalars().all()
    assert proofs == ["phone+order"]


def count_attempts(tools) -> int:
    with tools.uow() as uow:
        return uow.session.execute(select(func.count(LookupAttempt.id))).scalar_one()


@pytest.fixture
def from_one_address(monkeypatch):
    """Every turn of the script comes from one client address (what the channels put on the turn)."""
    from bot.services.assistant import Assistant

    handle = Assistant.handle

    def with_client(self, turn, state):
        return handle(self, dataclasses.replace(turn, client="203.0.113.9"), state)

    monkeypatch.setattr(Assistant, "handle", with_client)


def test_guessing_ticket_numbers_with_a_known_phone_is_refused_after_the_limit(tools, from_one_address):
    owner = Chat(tools, "rest:guess-owner")
    number = book_a_visit(owner)
    owner.say("好的，确认", "affirm")
    prefix, serial = number.rsplit("-", 1)
    for attempt in range(10):  # a new conversation (sender) for every guess: the limit is per address
        guess = f"{prefix}-{int(serial) + 1 + attempt:04d}"
        out = "\n".join(Chat(tools, f"rest:guesser-{attempt}").say(f"查询 {guess} 手机13812345678", "check_status"))
        assert number not in out
    before = count_attempts(tools)
    out = "\n".join(Chat(tools, "rest:guesser-last").say(f"查询 {number} 手机13812345678", "check_status"))
    assert number not in out and "锁定" in out  # even the right number and phone, from that address
    assert count_attempts(tools) == before  # a refused look-up is not even tried


def test_wrong_phones_on_one_ticket_lock_that_ticket_for_everyone(tools):
    owner = Chat(tools, "rest:ticket-owner")
    number = book_a_visit(owner)
    owner.say("好的，确认", "affirm")
    for attempt in range(5):  # five conversations, no address in common
        Chat(tools, f"rest:phone-guess-{attempt}").say(f"查询 {number} 手机1391234567{attempt}", "check_status")
    out = "\n".join(Chat(tools, "rest:phone-right").say(f"查询 {number} 手机13812345678", "check_status"))
    assert "锁定" in out and number not in out
    assert number in "\n".join(owner.say(f"查询 {number}", "check_status"))  # its own conversation still sees it


def test_the_limit_per_client_address_holds_across_tickets_and_conversations(tools, from_one_address):
    owner = Chat(tools, "rest:addr-owner")
    number = book_a_visit(owner)
    owner.say("好的，确认", "affirm")
    for attempt in range(10):  # ten different wrong numbers, ten conversations, one address
        Chat(tools, f"rest:addr-{attempt}").say(f"查询 SV-20990101-{attempt:04d} 手机13812345678", "check_status")
    out = "\n".join(Chat(tools, "rest:addr-last").say(f"查询 {number} 手机13812345678", "check_status"))
    assert "锁定" in out and number not in out


def test_an_order_number_alone_never_links_a_customer(tools):
    chat = Chat(tools, "rest:order-only")
    chat.say("冰箱不制冷了", "complain")
    chat.say("就这些", "complain")
    chat.say("对", "affirm")
    chat.say("不知道", "deny")
    out = "\n".join(chat.say("订单号JD240512345678", "inform"))
    ticket = chat.ticket()
    assert "王芳" not in out and "13812345678" not in out
    assert ticket["customer"]["phone"] is None and ticket["customer"]["name"] is None
    assert ticket["facts"]["order_id"] == "JD240512345678"  # what was bought is used
    chat.say("13900000000", "inform")  # not the phone on the order: still nobody linked
    assert chat.ticket()["customer"]["name"] is None


# ---------------------------------------------------------------------------------------------- time-outs
REPAIR = {"text": "我的冰箱不制冷了", "intent": {"name": "request_repair", "confidence": 0.9}, "entities": [],
          "language_detected": {"code": "zh", "confidence": 0.99}, "metadata": {}}


def action_app(tmp_path, monkeypatch, **changes):
    """The action's app on its own SQLite database (settings changed by `changes`)."""
    settings = dataclasses.replace(load_settings({"BOT_VAR_DIR": str(tmp_path)}), **changes)
    upgrade(settings.database_url)
    app = bootstrap(settings)
    monkeypatch.setattr(flow, "_app", app)
    return app


def run_action(sender: str, message: dict, slots: dict | None = None) -> tuple[CollectingDispatcher, list]:
    dispatcher = CollectingDispatcher()
    tracker = Tracker(sender, slots or {}, message, [], False, None, {}, "action_listen")
    return dispatcher, asyncio.run(flow.ActionFlowTurn().run(dispatcher, tracker, {}))


def tickets_in(app) -> int:
    app.turn_executor.shutdown(wait=True)  # whatever was still running has run to its end
    with app.uow() as uow:
        count = uow.session.execute(select(func.count(Ticket.id))).scalar_one()
    app.engine.dispose()
    return count


def test_a_turn_that_times_out_commits_nothing(tmp_path, monkeypatch):
    app = action_app(tmp_path, monkeypatch, action_timeout_seconds=0.5)
    handle = app.assistant.handle

    def slow(turn, state):  # the database was slow to give the lock: the work finishes after the time-out
        time.sleep(1.5)
        return handle(turn, state)

    monkeypatch.setattr(app.assistant, "handle", slow)
    dispatcher, _events = run_action("rest:slow", REPAIR)
    assert [m.get("response") for m in dispatcher.messages] == ["utter_technical_problem"]
    assert tickets_in(app) == 0


def test_a_turn_in_time_commits(tmp_path, monkeypatch):
    app = action_app(tmp_path, monkeypatch)
    run_action("rest:quick", REPAIR)
    assert tickets_in(app) == 1


def test_kept_messages_are_run_first_when_the_action_server_is_back(tmp_path, monkeypatch):
    app = action_app(tmp_path, monkeypatch)
    now = {"text": "对", "intent": {"name": "affirm", "confidence": 0.9}, "entities": [],
           "language_detected": {"code": "zh", "confidence": 0.99}}
    dispatcher, events = run_action("rest:kept", now, {"flow_state": {"pending": [REPAIR]}})
    state = next(e["value"] for e in events if e.get("name") == "flow_state")
    assert "pending" not in state and state.get("flow") == "complaint" and state.get("ticket")
    assert len(dispatcher.messages) >= 2  # the kept message was answered, then this one
    assert tickets_in(app) == 1


# ---------------------------------------------------------------------------------------------- the input guard
def test_messages_are_cut_to_the_limit():
    assert cut("x" * 5000, 4000) == ("x" * 4000, True)
    assert cut("短消息", 4000) == ("短消息", False)
    guard = Guard(GuardConfig(max_chars=10, per_sender=0, per_address=0))
    verdict = guard.admit("一二三四五六七八九十十一", sender="rest:a", address=None)
    assert verdict.text == "一二三四五六七八九十" and verdict.cut
    assert "10" in guard.notices(verdict, "zh")[0] and "10" in guard.notices(verdict, "en")[0]


def test_rate_limits_per_sender_and_per_address():
    clock = [0.0]
    limiter = RateLimiter(3, window=60, clock=lambda: clock[0])
    assert [limiter.check("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.check("a") > 0 and limiter.check("b") == 0.0
    clock[0] = 61
    assert limiter.check("a") == 0.0
    guard = Guard(GuardConfig(max_chars=100, per_sender=100, per_address=2))
    assert not guard.admit("hi", sender="rest:1", address="198.51.100.1").refused
    assert not guard.admit("hi", sender="rest:2", address="198.51.100.1").refused
    refused = guard.admit("hi", sender="rest:3", address="198.51.100.1")
    assert refused.refused and "秒" in guard.notices(refused, "zh")[0]
    assert not guard.admit("hi", sender="rest:3", address="198.51.100.2").refused


def test_endpoints_yml_takes_the_action_servers_token_from_the_environment(monkeypatch):
    """scripts/run.sh passes BOT_ACTIONS_TOKEN; Rasa must send that, not the placeholder (a quoted "${...}" is not
    expanded)."""
    from rasa.core.utils import read_endpoints_from_path

    from bot.settings import ROOT

    monkeypatch.setenv("BOT_ACTIONS_TOKEN", "a-token-from-the-environment")
    endpoints = read_endpoints_from_path(ROOT / "endpoints.yml")
    assert endpoints.action.token == "a-token-from-the-environment"
    assert endpoints.action.url.startswith("http://127.0.0.1:")
