"""The promises and the customer's answers, through the conversation script against real databases: reminders
scheduled at booking (and withdrawn when the visit moves), the check-back ("not fixed" reopens the ticket and the
script offers the next remedy), the self-check call-back, the survey (a 1 reopens the ticket, alerts the desk and
promises a supervisor's call-back; a good one closes the case and promises the thank-you), the agent call-back
reminder, and the promises in `tickets report`.

The outbox gate's part (bot/channels/outbox_gate.py) is played by `deliver`: it renders the due row exactly as the
runner does and puts the promise's question into the script state with the gate's own `promise_state`.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import select

from bot.services.desk_report import desk_figures
from bot.services.outbox import load_outbox_config
from bot.services.promises import promise_state, render_promise, resolve_ticket, schedule_check_back
from bot.services.tickets import TicketBook
from bot.store.models import OutboxItem, Ticket, Visit
from tests.test_script import NOW, Chat, book_repair, joined, tools  # noqa: F401 - tools is a fixture

CONFIG = load_outbox_config()
REPAIR = [("冰箱不制冷了，派个师傅来修", "request_repair"), ("对", "affirm"), ("BCD-215STPA", "inform"),
          ("四年前买的", "inform"), ("13812345678", "inform"), ("北京市朝阳区望京西路8号院3号楼1单元502", "inform"),
          ("明天下午", "inform")]


def outbox(tools, number: str, kind: str | None = None) -> list[OutboxItem]:
    with tools.uow() as uow:
        ticket = TicketBook(uow.session, tools.settings.timezone).get(number)
        stmt = select(OutboxItem).where(OutboxItem.ticket_id == ticket.id).order_by(OutboxItem.id)
        if kind:
            stmt = stmt.where(OutboxItem.kind == kind)
        return [SimpleNamespace(id=r.id, kind=r.kind, status=r.status, due_at=r.due_at)
                for r in uow.session.execute(stmt).scalars()]


def deliver(chat: Chat, tools, item_id: int, now: datetime) -> list[dict]:
    """What the runner and the gate do with one due row: render it, and open its question in the script state."""
    with tools.uow() as uow:
        outgoing = render_promise(uow.session, uow.session.get(OutboxItem, item_id), now, texts=tools.texts,
                                  tz=tools.settings.timezone, config=CONFIG)
    assert not isinstance(outgoing, str), outgoing
    if outgoing.question:
        chat.state = promise_state(chat.state, outgoing.question)
    chat.now = now
    return outgoing.messages


def booked_visit(chat: Chat, tools) -> tuple[str, SimpleNamespace]:
    book_repair(chat, REPAIR)
    while chat.state["proposals"][chat.state["pidx"]]["kind"] == "self_check":
        chat.say("不用了", "deny")
    chat.say("可以", "affirm")
    chat.say("1", "inform")
    chat.say("确认", "affirm")
    number = chat.state["last_ticket"]
    with tools.uow() as uow:
        ticket = TicketBook(uow.session, tools.settings.timezone).get(number)
        visit = uow.session.execute(select(Visit).where(Visit.ticket_id == ticket.id)).scalar_one()
        return number, SimpleNamespace(id=visit.id, start=visit.start, end=visit.end)


def visit_done(tools, visit_id: int, at: datetime) -> None:
    """The desk marks the visit done (i13-loops' action): the ticket is resolved and the check-back promised."""
    with tools.uow() as uow:
        visit = uow.session.get(Visit, visit_id)
        visit.status = "done"
        resolve_ticket(uow.session, visit.ticket, at, tz=tools.settings.timezone, actor="agent", note="visit done",
                       config=CONFIG)
        schedule_check_back(uow, visit, at, tz=tools.settings.timezone, config=CONFIG)
        uow.commit()


def status_and_events(tools, number: str) -> tuple[str, list[str]]:
    with tools.uow() as uow:
        t = TicketBook(uow.session, tools.settings.timezone).get(number)
        return t.status, [e.kind for e in t.events]


def test_a_booked_visit_promises_two_reminders_with_buttons_that_work(tools):
    chat = Chat(tools, "promise-reminders")
    number, visit = booked_visit(chat, tools)
    reminders = outbox(tools, number)
    assert [r.kind for r in reminders] == ["visit_reminder_day_before", "visit_reminder_two_hours"]
    start = visit.start if visit.start.tzinfo else visit.start.replace(tzinfo=NOW.tzinfo)
    assert [r.due_at.replace(tzinfo=NOW.tzinfo) for r in reminders] == [start - timedelta(hours=24),
                                                                         start - timedelta(hours=2)]
    [message] = deliver(chat, tools, reminders[0].id, start - timedelta(hours=24))
    assert number in message["text"] and "明天" in message["text"]
    assert [b["payload"] for b in message["buttons"]] == ["/affirm", "/reschedule_visit", "/cancel_visit"]
    out = chat.say("确认上门", "affirm")
    assert "谢谢确认" in joined(out) and chat.state.get("flow") != "promise"
    assert "visit_confirmed" in status_and_events(tools, number)[1]
    # The two-hour reminder: "cancel" is pressed, and the visit change flow asks to confirm the cancellation.
    deliver(chat, tools, reminders[1].id, start - timedelta(hours=2))
    out = chat.say("/cancel_visit", "cancel_visit")
    assert chat.state["flow"] == "visit_change" and chat.state["step"] == "cancel_confirm" and number in joined(out)
    chat.say("是的", "affirm")
    assert {r.status for r in outbox(tools, number)} == {"cancelled"}  # no reminders for a cancelled visit


def test_not_fixed_at_the_check_back_reopens_the_ticket_and_offers_the_next_remedy(tools):
    chat = Chat(tools, "promise-check-back")
    number, visit = booked_visit(chat, tools)
    chat.say("5", "inform")  # the rating asked at the end of the booking
    done_at = visit.end.replace(tzinfo=NOW.tzinfo)
    visit_done(tools, visit.id, done_at)
    [check_back] = outbox(tools, number, "visit_check_back")
    assert check_back.due_at.replace(tzinfo=NOW.tzinfo) == done_at + timedelta(hours=24)
    messages = deliver(chat, tools, check_back.id, done_at + timedelta(hours=24))
    assert "正常" in messages[0]["text"] and [b["payload"] for b in messages[0]["buttons"]] == ["/affirm", "/deny"]
    out = chat.say("还没好", "deny")
    text = joined(out)
    assert "重新打开" in text and number in text
    assert "依据条款" in text and "您看这样处理可以吗" in text  # the next remedy, with its clause
    assert chat.state["flow"] == "complaint" and chat.state["step"] == "opinion"
    offered = chat.state["proposals"][0]["kind"]
    assert offered not in ("paid_repair", "self_check")  # not the remedy that was carried out
    status, kinds = status_and_events(tools, number)
    assert status == "in_progress" and "check_back_answered" in kinds
    with tools.uow() as uow:
        ticket = TicketBook(uow.session, tools.settings.timezone).get(number)
        moves = [(e.data["from"], e.data["to"]) for e in ticket.events if e.kind == "status_changed"]
    assert ("resolved", "reopened") in moves
    assert [r.status for r in outbox(tools, number, "survey")] == ["cancelled"]  # no survey for a reopened case


def test_a_rating_of_1_reopens_the_ticket_alerts_the_desk_and_promises_a_call_back(tools):
    chat = Chat(tools, "promise-survey-low")
    number, visit = booked_visit(chat, tools)
    chat.say("5", "inform")
    done_at = visit.end.replace(tzinfo=NOW.tzinfo)
    visit_done(tools, visit.id, done_at)
    assert [r.status for r in outbox(tools, number, "survey")] == ["cancelled"]  # it waits for the check-back
    [check_back] = outbox(tools, number, "visit_check_back")
    deliver(chat, tools, check_back.id, done_at + timedelta(hours=24))
    chat.say("好了，正常了", "affirm")
    [survey] = [r for r in outbox(tools, number, "survey") if r.status == "pending"]
    messages = deliver(chat, tools, survey.id, done_at + timedelta(hours=24, minutes=10))
    assert number in messages[0]["text"] and [b["payload"] for b in messages[1]["buttons"]] == ["5", "4", "3", "2", "1"]
    out = chat.say("1", "inform")
    text = joined(out)
    assert "重新打开" in text and "主管" in text and "回电" in text
    status, kinds = status_and_events(tools, number)
    assert status == "reopened" and "desk_alerted" in kinds and "satisfaction_recorded" in kinds
    [call_back] = outbox(tools, number, "supervisor_call_back")
    assert call_back.status == "pending"
    # the survey goes on: solved? engineer's attitude (there was a visit), a comment; nothing alerts twice
    assert "解决" in text
    chat.say("/deny", "deny")
    out = chat.say("2", "inform")
    out = chat.say("师傅迟到了两个小时", "inform")
    assert "主管" in joined(out) and chat.state.get("flow") != "promise"
    status, kinds = status_and_events(tools, number)
    assert kinds.count("desk_alerted") == 1 and len(outbox(tools, number, "supervisor_call_back")) == 1
    assert [k for k in kinds if k == "survey_answered"] == ["survey_answered"] * 4


def test_fixed_at_the_check_back_resolves_and_a_good_survey_closes_with_a_thank_you(tools):
    chat = Chat(tools, "promise-good")
    number, visit = booked_visit(chat, tools)
    chat.say("5", "inform")
    with tools.uow() as uow:  # the visit is done, but nobody has resolved the ticket yet
        uow.session.get(Visit, visit.id).status = "done"
        schedule_check_back(uow, uow.session.get(Visit, visit.id), NOW + timedelta(days=3),
                            tz=tools.settings.timezone, config=CONFIG)
        uow.commit()
    [check_back] = outbox(tools, number, "visit_check_back")
    deliver(chat, tools, check_back.id, NOW + timedelta(days=4))
    out = chat.say("好了，正常了", "affirm")
    assert "已解决" in joined(out)
    assert status_and_events(tools, number)[0] == "resolved"
    [survey] = outbox(tools, number, "survey")
    deliver(chat, tools, survey.id, NOW + timedelta(days=4, minutes=10))
    chat.say("5", "inform")
    chat.say("/affirm", "affirm")
    chat.say("4", "inform")
    out = chat.say("跳过", "deny")
    assert "谢谢" in joined(out)
    status, kinds = status_and_events(tools, number)
    assert status == "closed" and "desk_alerted" not in kinds
    [thanks] = outbox(tools, number, "thank_you")
    assert "感谢函" in deliver(chat, tools, thanks.id, NOW + timedelta(days=4, minutes=20))[0]["text"]


def test_the_self_check_promises_a_call_back_and_not_fixed_goes_on_with_the_next_remedy(tools):
    chat = Chat(tools, "promise-self-check", language="en")
    for text, intent in [("my fridge is not cooling", "request_repair"), ("yes", "affirm"),
                         ("BCD-470WDPG", "inform"), ("order JD240512345678", "inform"),
                         # an order number alone never links a customer (issue 18): the phone is the second fact
                         ("13812345678", "inform"),
                         ("Flat 3, 8 Wangjing West Road, Chaoyang District, Beijing", "inform"),
                         ("after 6pm tomorrow", "inform")]:
        chat.say(text, intent)
    assert chat.state["proposals"][0]["kind"] == "self_check"
    out = chat.say("ok, I'll try that", "affirm")
    assert "check with you around" in joined(out)
    number = chat.state["ticket"]
    [call_back] = outbox(tools, number, "self_check_call_back")
    assert call_back.due_at.replace(tzinfo=NOW.tzinfo) == chat.now + timedelta(hours=2)
    chat.state = {"last_ticket": number}  # the customer left to try it
    deliver(chat, tools, call_back.id, chat.now + timedelta(hours=2))
    out = chat.say("no, still warm", "deny")
    assert "open again" in joined(out) and "Policy clause" in joined(out)
    assert chat.state["step"] == "opinion" and chat.state["proposals"][0]["kind"] != "self_check"


def test_a_missed_out_of_hours_call_back_reminds_the_customer_unless_the_desk_took_it(tools):
    chat = Chat(tools, "promise-agent-call-back")
    chat.now = NOW.replace(hour=15)  # 23:00 in Shanghai: the desk is closed
    out = chat.say("我要找人工客服", "request_human")
    assert "回电" in joined(out)
    number = chat.state["ticket"]
    [reminder] = outbox(tools, number, "agent_call_back_reminder")
    due = reminder.due_at.replace(tzinfo=NOW.tzinfo)
    [message] = deliver(chat, tools, reminder.id, due)
    assert "抱歉" in message["text"] and number in message["text"]
    with tools.uow() as uow:
        from bot.store.models import Handoff

        uow.session.execute(select(Handoff)).scalar_one().status = "claimed"
        uow.commit()
    with tools.uow() as uow:
        assert isinstance(render_promise(uow.session, uow.session.get(OutboxItem, reminder.id), due,
                                         tz=tools.settings.timezone, config=CONFIG), str)


def test_the_report_counts_promises_not_kept_and_kept_on_time(tools):
    chat = Chat(tools, "promise-report")
    number, visit = booked_visit(chat, tools)
    first, second = outbox(tools, number)
    with tools.uow() as uow:
        sent = uow.session.get(OutboxItem, first.id)
        sent.status, sent.sent_at = "sent", sent.due_at
        uow.session.get(OutboxItem, second.id).status = "failed"
        uow.commit()
    with tools.uow() as uow:
        figures = desk_figures(uow.session, since=NOW - timedelta(days=1), until=NOW + timedelta(days=1),
                               now=visit.start.replace(tzinfo=NOW.tzinfo))
    [omitted] = [o for o in figures["omitted"] if o["number"] == number]
    assert "promise_failed:visit_reminder_two_hours" in omitted["why"]
    assert figures["promises"] == {"due": 2, "kept_on_time": 1, "failed": 1, "overdue": 0, "kept_on_time_rate": 0.5}
    # A bot-finished ticket that was resolved is not omitted, whatever its deadlines.
    with tools.uow() as uow:
        ticket = uow.session.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        uow.session.get(OutboxItem, second.id).status = "cancelled"
        resolve_ticket(uow.session, ticket, NOW + timedelta(days=1), tz=tools.settings.timezone, actor="agent",
                       note="done", config=CONFIG)
        for row in uow.session.execute(select(OutboxItem).where(OutboxItem.kind == "survey")).scalars():
            row.status, row.sent_at = "sent", row.due_at  # the survey went out on time
        uow.commit()
    with tools.uow() as uow:
        figures = desk_figures(uow.session, since=NOW - timedelta(days=1), until=NOW + timedelta(days=1),
                               now=NOW + timedelta(days=30))
    assert number not in [o["number"] for o in figures["omitted"]]


def test_reopening_while_a_newer_ticket_of_the_same_kind_is_open_keeps_both(tools):
    from bot.services.promises import reopen_ticket

    with tools.uow() as uow:
        book = TicketBook(uow.session, tools.settings.timezone)
        old, _ = book.open(conversation_id="twice", channel="rest", kind="repair", language="zh", now=NOW)
        book.set_status(old, "resolved", NOW)
        new, created = book.open(conversation_id="twice", channel="rest", kind="repair", language="zh", now=NOW)
        assert created and new.id != old.id
        assert reopen_ticket(uow.session, old, NOW, tz=tools.settings.timezone, actor="customer", note="not fixed")
        uow.commit()
        assert old.status == "reopened" and old.dedupe_key is None and new.dedupe_key is not None
