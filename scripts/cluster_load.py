"""`make cluster-load`: simulated customers through nginx against a cluster of its own (scripts/cluster.py), then
the records and the tracker store checked against what every customer saw.

Each customer runs the benchmark's scripted conversations (scripts/bench/conversations.py: complaints and repair
bookings, Chinese and English) one after another on fresh sender ids over REST, until the time is up (the
conversation in progress is finished). A message that gets no answer (a server gone, a 502) is sent again, at most
MAX_SENDS times; a booking whose window was taken meanwhile picks again. Checks, all from the database:

- lost messages: a message that never got a reply (zero allowed);
- tickets: every conversation that was told a ticket number has exactly that one ticket; none has two;
- double bookings: no engineer has two live visits at one time;
- bookings: every booking customer who was offered windows confirmed one within two tries (unless a message of the
  conversation reached the bot twice: a server that died after handling a message but before answering makes the
  customer send it again, and a "no" heard twice is a second rejection, which rightly changes the conversation; such
  conversations are counted apart, `conversations_heard_twice`);
- order: in the tracker store (Rasa's `events`), every conversation's messages are the ones sent, in the order sent
  (a message sent again after an error may be there twice), with non-decreasing timestamps;
- after `--kill-halfway` (one Rasa server and one action server killed with SIGKILL at half time): the same, and no
  conversation was told more than once that something went wrong (a customer told so says the message again).

Prints latency percentiles, throughput, CPU used per process and the checks; exits 1 if a check failed. All traffic
is to 127.0.0.1. Every run uses a fresh PostgreSQL database (dropped at the end) on the server of BOT_DATABASE_URL
(if PostgreSQL, else 127.0.0.1:5432) and Redis at BOT_REDIS_URL.

    python scripts/cluster_load.py [--customers 200] [--seconds 180] [--instances 2] [--kill-halfway]
    python scripts/cluster_load.py --compare --customers 50 --seconds 60    # 1 vs 2 instances
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import cluster  # noqa: E402  (scripts/cluster.py)
from bench import conversations as convs  # noqa: E402  (scripts/bench/)
from bench.load import percentile  # noqa: E402

MAX_SENDS = 4  # a message is sent at most this many times (the first + 3 after errors)
BOOKING_TRIES = 3  # confirmations attempted before a booking customer gives up (two must do)
SCRIPTS = {"zh-complaint": convs.ZH_COMPLAINT, "en-complaint": convs.EN_COMPLAINT,
           "zh-booking": convs.ZH_BOOKING, "en-booking": convs.EN_BOOKING}
TICKET_NUMBER = re.compile(r"SV-\d{8}-\d{4,}")


def _texts() -> dict[str, tuple[str, ...]]:
    from bot.texts import load_texts

    texts = load_texts()
    pick = lambda key: tuple(texts.get(key, lang) for lang in ("zh", "en"))  # noqa: E731
    return {"unavailable": pick("assistant_unavailable"), "taken": pick("visit_taken") + pick("visit_failed"),
            "no_window": pick("visit_no_window")}


@dataclass
class Conversation:
    sender: str
    script: str
    sent: list[str] = field(default_factory=list)  # every message as sent, resends included
    resent: list[str] = field(default_factory=list)  # the messages that had to be sent again
    lost: list[str] = field(default_factory=list)  # messages that never got a reply
    told_wrong: int = 0  # replies saying something went wrong (assistant_unavailable)
    tickets: list[str] = field(default_factory=list)  # ticket numbers the customer was told
    offered: bool = False  # booking: windows were offered
    booking_tries: int = 0
    booked: bool = False
    no_window: bool = False
    finished: bool = False
    last_reply: str = ""  # for the report of a failed check
    twice: bool = False  # set by check(): a message resent after an error reached the bot both times


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    replies: int = 0
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    conversations: list[Conversation] = field(default_factory=list)


class Customers:
    """N customers over one HTTP client; each runs scripted conversations until the deadline."""

    def __init__(self, url: str, run_id: str, texts: dict, timeout: float = 90):
        self.url = f"{url}/webhooks/rest/webhook"
        self.run_id = run_id
        self.texts = texts
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.stats = Stats()

    async def send(self, session: aiohttp.ClientSession, conv: Conversation, text: str) -> str | None:
        """Sends one message until it gets a reply; returns the reply text (None: lost)."""
        for attempt in range(MAX_SENDS):
            if attempt:
                conv.resent.append(text)
                await asyncio.sleep(0.5 * attempt)
            conv.sent.append(text)
            started = time.monotonic()
            try:
                async with session.post(self.url, json={"sender": conv.sender, "message": text}) as resp:
                    if resp.status != 200:
                        self.stats.errors[f"http {resp.status}"] += 1
                        continue
                    replies = await resp.json(content_type=None)
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                self.stats.errors[type(exc).__name__] += 1
                continue
            if not replies:
                self.stats.errors["empty reply"] += 1
                continue
            self.stats.latencies.append(time.monotonic() - started)
            self.stats.replies += 1
            reply = "\n".join(str(r.get("text") or "") for r in replies)
            if any(t in reply for t in self.texts["unavailable"]):
                conv.told_wrong += 1
                if conv.told_wrong == 1 and attempt + 1 < MAX_SENDS:
                    continue  # told once that something went wrong (a server died mid-turn): says it again
            for number in TICKET_NUMBER.findall(reply):
                if number not in conv.tickets:
                    conv.tickets.append(number)
            return reply
        conv.lost.append(text)
        return None

    async def converse(self, session: aiohttp.ClientSession, conv: Conversation) -> None:
        turns = SCRIPTS[conv.script]
        booking = conv.script.endswith("booking")
        for i, (text, expect) in enumerate(turns):
            if booking and expect == convs.BOOKED:  # the confirmation: pick again while the window was taken
                pick = turns[i - 1][0]
                reply = None
                while conv.booking_tries < BOOKING_TRIES:
                    conv.booking_tries += 1
                    reply = await self.send(session, conv, text)
                    if reply is None:
                        return
                    if not any(t in reply for t in self.texts["taken"]):
                        break
                    if await self.send(session, conv, pick) is None:
                        return
                conv.last_reply = (reply or "")[:200]  # the confirmation's answer, for the report
                conv.booked = bool(reply and TICKET_NUMBER.search(reply)
                                   and not any(t in reply for t in self.texts["taken"]))
                continue
            reply = await self.send(session, conv, text)
            if reply is None:
                return
            if booking and any(t in reply for t in self.texts["no_window"]):
                conv.no_window = True
                conv.finished = True
                return
            if booking and turns[i + 1:] and turns[i + 1][1] == convs.BOOKED:
                conv.offered = True
        conv.finished = True

    async def customer(self, session: aiohttp.ClientSession, index: int, deadline: float) -> None:
        names = list(SCRIPTS)
        n = 0
        while time.monotonic() < deadline:
            conv = Conversation(f"load-{self.run_id}-{index}-{n}", names[(index + n) % len(names)])
            self.stats.conversations.append(conv)
            await self.converse(session, conv)
            n += 1

    async def run(self, customers: int, seconds: float, halfway=None) -> float:
        """Runs the customers; `halfway` (a coroutine function) is awaited at half time. Returns the wall time."""
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        started = time.monotonic()
        async with aiohttp.ClientSession(connector=connector, timeout=self.timeout) as session:
            deadline = started + seconds
            tasks = [asyncio.create_task(self.customer(session, i, deadline)) for i in range(customers)]
            if halfway is not None:
                await asyncio.sleep(seconds / 2)
                await halfway()
            await asyncio.gather(*tasks)
        return time.monotonic() - started


# --- checks against the database -----------------------------------------------------------------------------------

def check(db_url: str, stats: Stats, kill_mode: bool) -> dict:
    """Every check as {name: list of problems} (empty lists: passed), plus counts."""
    import sqlalchemy as sa

    from bot.services.conversation import conversation_id

    convs_by_id = {conversation_id("rest", c.sender): c for c in stats.conversations}
    engine = sa.create_engine(db_url, future=True)
    problems: dict[str, list] = {name: [] for name in (
        "lost_messages", "duplicated_tickets", "missing_tickets", "double_bookings", "booking_over_two_tries",
        "events_out_of_order", "told_wrong_more_than_once", "resent_without_kill")}
    with engine.connect() as db:
        tickets = defaultdict(list)
        for number, conv_id in db.execute(sa.text("SELECT number, conversation_id FROM tickets "
                                                  "WHERE conversation_id LIKE :p"), {"p": "rest:load-%"}):
            if conv_id in convs_by_id:
                tickets[conv_id].append(number)
        doubles = db.execute(sa.text(
            "SELECT a.id, b.id FROM visits a JOIN visits b ON a.engineer_id = b.engineer_id AND a.id < b.id "
            "AND a.start < b.\"end\" AND b.start < a.\"end\" WHERE a.status = 'booked' AND b.status = 'booked'")).all()
        problems["double_bookings"] = [list(row) for row in doubles]
        events = defaultdict(list)
        rows = db.execute(sa.text("SELECT sender_id, type_name, timestamp, data FROM events WHERE sender_id LIKE :p "
                                  "ORDER BY id"), {"p": "rest:load-%"})
        for sender_id, type_name, stamp, data in rows:
            events[sender_id].append((type_name, stamp, data))
    engine.dispose()
    for conv_id, conv in convs_by_id.items():
        conv.twice = heard_twice(conv, sum(type_name == "user" for type_name, _, _ in events.get(conv_id, [])))
        problems["lost_messages"] += [(conv.sender, text) for text in conv.lost]
        stored = tickets.get(conv_id, [])
        if len(stored) > 1:
            problems["duplicated_tickets"].append((conv.sender, stored))
        for number in conv.tickets:
            if number not in stored:
                problems["missing_tickets"].append((conv.sender, number))
        if conv.finished and conv.offered and not conv.no_window and not conv.twice \
                and not (conv.booked and conv.booking_tries <= 2):
            problems["booking_over_two_tries"].append((conv.sender, conv.booking_tries, conv.last_reply))
        if conv.told_wrong > 1:
            problems["told_wrong_more_than_once"].append((conv.sender, conv.told_wrong))
        if conv.resent and not kill_mode:
            problems["resent_without_kill"].append((conv.sender, conv.resent))
        order = _order_problem(events.get(conv_id, []), conv)
        if order:
            problems["events_out_of_order"].append((conv.sender, order))
    return problems


def heard_twice(conv: Conversation, stored_user_messages: int) -> bool:
    """True when the tracker holds more user messages than the customer meant to send: a message sent again after
    an error (no answer, a 502, "something went wrong") had also been taken in the first time."""
    return bool(conv.resent) and stored_user_messages > len(conv.sent) - len(conv.resent)


def _order_problem(events: list[tuple], conv: Conversation) -> str | None:
    """None when the stored user messages are the ones answered, in order, and timestamps never go back."""
    last = 0.0
    said = []
    for type_name, stamp, data in events:
        if stamp is not None and stamp < last - 1e-6:
            return f"timestamp goes back at a {type_name} event"
        last = stamp if stamp is not None else last
        if type_name == "user":
            said.append(json.loads(data).get("text"))
    # The messages answered, in order: what was sent minus unanswered resends. A message that was resent may be
    # stored once or twice (the first try may have been handled before the server died).
    expected = list(conv.sent)
    i = 0
    for text in said:
        while i < len(expected) and expected[i] != text:
            if expected[i] not in conv.resent and expected[i] not in conv.lost:
                return f"message {expected[i]!r} missing from the tracker"
            i += 1
        if i == len(expected):
            return f"message {text!r} stored that was not sent (or out of order)"
        i += 1
    rest = [t for t in expected[i:] if t not in conv.resent and t not in conv.lost]
    return f"messages {rest!r} missing from the tracker" if rest else None


# --- one run -------------------------------------------------------------------------------------------------------

def _postgres_admin_url() -> str:
    return cluster.database_url(os.environ)


def create_database(admin_url: str) -> str:
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    name = f"cload_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", future=True)
    with engine.connect() as db:
        db.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", future=True)
    with engine.connect() as db:
        db.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def _cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its reaped children (/proc/<pid>/stat utime+stime+cutime+cstime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> tuple[float, float]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK"), sum(fields) / os.sysconf("SC_CLK_TCK")


def _default_port() -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 8080))
            return 8080
        except OSError:
            return 0


def run(customers: int = 200, seconds: float = 180, instances: int = 2, kill_halfway: bool = False,
        directory: Path | None = None, port: int | None = None, keep: bool = False, log=print, on_up=None) -> dict:
    """Starts a cluster on a fresh database, runs the customers, checks, stops it. Returns the report.
    `on_up(layout)`, if given, runs once the cluster is up, before the customers (its result: report["on_up"])."""
    directory = (directory or ROOT / "var" / "cluster-load").resolve()
    admin = _postgres_admin_url()
    db_url = create_database(admin)
    run_id = uuid.uuid4().hex[:6]
    env = dict(os.environ, BOT_DATABASE_URL=db_url, BOT_RATE_PER_ADDRESS="0")  # every customer is 127.0.0.1
    env.pop("BOT_TRACKER_STORE_URL", None)
    env.pop("BOT_VAR_DIR", None)
    report: dict = {"customers": customers, "seconds": seconds, "instances": instances, "kill_halfway": kill_halfway}
    try:
        log(f"starting a cluster of {instances} in {directory} (database {db_url.rsplit('/', 1)[1]})")
        layout = cluster.up(directory, instances=instances, port=_default_port() if port is None else port, base=0,
                            env=env)
        log(f"cluster up on {layout.url}; {customers} customers for {seconds:.0f}s")
        if on_up is not None:
            report["on_up"] = on_up(layout)
        load = Customers(layout.url, run_id, _texts())
        cpu0 = {name: _cpu_seconds(p["pid"]) for name, p in layout.processes.items()}
        busy0, total0 = _machine_busy()
        killed: list[str] = []

        async def halfway() -> None:
            names = ["rasa-2", "actions-2"] if instances > 1 else []
            killed.extend(cluster.kill(directory, names))
            log(f"killed {', '.join(killed) or 'nothing'} at half time")

        wall = asyncio.run(load.run(customers, seconds, halfway if kill_halfway else None))
        busy1, total1 = _machine_busy()
        cpu = {name: round(_cpu_seconds(p["pid"]) - cpu0[name], 1) for name, p in layout.processes.items()
               if name not in killed}
        stats = load.stats
        lat = stats.latencies
        problems = check(db_url, stats, kill_halfway)
        convs_done = [c for c in stats.conversations if c.finished]
        booking = [c for c in stats.conversations if c.script.endswith("booking") and c.offered and not c.twice]
        report.update({
            "wall_s": round(wall, 1), "messages_answered": stats.replies,
            "throughput_msg_s": round(stats.replies / wall, 1) if wall else 0,
            "latency_ms": {f"p{q}": round(percentile(lat, q) * 1000, 1) if lat else None for q in (50, 90, 95, 99)}
            | {"max": round(max(lat) * 1000, 1) if lat else None},
            "conversations": len(stats.conversations), "conversations_finished": len(convs_done),
            "tickets_told": sum(len(c.tickets) for c in stats.conversations),
            "bookings_offered": len(booking), "bookings_confirmed": sum(c.booked for c in booking),
            "booking_tries": {n: sum(c.booking_tries == n for c in booking) for n in range(1, BOOKING_TRIES + 1)},
            "no_window_left": sum(c.no_window for c in stats.conversations),
            "messages_resent": sum(len(c.resent) for c in stats.conversations),
            "conversations_heard_twice": sum(c.twice for c in stats.conversations),
            "told_something_went_wrong": sum(c.told_wrong for c in stats.conversations),
            "send_errors": dict(stats.errors), "killed": killed,
            "cpu_seconds": cpu, "machine_busy": round((busy1 - busy0) / max(total1 - total0, 1e-9), 3),
            "cores": os.cpu_count(),
            "problems": {k: v[:10] for k, v in problems.items()},
            "problem_counts": {k: len(v) for k, v in problems.items()},
        })
        report["passed"] = not any(problems.values())
    finally:
        cluster.down(directory)
        if not keep:
            drop_database(admin, db_url)
    return report


def print_report(report: dict) -> None:
    lat = report.get("latency_ms", {})
    print(f"""
