"""Builds everything the entry points need (settings, database, policy, texts, the script) in one place."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.services.assistant import Assistant, Tools
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

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.sessions)


def _yaml(path: Path) -> dict:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def bootstrap(settings: Settings | None = None) -> App:
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
    )
    log.info("bootstrapped: database %s, policy %s", engine.url.render_as_string(hide_password=True),
             getattr(policy, "version", "?"))
    return App(settings=settings, engine=engine, sessions=sessions, assistant=Assistant(tools))
