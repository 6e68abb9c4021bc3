"""bot/rasa_runtime/tracker_store.py: the SQL tracker store that keeps conversations in memory stores exactly what Rasa's
SQLTrackerStore stores, and never hands out a tracker that differs from the database."""
from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import EventVerbosity
from sqlalchemy import create_engine, text

from bot.settings import ROOT
from bot.rasa_runtime.tracker_store import CachingSQLTrackerStore, default_url
from tests.conftest import PG_URL, need_postgres

DOMAIN = Domain.load(str(ROOT / "domain.yml"))


def run(coro):
    return asyncio.run(coro)


def turn_events(i: int, intent: str = "check_status") -> list:
    return [
        UserUttered(f"message {i}", {"name": intent, "confidence": 0.9}, [], {"text": f"message {i}"},
                    input_channel="rest"),
        SlotSet("language", "zh" if i % 2 else "en"),
        ActionExecuted("action_flow_turn"),
        BotUttered(f"reply {i}", {"buttons": [{"title": "ok", "payload": "/affirm"}]}),
        SlotSet("flow_state", {"step": "gather", "n": i}),
        ActionExecuted("action_listen"),
    ]


async def turn(store, sender: str, events: list, save: bool = True):
    tracker = await store.get_or_create_tracker(sender)
    for event in events:
        tracker.update(event)
    if save:
        await store.save(tracker)
    return tracker


def rows(url: str) -> list:
    engine = create_engine(url, future=True)
    with engine.connect() as conn:
        result = conn.execute(text("select sender_id, type_name, intent_name, action_name, data from events "
                                   "order by id")).all()
    engine.dispose()
    # Each store creates a new conversation's first action_listen itself, at its own time.
    return [(*r[:4], {k: v for k, v in json.loads(r[4]).items() if k != "timestamp"}) for r in result]


def state(tracker) -> dict:
    """The whole tracker, but for the times of the events each store made itself."""
    current = tracker.current_state(EventVerbosity.ALL)
    current["events"] = [{k: v for k, v in e.items() if k != "timestamp"} for e in current["events"]]
    current.pop("latest_event_time")
    return current


@pytest.fixture
def stores(tmp_path):
    cached = CachingSQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "cached.db"))
    plain = SQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "plain.db"))
    return cached, plain, f"sqlite:///{tmp_path / 'cached.db'}", f"sqlite:///{tmp_path / 'plain.db'}"


def test_stores_the_same_rows_as_rasas_sql_tracker_store(stores):
    cached, plain, cached_url, plain_url = stores
    for i in range(12):
        sender = f"c{i % 3}"
        events = turn_events(i)
        if i == 7:
            events = [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")] + events
        run(turn(cached, sender, events))
        run(turn(plain, sender, events))
    assert rows(cached_url) == rows(plain_url)
    for sender in ("c0", "c1", "c2"):
        assert state(run(cached.retrieve(sender))) == state(run(plain.retrieve(sender)))


def test_the_kept_tracker_is_reused_and_equals_the_database(stores, tmp_path):
    cached, _, cached_url, _ = stores
    first = run(turn(cached, "a", turn_events(1)))
    second = run(turn(cached, "a", turn_events(2)))
    again = run(cached.retrieve("a"))
    assert again is second  # kept: not rebuilt from the database
    fresh = run(SQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "cached.db")).retrieve("a"))
    assert state(again) == state(fresh)
    assert first is not None


def test_a_turn_that_was_not_saved_is_not_handed_out(stores, tmp_path):
    cached, _, _, _ = stores
    run(turn(cached, "a", turn_events(1)))
    run(turn(cached, "a", turn_events(2)))
    changed = run(turn(cached, "a", turn_events(3), save=False))  # e.g. the action server failed mid-turn
    again = run(cached.retrieve("a"))
    assert again is not changed
    fresh = run(SQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "cached.db")).retrieve("a"))
    assert state(again) == state(fresh)
    assert "message 3" not in [e.get("text") for e in state(again)["events"]]


def test_another_writer_is_noticed(stores, tmp_path):
    cached, _, _, _ = stores
    run(turn(cached, "a", turn_events(1)))
    run(turn(cached, "a", turn_events(2)))
    other = SQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "cached.db"))
    run(turn(other, "a", turn_events(3)))  # another server, or a tool, writes to the conversation
    again = run(cached.retrieve("a"))
    assert state(again) == state(run(other.retrieve("a")))
    assert "message 3" in [e.get("text") for e in state(again)["events"]]


