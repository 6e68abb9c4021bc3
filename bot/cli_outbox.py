"""`python -m bot outbox ...`: the runner that keeps the bot's promises, and the list of them for the desk.

    outbox run                       keep running: send what is due, then look again every `poll_seconds`
    outbox run --once [--now ISO]    send what is due at that moment (default: now) and exit
    outbox list [--json] [--status S] [--limit N]

The runner reaches the customers through the Rasa server's outbox gate: BOT_RASA_URL (default
http://127.0.0.1:5005) with BOT_OUTBOX_TOKEN (the same value the Rasa server has).
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import time
from contextlib import contextmanager
from datetime import datetime, timezone

from bot.settings import Settings, load_settings

log = logging.getLogger(__name__)


def _now(args, settings: Settings) -> datetime:
    from bot.cli_visits import moment

    return moment(getattr(args, "now", None), settings, "--now")


@contextmanager
def _sessions():
    from bot.store.db import make_engine, session_factory

    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        yield settings, session_factory(engine)
    finally:
        engine.dispose()


@contextmanager
def _single_runner(settings: Settings):
    """SQLite has one writer: one runner at a time, held by a file lock that ends with the process."""
    if not settings.is_sqlite:
        yield
        return
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.var_dir / "outbox-runner.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit("another outbox runner is running on this SQLite database")
        yield


def build_runner(settings: Settings, sessions, *, deliverers=None):
    from bot.services.deliverers import gate_deliverers
    from bot.services.outbox import OutboxRunner, load_outbox_config
    from bot.services.promises import make_renderer
    from bot.texts import load_texts

    config = load_outbox_config()
    if deliverers is None:
        token = os.environ.get("BOT_OUTBOX_TOKEN")
        if not token:
            raise SystemExit("BOT_OUTBOX_TOKEN is not set: the runner needs the Rasa server's outbox token")
        deliverers = gate_deliverers(os.environ.get("BOT_RASA_URL") or "http://127.0.0.1:5005", token)
    return OutboxRunner(sessions, deliverers, make_renderer(load_texts(), settings.timezone, config),
                        tz=settings.timezone, config=config)


def cmd_outbox_run(args) -> int:
    if args.now and not args.once:
        raise SystemExit("--now goes with --once")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from bot.observability import json_logs_wanted, use_json_logs

    if json_logs_wanted():
        use_json_logs()
    with _sessions() as (settings, sessions), _single_runner(settings):
        runner = build_runner(settings, sessions)
        if args.once:
            result = runner.run_once(_now(args, settings))
            print(result.summary())
            for label, ids in (("sent", result.sent), ("held", result.held), ("failed", result.failed)):
                if ids:
                    print(f"  {label}: " + " ".join(str(i) for i in ids))
            return 0
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        if os.environ.get("BOT_METRICS_PORT"):  # /metrics (outbox backlog, hand-off queue), /healthz, /readyz
            from bot.observability import serve_metrics

            serve_metrics(int(os.environ["BOT_METRICS_PORT"]))
        log.info("outbox runner started (poll every %ss)", runner.config.poll_seconds)
        try:
            while not stopping:
                result = runner.run_once(datetime.now(timezone.utc))
                if result.sent or result.held or result.failed or result.retried or result.cancelled:
                    log.info("outbox: %s", result.summary())
                    continue
                for _ in range(int(runner.config.poll_seconds * 10)):
                    if stopping:
                        break
                    time.sleep(0.1)
        except KeyboardInterrupt:
            pass
        log.info("outbox runner stopped")
    return 0


def cmd_outbox_list(args) -> int:
    from bot.services.outbox import list_items, outbox_json

    with _sessions() as (settings, sessions), sessions() as session:
        rows = [outbox_json(item) for item in list_items(session, limit=args.limit, status=args.status)]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("no promises in the outbox")
        return 0
    print(f"{'id':>6} {'kind':<26} {'ticket':<18} {'channel':<9} {'due':<17} {'status':<9} sent")
    from bot.cli_visits import local_time

    for r in rows:
        due, sent = local_time(r["due"], settings), local_time(r["sent_at"], settings)
        print(f"{r['id']:>6} {r['kind']:<26} {str(r['ticket'] or '-'):<18} {r['channel']:<9} {due:<17} "
              f"{r['status']:<9} {sent}")
    return 0


def add_outbox_commands(sub) -> None:
    outbox = sub.add_parser("outbox", help="the bot's promises: the runner that sends them, and their list")
    cmds = outbox.add_subparsers(dest="command", required=True)
    run = cmds.add_parser("run", help="send what is due (keeps running; --once: one pass, then exit)")
    run.add_argument("--once", action="store_true", help="send what is due now (or at --now) and exit")
    run.add_argument("--now", help="with --once: the moment to judge by (ISO 8601; no offset = desk time zone)")
    run.set_defaults(func=cmd_outbox_run)
    lst = cmds.add_parser("list", help="promises, latest due first")
    lst.add_argument("--json", action="store_true")
    lst.add_argument("--status", choices=("pending", "claimed", "sent", "held", "failed", "cancelled"))
    lst.add_argument("--limit", type=int, default=200)
    lst.set_defaults(func=cmd_outbox_list)
