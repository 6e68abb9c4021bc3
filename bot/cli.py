"""`python -m bot ...`: database upgrades and seed, ticket look-ups for the service desk."""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime

from sqlalchemy import func, select

from bot.settings import load_settings


def _app():
    from bot.bootstrap import bootstrap

    return bootstrap()


def cmd_db_upgrade(args) -> int:
    from bot.store.db import upgrade

    settings = load_settings()
    upgrade(settings.database_url)
    print(f"database at head: {settings.database_url.split('@')[-1]}")
    return 0


def cmd_db_seed(args) -> int:
    from bot.services.records import load_seed
    from bot.services.visits import sync_roster
    from bot.store.db import upgrade

    settings = load_settings()
    upgrade(settings.database_url)
    app = _app()
    today = datetime.now(settings.timezone).date()
    with app.uow() as uow:
        from bot.store.models import Ticket

        tickets = uow.session.execute(select(func.count(Ticket.id))).scalar_one()
        if tickets and not args.if_empty and not args.force:
            # A full seed resets the catalogue and customers, which wipes every ticket with them.
            print(f"seed refused: the database holds {tickets} tickets, which a seed would wipe. Use --if-empty to "
                  f"leave it as it is, or --force to wipe it.", file=sys.stderr)
            return 2
        if args.if_empty:
            from bot.store.models import Product

            if uow.session.execute(select(Product.id).limit(1)).first() is not None:
                engineers = sync_roster(uow.session, app.assistant.tools.roster)
                uow.commit()
                print(f"seed: database already has a catalogue, left as it is; {engineers} engineers updated")
                return 0
        counts = load_seed(uow.session, settings.seed_dir / "catalogue.yml", today, reset=not args.if_empty)
        engineers = sync_roster(uow.session, app.assistant.tools.roster)
        uow.commit()
    print(f"seed loaded: {counts['products']} products, {counts['customers']} customers, {counts['purchases']} purchases, "
          f"{engineers} engineers synced from {settings.roster_path.name}")
    return 0


def cmd_tickets_list(args) -> int:
    from bot.services.tickets import TicketBook, ticket_json

    app = _app()
    with app.uow() as uow:
        book = TicketBook(uow.session, app.settings.timezone)
        tickets = [ticket_json(t) for t in book.list(limit=args.limit, status=args.status)]
    if args.json:
        print(json.dumps(tickets, ensure_ascii=False, indent=2))
        return 0
    if not tickets:
        print("no tickets")
        return 0
    print(f"{'number':<18} {'kind':<12} {'status':<18} {'lang':<4} {'product':<16} {'phone':<12} {'handoff':<7} created")
    for t in tickets:
        print(f"{t['number']:<18} {t['kind']:<12} {t['status']:<18} {t['language']:<4} {str(t['facts']['product'] or '-'):<16} "
              f"{str(t['customer']['phone'] or '-'):<12} {'yes' if t['handoff_requested'] else 'no':<7} {t['created_at']}")
    return 0


def cmd_tickets_show(args) -> int:
    from bot.services.tickets import TicketBook, ticket_json
    from bot.store.models import Visit

    app = _app()
    with app.uow() as uow:
        book = TicketBook(uow.session, app.settings.timezone)
        ticket = book.get(args.number)
        if ticket is None:
            print(f"no ticket {args.number}", file=sys.stderr)
            return 1
        visits = list(uow.session.execute(select(Visit).where(Visit.ticket_id == ticket.id)).scalars())
        data = ticket_json(ticket, with_events=True, visits=visits)
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    print(f"{data['number']}  {data['kind']}  {data['status']}  severity={data['severity']}  lang={data['language']}")
    print(f"channel {data['channel']} conversation {data['conversation_id']}")
    print(f"customer: {data['customer']['name'] or '-'} {data['customer']['phone'] or '-'}")
    for key, value in data["facts"].items():
        print(f"  {key:<14} {value if value is not None else '-'}")
    print("account:\n  " + (data["account"] or "-").replace("\n", "\n  "))
    print("steps:")
    for step, at in data["steps"].items():
        print(f"  {step:<10} {at or '-'}")
    print(f"remedy: proposed={data['remedy']['proposed']} accepted={data['remedy']['accepted']} clause={data['remedy']['clause']}")
    print(f"follow-up due: {data['follow_up_due'] or '-'}  handoff: {data['handoff_requested']} ({data['handoff_reason'] or '-'})"
          f"  satisfaction: {data['satisfaction'] or '-'}")
    print("events:")
    for e in data["events"]:
        print(f"  {e['at']}  {e['actor']:<8} {e['kind']:<20} {json.dumps(e['data'], ensure_ascii=False)}")
    return 0