def test_a_new_session_reads_only_that_session_as_rasa_does(stores, tmp_path):
    cached, plain, _, _ = stores
    for store in (cached, plain):
        run(turn(store, "a", turn_events(1)))
        run(turn(store, "a", [ActionExecuted("action_session_start"), SessionStarted(),
                              ActionExecuted("action_listen")] + turn_events(2)))
        run(turn(store, "a", turn_events(3)))
    assert state(run(cached.retrieve("a"))) == state(run(plain.retrieve("a")))
    assert "message 1" not in [e.get("text") for e in state(run(cached.retrieve("a")))["events"]]


SESSION_START = [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")]


def no_reads(monkeypatch) -> list:
    """Makes reading a tracker from the database (Rasa's `_retrieve`) count, and returns the count."""
    reads = []
    original = SQLTrackerStore._retrieve

    async def counted(self, *args, **kwargs):
        reads.append(args[0])
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(SQLTrackerStore, "_retrieve", counted)
    return reads


@pytest.mark.parametrize("first", [SESSION_START + turn_events(1), turn_events(1)])
def test_a_new_conversation_is_kept_from_its_first_message_as_rasa_would_read_it(stores, tmp_path, monkeypatch,
                                                                                 first):
    cached, plain, cached_url, plain_url = stores
    reads = no_reads(monkeypatch)
    for store in (cached, plain):  # Rasa's processor: create (saved), session start and the first turn (saved)
        run(turn(store, "n", first))
    assert reads == ["n"]  # only the plain store read (and found nothing); ours knew the conversation was empty
    kept = run(cached.retrieve("n"))
    assert reads == ["n"]  # kept, not read
    assert state(kept) == state(run(plain.retrieve("n")))  # the latest session only, as Rasa reads it
    run(turn(cached, "n", turn_events(2)))
    run(turn(plain, "n", turn_events(2)))
    assert rows(cached_url) == rows(plain_url)
    fresh = run(SQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "cached.db")).retrieve("n"))
    assert state(run(cached.retrieve("n"))) == state(fresh) == state(run(plain.retrieve("n")))
    assert len(reads) == 5  # all by the plain stores (two turns, three retrieves above); none by ours


def test_a_new_conversation_written_to_by_another_store_meanwhile_is_read(stores, tmp_path, monkeypatch):
    cached, _, _, _ = stores
    reads = no_reads(monkeypatch)
    tracker = run(cached.get_or_create_tracker("w"))  # found empty, created and saved
    other = SQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "cached.db"))
    run(turn(other, "w", turn_events(7)))  # another server writes to the same conversation
    for event in SESSION_START + turn_events(1):
        tracker.update(event)
    run(cached.save(tracker))
    again = run(cached.retrieve("w"))
    assert "w" in reads[1:]  # read from the database, not the kept tracker
    assert state(again) == state(run(other.retrieve("w")))


def test_a_new_conversation_that_goes_on_without_a_session_start_stops_carrying_its_rows(stores, monkeypatch):
    cached, plain, _, _ = stores
    cached.MAX_KNOWN_ROWS = 10
    reads = no_reads(monkeypatch)
    for i in range(3):  # 1 + 6 + 6 + 6 rows, no session start
        run(turn(cached, "long", turn_events(i)))
        run(turn(plain, "long", turn_events(i)))
    assert cached._kept["long"].rows is None
    assert len(reads) == 3  # the plain store's, one a turn; ours kept the conversation all along
    run(turn(cached, "long", SESSION_START + turn_events(3)))  # the session start: read back from the database
    run(turn(plain, "long", SESSION_START + turn_events(3)))
    before = len(reads)
    assert state(run(cached.retrieve("long"))) == state(run(plain.retrieve("long")))
    assert len(reads) == before + 2  # ours read it (the rows were not carried), and the plain store


def test_only_cache_size_conversations_are_kept(tmp_path):
    store = CachingSQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "t.db"), cache_size=2)
    for sender in ("a", "b", "c", "a", "d"):
        run(turn(store, sender, turn_events(1)))
        run(turn(store, sender, turn_events(2)))
    assert len(store._kept) <= 2
    assert [e.get("text") for e in state(run(store.retrieve("b")))["events"] if e["event"] == "user"] == \
        ["message 1", "message 2"]


