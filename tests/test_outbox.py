"""The outbox against real databases (SQLite and PostgreSQL): scheduling with quiet hours, claiming, exactly-once
sending, retries with back-off, the `failed` state, the lease after a dead runner, held messages, and two runner
processes on PostgreSQL against 500 due rows."""
from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from bot.services.outbox import (
    DeliveryError,
    DeliveryResult,
    Deliverers,
    OutboxRunner,
    Outgoing,
    cancel_pending,
    in_quiet_hours,
    load_outbox_config,
    mark_held_delivered,
    out_of_quiet_hours,
    outbox_json,
    parse_outbox_config,
    schedule,
)
from bot.services.tickets import TicketBook
from bot.store.db import make_engine, session_factory
from bot.store.models import OutboxItem, Ticket, TicketEvent
from tests.conftest import PG_URL

TZ = ZoneInfo("Asia/Shanghai")
CONFIG = load_outbox_config()
NOW = datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc)  # Monday 11:00 in Shanghai


class Recorder:
    """A Deliverer for tests: records what it was given; can fail or hold."""

    def __init__(self, channel: str = "rest", fail: DeliveryError | None = None, result: str = DeliveryResult.sent):
        self.channel = channel
        self.fail = fail
        self.result = result
        self.got: list[Outgoing] = []

    def deliver(self, item: Outgoing) -> str:
        if self.fail is not None:
            raise self.fail
        self.got.append(item)
        return self.result


def plain_render(session, item, now):
    return Outgoing(outbox_id=item.id, kind=item.kind, channel=item.channel, conversation_id=item.conversation_id,
                    language=item.language, messages=[{"text": f"promise {item.id}"}])


def new_ticket(session, conversation: str = "c1", channel: str = "rest") -> Ticket:
    ticket, _ = TicketBook(session, TZ).open(conversation_id=conversation, channel=channel, kind="repair",
                                             language="zh", now=NOW)
    return ticket


def add_row(session, ticket: Ticket, due: datetime, kind: str = "thank_you", **kw) -> OutboxItem:
    return schedule(session, kind=kind, channel=ticket.channel, conversation_id=ticket.conversation_id, due_at=due,
                    language="zh", now=NOW, tz=TZ, config=CONFIG, ticket=ticket, **kw)


@pytest.fixture
def sessions(db_engine):
    return session_factory(db_engine)


def runner(sessions, *deliverers, render=plain_render, config=CONFIG) -> OutboxRunner:
    return OutboxRunner(sessions, Deliverers(deliverers), render, tz=TZ, config=config)


def rows(sessions) -> list[OutboxItem]:
    with sessions() as session:
        return list(session.execute(select(OutboxItem).order_by(OutboxItem.id)).scalars())


def events(sessions, kind: str) -> list[TicketEvent]:
    with sessions() as session:
        return list(session.execute(select(TicketEvent).where(TicketEvent.kind == kind)).scalars())


# ---------------------------------------------------------------------------------------------- configuration
def test_quiet_hours_move_a_due_time_to_the_morning():
    local = lambda h, m=0, d=23: datetime(2026, 11, d, h, m, tzinfo=TZ)  # noqa: E731
    assert in_quiet_hours(local(21), TZ, CONFIG) and in_quiet_hours(local(7, 59), TZ, CONFIG)
    assert not in_quiet_hours(local(8), TZ, CONFIG) and not in_quiet_hours(local(20, 59), TZ, CONFIG)
    assert out_of_quiet_hours(local(22, 30), TZ, CONFIG) == local(8, d=24)  # evening: next morning
    assert out_of_quiet_hours(local(3), TZ, CONFIG) == local(8)  # small hours: this morning
    assert out_of_quiet_hours(local(15), TZ, CONFIG) == local(15)
    off = parse_outbox_config({**_raw(), "quiet_hours": {"start": "00:00", "end": "00:00"}})
    assert not in_quiet_hours(local(3), TZ, off)


