"""Many customers booking a home visit at the same moment over Rasa's REST channel (issue 17, fair booking): each runs
the bench's booking conversation (scripts/bench/conversations.py, Chinese and English in turn) up to the window
offer, picks the first window offered and confirms, and picks the first again whenever the bot says the window was
taken. Prints the tries (windows picked) per customer and the conflicts ("taken" answers); with --db-url, also what
the database holds: booked visits per customer and windows over capacity (double bookings).

    .venv/bin/python scripts/booking_load.py --url http://127.0.0.1:5005 [--customers 40] [--db-url URL] [--json]

Loopback only, bounded in messages (MAX_TRIES picks per customer) and in seconds (--max-seconds). Exit status 0 when
every customer booked within two tries and no window is over capacity, 1 otherwise.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from bench.conversations import EN_BOOKING, ZH_BOOKING  # noqa: E402
from bench.load import Client, summary  # noqa: E402

MAX_TRIES = 4
BOOKED = ("已为您预约好", "All booked")
TAKEN = ("约走", "was just taken")
# The bench's booking conversations up to the offer of windows; then "1" picks, the last line confirms.
SCRIPTS = {"zh": ([t for t, _ in ZH_BOOKING[:9]], "确认"), "en": ([t for t, _ in EN_BOOKING[:9]], "yes")}


def _text(replies: list[dict] | None) -> str:
    return "\n".join(str(r.get("text") or "") for r in replies or [])


async def _send(client: Client, sender: str, text: str, stats: dict) -> str | None:
    elapsed, replies, error = await client.send(sender, text)
    stats["latencies"].append(elapsed)
    if error:
        stats["errors"][error] = stats["errors"].get(error, 0) + 1
        return None
    return _text(replies)


async def customer(client: Client, sender: str, lang: str, stats: dict) -> dict:
    """One customer: the conversation to the offer, then pick-and-confirm until booked or MAX_TRIES."""
    lines, confirm = SCRIPTS[lang]
    result = {"sender": sender, "language": lang, "tries": 0, "conflicts": 0, "booked": False, "last": ""}
    for line in lines:
        if await _send(client, sender, line, stats) is None:
            return result
    while result["tries"] < MAX_TRIES:
        result["tries"] += 1
        reply = await _send(client, sender, "1", stats)
        if reply is not None and any(t in reply for t in TAKEN):  # the picked window went meanwhile
            result["conflicts"] += 1
            continue
        reply = await _send(client, sender, confirm, stats) if reply is not None else None
        result["last"] = (reply or "")[:120]
        if reply is None:
            return result
        if any(b in reply for b in BOOKED):
            result["booked"] = True
            return result
        if not any(t in reply for t in TAKEN):
            return result  # off script: reported through "last"
        result["conflicts"] += 1
    return result


def check_database(db_url: str, senders: list[str]) -> dict:
    """Booked visits of these customers' conversations, and (engineer, start) pairs booked more than once."""
    from sqlalchemy import create_engine, func, select

    from bot.services.conversation import conversation_id
    from bot.store.models import Ticket, Visit

    engine = create_engine(db_url, future=True)
    conversations = [conversation_id("rest", s) for s in senders]
    with engine.connect() as conn:
        doubles = conn.execute(select(Visit.engineer_id, Visit.start).where(Visit.status == "booked")
                               .group_by(Visit.engineer_id, Visit.start).having(func.count(Visit.id) > 1)).all()
        per = dict(conn.execute(select(Ticket.conversation_id, func.count(Visit.id)).join(Visit, Visit.ticket_id == Ticket.id)
                                .where(Visit.status == "booked", Ticket.conversation_id.in_(conversations))
                                .group_by(Ticket.conversation_id)).all())
    engine.dispose()
    return {"customers_with_one_visit": sum(per.get(c) == 1 for c in conversations),
            "customers_with_several_visits": sum((per.get(c) or 0) > 1 for c in conversations),
            "double_bookings": len(doubles)}


async def run(url: str, customers: int, tag: str, max_seconds: float) -> dict:
    stats: dict = {"latencies": [], "errors": {}}
    senders = [f"booking-{tag}-{i}" for i in range(customers)]
    started = time.perf_counter()
    async with Client(url) as client:
        results = await asyncio.wait_for(asyncio.gather(*(
            customer(client, s, "zh" if i % 2 == 0 else "en", stats) for i, s in enumerate(senders))), max_seconds)
    wall = time.perf_counter() - started
    booked = [r for r in results if r["booked"]]
    return {"customers": customers, "booked": len(booked),
            "booked_within_two_tries": sum(r["tries"] <= 2 for r in booked),
            "tries": {str(n): sum(r["tries"] == n for r in booked) for n in range(1, MAX_TRIES + 1)},
            "conflicts": sum(r["conflicts"] for r in results), "wall_s": round(wall, 2),
            "latency": summary(stats["latencies"]), "errors": stats["errors"], "per_customer": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the Rasa server, e.g. http://127.0.0.1:5005 (loopback only)")
    parser.add_argument("--customers", type=int, default=40)
    parser.add_argument("--db-url", help="the records' database, to count visits and double bookings")
    parser.add_argument("--tag", default=str(int(time.time())), help="makes the sender ids of this run unique")
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    args = parser.parse_args(argv)
    if urlparse(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("--url must be a loopback address")
    if not 1 <= args.customers <= 1000:
        parser.error("--customers: 1..1000")
    result = asyncio.run(run(args.url.rstrip("/"), args.customers, args.tag, args.max_seconds))
    if args.db_url:
        result["database"] = check_database(args.db_url, [r["sender"] for r in result["per_customer"]])
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
    else:
        for r in result["per_customer"]:
            print(f"{r['sender']:<28} {r['language']}  tries {r['tries']}  conflicts {r['conflicts']}  "
                  f"{'booked' if r['booked'] else 'NOT booked: ' + r['last']}")
        print(f"{result['booked']}/{result['customers']} booked, {result['booked_within_two_tries']} within two tries, "
              f"tries {result['tries']}, {result['conflicts']} conflicts, {result['wall_s']} s, "
              f"p50 {result['latency']['p50_ms']} ms, p95 {result['latency']['p95_ms']} ms, errors {result['errors']}")
        if "database" in result:
            print("database:", json.dumps(result["database"]))
    ok = result["booked_within_two_tries"] == args.customers and not result.get("database", {}).get("double_bookings")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