def test_where_the_conversations_go_is_chosen_by_the_environment(tmp_path):
    assert default_url({"BOT_TRACKER_STORE_URL": "sqlite:///x.db"}) == "sqlite:///x.db"
    pg = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
    assert default_url({"BOT_DATABASE_URL": pg}) == pg
    assert default_url({"BOT_DATABASE_URL": "sqlite:///r.db", "BOT_VAR_DIR": str(tmp_path)}) == \
        f"sqlite:///{tmp_path / 'tracker.db'}"


@pytest.fixture
def pg_admin(monkeypatch):
    """An engine on the test database, with Rasa's tables going to a fresh schema (dropped afterwards)."""
    need_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, future=True)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    monkeypatch.setenv("POSTGRESQL_SCHEMA", schema)
    try:
        yield admin
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def test_on_postgresql(pg_admin):
    cached = CachingSQLTrackerStore(DOMAIN, url=PG_URL)
    plain = SQLTrackerStore(DOMAIN, host=PG_URL)
    for i in range(5):
        run(turn(cached, "a", turn_events(i)))
    kept = run(cached.retrieve("a"))
    assert state(kept) == state(run(plain.retrieve("a")))
    run(turn(plain, "a", turn_events(9)))
    assert state(run(cached.retrieve("a"))) == state(run(plain.retrieve("a")))
    cached.engine.dispose()
    plain.engine.dispose()


def test_on_postgresql_single_statements_run_without_a_transaction_around_them(pg_admin):
    from psycopg2.extensions import TRANSACTION_STATUS_IDLE, TRANSACTION_STATUS_INTRANS

    cached = CachingSQLTrackerStore(DOMAIN, url=PG_URL)
    raw = cached.engine.raw_connection()
    try:
        with cached._autocommit(raw):
            raw.cursor().execute("SELECT 1")
            assert raw.dbapi_connection.get_transaction_status() == TRANSACTION_STATUS_IDLE  # no BEGIN sent
        raw.cursor().execute("SELECT 1")  # after the block: psycopg2's transactions again, for Rasa's sessions
        assert raw.dbapi_connection.get_transaction_status() == TRANSACTION_STATUS_INTRANS
    finally:
        raw.close()
    for i in range(3):  # and the store's own statements and Rasa's sessions on the same pool still agree
        run(turn(cached, "p", turn_events(i)))
    assert state(run(cached.retrieve("p"))) == state(run(SQLTrackerStore(DOMAIN, host=PG_URL).retrieve("p")))
    cached.engine.dispose()


def test_a_turn_with_many_events_is_stored_in_order(stores):
    cached, plain, cached_url, plain_url = stores
    many = [e for i in range(40) for e in turn_events(i)]  # 240 events in one save
    for store in (cached, plain):
        run(turn(store, "m", turn_events(0)))
        run(turn(store, "m", turn_events(1)))
        run(turn(store, "m", many))
    assert rows(cached_url) == rows(plain_url)


def test_postgresql_commits_of_conversation_events_wait_for_the_disk_unless_told_otherwise(pg_admin, monkeypatch):
    monkeypatch.delenv("BOT_TRACKER_SYNCHRONOUS_COMMIT", raising=False)
    stores = []

    def setting(store):
        with store.engine.connect() as conn:
            return conn.execute(text("SHOW synchronous_commit")).scalar()

    try:
        stores.append(CachingSQLTrackerStore(DOMAIN, url=PG_URL))
        assert setting(stores[0]) == "on" and stores[0].synchronous_commit is None  # the server's default
        stores.append(CachingSQLTrackerStore(DOMAIN, url=PG_URL, synchronous_commit="off"))
        assert setting(stores[-1]) == "off"
        run(turn(stores[-1], "a", turn_events(0)))  # and it still stores
        assert [e.get("text") for e in state(run(stores[-1].retrieve("a")))["events"] if e["event"] == "user"] == \
            ["message 0"]
        monkeypatch.setenv("BOT_TRACKER_SYNCHRONOUS_COMMIT", "local")
        stores.append(CachingSQLTrackerStore(DOMAIN, url=PG_URL))
        assert setting(stores[-1]) == "local"
        with pg_admin.connect() as conn:  # other connections keep the server's default
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"
        with pytest.raises(ValueError, match="synchronous_commit"):
            CachingSQLTrackerStore(DOMAIN, url=PG_URL, synchronous_commit="sometimes")
    finally:
        for store in stores:
            store.engine.dispose()