def _raw() -> dict:
    import yaml

    from bot.services.outbox import OUTBOX_FILE

    return yaml.safe_load(OUTBOX_FILE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("change, error", [
    ({"quiet_hours": {"start": "25:00", "end": "08:00"}}, "not a time"),
    ({"timing": {}}, "timing lacks"),
    ({"survey": {"questions": [{"id": "x", "kind": "rating", "zh": "x", "en": "x"}]}}, "overall"),
    ({"survey": {"questions": [{"id": "overall", "kind": "stars", "zh": "x", "en": "x"}]}}, "kind"),
    ({"runner": {"max_attempts": 0}}, "positive"),
])
def test_a_broken_outbox_file_is_refused_with_the_reason(change, error):
    with pytest.raises(ValueError, match=error):
        parse_outbox_config({**_raw(), **change})


# ---------------------------------------------------------------------------------------------- the store
def test_schedule_writes_a_row_and_an_event_once_per_key_and_respects_quiet_hours(sessions):
    with sessions() as session:
        ticket = new_ticket(session)
        night = datetime(2026, 11, 23, 23, 30, tzinfo=TZ)
        first = add_row(session, ticket, night, dedupe_key="k1")
        again = add_row(session, ticket, night + timedelta(hours=1), dedupe_key="k1")
        session.commit()
        assert again.id == first.id
        assert first.due_at.astimezone(TZ) == datetime(2026, 11, 24, 8, 0, tzinfo=TZ)
    [row] = rows(sessions)
    assert row.status == "pending" and row.attempts == 0 and row.ticket_id is not None
    [event] = events(sessions, "promise_scheduled")
    assert event.data["outbox_id"] == row.id and event.data["promise"] == "thank_you"
    with sessions() as session:
        assert outbox_json(session.get(OutboxItem, row.id)).keys() == {
            "id", "kind", "ticket", "channel", "due", "status", "sent_at"}


def test_due_rows_are_sent_once_and_in_due_order(sessions):
    with sessions() as session:
        ticket = new_ticket(session)
        later = add_row(session, ticket, NOW - timedelta(minutes=1))
        earlier = add_row(session, ticket, NOW - timedelta(minutes=5))
        future = add_row(session, ticket, NOW + timedelta(hours=1))
        session.commit()
        ids = (earlier.id, later.id, future.id)
    rec = Recorder()
    result = runner(sessions, rec).run_once(NOW)
    assert result.sent == [ids[0], ids[1]] and [o.outbox_id for o in rec.got] == [ids[0], ids[1]]
    assert runner(sessions, rec).run_once(NOW).sent == []  # again: nothing
    by_id = {r.id: r for r in rows(sessions)}
    assert by_id[ids[0]].status == "sent" and by_id[ids[0]].sent_at is not None and by_id[ids[0]].attempts == 1
    assert by_id[ids[2]].status == "pending"
    assert len(events(sessions, "promise_sent")) == 2


def test_failures_back_off_then_end_failed_with_an_event(sessions):
    with sessions() as session:
        item_id = add_row(session, new_ticket(session), NOW).id
        session.commit()
    down = Recorder(fail=DeliveryError("gate unreachable", retryable=True))
    at = NOW
    for attempt in range(1, CONFIG.max_attempts):
        result = runner(sessions, down).run_once(at)
        assert result.retried == [item_id]
        [row] = rows(sessions)
        assert row.status == "pending" and row.attempts == attempt and "unreachable" in row.last_error
        assert row.due_at.astimezone(timezone.utc) >= at + CONFIG.backoff(attempt)
        assert runner(sessions, down).run_once(at).retried == []  # not before its back-off
        at = row.due_at.astimezone(timezone.utc)
    assert runner(sessions, down).run_once(at).failed == [item_id]
    [row] = rows(sessions)
    assert row.status == "failed" and row.attempts == CONFIG.max_attempts
    [event] = events(sessions, "promise_failed")
    assert event.data["outbox_id"] == item_id


def test_a_permanent_failure_or_an_unknown_channel_fails_at_once(sessions):
    with sessions() as session:
        ticket = new_ticket(session)
        blocked = add_row(session, ticket, NOW).id
        other = schedule(session, kind="thank_you", channel="carrier_pigeon", conversation_id="c1", due_at=NOW,
                         language="en", now=NOW, tz=TZ, config=CONFIG, ticket=ticket).id
        session.commit()
    result = runner(sessions, Recorder(fail=DeliveryError("blocked by the user", retryable=False))).run_once(NOW)
    assert sorted(result.failed) == sorted([blocked, other])
    assert {r.last_error for r in rows(sessions)} == {"blocked by the user", "no deliverer for channel carrier_pigeon"}


def test_a_claim_whose_runner_died_is_taken_again_after_the_lease(sessions):
    with sessions() as session:
        item_id = add_row(session, new_ticket(session), NOW).id
        session.commit()
    first = runner(sessions, Recorder())
    assert first.claim(NOW) == item_id  # ... and the runner dies here
    rec = Recorder()
    second = runner(sessions, rec)
    assert second.run_once(NOW + timedelta(seconds=CONFIG.lease_seconds - 1)).sent == []  # still leased
    assert second.run_once(NOW + timedelta(seconds=CONFIG.lease_seconds)).sent == [item_id]
    [row] = rows(sessions)
    assert row.status == "sent" and row.attempts == 2 and len(rec.got) == 1


def test_quiet_hours_send_nothing(sessions):
    with sessions() as session:
        add_row(session, new_ticket(session), NOW)
        session.commit()
    night = datetime(2026, 11, 23, 22, 0, tzinfo=TZ)
    result = runner(sessions, Recorder()).run_once(night)
    assert result.quiet and result.sent == [] and rows(sessions)[0].status == "pending"


def test_held_rows_are_sent_when_the_customer_comes_back_and_cancelled_rows_never(sessions):
    with sessions() as session:
        ticket = new_ticket(session, "w1", "webchat")
        held_id = add_row(session, ticket, NOW).id
        gone = add_row(session, ticket, NOW, kind="survey", dedupe_key="s").id
        assert cancel_pending(session, now=NOW, why="ticket reopened", ticket_id=ticket.id, kinds=("survey",)) == 1
        session.commit()
    rec = Recorder("webchat", result=DeliveryResult.held)
    result = runner(sessions, rec).run_once(NOW)
    assert result.held == [held_id] and [o.outbox_id for o in rec.got] == [held_id]
    by_id = {r.id: r for r in rows(sessions)}
    assert by_id[held_id].status == "held" and by_id[held_id].sent_at is None
    assert by_id[gone].status == "cancelled"
    with sessions() as session:
        assert mark_held_delivered(session, "w1", NOW + timedelta(hours=3)) == 1
        session.commit()
    row = {r.id: r for r in rows(sessions)}[held_id]
    assert row.status == "sent" and row.sent_at is not None


def test_a_promise_that_no_longer_holds_is_cancelled_not_sent(sessions):
    with sessions() as session:
        item_id = add_row(session, new_ticket(session), NOW).id
        session.commit()
    rec = Recorder()
    result = runner(sessions, rec, render=lambda s, i, n: "visit cancelled").run_once(NOW)
    assert result.cancelled == [item_id] and rec.got == []
    assert rows(sessions)[0].status == "cancelled" and rows(sessions)[0].last_error == "visit cancelled"


# ---------------------------------------------------------------------------------------------- two runners
def _runner_process(schema: str, log_path: str, start, runner_name: str) -> None:
    """One runner process: its own engine and connections; records each delivery as a line `<id> <runner>`."""
    engine = make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})

    class FileDeliverer:
        channel = "rest"

        def deliver(self, item: Outgoing) -> str:
            with open(log_path, "a") as fh:  # O_APPEND: whole lines from both processes
                fh.write(f"{item.outbox_id} {runner_name}\n")
            return DeliveryResult.sent

    start.wait(30)
    OutboxRunner(session_factory(engine), Deliverers([FileDeliverer()]), plain_render, tz=TZ,
                 config=CONFIG).run_once(NOW)
    engine.dispose()


