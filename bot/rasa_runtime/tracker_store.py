"""Rasa's SQL tracker store with the conversations in use kept in memory (a measured fix, see docs/PERFORMANCE.md).

Rasa's `SQLTrackerStore` rebuilds the whole tracker from the database on every message: it reads every event of the
conversation session, parses its JSON and replays it (about 12 ms of the Rasa server's ~29 ms per message in a
short conversation, and growing with every turn), and before saving it counts the stored events again. This store
keeps the trackers it has loaded (least recently used first out, `cache_size` conversations) and, on `save`,
inserts only the events added since, in one statement. A kept tracker is used only while it is exactly what is
stored: its number of events is the one last written, and the number of rows stored for the conversation has not
changed (one indexed count per message, so another process or tool writing to the same conversation is noticed).
A new conversation is kept from its first message: an empty conversation is not read, and after its first
session start the store keeps what Rasa's store would read back (the latest session), worked out from the rows
it has just written. A turn that failed before being saved, a later new session, or an event broker (which reads
the stored tracker to work out what to publish) all fall back to Rasa's own code. What is stored, and when, is
what Rasa's store writes (tests/test_tracker_store.py); the table is Rasa's `events` table. Keeping the same
tracker object from turn to turn is also what lets bot/rasa_runtime/speedups.py replay only the new events of a
conversation.

The count and the insert go to the DB-API directly (SQLAlchemy's layers cost more than the statements); with a
database server they run in a worker thread (see `_io`). SQLite files are opened in WAL mode, connections kept.

endpoints.yml:

    tracker_store:
      type: bot.rasa_runtime.tracker_store.CachingSQLTrackerStore
      # url: <an SQLAlchemy URL>, or Rasa's SQLTrackerStore options but `host` (dialect, port, db, username,
      # password, login_db, query; Rasa hands a custom store its `url` as `host`). With none of them:
      # BOT_TRACKER_STORE_URL, else the records database when it is PostgreSQL (BOT_DATABASE_URL; Rasa's table is
      # `events`), else sqlite:///<BOT_VAR_DIR>/tracker.db.
      cache_size: 200   # conversations kept in memory (0: none)
      # synchronous_commit: off  # PostgreSQL only; else BOT_TRACKER_SYNCHRONOUS_COMMIT, else the server's (on)
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Text

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY

log = logging.getLogger(__name__)
SYNCHRONOUS_COMMIT = ("on", "off", "local", "remote_write", "remote_apply")


def default_url(env: Optional[dict] = None) -> str:
    env = os.environ if env is None else env
    if env.get("BOT_TRACKER_STORE_URL"):
        return env["BOT_TRACKER_STORE_URL"]
    records = env.get("BOT_DATABASE_URL") or ""
    if records.startswith("postgresql"):
        return records
    from bot.settings import ROOT

    var_dir = Path(env.get("BOT_VAR_DIR") or ROOT / "var")
    var_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{var_dir / 'tracker.db'}"


@dataclass
class _Kept:
    tracker: DialogueStateTracker
    length: int  # len(tracker.events) when it was last read from or written to the database
    stored: int  # rows stored for the conversation then
    # Every row stored for the conversation, when this store wrote all of them (a new conversation, until its first
    # session start): what a read would return can then be worked out without reading (see `_read_back`).
    rows: Optional[list] = None


class CachingSQLTrackerStore(SQLTrackerStore):
    def __init__(self, domain=None, host: Optional[Text] = None, cache_size: int = 200, event_broker=None,
                 synchronous_commit: Optional[Text] = None, **kwargs: Any) -> None:
        url = kwargs.pop("url", None) or host
        if not url and not kwargs.get("db"):
            url = default_url()
        super().__init__(domain, host=url, event_broker=event_broker, **kwargs)
        from bot.rasa_runtime import supported

        # On a Rasa other than the one this was written against, Rasa's SQLTrackerStore as it is (same table).
        self._patched = supported("tracker store")
        if not self._patched:
            cache_size = 0
        elif self.engine.dialect.name == "sqlite":
            self._tune_sqlite()
        elif self.engine.dialect.name == "postgresql":
            self._tune_postgresql(synchronous_commit)
        self._kept: "OrderedDict[str, _Kept]" = OrderedDict()
        self._new: "OrderedDict[str, None]" = OrderedDict()  # conversations `retrieve` found empty, not saved yet
        self.cache_size = max(0, int(cache_size))
        self._io_threads = (None if self.engine.dialect.name == "sqlite"
                            else ThreadPoolExecutor(max_workers=4, thread_name_prefix="tracker-store"))
        log.info("tracker store: %s, %s conversations kept in memory",
                 self.engine.url.render_as_string(hide_password=True), self.cache_size)

    def _tune_sqlite(self) -> None:
        """One kept connection in WAL mode instead of a new connection (and a rollback journal) per query."""
        url = self.engine.url
        self.engine.dispose()
        self.engine = sa.create_engine(url, poolclass=sa.pool.QueuePool, pool_size=2, max_overflow=8,
                                       connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(self.engine, "connect")
        def _wal(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        self.sessionmaker = sa.orm.session.sessionmaker(bind=self.engine)

    def _tune_postgresql(self, synchronous_commit: Optional[Text]) -> None:
        """`synchronous_commit` for this store's connections only (endpoints.yml, else
        BOT_TRACKER_SYNCHRONOUS_COMMIT, else PostgreSQL's default, `on`). With `off` a commit returns before
        PostgreSQL has flushed its write-ahead log to disk (~0.3 instead of ~0.7-0.9 ms a commit on the bench machine)
        and a crash of the database server can lose the conversation events of its last fraction of a second, never
        corrupt or half-write them. Measured with 10 conversations on PostgreSQL it bought nothing above the noise
        (37.3-40.9 msg/s with `off`, 39.6-40.4 with `on`, docs/PERFORMANCE.md change 18), so the default keeps
        durability. Tickets, visits and hand-offs (the records database) always use the server's setting."""
        value = str(synchronous_commit or os.environ.get("BOT_TRACKER_SYNCHRONOUS_COMMIT") or "").lower()
        self.synchronous_commit = value or None
        if not value:
            return
        if value not in SYNCHRONOUS_COMMIT:
            raise ValueError(f"synchronous_commit must be one of {', '.join(SYNCHRONOUS_COMMIT)}, not {value!r}")

        @sa.event.listens_for(self.engine, "connect")
        def _set(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute(f"SET synchronous_commit TO {value}")
            cur.close()
            dbapi_conn.commit()

        self.engine.dispose()  # connections opened while creating the table were made before the setting

    # --- the kept trackers ----------------------------------------------------------------------------------
    def _placeholder(self) -> Optional[str]:
        """The DB-API parameter marker, for the two statements of every message (SQLAlchemy's own layers cost more
        than the statements themselves); None: go through SQLAlchemy."""
        return {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(self.engine.dialect.paramstyle)

    def _stored_count(self, sender_id: Text) -> int:
        table = self.SQLEvent.__table__
        mark = self._placeholder()
        if mark is None:
            with self.engine.connect() as conn:
                return conn.execute(sa.select(sa.func.count()).select_from(table)
                                    .where(table.c.sender_id == sender_id)).scalar()
        raw = self.engine.raw_connection()
        try:
            with self._autocommit(raw):  # one statement: no transaction around it
                cursor = raw.cursor()
                cursor.execute(f"SELECT count(*) FROM {table.name} WHERE sender_id = {mark}", (sender_id,))
                count = cursor.fetchone()[0]
                cursor.close()
            return count
        finally:
            raw.close()  # back to the pool, rolled back

    @property
    def _caching(self) -> bool:
        return bool(self.cache_size) and self.event_broker is None

    def _keep(self, tracker: DialogueStateTracker, stored: int) -> None:
        if self._caching:
            self._put(self._kept, tracker.sender_id, _Kept(tracker, len(tracker.events), stored))

    def _put(self, table: OrderedDict, sender_id: Text, value: Any) -> None:
        """Into `table` as its most recently used entry; the least recently used beyond `cache_size` leave."""
        table[sender_id] = value
        table.move_to_end(sender_id)
        while len(table) > self.cache_size:
            table.popitem(last=False)

    async def _io(self, fn, *args):
        """The statements of every message. With a database server (PostgreSQL) they run in a worker thread, so
        that the Rasa server goes on with other conversations while they wait for the network and the commit
        (10 conversations: 92-106 -> 117-122 messages/s); with SQLite, which answers in microseconds, handing
        them to a thread costs more than it saves (156 -> 148 messages/s), so they run in place."""
        if self._io_threads is None:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._io_threads, fn, *args)

    async def retrieve(self, sender_id: Text) -> Optional[DialogueStateTracker]:
        if not self._patched:
            return await super().retrieve(sender_id)
        stored = await self._io(self._stored_count, sender_id)
        kept = self._kept.get(sender_id)
        if kept is not None:
            if len(kept.tracker.events) == kept.length and stored == kept.stored:
                self._kept.move_to_end(sender_id)
                return kept.tracker
            self._kept.pop(sender_id, None)
        if stored == 0:
            # Nothing stored: Rasa's store returns None too. Rasa then creates the tracker and saves it; that save
            # can take the short way (`save`).
            if self._caching:
                self._put(self._new, sender_id, None)
            return None
        # Counted before reading: a row written in between makes the count stale, never the tracker.
        tracker = await super().retrieve(sender_id)
        if tracker is not None:
            self._keep(tracker, stored)
        return tracker

    async def save(self, tracker: DialogueStateTracker) -> None:
        if not self._patched:
            return await super().save(tracker)
        sender_id = tracker.sender_id
        kept = self._kept.get(sender_id)
        if kept is None and sender_id in self._new:
            # A conversation `retrieve` found empty: every event is new, and this store writes every row. (Had
            # another writer added rows meanwhile, the next retrieve's count differs from `stored` and reads.)
            del self._new[sender_id]
            kept = _Kept(tracker, 0, 0, rows=[])
            self._put(self._kept, sender_id, kept)
        if kept is None or kept.tracker is not tracker or len(tracker.events) < kept.length:
            # Not the kept tracker (changed elsewhere): Rasa's own save; the next retrieve reads it back from the
            # database and keeps it.
            self._kept.pop(sender_id, None)
            await super().save(tracker)
            return
        new = list(itertools.islice(tracker.events, kept.length, None))
        rows = self._rows(sender_id, new)
        if rows:
            await self._io(self._insert, rows)
        kept.length += len(new)
        kept.stored += len(new)
        if kept.rows is not None:
            kept.rows.extend(rows)
            if len(kept.rows) > self.MAX_KNOWN_ROWS:  # no session start yet: stop carrying them, read instead
                kept.rows = None
        if any(isinstance(e, SessionStarted) for e in new):
            # Rasa's store reads only the latest session, and so must the next retrieve: a tracker of what it
            # would read is made from the rows when they are all known (a new conversation's first message),
            # else it is read.
            self._kept.pop(sender_id, None)
            if kept.rows is not None:
                read_back = self._read_back(sender_id, kept.rows)
                if read_back is not None:
                    self._keep(read_back, kept.stored)

    def _read_back(self, sender_id: Text, rows: list) -> Optional[DialogueStateTracker]:
        """What Rasa's `retrieve` returns when these are all the rows stored for the conversation: the rows from the
        latest session start on (by timestamp, as its query selects them), each event parsed from its JSON."""
        starts = [row["timestamp"] for row in rows
                  if row["type_name"] == SessionStarted.type_name and row["timestamp"] is not None]
        if starts:
            start = max(starts)
            rows = [row for row in rows if row["timestamp"] is not None and row["timestamp"] >= start]
        events = [json.loads(row["data"]) for row in rows]
        if not (self.domain and events):
            return None
        return DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)

    COLUMNS = ("sender_id", "type_name", "timestamp", "intent_name", "action_name", "data")
    MAX_KNOWN_ROWS = 500  # rows of a new conversation carried until its first session start (normally: 1 message)

    def _insert(self, rows: list) -> None:
        """One INSERT with a row per event, in order (ids grow in the order of the events, as Rasa reads them)."""
        table = self.SQLEvent.__table__
        mark = self._placeholder()
        if mark is None:
            with self.engine.begin() as conn:
                conn.execute(table.insert(), rows)
            return
        one = "(" + ", ".join([mark] * len(self.COLUMNS)) + ")"
        raw = self.engine.raw_connection()
        try:
            # One statement is a transaction of its own; more (over 100 events) go in one transaction.
            with self._autocommit(raw, len(rows) <= 100):
                cursor = raw.cursor()
                for start in range(0, len(rows), 100):  # 600 parameters at most: within every SQLite's limit
                    chunk = rows[start:start + 100]
                    cursor.execute(f"INSERT INTO {table.name} ({', '.join(self.COLUMNS)}) "
                                   f"VALUES {', '.join([one] * len(chunk))}",
                                   [row[c] for row in chunk for c in self.COLUMNS])
                cursor.close()
                raw.commit()
        finally:
            raw.close()

    @contextlib.contextmanager
    def _autocommit(self, raw, wanted: bool = True):
        """psycopg2 (PostgreSQL) opens a transaction before a connection's first statement and needs a COMMIT or
        ROLLBACK after: two more round trips for one statement, which runs as a transaction of its own anyway.
        For the duration of the block the connection runs each statement on its own (autocommit); it goes back to
        the pool as it was, for Rasa's own sessions on the same engine. Other drivers: unchanged."""
        connection = getattr(raw, "dbapi_connection", None)
        if not wanted or self.engine.dialect.driver != "psycopg2" or connection is None:
            yield
            return
        connection.autocommit = True
        try:
            yield
        finally:
            connection.autocommit = False

    @staticmethod
    def _rows(sender_id: Text, events: Iterable) -> list:
        """The rows SQLTrackerStore.save writes for these events (inserted here in one statement)."""
        rows = []
        for event in events:
            data = event.as_dict()
            rows.append({"sender_id": sender_id, "type_name": event.type_name, "timestamp": data.get("timestamp"),
                         "intent_name": data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
                         "action_name": data.get("name"), "data": json.dumps(data)})
        return rows
