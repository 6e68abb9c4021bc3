"""Load over Rasa's REST channel (POST /webhooks/rest/webhook), to 127.0.0.1 only. Every loop is bounded both in
messages and in seconds."""
from __future__ import annotations

import asyncio
import itertools
import math
import statistics
import time

import aiohttp

from bench.conversations import Turn


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def summary(latencies: list[float]) -> dict:
    return {"n": len(latencies), "p50_ms": ms(percentile(latencies, 50)), "p95_ms": ms(percentile(latencies, 95)),
            "p99_ms": ms(percentile(latencies, 99)), "mean_ms": ms(statistics.fmean(latencies) if latencies else None),
            "max_ms": ms(max(latencies) if latencies else None)}


def _matches(replies: list[dict], expect: tuple[str, ...]) -> bool:
    if not replies or not any(r.get("text") or r.get("buttons") or r.get("image") for r in replies):
        return False
    if not expect:
        return True
    text = "\n".join(str(r.get("text") or "") for r in replies).lower()
    return any(e.lower() in text for e in expect)


class Client:
    def __init__(self, base_url: str, timeout: float = 60):
        self.url = f"{base_url}/webhooks/rest/webhook"
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "Client":
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200), timeout=self.timeout)
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.session is not None
        await self.session.close()

    async def send(self, sender: str, text: str) -> tuple[float, list[dict] | None, str | None]:
        """(seconds, replies or None, error or None)."""
        assert self.session is not None
        started = time.perf_counter()
        try:
            async with self.session.post(self.url, json={"sender": sender, "message": text}) as resp:
                body = await resp.json(content_type=None)
                elapsed = time.perf_counter() - started
                if resp.status != 200:
                    return elapsed, None, f"HTTP {resp.status}"
                return elapsed, body, None
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            return time.perf_counter() - started, None, exc.__class__.__name__


async def conversations(base_url: str, scripts: list[list[Turn]], concurrency: int, max_messages: int,
                        max_seconds: float, tag: str) -> dict:
    """`concurrency` simultaneous conversations, each worker starting a new conversation (new sender id) with the
    next script when its previous one ends; stops at `max_messages` sent or `max_seconds`."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    off_script: list[str] = []
    sent = 0
    conversations_done = 0
    deadline = time.monotonic() + max_seconds

    async with Client(base_url) as client:
        async def worker(w: int) -> None:
            nonlocal sent, conversations_done
            for k in itertools.count():
                script = scripts[(w + k) % len(scripts)]
                sender = f"bench-{tag}-w{w}-c{k}"
                for text, expect in script:
                    if sent >= max_messages or time.monotonic() >= deadline:
                        return
                    sent += 1
                    elapsed, replies, error = await client.send(sender, text)
                    if error:
                        errors[error] = errors.get(error, 0) + 1
                        break  # the conversation is broken; start a new one
                    latencies.append(elapsed)
                    if not _matches(replies, expect) and len(off_script) < 1000:
                        off_script.append(f"{sender}: {text!r} -> {' | '.join(str(r.get('text'))[:80] for r in replies)!r}")
                else:
                    conversations_done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        wall = time.perf_counter() - started

    result = summary(latencies)
    result.update(concurrency=concurrency, wall_s=round(wall, 2),
                  throughput_msg_s=round(len(latencies) / wall, 2) if wall else None,
                  conversations_completed=conversations_done, errors=errors, off_script=len(off_script),
                  off_script_examples=off_script[:5], bounded_by=("messages" if sent >= max_messages else "time"))
    return result


async def long_conversation(base_url: str, turns: list[Turn], max_seconds: float, tag: str) -> dict:
    """One conversation of len(turns) turns; the latency of every turn."""
    per_turn: list[float | None] = []
    off_script: list[str] = []
    errors = 0
    deadline = time.monotonic() + max_seconds
    sender = f"bench-{tag}-long"
    async with Client(base_url) as client:
        for text, expect in turns:
            if time.monotonic() >= deadline:
                break
            elapsed, replies, error = await client.send(sender, text)
            if error:
                errors += 1
                per_turn.append(None)
                continue
            per_turn.append(elapsed)
            if not _matches(replies, expect) and len(off_script) < 50:
                off_script.append(f"turn {len(per_turn)}: {text!r} -> "
                                  f"{' | '.join(str(r.get('text'))[:80] for r in replies)!r}")
    return {"turns": len(per_turn), "errors": errors, "per_turn_ms": [ms(x) for x in per_turn],
            "off_script": len(off_script), "off_script_examples": off_script[:5]}


def window_median_ms(per_turn_ms: list[float | None], first: int, last: int) -> float | None:
    """Median latency of turns first..last (1-based, inclusive)."""
    values = [v for v in per_turn_ms[first - 1:last] if v is not None]
    return round(statistics.median(values), 1) if values else None
