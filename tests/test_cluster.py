"""The cluster profile's pieces that need no Rasa server: the profile choice, the endpoints file with Rasa's Redis
lock store, the lock store itself ordering two instances' turns, and the cross-instance duplicate check (real
Redis at 127.0.0.1:6379, a key prefix of its own per test)."""
from __future__ import annotations

import asyncio
import os
import uuid

import pytest
import yaml

from bot.cluster import BUSY, DONE, NEW, OnceOnly, cluster_endpoints, profile_of, redis_options, \
    write_cluster_endpoints
from bot.settings import ROOT

REDIS_URL = os.environ.get("BOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def need_redis() -> None:
    """Fails under CI, skips elsewhere, when no Redis answers."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        message = f"no Redis at {REDIS_URL}: {exc.__class__.__name__}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def cluster_env():
    need_redis()
    prefix = "t" + uuid.uuid4().hex[:12]
    yield {"BOT_PROFILE": "cluster", "BOT_REDIS_URL": REDIS_URL, "BOT_REDIS_PREFIX": prefix}
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


def test_the_profile_is_chosen_by_the_environment():
    pg = "postgresql+psycopg2://u@db/service"
    assert profile_of({}).name == "single"
    assert profile_of({"BOT_REDIS_URL": REDIS_URL}).name == "single"  # SQLite records cannot be shared
    assert profile_of({"BOT_REDIS_URL": REDIS_URL, "BOT_DATABASE_URL": pg}).cluster
    assert profile_of({"BOT_PROFILE": "cluster"}).redis_url == "redis://127.0.0.1:6379/0"
    assert not profile_of({"BOT_PROFILE": "single", "BOT_REDIS_URL": REDIS_URL, "BOT_DATABASE_URL": pg}).cluster
    with pytest.raises(SystemExit):
        profile_of({"BOT_PROFILE": "swarm"})
    with pytest.raises(SystemExit):
        profile_of({"BOT_REDIS_PREFIX": "bot:1"})  # Rasa's lock store drops a prefix that is not alphanumeric


def test_redis_urls_become_rasa_lock_store_options():
    assert redis_options("redis://127.0.0.1:6379/0") == {"host": "127.0.0.1", "port": 6379, "db": 0}
    assert redis_options("rediss://user:p%40ss@cache.internal:6380/3") == {
        "host": "cache.internal", "port": 6380, "db": 3, "username": "user", "password": "p@ss", "use_ssl": True}
    with pytest.raises(SystemExit):
        redis_options("http://127.0.0.1:6379")


def test_the_cluster_endpoints_file_adds_rasas_redis_lock_store_and_keeps_the_rest(tmp_path):
    env = {"BOT_PROFILE": "cluster", "BOT_REDIS_URL": "redis://10.0.0.5:6379/2", "BOT_REDIS_PREFIX": "desk",
           "BOT_ACTIONS_URL": "http://127.0.0.1:8080/actions/webhook", "BOT_TRACKER_CACHE": "0"}
    out = write_cluster_endpoints(ROOT / "endpoints.yml", tmp_path / "endpoints.yml", env)
    written = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert written["lock_store"] == {"type": "redis", "url": "10.0.0.5", "port": 6379, "db": 2,
                                     "key_prefix": "desk"}
    assert written["action_endpoint"]["url"] == "http://127.0.0.1:8080/actions/webhook"
    assert written["action_endpoint"]["token"] == "${BOT_ACTIONS_TOKEN}"  # left for Rasa to fill in
    assert written["tracker_store"] == {"type": "bot.rasa_runtime.tracker_store.CachingSQLTrackerStore", "cache_size": 0}
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    # Rasa reads it back as its Redis lock store
    from rasa.core.lock_store import LockStore, RedisLockStore
    from rasa.utils.endpoints import read_endpoint_config

    os.environ.setdefault("BOT_ACTIONS_TOKEN", "x" * 20)
    store = LockStore.create(read_endpoint_config(str(out), "lock_store"))
    assert isinstance(store, RedisLockStore)
    assert store.key_prefix == "desk:lock:"
    assert cluster_endpoints({}, {"BOT_PROFILE": "cluster"})["lock_store"]["port"] == 6379
    with pytest.raises(SystemExit):
        cluster_endpoints({}, {"BOT_TRACKER_CACHE": "lots"})


def test_rasas_redis_lock_store_gives_two_instances_a_conversations_turns_one_after_the_other(cluster_env):
    """Two lock stores (two instances) on the same Redis: a turn of instance B waits for A's turn to end."""
    from rasa.core.lock_store import LockStore
    from rasa.utils.endpoints import EndpointConfig

    config = cluster_endpoints({}, cluster_env)["lock_store"]
    a = LockStore.create(EndpointConfig(**config))
    b = LockStore.create(EndpointConfig(**config))
    assert a.red.connection_pool.connection_kwargs["host"] == "127.0.0.1"
    order: list[str] = []

    async def turn(store, name: str, hold: float) -> None:
        async with store.lock("webchat:abc", wait_time_in_seconds=0.02):
            order.append(f"{name} in")
            await asyncio.sleep(hold)
            order.append(f"{name} out")

    async def both() -> None:
        first = asyncio.create_task(turn(a, "A", 0.3))
        await asyncio.sleep(0.05)
        await asyncio.gather(first, turn(b, "B", 0))

    asyncio.run(both())
    assert order == ["A in", "A out", "B in", "B out"]


def test_an_item_delivered_to_two_instances_is_handled_once(cluster_env):
    async def run() -> list:
        a = OnceOnly("telegram-42", env=cluster_env)
        b = OnceOnly("telegram-42", env=cluster_env)
        assert a.shared and b.shared
        seen = [await a.claim(1001), await b.claim(1001)]  # A handles it; B hears it is being handled
        await a.done(1001)
        seen += [await b.claim(1001), await b.claim(1002), await a.claim(1002)]
        other_bot = OnceOnly("telegram-43", env=cluster_env)
        seen.append(await other_bot.claim(1001))  # another bot's update ids are its own
        for once in (a, b, other_bot):
            await once.close()
        return seen

    assert asyncio.run(run()) == [NEW, BUSY, DONE, NEW, BUSY, NEW]


def test_a_claim_of_an_instance_that_died_runs_out(cluster_env):
    async def run() -> list:
        a = OnceOnly("telegram-7", claim_seconds=1, env=cluster_env)
        b = OnceOnly("telegram-7", claim_seconds=1, env=cluster_env)
        first = [await a.claim(5), await b.claim(5)]
        await asyncio.sleep(1.3)  # A never said done
        first.append(await b.claim(5))
        await a.close()
        await b.close()
        return first

    assert asyncio.run(run()) == [NEW, BUSY, NEW]


def test_without_redis_the_duplicate_check_is_this_processs():
    async def run() -> list:
        once = OnceOnly("telegram-1", env={})
        assert not once.shared
        seen = [await once.claim(9), await once.claim(9)]
        await once.done(9)
        return seen + [await once.claim(9)]

    assert asyncio.run(run()) == [NEW, BUSY, DONE]


def test_an_unreachable_redis_lets_the_item_through_rather_than_lose_it():
    async def run() -> str:
        once = OnceOnly("telegram-1", env={"BOT_PROFILE": "cluster", "BOT_REDIS_URL": "redis://127.0.0.1:1/0"})
        return await once.claim(3)

    assert asyncio.run(run()) == NEW


# ---------------------------------------------------------------------------------------------- attachments
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8 + b"\xff\xd9"


def test_where_attachments_go_is_chosen_by_the_environment():
    from bot.services.attachments import attachment_store

    assert attachment_store({}) == "disk"
    assert attachment_store({"BOT_PROFILE": "cluster"}) == "db"
    assert attachment_store({"BOT_PROFILE": "cluster", "BOT_ATTACHMENTS": "disk"}) == "disk"
    assert attachment_store({"BOT_ATTACHMENTS": "db"}) == "db"
    with pytest.raises(SystemExit):
        attachment_store({"BOT_ATTACHMENTS": "s3"})


def test_an_attachment_kept_in_the_database_is_read_back_by_any_instance_and_deleted_with_its_row(
        uow_factory, tmp_path):
    from datetime import datetime, timezone

    from sqlalchemy import func, select

    from bot.services.attachments import read_attachment, save_attachment
    from bot.services.privacy import remove_files
    from bot.store.models import Attachment, AttachmentBlob

    now = datetime(2026, 12, 4, 8, 0, tzinfo=timezone.utc)
    with uow_factory() as uow:
        number, attachment = save_attachment(uow, conversation_id="webchat:abc", channel="webchat", data=JPEG,
                                             mime_type="image/jpeg", filename="fault.jpg", language="zh", now=now,
                                             var_dir=tmp_path, store="db")
        uow.commit()
        path = attachment.path
    assert path.startswith(f"db:{number}/") and path.endswith(".jpg")
    assert not (tmp_path / "attachments").exists()  # nothing on this machine's disk
    with uow_factory() as uow:  # another unit of work (another instance): the same bytes
        stored = uow.session.execute(select(Attachment).where(Attachment.path == path)).scalar_one()
        assert stored.size == len(JPEG) and stored.mime_type == "image/jpeg"
        assert read_attachment(uow, stored) == JPEG
        uow.session.delete(stored)
        uow.commit()
    with uow_factory() as uow:
        assert uow.session.execute(select(func.count()).select_from(AttachmentBlob)).scalar_one() == 0
    assert remove_files([path]) == 1  # the privacy commands count it as removed


def test_an_attachment_not_committed_leaves_no_bytes_in_the_database(uow_factory, tmp_path):
    from datetime import datetime, timezone

    from sqlalchemy import func, select

    from bot.services.attachments import save_attachment
    from bot.store.models import AttachmentBlob

    with uow_factory() as uow:
        save_attachment(uow, conversation_id="telegram:1", channel="telegram", data=JPEG, mime_type="image/jpeg",
                        filename=None, language="en", now=datetime.now(timezone.utc), var_dir=tmp_path, store="db")
        # no commit: rolled back
    with uow_factory() as uow:
        assert uow.session.execute(select(func.count()).select_from(AttachmentBlob)).scalar_one() == 0
