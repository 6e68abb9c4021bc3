"""Shared fixtures: real databases (SQLite file, and the PostgreSQL server on the machine) at the newest schema."""
from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bot.settings import ROOT, load_settings
from bot.store.db import UnitOfWork, alembic_config, make_engine, session_factory, upgrade

PG_URL = os.environ.get("BOT_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def postgres_available() -> str | None:
    """None when the server answers, else why not."""
    try:
        engine = create_engine(PG_URL, future=True, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        return f"no PostgreSQL server answers at {PG_URL}: {exc.__class__.__name__}"


def unavailable(why: str) -> None:
    """A service a test needs is missing (PostgreSQL, Redis, the browser): the test fails under CI (CI=true), where
    the service must be there, and is skipped elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def need_postgres() -> None:
    """The PostgreSQL server must answer: else the test fails under CI and is skipped elsewhere."""
    why = postgres_available()
    if why:
        unavailable(why)


def _sqlite_db(tmp_path: Path) -> tuple[str, object]:
    url = f"sqlite:///{tmp_path / 'service.db'}"
    upgrade(url)
    return url, make_engine(url)


def _postgres_db() -> tuple[str, object, str]:
    """A fresh schema per test database, upgraded by Alembic, dropped afterwards."""
    from alembic import command

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, future=True)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    engine = make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    cfg = alembic_config(PG_URL)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return PG_URL, engine, schema


def _drop_schema(schema: str) -> None:
    admin = create_engine(PG_URL, future=True)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_engine(request, tmp_path):
    """The same store tests against SQLite and the real PostgreSQL server."""
    if request.param == "sqlite":
        _url, engine = _sqlite_db(tmp_path)
        yield engine
        engine.dispose()
        return
    need_postgres()
    _url, engine, schema = _postgres_db()
    yield engine
    engine.dispose()
    _drop_schema(schema)


@pytest.fixture
def sqlite_engine(tmp_path):
    _url, engine = _sqlite_db(tmp_path)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine():
    need_postgres()
    _url, engine, schema = _postgres_db()
    yield engine
    engine.dispose()
    _drop_schema(schema)


@pytest.fixture
def uow_factory(db_engine):
    sessions = session_factory(db_engine)
    return lambda: UnitOfWork(sessions)


@pytest.fixture
def settings(tmp_path):
    return load_settings({"BOT_VAR_DIR": str(tmp_path)})


NOW = datetime(2026, 11, 22, 2, 30, tzinfo=timezone.utc)  # 10:30 in Shanghai, a Sunday
