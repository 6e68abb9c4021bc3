"""`python -m bot visits ...`: engineer visits for the service desk (list, reminders due, an engineer's day, roster
sync)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from bot.settings import ROOT, Settings, load_settings


def roster_path(settings: Settings | None = None, env: dict | None = None) -> Path:
    """BOT_ROSTER_FILE (a relative path is taken from the project root), else <seed dir>/engineers.yml."""
    if settings is not None and env is None:
        return settings.roster_path
    env = os.environ if env is None else env
    raw = env.get("BOT_ROSTER_FILE")
    if raw:
        path = Path(raw)
        return path if path.is_absolute() else ROOT / path
    seed_dir = settings.seed_dir if settings is not None else ROOT / "data" / "seed"
    return Path(seed_dir) / "engineers.yml"


@contextmanager
def _opened():
    """(settings, unit-of-work factory, roster) built from the environment; the engine is closed afterwards."""
    from bot.services.visits import load_roster
    from bot.store.db import UnitOfWork, make_engine, session_factory

    settings = load_settings()
    roster = load_roster(roster_path(settings))
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    try:
        yield settings, (lambda: UnitOfWork(sessions)), roster
    finally:
        engine.dispose()


def local_time(iso_text: str | None, settings: Settings) -> str:
    """An ISO time as desk time, `YYYY-MM-DD HH:MM`, or "-"."""
    if not iso_text:
        return "-"
    return datetime.fromisoformat(iso_text).astimezone(settings.timezone).strftime("%Y-%m-%d %H:%M")


def moment(raw: str | None, settings: Settings, option: str = "--at") -> datetime:
    """A command's moment option (ISO date-time; without an offset, desk time), or now when not given."""
    if not raw:
        return datetime.now(settings.timezone)
    try:
        at = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise SystemExit(f"{option} must be an ISO date-time like 2026-11-23T09:00+08:00, got {raw!r}") from exc
    return at if at.tzinfo else at.replace(tzinfo=settings.timezone)


def _at(args, settings: Settings) -> datetime:
    return moment(getattr(args, "at", None), settings)


def cmd_visits_list(args) -> int:
    from bot.services.visits import VisitBook, visit_json

    with _opened() as (settings, uow_factory, roster), uow_factory() as uow:
        rows = [visit_json(v) for v in VisitBook(uow.session, settings.timezone, roster).list(limit=args.limit)]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("no visits")
        return 0
    print(f"{'ticket':<18} {'engineer':<8} {'name':<16} {'start (local)':<16} {'end':<5} {'status':<9} address")
    for r in rows:
        print(f"{r['ticket'] or '-':<18} {r['engineer'] or '-':<8} {(r['engineer_name'] or {}).get('en', '-'):<16} "
              f"{local_time(r['start'], settings):<16} {local_time(r['end'], settings)[-5:]:<5} {r['status']:<9} {r['address']}")
    return 0


def cmd_visits_due(args) -> int:
    from bot.services.visits import VisitBook, visit_json

    with _opened() as (settings, uow_factory, roster), uow_factory() as uow:
        now = _at(args, settings)
        due = [dict(visit_json(v), reminder=kind)
               for v, kind in VisitBook(uow.session, settings.timezone, roster).due_reminders(now)]
    if args.json:
        print(json.dumps(due, ensure_ascii=False, indent=2))
        return 0
    if not due:
        print(f"no reminders due at {now.isoformat(timespec='minutes')}")
        return 0
    print(f"{'reminder':<10} {'ticket':<18} {'engineer':<8} {'start (local)':<16} address")
    for r in due:
        print(f"{r['reminder']:<10} {r['ticket'] or '-':<18} {r['engineer'] or '-':<8} {local_time(r['start'], settings):<16} "
              f"{r['address']}")
    return 0


def cmd_visits_day(args) -> int:
    from datetime import date

    from bot.services.visits import VisitError, day_list, day_list_json, find_engineer

    with _opened() as (settings, uow_factory, roster), uow_factory() as uow:
        if args.date:
            try:
                day = date.fromisoformat(args.date)
            except ValueError:
                print(f"--date must be a day like 2026-12-04, got {args.date!r}", file=sys.stderr)
                return 2
        else:
            day = datetime.now(settings.timezone).date()
        try:
            engineer = find_engineer(uow.session, args.engineer)
        except VisitError:
            print(f"no engineer {args.engineer!r} (give the code, e.g. E001, or the name)", file=sys.stderr)
            return 1
        data = day_list_json(engineer, day, day_list(uow.session, engineer, day, settings.timezone), settings.timezone)
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    e = data["engineer"]
    print(f"{e['code']} {e['name']['zh']} / {e['name']['en']}  {data['date']}  {data['count']} visits")
    for v in data["visits"]:
        late = f" late {v['late_minutes']} min" if v["late_minutes"] else ""
        print(f"  {v['local_window']}  {v['ticket'] or '-':<18} {v['status']:<8}{late}  {v['product'] or '-'}  "
              f"{v['address']}")
    return 0


def cmd_visits_sync_roster(args) -> int:
    from bot.services.visits import sync_roster

    with _opened() as (settings, uow_factory, roster), uow_factory() as uow:
        written = sync_roster(uow.session, roster)
        uow.commit()
    print(f"roster {roster_path(settings)}: {len(roster.engineers)} engineers, {written} rows written")
    return 0


def add_visit_commands(subparsers) -> None:
    """Add the `visits` group to the top-level argparse subparsers of `python -m bot`."""
    visits = subparsers.add_parser("visits", help="engineer home visits").add_subparsers(dest="command", required=True)
    lst = visits.add_parser("list", help="latest visits first")
    lst.add_argument("--json", action="store_true")
    lst.add_argument("--limit", type=int, default=100)
    lst.set_defaults(func=cmd_visits_list)
    due = visits.add_parser("due", help="visit reminders due now")
    due.add_argument("--json", action="store_true")
    due.add_argument("--at", help="ISO date-time to use instead of now (local time zone when it has no offset)")
    due.set_defaults(func=cmd_visits_due)
    day = visits.add_parser("day", help="one engineer's visits on one day, in order")
    day.add_argument("--engineer", required=True, help="engineer code (E001) or name in either language")
    day.add_argument("--date", help="YYYY-MM-DD in the desk's time zone (default: today)")
    day.add_argument("--json", action="store_true")
    day.set_defaults(func=cmd_visits_day)
    sync = visits.add_parser("sync-roster", help="write the engineers of the roster file into the database")
    sync.set_defaults(func=cmd_visits_sync_roster)


if __name__ == "__main__":  # pragma: no cover - `python -m bot.cli_visits visits list`
    parser = argparse.ArgumentParser(prog="python -m bot.cli_visits")
    add_visit_commands(parser.add_subparsers(dest="group", required=True))
    parsed = parser.parse_args()
    sys.exit(parsed.func(parsed))