instances {report['instances']}, {report['customers']} customers, {report['seconds']:.0f}s\
{', one Rasa and one action server killed at half time' if report['kill_halfway'] else ''}
  answered {report.get('messages_answered')} messages in {report.get('wall_s')}s: {report.get('throughput_msg_s')} msg/s
  latency p50 {lat.get('p50')} ms, p90 {lat.get('p90')}, p95 {lat.get('p95')}, p99 {lat.get('p99')}, max {lat.get('max')}
  conversations {report.get('conversations')} ({report.get('conversations_finished')} finished), tickets told \
{report.get('tickets_told')}; bookings offered {report.get('bookings_offered')}, confirmed \
{report.get('bookings_confirmed')} (tries: {report.get('booking_tries')}), no window left {report.get('no_window_left')}
  resent {report.get('messages_resent')} (conversations where a message reached the bot twice: \
{report.get('conversations_heard_twice')}), told something went wrong {report.get('told_something_went_wrong')}, \
send errors {report.get('send_errors')}
  CPU seconds {report.get('cpu_seconds')}; machine busy {report.get('machine_busy')} of {report.get('cores')} cores
  checks: {report.get('problem_counts')}
  {'PASSED' if report.get('passed') else 'FAILED: ' + json.dumps(report.get('problems'), ensure_ascii=False)[:2000]}""")


def compare(customers: int, seconds: float, log=print, **kwargs) -> dict:
    """The same load on 1 instance, then on 2: throughput ratio (`make bench`'s cluster section)."""
    runs = [run(customers, seconds, n, False, log=log, **kwargs) for n in (1, 2)]
    ratio = runs[1]["throughput_msg_s"] / max(runs[0]["throughput_msg_s"], 1e-9)
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "customers": customers, "seconds": seconds,
            "cores": os.cpu_count(), "runs": runs, "ratio": round(ratio, 2)}


