"""Closed loops at the desk, on SQLite and PostgreSQL: visit outcomes (done / no-show / late) and the engineer's day
list, remedies carried out and tickets reopened, the alert list and the call-back work list, and the report over a
month of synthetic activity (tests/synthetic_month.py) against figures worked out by hand."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from bot.services import visits as visits_service
from bot.services.desk_loops import (
    acknowledge_alert,
    alerts,
    callback_json,
    callback_work_list,
    complete_remedy,
    mark_callback_done,
    reopen_ticket,
)
from bot.services.desk_report import desk_figures
from bot.services.handoff import AgentAccounts, HandoffDesk
from bot.services.tickets import TicketBook, TicketError, add_event, as_utc
from bot.services.visits import VisitError, day_list, day_list_json, find_engineer, record_visit_outcome
from bot.store.db import UnitOfWork, make_engine, session_factory
from bot.store.models import Agent, Engineer, Handoff, OutboxItem, Ticket, TicketEvent, Visit
from tests.synthetic_month import TZ, generate
from tests.test_cli import env, run_cli  # noqa: F401  (fixture)

NOW = datetime(2026, 12, 4, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai, a Friday


def kinds(session, ticket_id: int) -> list[str]:
    return list(session.execute(select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket_id)
                                .order_by(TicketEvent.id)).scalars())


def new_ticket(session, name: str, kind: str = "repair", at: datetime = NOW - timedelta(days=1)) -> Ticket:
    ticket, _ = TicketBook(session, TZ).open(conversation_id=name, channel="rest", kind=kind, language="zh", now=at)
    return ticket


def engineer(session, code: str = "E900", name_en: str = "Zhang San") -> Engineer:
    row = Engineer(code=code, name_zh="张三", name_en=name_en, phone="13800090000", city="Beijing",
                   districts=["Chaoyang"], skills=["fridge"], work_start="08:00", work_end="20:00", days_off=[])
    session.add(row)
    session.flush()
    return row


def visit(session, ticket: Ticket, eng: Engineer, start: datetime) -> Visit:
    start = as_utc(start)  # stored in UTC
    row = Visit(ticket_id=ticket.id, engineer_id=eng.id, start=start, end=start + timedelta(hours=2),
                status="booked", address="北京市朝阳区望京西路8号", created_at=start - timedelta(days=1))
    session.add(row)
    session.flush()
    return row


# ---------------------------------------------------------------------------------------------- visits
def test_done_resolves_the_ticket_runs_the_hooks_and_logs_an_event(uow_factory, monkeypatch):
    called = []
    monkeypatch.setattr(visits_service, "ON_VISIT_DONE", [lambda uow, v, now: called.append((v.id, now))])
    with uow_factory() as uow:
        ticket = new_ticket(uow.session, "v-done")
        TicketBook(uow.session, TZ).set_status(ticket, "in_progress", NOW - timedelta(days=1))
        v = visit(uow.session, ticket, engineer(uow.session), NOW - timedelta(hours=3))
        record_visit_outcome(uow, v.id, "late", NOW - timedelta(hours=3), by="alice", late_minutes=25, tz=TZ)
        record_visit_outcome(uow, v.id, "done", NOW, by="alice", note="replaced the pump", tz=TZ)
        uow.commit()
        vid, tid = v.id, ticket.id
    with uow_factory() as uow:
        v = uow.session.get(Visit, vid)
        assert (v.status, v.late_minutes, v.outcome_by) == ("done", 25, "alice")
        assert uow.session.get(Ticket, tid).status == "resolved"
        assert kinds(uow.session, tid)[-3:] == ["visit_late", "visit_done", "status_changed"]
        done = uow.session.execute(select(TicketEvent).where(TicketEvent.ticket_id == tid,
                                                             TicketEvent.kind == "visit_done")).scalar_one()
        assert done.data["by"] == "alice" and done.data["note"] == "replaced the pump" and done.data["visit_id"] == vid
    assert called == [(vid, NOW)]
    # twice: refused, nothing changes
    with uow_factory() as uow, pytest.raises(VisitError) as err:
        record_visit_outcome(uow, vid, "no_show", NOW, tz=TZ)
    assert err.value.code == "visit_finished"


def test_no_show_keeps_the_ticket_open_and_a_hook_failure_rolls_back(uow_factory, monkeypatch):
    with uow_factory() as uow:
        ticket = new_ticket(uow.session, "v-noshow")
        eng = engineer(uow.session)
        v1 = visit(uow.session, ticket, eng, NOW - timedelta(hours=4))
        # one live visit per ticket (issue 18): the others are other tickets'
        v2 = visit(uow.session, new_ticket(uow.session, "v-noshow-2"), eng, NOW - timedelta(hours=2))
        future = visit(uow.session, new_ticket(uow.session, "v-noshow-3"), eng, NOW + timedelta(hours=5))
        record_visit_outcome(uow, v1.id, "no_show", NOW, note="nobody at home", tz=TZ)
        uow.commit()
        ids = (ticket.id, v1.id, v2.id, future.id, v2.ticket_id)
    tid, v1, v2, future, tid2 = ids
    with uow_factory() as uow:
        assert uow.session.get(Visit, v1).status == "no_show"
        assert uow.session.get(Ticket, tid).status == "new"
        assert kinds(uow.session, tid)[-1] == "visit_no_show"
    for bad, code in (({"outcome": "done", "visit_id": future}, "not_started"),
                      ({"outcome": "lost", "visit_id": v2}, "bad_outcome"),
                      ({"outcome": "late", "visit_id": v2, "late_minutes": 0}, "bad_outcome"),
                      ({"outcome": "done", "visit_id": 999999}, "visit_not_found")):
        with uow_factory() as uow, pytest.raises(VisitError) as err:
            record_visit_outcome(uow, bad["visit_id"], bad["outcome"], NOW, late_minutes=bad.get("late_minutes"),
                                 tz=TZ)
        assert err.value.code == code

    def broken(uow, v, now):
        raise RuntimeError("outbox down")

    monkeypatch.setattr(visits_service, "ON_VISIT_DONE", [broken])
    with uow_factory() as uow, pytest.raises(RuntimeError):
        record_visit_outcome(uow, v2, "done", NOW, tz=TZ)
        uow.commit()
    with uow_factory() as uow:
        assert uow.session.get(Visit, v2).status == "booked" and uow.session.get(Ticket, tid2).status == "new"


def test_day_list_per_engineer(uow_factory):
    with uow_factory() as uow:
        a, b = engineer(uow.session, "E900", "Zhang San"), engineer(uow.session, "E901", "Li Si")
        t = new_ticket(uow.session, "day-1")
        day = date(2026, 12, 5)
        # one live visit per ticket (issue 18): a ticket each
        late = visit(uow.session, new_ticket(uow.session, "day-2"), a, datetime(2026, 12, 5, 14, 0, tzinfo=TZ))
        early = visit(uow.session, t, a, datetime(2026, 12, 5, 9, 0, tzinfo=TZ))
        visit(uow.session, new_ticket(uow.session, "day-3"), a, datetime(2026, 12, 6, 0, 30, tzinfo=TZ))  # next day
        visit(uow.session, new_ticket(uow.session, "day-4"), b, datetime(2026, 12, 5, 9, 0, tzinfo=TZ))  # another
        gone = visit(uow.session, new_ticket(uow.session, "day-5"), a, datetime(2026, 12, 5, 16, 0, tzinfo=TZ))
        gone.status = "cancelled"
        uow.commit()
        assert find_engineer(uow.session, "zhang san").code == "E900"
        assert find_engineer(uow.session, "张三").code == "E900" and find_engineer(uow.session, "e901").code == "E901"
        with pytest.raises(VisitError):
            find_engineer(uow.session, "nobody")
        rows = day_list(uow.session, a, day, TZ)
        assert [r.id for r in rows] == [early.id, late.id]
        data = day_list_json(a, day, rows, TZ)
        assert data["count"] == 2 and data["date"] == "2026-12-05" and data["engineer"]["code"] == "E900"
        assert [v["local_window"] for v in data["visits"]] == ["09:00-11:00", "14:00-16:00"]
        assert data["visits"][0]["ticket"] == t.number


# ---------------------------------------------------------------------------------------------- the desk
def test_complete_remedy_and_reopen_with_a_reason(uow_factory):
    with uow_factory() as uow:
        t = new_ticket(uow.session, "desk-1", kind="return")
        number = t.number
        uow.commit()
    with uow_factory() as uow, pytest.raises(TicketError) as err:
        complete_remedy(uow, number, "repaint", NOW, agent="alice", tz=TZ)
    assert err.value.code == "bad_remedy"
    with uow_factory() as uow:
        complete_remedy(uow, number, "refund", NOW, agent="alice", tz=TZ, note="paid back 2999")
        uow.commit()
    with uow_factory() as uow:
        with pytest.raises(TicketError) as err:
            reopen_ticket(uow, number, "  ", NOW, agent="alice", tz=TZ)
        assert err.value.code == "reason_required"
        reopen_ticket(uow, number, "refund bounced", NOW + timedelta(hours=1), agent="alice", tz=TZ)
        uow.commit()
    with uow_factory() as uow:
        t = TicketBook(uow.session, TZ).require(number)
        assert t.status == "reopened"
        events = [(e.kind, e.data) for e in t.events]
        # resolved, the survey promised (the outbox), then reopened (the survey withdrawn) with the desk's reason
        assert [k for k, _ in events][-5:] == ["remedy_completed", "status_changed", "promise_scheduled",
                                               "status_changed", "desk_reopened"]
        assert events[-5][1]["remedy"] == "refund" and events[-4][1]["to"] == "resolved"
        assert events[-3][1]["promise"] == "survey" and events[-2][1]["to"] == "reopened"
        assert uow.session.execute(select(OutboxItem.status).where(OutboxItem.ticket_id == t.id,
                                                                   OutboxItem.kind == "survey")).scalar_one() \
            == "cancelled"
        assert events[-2][1] == {"from": "resolved", "to": "reopened", "note": "refund bounced"}
        with pytest.raises(TicketError) as err:  # an open ticket cannot be reopened
            reopen_ticket(uow, number, "again", NOW, agent="alice", tz=TZ)
        assert err.value.code == "bad_transition"


def test_alerts_from_low_ratings_not_solved_and_reopens_until_acknowledged(uow_factory):
    with uow_factory() as uow:
        book = TicketBook(uow.session, TZ)
        low, happy, unsolved, reopened = (new_ticket(uow.session, n) for n in ("a-low", "a-ok", "a-uns", "a-re"))
        book.record_satisfaction(low, 1, NOW - timedelta(hours=5))
        book.record_satisfaction(happy, 5, NOW - timedelta(hours=5))
        add_event(uow.session, unsolved, "survey_answered", "customer", NOW - timedelta(hours=4), solved=False)
        book.set_status(reopened, "resolved", NOW - timedelta(hours=6))
        book.set_status(reopened, "reopened", NOW - timedelta(hours=3), actor="customer")
        uow.commit()
        numbers = {n: t.number for n, t in (("low", low), ("ok", happy), ("uns", unsolved), ("re", reopened))}
    with uow_factory() as uow:
        found = [a.as_dict() for a in alerts(uow.session)]
    assert [a["ticket"] for a in found] == [numbers["re"], numbers["uns"], numbers["low"]]
    assert [a["reasons"] for a in found] == [["reopened"], ["not_solved"], ["low_rating"]]
    assert found[2]["score"] == 1 and all(a["open"] for a in found)
    with uow_factory() as uow:
        acknowledge_alert(uow, numbers["low"], NOW, agent="boss", tz=TZ)
        uow.commit()
    with uow_factory() as uow:
        assert [a.ticket.number for a in alerts(uow.session)] == [numbers["re"], numbers["uns"]]
        seen = {a.ticket.number: a for a in alerts(uow.session, include_acknowledged=True)}
        assert seen[numbers["low"]].acknowledged_by == "boss" and not seen[numbers["low"]].open
        TicketBook(uow.session, TZ).record_satisfaction(seen[numbers["low"]].ticket, 2, NOW + timedelta(hours=1))
        uow.commit()
    with uow_factory() as uow:  # a new trigger brings it back
        assert alerts(uow.session)[0].ticket.number == numbers["low"]
        # only the events since a moment count: the list looks back a window, not over all time
        assert [a.ticket.number for a in alerts(uow.session, since=NOW - timedelta(hours=3, minutes=30))] == \
            [numbers["low"], numbers["re"]]


def test_callback_work_list_and_done_mark(uow_factory):
    with uow_factory() as uow:
        agent, _ = AgentAccounts(uow.session).create("carol", password="carol-password")
        desk = HandoffDesk(uow.session, tz=TZ)
        later, _ = desk.request(new_ticket(uow.session, "cb-1"), reason="customer_request", now=NOW)
        sooner, _ = desk.request(new_ticket(uow.session, "cb-2"), reason="customer_request", now=NOW)
        desk.request(new_ticket(uow.session, "cb-3"), reason="customer_request", now=NOW)  # no call-back
        later.callback_due = NOW + timedelta(hours=20)
        sooner.callback_due = NOW - timedelta(hours=1)
        uow.commit()
        ids = (later.id, sooner.id, agent.id)
    with uow_factory() as uow:
        rows = [callback_json(h, NOW) for h in callback_work_list(uow.session)]
        assert [r["handoff_id"] for r in rows] == [ids[1], ids[0]]
        assert rows[0]["overdue"] and not rows[1]["overdue"] and not rows[0]["done"]
        agent = uow.session.get(Agent, ids[2])
        mark_callback_done(uow, ids[1], agent, NOW, note="called, fixed")
        mark_callback_done(uow, ids[1], agent, NOW + timedelta(hours=1))  # again: nothing changes
        uow.commit()
    with uow_factory() as uow:
        rows = [callback_json(h, NOW) for h in callback_work_list(uow.session)]
        assert [r["handoff_id"] for r in rows] == [ids[0], ids[1]]
        assert rows[1]["done"] and rows[1]["done_by"] == "carol" and not rows[1]["overdue"]
        assert rows[1]["done_at"].startswith(NOW.isoformat()[:16])
        h = uow.session.get(Handoff, ids[1])
        assert kinds(uow.session, h.ticket_id).count("callback_done") == 1
        with pytest.raises(TicketError):
            mark_callback_done(uow, 999999, agent, NOW)


# ---------------------------------------------------------------------------------------------- the report
def test_the_report_of_a_synthetic_month_matches_the_figures_worked_out_by_hand(uow_factory):
    period = generate(uow_factory)
    with uow_factory() as uow:
        f = desk_figures(uow.session, since=period["since"], until=period["until"], now=period["now"], tz=TZ)
    # 28 days x 5 tickets: T0 + T3 are complaints, T1 + T4 repairs, T2 inquiries
    assert f["tickets"] == 140 and f["by_kind"] == {"complaint": 56, "inquiry": 28, "repair": 56}
    assert f["complaint_rate"] == 0.4
    # omitted: the 4 T1 no-shows (days 3, 10, 17, 24) and the 6 reopened T4 (days 0, 5, ..., 25), all still open
    # past their 48 h; the 28 T2 resolved by the bot with a follow-up due long ago are NOT omitted
    assert len(f["omitted"]) == 10 and f["omission_rate"] == round(10 / 140, 4)
    assert all(o["why"] == ["resolution_overdue"] for o in f["omitted"])
    assert sorted(o["status"] for o in f["omitted"]) == ["in_progress"] * 4 + ["reopened"] * 6
    # ratings: T0 14 x 5, T1 24 x 4, T3 7 x 1 + 21 x 3, T4 6 x 2 -> 72 ratings, 13 low, mean 248 / 72
    assert f["ratings"] == {"count": 72, "low": 13, "mean": 3.44}
    assert f["dissatisfaction_rate"] == round(13 / 72, 4)
    assert f["handoffs"] == {"count": 28, "by_reason": {"anger": 28}} and f["handoff_rate"] == 0.2
    # first contact: T0 28 + T2 28 + T4 not reopened 22 = 78
    assert f["first_contact_resolution"] == {"count": 78, "rate": round(78 / 140, 4)}
    assert f["reopened"] == 6 and f["reopen_rate"] == round(6 / 140, 4)
    # bob takes his 14 after 3 h (> 2 h); the 10 omitted are open past their resolution deadline
    assert f["sla_breaches"]["first_response"] == 14 and f["sla_breaches"]["resolution"] == 10
    assert len(f["sla_breaches"]["tickets"]) == 24
    # 14 visits 27 h after opening, 14 visits 46 h after: median (27 + 46) / 2
    assert f["median_hours_to_first_visit"] == 36.5
    assert f["visits"] == {"count": 28, "by_status": {"done": 24, "no_show": 4}, "late": 4}
    weeks = f["by_week"]
    assert list(weeks) == ["2026-W41", "2026-W42", "2026-W43", "2026-W44"]
    assert [w["tickets"] for w in weeks.values()] == [35] * 4
    assert [w["omitted"] for w in weeks.values()] == [3, 2, 3, 2]
    assert all(w["complaint_rate"] == 0.4 for w in weeks.values())
    assert {k: v["tickets"] for k, v in f["by_product"].items()} == {"fridge": 56, "tv": 56, "washing_machine": 28}
    assert {k: v["tickets"] for k, v in f["by_channel"].items()} == {"rest": 28, "telegram": 56, "webchat": 56}
    assert f["by_channel"]["webchat"]["dissatisfaction_rate"] == 0.25  # T3's 7 low of 28 ratings
    assert f["by_product"]["tv"]["reopen_rate"] == round(6 / 56, 4)
    assert f["agents"] == [
        {"agent": "alice", "display_name": "alice", "handled": 14, "median_first_response_minutes": 30.0,
         "ratings": {"count": 14, "low": 0, "mean": 3.0}},
        {"agent": "bob", "display_name": "bob", "handled": 14, "median_first_response_minutes": 180.0,
         "ratings": {"count": 14, "low": 7, "mean": 2.0}}]


def test_a_ticket_the_bot_finished_and_resolved_is_not_omitted(uow_factory):
    with uow_factory() as uow:
        book = TicketBook(uow.session, TZ)
        done = new_ticket(uow.session, "bot-done", at=NOW - timedelta(days=5))
        book.set_follow_up(done, NOW - timedelta(days=4), NOW - timedelta(days=5))
        book.set_status(done, "resolved", NOW - timedelta(days=5) + timedelta(minutes=3))
        left = new_ticket(uow.session, "bot-left", at=NOW - timedelta(days=5))
        h, _ = HandoffDesk(uow.session, tz=TZ).request(left, reason="customer_request", now=NOW - timedelta(days=5))
        h.callback_due = NOW - timedelta(days=4)
        eng = engineer(uow.session)
        visit(uow.session, left, eng, NOW - timedelta(days=3))
        uow.commit()
        numbers = (done.number, left.number)
    with uow_factory() as uow:
        f = desk_figures(uow.session, since=NOW - timedelta(days=30), until=NOW, now=NOW, tz=TZ)
    assert f["tickets"] == 2 and f["omission_rate"] == 0.5
    assert f["omitted"] == [{"number": numbers[1], "status": "new",
                             "why": ["resolution_overdue", "callback_overdue", "visit_outcome_missing"]}]
    assert f["first_contact_resolution"]["count"] == 1


# ---------------------------------------------------------------------------------------------- the CLI
def test_visits_day_command(env):  # noqa: F811
    engine = make_engine(env["BOT_DATABASE_URL"])
    with UnitOfWork(session_factory(engine)) as uow:
        e1 = uow.session.execute(select(Engineer).where(Engineer.code == "E001")).scalar_one()
        t = new_ticket(uow.session, "cli-day")
        TicketBook(uow.session, TZ).record_facts(t, {"product": "fridge"}, NOW)
        v = visit(uow.session, t, e1, datetime(2026, 12, 7, 9, 0, tzinfo=TZ))
        visit(uow.session, new_ticket(uow.session, "cli-day-2"), e1, datetime(2026, 12, 8, 9, 0, tzinfo=TZ))
        v.late_minutes = 15
        number = t.number
        uow.commit()
    engine.dispose()
    shown = run_cli(env, "visits", "day", "--engineer", "Wang Jianguo", "--date", "2026-12-07", "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert set(data) == {"engineer", "date", "timezone", "count", "visits"}
    assert data["engineer"]["code"] == "E001" and data["date"] == "2026-12-07" and data["count"] == 1
    item = data["visits"][0]
    assert set(item) == {"id", "ticket", "start", "end", "local_window", "status", "late_minutes", "outcome_at",
                         "outcome_by", "address", "customer", "phone", "product", "model", "symptom",
                         "ticket_status"}
    assert (item["ticket"], item["local_window"], item["status"], item["late_minutes"], item["product"]) == \
        (number, "09:00-11:00", "booked", 15, "fridge")
    text = run_cli(env, "visits", "day", "--engineer", "E001", "--date", "2026-12-07")
    assert text.returncode == 0 and "09:00-11:00" in text.stdout and number in text.stdout
    assert "late 15 min" in text.stdout
    empty = json.loads(run_cli(env, "visits", "day", "--engineer", "王建国", "--date", "2026-12-09", "--json").stdout)
    assert empty["count"] == 0 and empty["visits"] == []
    unknown = run_cli(env, "visits", "day", "--engineer", "Nobody")
    assert unknown.returncode == 1 and "no engineer" in unknown.stderr
    bad = run_cli(env, "visits", "day", "--engineer", "E001", "--date", "7 Dec")
    assert bad.returncode == 2 and "--date" in bad.stderr


def test_report_command_prints_the_new_figures_and_keeps_the_old_keys(env):  # noqa: F811
    engine = make_engine(env["BOT_DATABASE_URL"])
    now = datetime.now(timezone.utc)
    with UnitOfWork(session_factory(engine)) as uow:
        book = TicketBook(uow.session, TZ)
        done = new_ticket(uow.session, "cli-fig-1", kind="inquiry", at=now - timedelta(hours=3))
        book.set_status(done, "resolved", now - timedelta(hours=2))
        handed = new_ticket(uow.session, "cli-fig-2", kind="complaint", at=now - timedelta(hours=3))
        HandoffDesk(uow.session, tz=TZ).request(handed, reason="anger", now=now - timedelta(hours=3))
        uow.commit()
    engine.dispose()
    data = json.loads(run_cli(env, "tickets", "report", "--json").stdout)
    for key in ("period", "judged_at", "tickets", "by_kind", "complaints", "complaint_rate", "omitted",
                "omission_rate", "ratings", "dissatisfaction_rate", "handoffs"):  # the keys before issue 13
        assert key in data, key
    assert data["first_contact_resolution"] == {"count": 1, "rate": 0.5} and data["handoff_rate"] == 0.5
    assert data["sla_breaches"]["first_response"] == 1  # waiting 3 h for a person, 2 h promised
    assert set(data["by_channel"]) == {"rest"} and data["by_channel"]["rest"]["tickets"] == 2
    text = run_cli(env, "tickets", "report").stdout
    assert "first-contact res.   50.0%" in text and "hand-off rate        50.0%" in text
    assert "SLA breaches         first response 1, resolution 0" in text and "channel  rest" in text
