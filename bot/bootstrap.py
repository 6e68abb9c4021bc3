"""Builds everything the entry points need (settings, database, policy, texts, the script) in one place."""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.flows.dispatcher import Script as Assistant
from bot.flows.tools import Tools
from bot.settings import ROOT, Settings, load_settings
from bot.store.db import UnitOfWork, make_engine, session_factory
from bot.texts import load_texts

log = logging.getLogger(__name__)


@dataclass
class App:
    settings: Settings
    engine: object
    sessions: object
    assistant: Assistant
    # Where the action server runs turns (actions/flow.py): on SQLite, one thread, one turn at a time, in arrival
    # order. SQLite has one writer at a time, and a turn is one write transaction: turns run side by side only
    # waited for the lock in SQLite's busy handler, which sleeps in steps of up to 100 ms and may wake well after
    # the lock is free (docs/PERFORMANCE.md, change 21). None: the event loop's default pool (PostgreSQL).
    turn_executor: Executor | None = None

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.sessions)


def _yaml(path: Path) -> dict:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def bootstrap(settings: Settings | None = None) -> App:
    from bot.flows.tuning import load_tuning
    from bot.nlu.timeparse import parse_date, parse_when
    from bot.services.visits import load_roster
    from bot.services.warranty import load_policy

    settings = settings or load_settings()
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    policy = load_policy(settings.policy_path)  # validated at start-up: a broken policy stops the server
    tools = Tools(
        uow=lambda: UnitOfWork(sessions),
        settings=settings,
        policy=policy,
        texts=load_texts(),
        selfcheck=_yaml(ROOT / "data" / "selfcheck.yml"),
        centres=_yaml(settings.seed_dir / "service_centres.yml"),
        parse_when=parse_when,
        parse_date=parse_date,
        roster=load_roster(settings.roster_path),
        tuning=load_tuning(settings.seed_dir / "script.yml"),  # validated at start-up, like the policy
    )
    log.info("bootstrapped: database %s, policy %s", engine.url.render_as_string(hide_password=True),
             getattr(policy, "version", "?"))
    turn_executor = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="turn")
                     if engine.dialect.name == "sqlite" else None)
    return App(settings=settings, engine=engine, sessions=sessions, assistant=Assistant(tools),
               turn_executor=turn_executor)


# ------------------------------------------------------------------------------ the Rasa server's process
# The Rasa server builds its channels itself (credentials.yml: `from_credentials`), so they cannot be handed an App:
# each asks for the process's one App instead, built on first use (inside the server, never at import).
_process_app: App | None = None
_process_lock = threading.Lock()


def bootstrap_server(settings: Settings | None = None, sessions=None) -> App:
    """An App for the Rasa server's process: settings and the records database that its channels and the agent
    console share. The script runs in the action server, so this one has none (assistant None). `sessions`: a
    session factory to use instead of a new engine (tests)."""
    settings = settings or load_settings()
    if sessions is None:
        engine = make_engine(settings.database_url)
        sessions = session_factory(engine)
        log.info("bootstrapped the Rasa server's records: database %s", engine.url.render_as_string(hide_password=True))
    else:
        engine = sessions.kw.get("bind")
    return App(settings=settings, engine=engine, sessions=sessions, assistant=None)  # type: ignore[arg-type]


def process_app() -> App:
    """The one App of this process (built by `bootstrap_server` on the first call)."""
    global _process_app
    with _process_lock:
        if _process_app is None:
            _process_app = bootstrap_server()
        return _process_app
