"""Is the tracker cache (bot/tracker_store.py) right, and worth having, when two instances share the conversations?

Two CachingSQLTrackerStore instances ("A" and "B", as two Rasa servers would have) on the same PostgreSQL schema,
and Rasa's Redis lock store. Each turn of each conversation goes to A or B at random (as a load balancer without
sticky sessions sends them) and runs as Rasa runs it: lock, retrieve, add the turn's events, save, unlock.
Afterwards every conversation, read back by Rasa's own SQLTrackerStore, must hold every turn once and in order.
Run with the cache on (`cache_size` 200) and off (0):

    .venv/bin/python scripts/cluster_cache.py [--conversations 40] [--turns 12] [--concurrency 8]

Prints per setting: turns/s, p50/p95 of a turn, how many retrieves read the stored events (full_reads), and whether every
conversation is intact. Needs PostgreSQL (BOT_TEST_POSTGRES_URL) and Redis (BOT_REDIS_URL); writes to a schema of
its own and to Redis keys under a prefix of its own, both removed afterwards.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def turn_events(sender: str, i: int) -> list:
    from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered

    return [UserUttered(f"{sender} message {i}", {"name": "check_status", "confidence": 0.9}, [], None,
                        input_channel="rest"),
            ActionExecuted("action_flow_turn"), BotUttered(f"reply {i}"), SlotSet("flow_state", {"n": i}),
            ActionExecuted("action_listen")]


async def run(cache_size: int, args, url: str, schema: str, redis_url: str) -> dict:
    from rasa.core.lock_store import LockStore
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.utils.endpoints import EndpointConfig

    from bot.cluster import cluster_endpoints
    from bot.tracker_store import CachingSQLTrackerStore

    os.environ["POSTGRESQL_SCHEMA"] = schema
    domain = Domain.load(str(ROOT / "domain.yml"))
    prefix = "cc" + uuid.uuid4().hex[:10]
    lock_config = cluster_endpoints({}, {"BOT_PROFILE": "cluster", "BOT_REDIS_URL": redis_url,
                                         "BOT_REDIS_PREFIX": prefix})["lock_store"]
    instances = [CachingSQLTrackerStore(domain, url=url, cache_size=cache_size) for _ in range(2)]
    locks = [LockStore.create(EndpointConfig(**lock_config)) for _ in range(2)]
    reads = [0]  # retrieves that read and replayed the stored events (the rest the cache answered)
    original = SQLTrackerStore.retrieve

    async def counted(self, sender_id):
        reads[0] += 1
        return await original(self, sender_id)

    SQLTrackerStore.retrieve = counted
    senders = [f"cc-{cache_size}-{uuid.uuid4().hex[:8]}" for _ in range(args.conversations)]
    work = [(s, i) for i in range(args.turns) for s in senders]  # turn i of every conversation, then i+1
    random.Random(7).shuffle(work)
    work.sort(key=lambda w: w[1])
    durations: list[float] = []
    queue: asyncio.Queue = asyncio.Queue()
    for item in work:
        queue.put_nowait(item)
    rng = random.Random(11)

    async def worker() -> None:
        while not queue.empty():
            sender, i = queue.get_nowait()
            k = rng.randrange(2)
            store, lock = instances[k], locks[k]
            start = time.perf_counter()
            async with lock.lock(sender, wait_time_in_seconds=0.01):
                tracker = await store.get_or_create_tracker(sender)
                for event in turn_events(sender, i):
                    tracker.update(event)
                await store.save(tracker)
            durations.append(time.perf_counter() - start)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    finally:
        SQLTrackerStore.retrieve = original
    elapsed = time.perf_counter() - started
    plain = SQLTrackerStore(domain, host=url)
    intact = 0
    for sender in senders:
        tracker = await plain.retrieve(sender)
        said = [e.text for e in tracker.events if e.type_name == "user"]
        intact += said == [f"{sender} message {i}" for i in range(args.turns)]
    for store in instances + [plain]:
        store.engine.dispose()
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    durations.sort()
    return {"cache_size": cache_size, "turns": len(durations), "seconds": round(elapsed, 2),
            "turns_per_s": round(len(durations) / elapsed, 1),
            "p50_ms": round(statistics.median(durations) * 1000, 2),
            "p95_ms": round(durations[int(len(durations) * 0.95) - 1] * 1000, 2),
            "full_reads": reads[0], "intact": f"{intact}/{len(senders)}"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=40)
    parser.add_argument("--turns", type=int, default=12)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    from sqlalchemy import create_engine, text

    url = os.environ.get("BOT_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    redis_url = os.environ.get("BOT_REDIS_URL", "redis://127.0.0.1:6379/0")
    schema = f"cc_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, future=True)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        results = [asyncio.run(run(size, args, url, schema, redis_url)) for size in (200, 0, 200, 0)]
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
    for result in results:
        print(result)
    return 0 if all(r["intact"].split("/")[0] == r["intact"].split("/")[1] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