def cmd_tickets_register(args) -> int:
    from bot.services.tickets import complaint_register

    app = _app()
    with app.uow() as uow:
        rows = complaint_register(uow.session, limit=args.limit)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    print(f"{'number':<18} {'date':<11} {'customer':<12} {'phone':<12} {'recorded by':<11} address / reason")
    for r in rows:
        print(f"{r['number']:<18} {(r['date'] or '')[:10]:<11} {str(r['customer'] or '-'):<12} {str(r['phone'] or '-'):<12} "
              f"{r['recorded_by']:<11} {r['address'] or '-'} / {r['reason']}")
    return 0


def _parse_day(text: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"not a date (YYYY-MM-DD): {text!r}")


def cmd_tickets_report(args) -> int:
    from datetime import time, timedelta, timezone

    from bot.services.desk_report import desk_figures

    app = _app()
    tz = app.settings.timezone
    now = datetime.now(timezone.utc)
    today = now.astimezone(tz).date()
    last_day_after = _parse_day(args.until) if args.until else today + timedelta(days=1)
    until = datetime.combine(last_day_after, time(0), tzinfo=tz)
    since = datetime.combine(_parse_day(args.since), time(0), tzinfo=tz) if args.since else until - timedelta(days=30)
    if since >= until:
        raise SystemExit("--since must be before --until")
    with app.uow() as uow:
        figures = desk_figures(uow.session, since=since, until=until, now=now, tz=tz)
    if args.json:
        print(json.dumps(figures, ensure_ascii=False, indent=2))
        return 0

    def pct(value):
        return "-" if value is None else f"{value * 100:.1f}%"

    print(f"tickets opened {since.date()} .. {(until - timedelta(days=1)).date()}: {figures['tickets']}  "
          + "  ".join(f"{k} {v}" for k, v in figures["by_kind"].items()))
    print(f"complaint rate       {pct(figures['complaint_rate'])}  ({figures['complaints']} complaints)")
    print(f"omission rate        {pct(figures['omission_rate'])}  ({len(figures['omitted'])} tickets with a missed deadline)")
    ratings = figures["ratings"]
    print(f"dissatisfaction rate {pct(figures['dissatisfaction_rate'])}  ({ratings['low']} of {ratings['count']} ratings "
          f"were 1-2; mean {ratings['mean'] if ratings['mean'] is not None else '-'})")
    print(f"hand-offs            {figures['handoffs']['count']}  "
          + "  ".join(f"{k} {v}" for k, v in figures["handoffs"]["by_reason"].items()))
    fcr = figures["first_contact_resolution"]
    print(f"first-contact res.   {pct(fcr['rate'])}  ({fcr['count']} finished without a person, a visit or a reopen)")
    print(f"hand-off rate        {pct(figures['handoff_rate'])}")
    print(f"reopen rate          {pct(figures['reopen_rate'])}  ({figures['reopened']} reopened)")
    sla = figures["sla_breaches"]
    print(f"SLA breaches         first response {sla['first_response']}, resolution {sla['resolution']}")
    hours = figures["median_hours_to_first_visit"]
    print(f"to first visit       {'-' if hours is None else f'{hours:.1f} h'} (median)")
    for title, key in (("week", "by_week"), ("product", "by_product"), ("channel", "by_channel")):
        for name, g in figures[key].items():
            print(f"  {title:<8} {name:<16} tickets {g['tickets']:<4} complaints {pct(g['complaint_rate']):<7} "
                  f"omitted {pct(g['omission_rate']):<7} dissatisfied {pct(g['dissatisfaction_rate'])}")
    for a in figures["agents"]:
        r = a["ratings"]
        print(f"  agent    {a['agent']:<16} handled {a['handled']:<4} median first response "
              f"{'-' if a['median_first_response_minutes'] is None else a['median_first_response_minutes']} min  "
              f"ratings {r['count']} (mean {r['mean'] if r['mean'] is not None else '-'})")
    promises = figures.get("promises")
    if promises:
        print(f"promises kept on time {pct(promises['kept_on_time_rate'])}  ({promises['kept_on_time']} of "
              f"{promises['due']} due; {promises['failed']} failed, {promises['overdue']} overdue)")
    for item in figures["omitted"][:50]:
        print(f"  omitted {item['number']} ({item['status']}): {', '.join(item['why'])}")
    for item in sla["tickets"][:50]:
        print(f"  SLA     {item['number']} ({item['status']}): {', '.join(item['why'])}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description="After-sales service assistant tools")
    sub = parser.add_subparsers(dest="group", required=True)

    db = sub.add_parser("db", help="database").add_subparsers(dest="command", required=True)
    db.add_parser("upgrade", help="apply Alembic migrations").set_defaults(func=cmd_db_upgrade)
    seed = db.add_parser("seed", help="(re)load the demo catalogue and customers")
    seed.add_argument("--if-empty", action="store_true", help="only when the database has no catalogue yet")
    seed.add_argument("--force", action="store_true", help="reload even when the database holds tickets (wipes them)")
    seed.set_defaults(func=cmd_db_seed)

    tickets = sub.add_parser("tickets", help="tickets").add_subparsers(dest="command", required=True)
    lst = tickets.add_parser("list", help="newest tickets first")
    lst.add_argument("--json", action="store_true")
    lst.add_argument("--status")
    lst.add_argument("--limit", type=int, default=100)
    lst.set_defaults(func=cmd_tickets_list)
    show = tickets.add_parser("show", help="one ticket with its events")
    show.add_argument("number")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_tickets_show)
    register = tickets.add_parser("register", help="the complaint register: who, address, phone, reason, recorded by")
    register.add_argument("--json", action="store_true")
    register.add_argument("--limit", type=int, default=200)
    register.set_defaults(func=cmd_tickets_register)
    report = tickets.add_parser("report", help="the desk's figures: complaint, omission and dissatisfaction rates")
    report.add_argument("--since", help="first day (YYYY-MM-DD, desk time zone; default: 30 days before --until)")
    report.add_argument("--until", help="day after the last (YYYY-MM-DD; default: tomorrow)")
    report.add_argument("--json", action="store_true")
    report.set_defaults(func=cmd_tickets_report)

    # Each group of commands lives with its subject; these modules import little until a command runs.
    from bot.channels.telegram_polling import add_telegram_commands
    from bot.cli_agents import add_agent_commands
    from bot.cli_nlu import add_nlu_commands
    from bot.cli_outbox import add_outbox_commands
    from bot.cli_privacy import add_privacy_commands
    from bot.cli_visits import add_visit_commands
    from bot.cluster import add_cluster_commands

    add_visit_commands(sub)
    add_agent_commands(sub)
    add_privacy_commands(sub)
    add_telegram_commands(sub)
    add_outbox_commands(sub)
    add_nlu_commands(sub)
    add_cluster_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from bot.pii import install_log_masking

    install_log_masking()  # the outbox runner, the Telegram poller and every command log through the same mask
    args = build_parser().parse_args(argv)
    return args.func(args)