def test_two_runners_on_postgresql_send_500_rows_exactly_once(pg_engine, tmp_path):
    with pg_engine.connect() as conn:
        schema = conn.execute(text("select current_schema()")).scalar_one()
    sessions = session_factory(pg_engine)
    with sessions() as session:
        ticket = new_ticket(session)
        for i in range(500):
            add_row(session, ticket, NOW - timedelta(seconds=i))
        session.commit()
    log_path = tmp_path / "deliveries.log"
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=_runner_process, args=(schema, str(log_path), start, name)) for name in ("a", "b")]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    lines = [line.split() for line in log_path.read_text().splitlines()]
    ids = [int(i) for i, _ in lines]
    assert len(ids) == 500 and len(set(ids)) == 500  # every row once, none twice
    by_runner = {name: sum(1 for _, n in lines if n == name) for name in ("a", "b")}
    assert by_runner["a"] > 0 and by_runner["b"] > 0, by_runner  # both really worked side by side
    stored = rows(sessions)
    assert {r.status for r in stored} == {"sent"} and {r.attempts for r in stored} == {1}
    print(f"two runners, 500 rows: {by_runner}")


def test_a_promise_question_keeps_the_open_flow_to_go_back_to():
    from bot.services.promises import promise_state

    question = {"kind": "visit_check_back", "ticket": "SV-1"}
    mid_complaint = {"flow": "complaint", "ticket": "SV-2", "step": "gather", "asking": "phone"}
    state = promise_state(mid_complaint, question)
    assert state == {"flow": "promise", "promise": question, "last_ticket": "SV-1", "resume": mid_complaint}
    # A promise over another promise: the first one's question is dropped, what was open before it is kept.
    survey = {"kind": "survey", "ticket": "SV-1", "q": 0}
    assert promise_state(state, survey)["resume"] == mid_complaint
    # The end-of-chat rating question is not an open flow to go back to.
    assert promise_state({"flow": "survey", "last_ticket": "SV-3"}, question)["resume"] == {"last_ticket": "SV-3"}
    assert "resume" not in promise_state(None, question)
