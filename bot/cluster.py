"""The cluster profile: what lets several Rasa servers, action servers and outbox runners share one service desk.

Chosen by the environment (`profile_of`): BOT_PROFILE=cluster, or BOT_REDIS_URL set together with a PostgreSQL
BOT_DATABASE_URL (BOT_PROFILE=single turns it off whatever is set). In the cluster profile
- Rasa's Redis lock store orders each conversation's turns across instances (`cluster_endpoints` writes an
  endpoints file with `lock_store: type: redis` from BOT_REDIS_URL);
- the web chat's socket.io server uses python-socketio's AsyncRedisManager, so an emit to a room reaches the
  widget on whichever instance it is connected to (`socketio_manager`);
- Telegram's update_id is de-duplicated in Redis, not per process (`OnceOnly`);
- attachments go to the database (bot/services/attachments.py, BOT_ATTACHMENTS);
- logs are JSON lines on stdout (bot/observability.py).
Every Redis key this project writes starts with BOT_REDIS_PREFIX (letters and digits, default "bot"), so that
tests and deployments sharing a Redis server do not meet.
"""
from __future__ import annotations

import logging
import os
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
PREFIX_RE = re.compile(r"^[A-Za-z0-9]{1,32}$")  # Rasa's Redis lock store takes only an alphanumeric prefix


@dataclass(frozen=True)
class Profile:
    name: str  # "cluster" or "single"
    redis_url: str
    prefix: str

    @property
    def cluster(self) -> bool:
        return self.name == "cluster"


def profile_of(env: Optional[Mapping[str, str]] = None) -> Profile:
    env = os.environ if env is None else env
    chosen = (env.get("BOT_PROFILE") or "").strip().lower()
    if chosen not in ("", "cluster", "single"):
        raise SystemExit(f"BOT_PROFILE must be 'cluster' or 'single', not {chosen!r}")
    if not chosen:
        database = env.get("BOT_DATABASE_URL") or ""
        chosen = "cluster" if env.get("BOT_REDIS_URL") and database.startswith("postgresql") else "single"
    prefix = (env.get("BOT_REDIS_PREFIX") or "bot").strip()
    if not PREFIX_RE.match(prefix):
        raise SystemExit(f"BOT_REDIS_PREFIX must be 1-32 letters or digits, not {prefix!r}")
    return Profile(chosen, (env.get("BOT_REDIS_URL") or DEFAULT_REDIS_URL).strip(), prefix)


def redis_options(url: str) -> dict:
    """Rasa's RedisLockStore options (host, port, db, username, password, use_ssl) from a redis:// URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise SystemExit(f"BOT_REDIS_URL must be a redis:// or rediss:// URL, not {parts.scheme or url!r}")
    path = parts.path.strip("/")
    options: dict[str, Any] = {"host": parts.hostname or "127.0.0.1", "port": parts.port or 6379,
                               "db": int(path) if path.isdigit() else 0}
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.password:
        options["password"] = unquote(parts.password)
    if parts.scheme == "rediss":
        options["use_ssl"] = True
    return options


# ---------------------------------------------------------------------------------------------- endpoints
def cluster_endpoints(base: dict, env: Optional[Mapping[str, str]] = None) -> dict:
    """The endpoints of `base` (endpoints.yml as read, ${VAR}s left for Rasa to fill) for an instance of the
    cluster: Rasa's Redis lock store on BOT_REDIS_URL, the action server at BOT_ACTIONS_URL (if set) and the tracker
    store's cache size from BOT_TRACKER_CACHE (if set; 0 switches the cache off, docs/DEPLOY.md)."""
    env = os.environ if env is None else env
    profile = profile_of(env)
    endpoints = dict(base or {})
    options = redis_options(profile.redis_url)
    # Rasa hands a Redis lock store its `url` as the host (rasa/core/lock_store.py)
    endpoints["lock_store"] = {"type": "redis", "url": options.pop("host"), **options, "key_prefix": profile.prefix}
    if env.get("BOT_ACTIONS_URL"):
        endpoints["action_endpoint"] = {**(endpoints.get("action_endpoint") or {}), "url": env["BOT_ACTIONS_URL"]}
    cache = env.get("BOT_TRACKER_CACHE")
    if cache not in (None, ""):
        if not str(cache).isdigit():
            raise SystemExit(f"BOT_TRACKER_CACHE must be a whole number (0: no cache), not {cache!r}")
        endpoints["tracker_store"] = {**(endpoints.get("tracker_store") or {}), "cache_size": int(cache)}
    return endpoints


def write_cluster_endpoints(base_path: Path, out_path: Path, env: Optional[Mapping[str, str]] = None) -> Path:
    import yaml

    base = yaml.safe_load(Path(base_path).read_text(encoding="utf-8")) or {}
    endpoints = cluster_endpoints(base, env)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    header = ("# Written by `python -m bot cluster endpoints` from %s for the cluster profile (bot/cluster.py);\n"
              "# edit the source, not this file.\n" % Path(base_path).name)
    partial = out_path.with_name(out_path.name + ".part")
    # Written with mode 600: it may hold the Redis password.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(header + yaml.safe_dump(endpoints, sort_keys=False, allow_unicode=True))
    os.replace(partial, out_path)
    return out_path


