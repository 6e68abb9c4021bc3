"""Engines, sessions and the unit of work; schema upgrades through Alembic."""
from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Callable

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str, **kwargs) -> Engine:
    if url.startswith("sqlite"):
        # SQLite keeps NUMERIC as floating point; prices have two decimals, well within its precision.
        warnings.filterwarnings("ignore", message="Dialect sqlite\\+pysqlite does \\*not\\* support Decimal")
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # Keep connections open between units of work: SQLAlchemy 1.4 opens a new one for each by default, and
            # closing the last connection to a WAL database checkpoints it (measured: ~3 ms of every turn's 10 ms in
            # the action server, see docs/PERFORMANCE.md).
            kwargs.setdefault("poolclass", QueuePool)
            kwargs.setdefault("pool_size", 5)
            kwargs.setdefault("max_overflow", 10)
        engine = create_engine(url, future=True, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # foreign keys are off by default in SQLite
            # Let SQLAlchemy emit BEGIN itself (below) instead of pysqlite's deferred begin.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable at checkpoints, no fsync per turn
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # Take the write lock up front: a deferred transaction that reads and then writes can fail
            # with "database is locked" under concurrent writers instead of waiting its turn.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    return create_engine(url, future=True, **kwargs)


class TurnAbandoned(Exception):
    """The turn this work belongs to timed out and was answered without it: it must not commit."""


class TurnGate:
    """Decides once, under a lock, whether a conversation turn's work lands: either its first commit starts before
    the turn is given up (and the turn waits for the work to finish), or the turn is given up first and every commit
    of that work raises TurnAbandoned (rolled back). A turn that timed out is never committed later.
    (actions/flow.py runs the script in a thread with a time-out; the thread cannot be stopped, only fenced.)"""

    _current = threading.local()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._abandoned = False
        self._committing = False

    def run(self, fn, *args):
        """Call fn(*args) in this thread with the gate in force for every UnitOfWork commit it makes."""
        TurnGate._current.gate = self
        try:
            return fn(*args)
        finally:
            TurnGate._current.gate = None

    def admit_commit(self) -> None:
        with self._lock:
            if self._abandoned:
                raise TurnAbandoned("the turn timed out: its work is rolled back")
            self._committing = True

    def abandon(self) -> bool:
        """Give the turn up: True if none of its work has committed or will; False if a commit has begun (wait)."""
        with self._lock:
            if self._committing:
                return False
            self._abandoned = True
            return True

    @classmethod
    def current(cls) -> "TurnGate | None":
        return getattr(cls._current, "gate", None)


class UnitOfWork:
    """`with uow: ...; uow.commit()` — leaving the block without commit rolls back. Inside a turn run through a
    TurnGate, a commit after the turn was given up raises TurnAbandoned instead."""

    def __init__(self, session_factory: Callable[[], Session]):
        self._session_factory = session_factory
        self.session: Session | None = None

    def __enter__(self) -> "UnitOfWork":
        self.session = self._session_factory()
        return self

    def __exit__(self, *exc) -> None:
        assert self.session is not None
        self.session.rollback()
        self.session.close()
        self.session = None

    def commit(self) -> None:
        assert self.session is not None
        gate = TurnGate.current()
        if gate is not None:
            gate.admit_commit()
        self.session.commit()

    def rollback(self) -> None:
        assert self.session is not None
        self.session.rollback()


def session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(bind=engine, future=True, expire_on_commit=False)


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    """Bring the schema to the newest migration."""
    from alembic import command

    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")
