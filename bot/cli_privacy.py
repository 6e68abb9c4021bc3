"""`python -m bot privacy ...`: a customer's personal data under PIPL — export it, erase it, and purge transcripts
and attachments of cases closed longer ago than BOT_RETENTION_DAYS (bot/services/privacy.py)."""
from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from datetime import datetime, timezone

from bot.settings import load_settings


@contextmanager
def _privacy():
    """(settings, unit of work, transcripts) for one command; everything closed afterwards."""
    from bot.services.privacy import Transcripts
    from bot.store.db import UnitOfWork, make_engine, session_factory
    from bot.rasa_runtime.tracker_store import default_url

    settings = load_settings()
    engine = make_engine(settings.database_url)
    transcripts = Transcripts(default_url())
    try:
        with UnitOfWork(session_factory(engine)) as uow:
            yield settings, uow, transcripts
    finally:
        transcripts.dispose()
        engine.dispose()


def cmd_privacy_export(args) -> int:
    from bot.services.privacy import export

    with _privacy() as (_settings, uow, transcripts):
        try:
            data = export(uow.session, transcripts, args.phone, datetime.now(timezone.utc))
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 1
    text = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text + "\n")
        print(f"exported {len(data['tickets'])} tickets, {len(data['transcripts'])} conversations to {args.output}",
              file=sys.stderr)
    else:
        print(text)
    return 0


def _report(what: str, result, removed: int) -> None:
    print(f"{what}: {result.tickets} tickets, {result.customers} customers, {result.transcripts} conversations "
          f"({result.events_deleted} transcript events), {result.attachments} attachments ({removed} files removed)")


def cmd_privacy_erase(args) -> int:
    from bot.services.privacy import erase, remove_files

    with _privacy() as (_settings, uow, transcripts):
        try:
            result = erase(uow.session, transcripts, args.phone, datetime.now(timezone.utc))
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        uow.commit()
    _report("erased", result, remove_files(result.files))
    return 0


def cmd_privacy_purge(args) -> int:
    from bot.services.privacy import purge, remove_files

    with _privacy() as (settings, uow, transcripts):
        days = args.older_than if args.older_than is not None else settings.retention_days
        try:
            result = purge(uow.session, transcripts, days, datetime.now(timezone.utc))
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        uow.commit()
    _report(f"purged (closed cases untouched for {days} days)", result, remove_files(result.files))
    return 0


def add_privacy_commands(subparsers: argparse._SubParsersAction) -> None:
    privacy = subparsers.add_parser("privacy", help="personal data: export, erase, purge (PIPL)").add_subparsers(
        dest="command", required=True)
    exp = privacy.add_parser("export", help="everything held about a customer, as JSON")
    exp.add_argument("--phone", required=True)
    exp.add_argument("--output", help="write to this file instead of standard output")
    exp.set_defaults(func=cmd_privacy_export)
    era = privacy.add_parser("erase", help="anonymise the customer's tickets, delete transcripts and attachments")
    era.add_argument("--phone", required=True)
    era.set_defaults(func=cmd_privacy_erase)
    pur = privacy.add_parser("purge", help="delete transcripts and attachments of cases closed long ago")
    pur.add_argument("--older-than", type=int, metavar="DAYS", help="default: BOT_RETENTION_DAYS (365)")
    pur.set_defaults(func=cmd_privacy_purge)
