"""The hand-off service on SQLite and PostgreSQL: the queue and its order, places and honest waits, call-backs out of
hours or with nobody online, taking over and the rules of who may act, agent accounts, passwords and sessions; the
script telling the customer where they stand; the migration; the `agents` commands."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.services.handoff import (
    AgentAccounts,
    DeskConfig,
    HandoffDesk,
    HandoffError,
    check_password,
    hash_password,
    load_desk,
    may_act,
    may_view,
    parse_desk,
    token_digest,
)
from bot.services.tickets import TicketBook, ticket_json
from bot.settings import ROOT
from bot.store.models import Agent, AgentSession, Handoff, TicketEvent
from tests.conftest import NOW  # Sunday 10:30 in Shanghai
from tests.test_script import Chat, tools  # noqa: F401 - the script's fixture, reused

TZ = ZoneInfo("Asia/Shanghai")
DESK = load_desk(ROOT / "data" / "seed" / "desk.yml")  # Mon-Fri 09-21, Sat-Sun 10-18


def local(y, mo, d, h, mi=0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=TZ).astimezone(timezone.utc)


def desk_of(uow, desk: DeskConfig = DESK) -> HandoffDesk:
    return HandoffDesk(uow.session, desk, TZ, first_response_hours=2)


def new_ticket(uow, conversation: str, now=NOW, channel="rest", language="zh", anger=0.0):
    ticket, _ = TicketBook(uow.session, TZ).open(conversation_id=conversation, channel=channel, kind="inquiry",
                                                 language=language, now=now)
    ticket.anger = anger
    return ticket


def queue_up(uow, conversation: str, now=NOW, **kwargs) -> Handoff:
    ticket = new_ticket(uow, conversation, now, **kwargs)
    handoff, created = desk_of(uow).request(ticket, reason="customer_request", now=now)
    assert created
    return handoff


def make_agent(uow, name: str, role: str = "agent") -> Agent:
    agent, _ = AgentAccounts(uow.session).create(name, role=role, password=f"{name}-password", now=NOW)
    return agent


def events_of(uow, ticket_id: int, kind: str) -> list[TicketEvent]:
    return list(uow.session.execute(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id,
                                                              TicketEvent.kind == kind)).scalars())


# ---------------------------------------------------------------------------------------------- the queue
def test_one_open_handoff_per_conversation(uow_factory):
    with uow_factory() as uow:
        ticket = new_ticket(uow, "same-conv", anger=0.3)
        desk = desk_of(uow)
        first, created = desk.request(ticket, reason="customer_request", now=NOW)
        again, created_again = desk.request(ticket, reason="anger", now=NOW + timedelta(minutes=1), anger=0.9)
        assert created and not created_again and again.id == first.id
        assert again.anger == pytest.approx(0.9) and again.reason == "customer_request"
        assert desk.request(ticket, reason="safety", now=NOW)[0].id == first.id
        boss = make_agent(uow, "boss", "supervisor")
        desk.close(first, boss, NOW + timedelta(minutes=2))
        later, created_later = desk.request(ticket, reason="customer_request", now=NOW + timedelta(minutes=3))
        assert created_later and later.id != first.id
        uow.commit()
    with uow_factory() as uow:
        rows = list(uow.session.execute(select(Handoff).where(Handoff.conversation_id == "same-conv")).scalars())
        assert [h.status for h in rows] == ["closed", "waiting"]
        assert len(events_of(uow, ticket.id, "handoff_queued")) == 2


def test_an_escalated_ticket_enters_the_queue_with_its_channel_language_and_anger(uow_factory):
    with uow_factory() as uow:
        ticket = new_ticket(uow, "escalated", channel="telegram", language="en", anger=0.85)
        handoff, _ = HandoffDesk(uow.session).request(ticket, reason="anger", now=NOW)
        uow.commit()
    with uow_factory() as uow:
        [entry] = desk_of(uow).queue(NOW + timedelta(minutes=5))
        assert (entry.conversation_id, entry.channel, entry.language, entry.reason) == ("escalated", "telegram", "en",
                                                                                       "anger")
        assert entry.anger == pytest.approx(0.85) and entry.waiting_seconds == 300 and entry.position == 1
        assert entry.handoff_id == handoff.id


def test_queue_order_positions_and_waits(uow_factory):
    with uow_factory() as uow:
        for i, name in enumerate(("first", "second", "third")):
            queue_up(uow, name, now=NOW + timedelta(minutes=i))
        uow.commit()
    now = NOW + timedelta(minutes=10)
    with uow_factory() as uow:
        desk = desk_of(uow)
        oldest = desk.queue(now, order="oldest")
        assert [e.conversation_id for e in oldest] == ["first", "second", "third"]
        assert [e.position for e in oldest] == [1, 2, 3]
        assert [e.waiting_seconds for e in oldest] == [600, 540, 480]
        assert [e.conversation_id for e in desk.queue(now, order="newest")] == ["third", "second", "first"]
        with pytest.raises(ValueError):
            desk.queue(now, order="loudest")
        # Nobody finished yet: 8 minutes each, nobody online counts as one.
        third = desk.open_for("third")
        status = desk.queue_status(third, now)
        assert (status.position, status.agents_online, status.expected_wait_minutes) == (3, 0, 24)
        assert not status.staffed
        agent = make_agent(uow, "alice")
        desk.claim(desk.open_for("first"), agent, now)
        uow.commit()
    with uow_factory() as uow:
        desk = desk_of(uow)
        assert desk.queue_status(desk.open_for("third"), now).position == 2
        assert desk.queue_status(desk.open_for("first"), now).position is None
        assert [(e.conversation_id, e.status, e.position) for e in desk.queue(now)] == [
            ("first", "claimed", None), ("second", "waiting", 1), ("third", "waiting", 2)]


def test_expected_wait_is_the_median_of_the_last_finished_times_position_over_agents_online(uow_factory):
    small_sample = DeskConfig(hours=DESK.hours, sample=3, default_handling_minutes=8)
    with uow_factory() as uow:
        agents = [make_agent(uow, "alice"), make_agent(uow, "bob")]
        # Finished hand-offs, oldest first, handled in 60 (outside the sample of 3), 4, 6 and 20 minutes.
        for i, minutes in enumerate((60, 4, 6, 20)):
            h = queue_up(uow, f"done-{i}", now=NOW - timedelta(hours=5 - i))
            desk = desk_of(uow, small_sample)
            desk.claim(h, agents[0], h.requested_at)
            if i % 2:
                desk.hand_back(h, agents[0], h.requested_at + timedelta(minutes=minutes))
            else:
                desk.close(h, agents[0], h.requested_at + timedelta(minutes=minutes))
        for i in range(3):
            queue_up(uow, f"wait-{i}", now=NOW + timedelta(seconds=i))
        accounts = AgentAccounts(uow.session)
        for agent in agents:
            accounts.sign_in(agent.name, f"{agent.name}-password", NOW)
        uow.commit()
    with uow_factory() as uow:
        desk = desk_of(uow, small_sample)
        assert desk.median_handling_minutes() == pytest.approx(6.0)
        status = desk.queue_status(desk.open_for("wait-2"), NOW + timedelta(minutes=1))
        # median 6 x position 3 / 2 agents online = 9
        assert (status.position, status.agents_online, status.expected_wait_minutes) == (3, 2, 9)
        assert status.staffed
        assert desk_of(uow).median_handling_minutes() == pytest.approx(13.0)  # sample of 20: 4, 6, 20, 60


def test_agents_online_are_the_ones_seen_in_the_last_five_minutes(uow_factory):
    with uow_factory() as uow:
        accounts = AgentAccounts(uow.session)
        names = ("recent", "twice", "stale", "revoked", "expired", "inactive")
        for name in names:
            make_agent(uow, name)
        tokens = {name: accounts.sign_in(name, f"{name}-password", NOW).token for name in names}
        accounts.sign_in("twice", "twice-password", NOW)  # two consoles, one agent
        sessions = {s.agent.name: s for s in uow.session.execute(select(AgentSession)).scalars()}
        sessions["recent"].last_seen_at = NOW + timedelta(minutes=6)
        sessions["stale"].last_seen_at = NOW
        accounts.revoke(tokens["revoked"], NOW)
        sessions["expired"].expires_at = NOW + timedelta(minutes=9)
        accounts.get("inactive").active = False
        for name in ("twice", "revoked", "expired", "inactive"):
            for s in uow.session.execute(select(AgentSession).join(Agent).where(Agent.name == name)).scalars():
                s.last_seen_at = NOW + timedelta(minutes=8)
        uow.commit()
    with uow_factory() as uow:
        # At +10 min: recent (seen at +6) and twice (+8) count once each; stale (+0) is too old; revoked, expired
        # (at +9) and the deactivated agent do not count.
        assert desk_of(uow).agents_online(NOW + timedelta(minutes=10)) == 2


# ---------------------------------------------------------------------------------------------- call-backs
@pytest.mark.parametrize("now, expected, open_now", [
    (local(2026, 11, 23, 10, 0), local(2026, 11, 23, 12, 0), True),  # Monday, open: the 2-hour promise
    (local(2026, 11, 23, 20, 30), local(2026, 11, 24, 9, 30), True),  # the promise falls after closing
    (local(2026, 11, 23, 23, 15), local(2026, 11, 24, 9, 30), False),  # night: after tomorrow's opening
    (local(2026, 11, 24, 8, 0), local(2026, 11, 24, 10, 0), False),  # early: opening+30 min, never before the promise
    (local(2026, 11, 22, 17, 0), local(2026, 11, 23, 9, 30), True),  # Sunday 10-18: Monday morning
    (local(2026, 11, 21, 19, 0), local(2026, 11, 22, 10, 30), False),  # Saturday evening: Sunday opens at 10
])
def test_callback_time_follows_the_opening_hours(uow_factory, now, expected, open_now):
    with uow_factory() as uow:
        desk = desk_of(uow)
        assert desk.is_open(now) is open_now
        assert desk.callback_time(now) == expected


@pytest.mark.parametrize("moment, expected", [
    (local(2026, 11, 23, 10, 0), local(2026, 11, 23, 10, 0)),  # Monday, open: kept
    (local(2026, 11, 24, 5, 44), local(2026, 11, 24, 9, 30)),  # before opening: shortly after it opens
    (local(2026, 11, 21, 19, 0), local(2026, 11, 22, 10, 30)),  # Saturday evening: Sunday opens at 10
])
def test_follow_up_calls_fall_in_opening_hours(uow_factory, moment, expected):
    with uow_factory() as uow:
        assert desk_of(uow).in_opening_hours(moment) == expected


def test_callback_offer_is_recorded_on_the_handoff_and_the_ticket(uow_factory):
    night = local(2026, 11, 23, 23, 15)
    with uow_factory() as uow:
        handoff = queue_up(uow, "night", now=night)
        desk = desk_of(uow)
        due = desk.offer_callback(handoff, night, "out_of_hours")
        assert desk.offer_callback(handoff, night + timedelta(minutes=5), "out_of_hours") == due  # stands
        uow.commit()
    with uow_factory() as uow:
        h = desk_of(uow).open_for("night")
        assert h.callback_due.replace(tzinfo=h.callback_due.tzinfo or timezone.utc) == local(2026, 11, 24, 9, 30)
        [event] = events_of(uow, h.ticket_id, "callback_offered")
        assert event.actor == "bot" and event.data["why"] == "out_of_hours"
        assert event.data["due"].startswith("2026-11-24T01:30")


def test_desk_file_is_validated():
    with pytest.raises(ValueError, match="unknown weekdays"):
        parse_desk({"hours": {"monday": [["09:00", "18:00"]]}})
    with pytest.raises(ValueError, match="ends before it starts"):
        parse_desk({"hours": {"mon": [["18:00", "09:00"]]}})
    with pytest.raises(ValueError, match="not a time"):
        parse_desk({"hours": {"mon": [["9am", "18:00"]]}})
    always = parse_desk({"hours": {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}})
    assert always.is_open(datetime(2026, 11, 22, 23, 59, 59, tzinfo=TZ))
    assert DESK.default_handling_minutes == 8 and DESK.online_minutes == 5 and DESK.session_idle_hours == 8


# ---------------------------------------------------------------------------------------------- who may do what
def test_claim_rules_and_what_agents_and_supervisors_may_do(uow_factory):
    with uow_factory() as uow:
        alice, bob, boss = make_agent(uow, "alice"), make_agent(uow, "bob"), make_agent(uow, "boss", "supervisor")
        a = queue_up(uow, "conv-a")
        b = queue_up(uow, "conv-b", now=NOW + timedelta(minutes=1))
        desk = desk_of(uow)
        assert may_view(bob, a) and may_act(bob, a)  # waiting: anyone
        desk.claim(a, alice, NOW + timedelta(minutes=2))
        assert a.status == "claimed" and a.agent_id == alice.id and a.ticket.status == "in_progress"
        with pytest.raises(HandoffError) as err:
            desk.claim(a, bob, NOW + timedelta(minutes=3))
        assert err.value.code == "forbidden"  # bob may not act on alice's conversation at all
        with pytest.raises(HandoffError) as err:
            desk.claim(a, boss, NOW + timedelta(minutes=3))
        assert err.value.code == "not_waiting"  # only waiting conversations can be claimed
        assert not may_view(bob, a) and not may_act(bob, a)
        assert may_view(boss, a) and may_act(boss, a)
        with pytest.raises(HandoffError) as err:
            desk.record_reply(a, bob, "hello", NOW)
        assert err.value.code == "forbidden"
        with pytest.raises(HandoffError) as err:
            desk.hand_back(a, bob, NOW)
        assert err.value.code == "forbidden"
        with pytest.raises(HandoffError) as err:
            desk.add_note(a, bob, "nosy", NOW)
        assert err.value.code == "forbidden"
        with pytest.raises(HandoffError) as err:
            desk.record_reply(b, bob, "hello", NOW)
        assert err.value.code == "not_claimed"  # take it over first
        desk.record_reply(a, boss, "a supervisor steps in", NOW)  # supervisors act on all
        # The queue: bob sees the waiting one only; alice hers and the waiting one; the supervisor both.
        later = NOW + timedelta(minutes=4)
        assert [e.conversation_id for e in desk.queue(later, viewer=bob)] == ["conv-b"]
        assert [e.conversation_id for e in desk.queue(later, viewer=alice)] == ["conv-a", "conv-b"]
        assert [e.conversation_id for e in desk.queue(later, viewer=boss)] == ["conv-a", "conv-b"]
        desk.hand_back(a, alice, NOW + timedelta(minutes=9))
        assert a.status == "returned" and a.returned_at is not None
        assert may_view(alice, a) and not may_act(alice, a)  # hers to read, nothing left to do
        with pytest.raises(HandoffError) as err:
            desk.hand_back(a, alice, NOW + timedelta(minutes=10))
        assert err.value.code == "finished"
        uow.commit()
        kinds = [e.kind for e in a.ticket.events]
        assert kinds.count("handoff_claimed") == 1 and "handoff_returned" in kinds and "agent_replied" in kinds


def test_close_resolves_the_ticket_and_notes_are_ticket_events(uow_factory):
    with uow_factory() as uow:
        alice = make_agent(uow, "alice")
        h = queue_up(uow, "to-close")
        desk = desk_of(uow)
        desk.claim(h, alice, NOW)
        desk.add_note(h, alice, "  customer wants a call after 6pm  ", NOW + timedelta(minutes=1))
        with pytest.raises(HandoffError):
            desk.add_note(h, alice, "   ", NOW)
        desk.close(h, alice, NOW + timedelta(minutes=5))
        uow.commit()
        number = h.ticket.number
    with uow_factory() as uow:
        data = ticket_json(TicketBook(uow.session, TZ).get(number), with_events=True)
        assert data["status"] == "resolved"
        [note] = [e for e in data["events"] if e["kind"] == "note_added"]
        assert note["actor"] == "agent" and note["data"] == {"agent": "alice", "text": "customer wants a call after 6pm"}
        kinds = [e["kind"] for e in data["events"]]
        assert kinds.index("handoff_claimed") < kinds.index("note_added") < kinds.index("handoff_closed")
        assert desk_of(uow).open_for("to-close") is None


def test_two_agents_claiming_at_once_only_one_wins(pg_engine):
    """On PostgreSQL (SQLite has one writer at a time, so two claims cannot overlap there)."""
    from bot.store.db import UnitOfWork, session_factory

    sessions = session_factory(pg_engine)
    uow_factory = lambda: UnitOfWork(sessions)  # noqa: E731
    with uow_factory() as uow:
        make_agent(uow, "alice"), make_agent(uow, "bob")
        queue_up(uow, "contested")
        uow.commit()
    with uow_factory() as first, uow_factory() as second:
        a = desk_of(first).open_for("contested")
        b = desk_of(second).open_for("contested")  # both read it waiting
        desk_of(first).claim(a, AgentAccounts(first.session).get("alice"), NOW)
        first.commit()
        with pytest.raises(HandoffError) as err:
            desk_of(second).claim(b, AgentAccounts(second.session).get("bob"), NOW)
        assert err.value.code == "not_waiting"


# ---------------------------------------------------------------------------------------------- accounts
def test_passwords_are_salted_argon2id_hashes():
    one, two = hash_password("correct horse"), hash_password("correct horse")
    assert one.startswith("$argon2id$v=19$m=65536,t=3,p=4$") and one != two  # a salt per hash
    assert "correct horse" not in one
    assert check_password("correct horse", one) and check_password("correct horse", two)
    assert not check_password("correct horsE", one)
    assert not check_password("x", "plain-text") and not check_password("x", "md5$a$b$c$d$e")


def test_accounts_create_verify_and_refuse(uow_factory):
    with uow_factory() as uow:
        accounts = AgentAccounts(uow.session)
        agent, generated = accounts.create("Wang.Li", display_name="王丽", now=NOW)
        assert agent.name == "wang.li" and agent.role == "agent" and len(generated) >= 16
        assert agent.password_hash != generated and check_password(generated, agent.password_hash)
        boss, given = accounts.create("boss", role="supervisor", password="s3cret-enough", now=NOW)
        assert given == "s3cret-enough"
        for bad, code in ((dict(name="boss"), "name_taken"), (dict(name="x"), "bad_name"),
                          (dict(name="new", password="short"), "weak_password"), (dict(name="r", role="admin"), "bad_name"),
                          (dict(name="role-x", role="admin"), "bad_role")):
            with pytest.raises(HandoffError) as err:
                accounts.create(bad.pop("name"), now=NOW, **bad)
            assert err.value.code == code
        assert accounts.verify("WANG.LI", generated).id == agent.id
        assert accounts.verify("wang.li", "wrong") is None and accounts.verify("nobody", generated) is None
        agent.active = False
        assert accounts.verify("wang.li", generated) is None
        with pytest.raises(HandoffError) as err:
            accounts.sign_in("boss", "wrong", NOW)
        assert err.value.code == "bad_credentials"
        uow.commit()


def test_sessions_expire_after_eight_idle_hours_and_can_be_revoked(uow_factory):
    with uow_factory() as uow:
        accounts = AgentAccounts(uow.session, idle_hours=DESK.session_idle_hours)
        make_agent(uow, "alice")
        signed = accounts.sign_in("alice", "alice-password", NOW)
        assert signed.expires_at == NOW + timedelta(hours=8)
        stored = accounts.session_of(signed.token)
        assert stored.token_hash == token_digest(signed.token) and signed.token not in stored.token_hash
        uow.commit()
    with uow_factory() as uow:
        accounts = AgentAccounts(uow.session)
        assert accounts.authenticate(signed.token, NOW + timedelta(hours=7, minutes=59)).name == "alice"  # slides on
        assert accounts.authenticate(signed.token, NOW + timedelta(hours=15, minutes=58)).name == "alice"
        assert accounts.authenticate(signed.token, NOW + timedelta(hours=24)) is None  # idle for over 8 hours
        assert accounts.authenticate("made-up-token", NOW) is None and accounts.authenticate(None, NOW) is None
        second = accounts.sign_in("alice", "alice-password", NOW)
        assert accounts.revoke(second.token, NOW + timedelta(minutes=1))
        assert accounts.authenticate(second.token, NOW + timedelta(minutes=2)) is None
        third = accounts.sign_in("alice", "alice-password", NOW)
        accounts.get("alice").active = False  # a deactivated agent is out at once
        assert accounts.authenticate(third.token, NOW + timedelta(minutes=2)) is None
        uow.commit()


# ---------------------------------------------------------------------------------------------- in the script
def test_customer_hears_their_place_and_wait_when_someone_is_online(tools, uow_factory):  # noqa: F811
    with uow_factory() as uow:
        make_agent(uow, "alice")
        AgentAccounts(uow.session).sign_in("alice", "alice-password", NOW)
        queue_up(uow, "someone-before", now=NOW - timedelta(minutes=3))
        uow.commit()
    chat = Chat(tools, "script-queued")
    out = chat.say("我要找人工客服", "request_human")
    number = chat.state["ticket"]
    assert "排在第 2 位" in out[0] and "16 分钟" in out[0] and number in out[0]  # 8 min x place 2 / 1 agent
    assert chat.state["flow"] == "human"
    out = chat.say("冰箱门关不上，快点", "inform")
    assert "第 2 位" in out[0]
    ticket = chat.ticket()
    assert "冰箱门关不上，快点" in ticket["account"]  # kept while waiting
    out = chat.say("我的电话是13912345678", "inform")
    assert chat.ticket()["customer"]["phone"] == "+8613912345678" and "手机号" in out[0]  # E.164 (issue 15)
    assert "13912345678" in chat.ticket()["account"]


def test_customer_is_offered_a_callback_when_nobody_is_online(tools, uow_factory):  # noqa: F811
    chat = Chat(tools, "script-nobody", language="en")
    out = chat.say("I want to talk to a real person", "request_human")
    assert "Nobody is online" in out[0] and "12:31" in out[0]  # Sunday 10:31 + 2 h, the desk is open till 18:00
    assert "mobile number" in out[1]
    ticket = chat.ticket()
    [offer] = [e for e in ticket["events"] if e["kind"] == "callback_offered"]
    assert offer["data"]["why"] == "nobody_online"
    with uow_factory() as uow:
        assert desk_of(uow).open_for("script-nobody").callback_due is not None


def test_out_of_hours_the_customer_is_told_and_offered_a_callback(tools, uow_factory):  # noqa: F811
    with uow_factory() as uow:
        make_agent(uow, "owl")
        AgentAccounts(uow.session).sign_in("owl", "owl-password", local(2026, 11, 22, 19, 55))
        uow.commit()
    chat = Chat(tools, "script-night")
    chat.now = local(2026, 11, 22, 19, 59)  # Sunday evening: the desk closed at 18:00, even with someone signed in
    out = chat.say("转人工", "request_human")
    assert "下班时间" in out[0] and "11月23日 09:30" in out[0]
    out = chat.say("好的我等", "inform")
    assert "11月23日 09:30" in out[0]  # the same offer, not a new one
    ticket = chat.ticket()
    assert sum(e["kind"] == "callback_offered" for e in ticket["events"]) == 1
    out = chat.say("算了不用了", "stop")
    assert chat.state.get("flow") is None and "取消" in out[0]
    with uow_factory() as uow:
        assert desk_of(uow).open_for("script-night") is None  # withdrawn


def test_after_the_desk_closed_the_request_the_bot_carries_on(tools, uow_factory):  # noqa: F811
    chat = Chat(tools, "script-closed-meanwhile")
    chat.say("转人工", "request_human")
    with uow_factory() as uow:
        desk = desk_of(uow)
        desk.close(desk.open_for("script-closed-meanwhile"), make_agent(uow, "boss", "supervisor"), NOW)
        uow.commit()
    out = chat.say("你好", "greet")
    assert out and chat.state.get("flow") is None


# ---------------------------------------------------------------------------------------------- schema and CLI
def test_migration_downgrades_and_upgrades_again(db_engine):
    from alembic import command
    from sqlalchemy import inspect

    from bot.store.db import alembic_config

    cfg = alembic_config(str(db_engine.url))
    with db_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        assert {"agents", "agent_sessions", "handoffs"} <= set(inspect(conn).get_table_names())
        command.downgrade(cfg, "0001")
        assert not {"agents", "agent_sessions", "handoffs"} & set(inspect(conn).get_table_names())
        command.upgrade(cfg, "head")
        indexes = {i["name"]: i for i in inspect(conn).get_indexes("handoffs")}
        assert indexes["uq_handoff_conversation_open"]["unique"]


def test_agents_commands(tmp_path):
    env = dict(os.environ, BOT_VAR_DIR=str(tmp_path), BOT_DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}",
               SQLALCHEMY_SILENCE_UBER_WARNING="1")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)

    assert run("db", "upgrade").returncode == 0
    added = run("agents", "add", "alice")
    assert added.returncode == 0, added.stderr
    password = next(line.split(": ", 1)[1] for line in added.stdout.splitlines() if line.startswith("password: "))
    boss = run("agents", "add", "boss", "--role", "supervisor", "--password", "given-password")
    assert boss.returncode == 0 and "password:" not in boss.stdout
    assert run("agents", "add", "alice").returncode == 1
    assert run("agents", "add", "carol", "--password", "short").returncode == 1
    listing = run("agents", "list").stdout
    assert "alice" in listing and "boss" in listing and "supervisor" in listing
    from bot.store.db import UnitOfWork, make_engine, session_factory

    engine = make_engine(env["BOT_DATABASE_URL"])
    with UnitOfWork(session_factory(engine)) as uow:
        accounts = AgentAccounts(uow.session)
        assert accounts.verify("alice", password) is not None
        assert accounts.verify("boss", "given-password").role == "supervisor"
    engine.dispose()