# ---------------------------------------------------------------------------------------------- socket.io
def socketio_manager(env: Optional[Mapping[str, str]] = None):
    """python-socketio's AsyncRedisManager on BOT_REDIS_URL in the cluster profile (one pub/sub channel per
    deployment, named after BOT_REDIS_PREFIX), else None (socket.io keeps its rooms in this process)."""
    profile = profile_of(env)
    if not profile.cluster:
        return None
    from socketio import AsyncRedisManager

    return AsyncRedisManager(profile.redis_url, channel=f"{profile.prefix}:socketio")


# ---------------------------------------------------------------------------------------------- once only
NEW, BUSY, DONE = "new", "busy", "done"


class OnceOnly:
    """Handles a redelivered item (a Telegram update_id) once across every process sharing the Redis server, or
    once in this process when there is none (single profile).

    `await claim(key)`: NEW for the first caller, who handles it and then calls `await done(key)`; DONE once it has
    been handled (drop it); BUSY while another instance is handling it — answer so that the sender delivers it again
    later (Telegram retries anything but a 2xx). A claim lasts `claim_seconds`: if the instance handling it dies,
    the next delivery after that is handled. When Redis cannot be reached, the key counts as new (handled rather
    than lost) and a warning is logged."""

    def __init__(self, scope: str, *, ttl_seconds: int = 24 * 3600, claim_seconds: int = 120, memory: int = 10_000,
                 env: Optional[Mapping[str, str]] = None):
        profile = profile_of(env)
        self.scope = scope
        self.ttl = ttl_seconds
        self.claim_seconds = claim_seconds
        self.prefix = f"{profile.prefix}:once:{scope}:"
        self._url = profile.redis_url if profile.cluster else None
        self._redis = None
        self._memory: "OrderedDict[str, tuple[str, float]]" = OrderedDict()  # key -> (state, until)
        self._memory_size = memory

    @property
    def shared(self) -> bool:
        return self._url is not None

    def _client(self):
        if self._redis is None:
            import redis.asyncio as aioredis

            self._redis = aioredis.Redis.from_url(self._url, socket_timeout=2, socket_connect_timeout=2)
        return self._redis

    async def claim(self, key: Any) -> str:
        key = str(key)
        if self._url is not None:
            try:
                client = self._client()
                if await client.set(self.prefix + key, BUSY, nx=True, ex=self.claim_seconds):
                    return NEW
                state = await client.get(self.prefix + key)
                if state is None:  # expired in between: try once more
                    return NEW if await client.set(self.prefix + key, BUSY, nx=True, ex=self.claim_seconds) else BUSY
                return DONE if state == DONE.encode() else BUSY
            except Exception as exc:  # noqa: BLE001 - a lost update is worse than a rare duplicate
                log.warning("%s: Redis unreachable for the duplicate check (%s); handled as new",
                            self.scope, exc.__class__.__name__)
                return NEW
        now = time.monotonic()
        state = self._memory.get(key)
        if state is not None and state[1] > now:
            return state[0]
        self._remember(key, BUSY, now + self.claim_seconds)
        return NEW

    async def done(self, key: Any) -> None:
        key = str(key)
        if self._url is not None:
            try:
                await self._client().set(self.prefix + key, DONE, ex=self.ttl)
                return
            except Exception as exc:  # noqa: BLE001 - the claim then runs out; a later delivery is handled again
                log.warning("%s: Redis unreachable to mark an item done (%s)", self.scope, exc.__class__.__name__)
        self._remember(key, DONE, time.monotonic() + self.ttl)

    def _remember(self, key: str, state: str, until: float) -> None:
        self._memory[key] = (state, until)
        self._memory.move_to_end(key)
        while len(self._memory) > self._memory_size:
            self._memory.popitem(last=False)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.close()
            self._redis = None


# ---------------------------------------------------------------------------------------------- CLI
def add_cluster_commands(sub) -> None:
    cluster = sub.add_parser("cluster", help="the cluster profile (bot/cluster.py)").add_subparsers(
        dest="command", required=True)
    endpoints = cluster.add_parser("endpoints", help="write the endpoints file of a cluster instance "
                                                     "(Redis lock store; BOT_ACTIONS_URL, BOT_TRACKER_CACHE)")
    endpoints.add_argument("--base", default="endpoints.yml")
    endpoints.add_argument("--out", default="var/endpoints.cluster.yml")
    endpoints.set_defaults(func=cmd_cluster_endpoints)
    show = cluster.add_parser("profile", help="which profile this environment selects, and its Redis")
    show.set_defaults(func=cmd_cluster_profile)


def cmd_cluster_endpoints(args) -> int:
    from bot.settings import ROOT

    base = Path(args.base) if Path(args.base).is_absolute() else ROOT / args.base
    out = Path(args.out) if Path(args.out).is_absolute() else ROOT / args.out
    write_cluster_endpoints(base, out)
    print(out)
    return 0


def cmd_cluster_profile(args) -> int:
    import json

    profile = profile_of()
    safe = redis_options(profile.redis_url)
    safe.pop("password", None)
    print(json.dumps({"profile": profile.name, "redis": safe, "prefix": profile.prefix}))
    return 0