SECTION_BEGIN = "<!-- cluster:begin (generated by `make bench` and scripts/cluster_load.py --compare --write) -->"
SECTION_END = "<!-- cluster:end -->"


def markdown(result: dict) -> str:
    rows = ["| instances | msg/s | p50 ms | p95 ms | p99 ms | CPU s (Rasa / actions, per process) | machine busy | "
            "checks |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["runs"]:
        cpu = r.get("cpu_seconds", {})
        rasa = " + ".join(str(v) for k, v in cpu.items() if k.startswith("rasa"))
        actions = " + ".join(str(v) for k, v in cpu.items() if k.startswith("actions"))
        lat = r.get("latency_ms", {})
        bad = {k: v for k, v in r.get("problem_counts", {}).items() if v}
        rows.append(f"| {r['instances']} | {r.get('throughput_msg_s')} | {lat.get('p50')} | {lat.get('p95')} | "
                    f"{lat.get('p99')} | {rasa} / {actions} | {r.get('machine_busy')} of {r.get('cores')} cores | "
                    f"{'all passed' if not bad else bad} |")
    return (f"{SECTION_BEGIN}\n### Cluster: 1 vs 2 instances (measured {result['date']})\n\n"
            f"{result['customers']} simulated customers for {result['seconds']:.0f} s through nginx "
            f"(scripts/cluster_load.py; complaints and bookings, zh and en, over REST), on a fresh PostgreSQL "
            f"database with Rasa's Redis lock store. **2 instances / 1 instance: {result['ratio']}x throughput.**\n\n"
            + "\n".join(rows) + f"\n{SECTION_END}")


def write_section(result: dict, path: Path) -> None:
    """Puts the cluster section into docs/PERFORMANCE.md (replacing the previous one, else at the end)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = markdown(result)
    if SECTION_BEGIN in text and SECTION_END in text:
        head, rest = text.split(SECTION_BEGIN, 1)
        text = head + block + rest.split(SECTION_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--instances", type=int, choices=(1, 2), default=2)
    parser.add_argument("--kill-halfway", action="store_true")
    parser.add_argument("--compare", action="store_true", help="1 instance, then 2: the throughput ratio")
    parser.add_argument("--port", type=int, help="nginx's port (default 8080 if free, else any free one)")
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--json", type=Path, help="write the report(s) here")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--write", type=Path, nargs="?", const=ROOT / "docs" / "PERFORMANCE.md",
                        help="with --compare: put the figures into docs/PERFORMANCE.md (or this file)")
    args = parser.parse_args(argv)
    log = lambda msg: print(f"[cluster-load {time.strftime('%H:%M:%S')}] {msg}", flush=True)  # noqa: E731
    if args.compare:
        result = compare(args.customers, args.seconds, log, directory=args.dir, port=args.port,
                         keep=args.keep_database)
        for r in result["runs"]:
            print_report(r)
        print(f"\n2 instances / 1 instance: {result['ratio']:.2f}x throughput")
        passed = all(r["passed"] for r in result["runs"])
        if args.write:
            write_section(result, args.write)
    else:
        result = run(args.customers, args.seconds, args.instances, args.kill_halfway, args.dir, args.port,
                     args.keep_database, log)
        print_report(result)
        passed = result["passed"]
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
