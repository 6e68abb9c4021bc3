"""What every channel does with a customer's message before Rasa sees it (issue 18, "hostile input survived"):
cut it to a known size (the NLU never sees more than BOT_MAX_MESSAGE_CHARS characters), and limit how fast one
sender and one client address may write.

The rate limits are per process and in memory (a sliding window per key): they protect this server's event loop
and NLU, so they count what this process handles. Ticket look-up limits, which must hold across instances, are in
the database (bot/services/ownership.py).
"""
from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

MAX_MESSAGE_CHARS = 4000
WINDOW_SECONDS = 60.0
KEYS_KEPT = 50_000  # senders and addresses remembered; the least recently seen are forgotten first


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    try:
        return int(raw) if raw not in (None, "") else default
    except ValueError as exc:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from exc


@dataclass(frozen=True)
class GuardConfig:
    max_chars: int = MAX_MESSAGE_CHARS
    per_sender: int = 30  # messages a minute from one sender (0: no limit)
    per_address: int = 300  # messages a minute from one client address (0: no limit)

    @classmethod
    def from_env(cls) -> "GuardConfig":
        return cls(max_chars=max(1, _int_env("BOT_MAX_MESSAGE_CHARS", MAX_MESSAGE_CHARS)),
                   per_sender=_int_env("BOT_RATE_PER_SENDER", 30),
                   per_address=_int_env("BOT_RATE_PER_ADDRESS", 300))


def cut(text: str, limit: int) -> tuple[str, bool]:
    """At most `limit` characters; True when something was cut."""
    if len(text) <= limit:
        return text, False
    return text[:limit], True


class RateLimiter:
    """Sliding one-minute windows per key; thread-safe (the channels call it from the event loop and threads)."""

    def __init__(self, per_minute: int, window: float = WINDOW_SECONDS, clock=time.monotonic):
        self.per_minute = per_minute
        self.window = window
        self.clock = clock
        self._hits: OrderedDict[str, deque] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, key: str) -> float:
        """0 when `key` may go on (and the hit is counted), else the seconds until it may."""
        if self.per_minute <= 0 or not key:
            return 0.0
        now = self.clock()
        with self._lock:
            hits = self._hits.pop(key, None) or deque()
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            self._hits[key] = hits
            while len(self._hits) > KEYS_KEPT:
                self._hits.popitem(last=False)
            if len(hits) >= self.per_minute:
                return max(hits[0] + self.window - now, 0.1)
            hits.append(now)
            return 0.0


@dataclass
class Verdict:
    text: str
    cut: bool = False
    wait_seconds: float = 0.0

    @property
    def refused(self) -> bool:
        return self.wait_seconds > 0


class Guard:
    """One per channel: `admit(text, sender=..., address=...)` before a message goes to Rasa."""

    def __init__(self, config: GuardConfig | None = None):
        self.config = config or GuardConfig.from_env()
        self.senders = RateLimiter(self.config.per_sender)
        self.addresses = RateLimiter(self.config.per_address)

    def admit(self, text: str, *, sender: str, address: str | None) -> Verdict:
        wait = self.senders.check(sender) or (self.addresses.check(address) if address else 0.0)
        if wait:
            return Verdict("", wait_seconds=wait)
        text, was_cut = cut(text if isinstance(text, str) else str(text), self.config.max_chars)
        return Verdict(text, cut=was_cut)

    def notices(self, verdict: Verdict, language: str) -> list[str]:
        """What the customer is told besides the bot's answer (zh/en)."""
        from bot.texts import load_texts

        texts = load_texts()
        if verdict.refused:
            return [texts.get("rate_limited", language, seconds=int(verdict.wait_seconds) + 1)]
        if verdict.cut:
            return [texts.get("message_cut", language, limit=self.config.max_chars)]
        return []


def guess_language(text: str, hint: str | None = None) -> str:
    """zh or en for a notice sent before the NLU has read the message: the channel's hint, else whether the start of
    the text has Chinese characters."""
    if hint in ("zh", "en"):
        return hint
    sample = (text or "")[:200]
    if any("\u4e00" <= ch <= "\u9fff" for ch in sample):
        return "zh"
    return "en" if any(ch.isascii() and ch.isalpha() for ch in sample) else "zh"
