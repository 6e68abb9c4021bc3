"""Two real instances (Rasa server + action server each) sharing PostgreSQL and Redis in the cluster profile:
a conversation's turns go to either and stay in order (Rasa's Redis lock store; the tracker cache notices the other
instance's writes), an agent on instance A takes over a widget (real browser) connected to instance B, a Telegram
update delivered to both is handled once, and both serve /healthz, /readyz and /metrics."""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text

from bot.cluster import cluster_endpoints
from bot.services.conversation import conversation_id
from tests.conftest import PG_URL, postgres_available
from tests.fake_bot_api import FakeBotAPI
from tests.stack import ROOT, VENV_BIN, Stack, need_model
from tests.test_agent_console import CHROMIUM, LAUNCH_ARGS, PASSWORDS, call, login
from tests.test_cluster import REDIS_URL, need_redis
from tests.test_observability import get
from tests.test_telegram import SECRET, TOKEN, post, text_update

CHANNELS = ["bot.channels.rest.RestInput:", "bot.channels.agent_console.AgentConsoleInput:",
            "bot.channels.telegram.TelegramInput:", "bot.channels.webchat.WebChatInput:",
            "  user_message_evt: user_uttered", "  bot_message_evt: bot_uttered", "  session_persistence: true"]


def need_postgres() -> None:
    why = postgres_available()
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope="module")
def api():
    fake = FakeBotAPI(TOKEN).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def cluster(api, tmp_path_factory):
    need_model()
    need_postgres()
    need_redis()
    tmp = tmp_path_factory.mktemp("cluster")
    schema = f"c_{uuid.uuid4().hex[:12]}"
    prefix = "c" + uuid.uuid4().hex[:12]
    admin = create_engine(PG_URL, future=True)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    seed = tmp / "seed"  # a desk open around the clock (as tests/test_agent_console.py)
    shutil.copytree(ROOT / "data" / "seed", seed)
    desk = yaml.safe_load((seed / "desk.yml").read_text(encoding="utf-8"))
    desk["hours"] = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    (seed / "desk.yml").write_text(yaml.safe_dump(desk), encoding="utf-8")
    credentials = tmp / "credentials.yml"
    credentials.write_text("\n".join(CHANNELS) + "\n", encoding="utf-8")
    db_url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    env = {"BOT_PROFILE": "cluster", "BOT_REDIS_URL": REDIS_URL, "BOT_REDIS_PREFIX": prefix,
           "POSTGRESQL_SCHEMA": schema, "BOT_SEED_DIR": str(seed), "TELEGRAM_TOKEN": TOKEN,
           "TELEGRAM_WEBHOOK_SECRET": SECRET, "TELEGRAM_API_URL": api.url}
    endpoints = {k: v for k, v in cluster_endpoints({}, env).items() if k == "lock_store"}
    endpoints["tracker_store"] = {"type": "bot.tracker_store.CachingSQLTrackerStore", "cache_size": 200}
    extra = "\n" + yaml.safe_dump(endpoints)
    stacks = []
    for name in ("a", "b"):
        folder = tmp / name
        folder.mkdir()
        stack = Stack(folder, db_url=db_url, credentials=credentials, extra_env=env, endpoints_extra=extra)
        if stacks:  # one deployment: the same secrets on every instance
            stack.api_token, stack.actions_token, stack.session_secret = (
                stacks[0].api_token, stacks[0].actions_token, stacks[0].session_secret)
        stacks.append(stack)
    try:
        for stack in stacks:
            stack.start()
        for name in ("alice", "boss"):
            result = subprocess.run([str(VENV_BIN / "python"), "-m", "bot", "agents", "add", name, "--role",
                                     "agent" if name == "alice" else "supervisor", "--password", PASSWORDS[name]],
                                    cwd=ROOT, env=stacks[0].env(), capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stderr
        yield stacks
    finally:
        for stack in stacks:
            stack.stop()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)


def turns(events: list[dict]) -> list[list[str]]:
    """The conversation's events cut at each user message: [[user text, what followed...], ...]."""
    out: list[list[str]] = []
    for e in events:
        if e["event"] == "user":
            out.append([e.get("text")])
        elif out:
            out[-1].append(e["event"] + ":" + str(e.get("name") or e.get("text") or ""))
    return out


def test_a_conversations_turns_on_either_instance_stay_in_order(cluster):
    a, b = cluster
    sender = f"alt-{random.randint(10**5, 10**6)}"
    said = ["我的冰箱不制冷了", "订单号JD240512345678", "13812345678", "冷藏室完全不冷", "是的", "谢谢"]
    replies = []
    for i, message in enumerate(said):
        replies.append([r.get("text") for r in (a if i % 2 == 0 else b).send(sender, message)])
    assert all(replies), replies  # every message answered, whichever instance took it
    for stack in (a, b):  # both read the same conversation, every turn complete and in order
        events = stack.tracker(conversation_id("rest", sender))["events"]
        got = turns(events)
        assert [t[0] for t in got] == said
        for turn, answer in zip(got, replies):
            assert turn[-1] == "action:action_listen", turn
            assert [x.split(":", 1)[1] for x in turn if x.startswith("bot:")] == answer
    # the instance that took the first turn kept the tracker in memory: it must have noticed B's turns
    assert a.ticket_of(sender)["number"] == b.ticket_of(sender)["number"]

    # the same customer writing to both instances at once: one turn after the other, never interleaved
    together = [f"第二台也坏了 {n}" for n in range(4)]
    threads = [threading.Thread(target=(a if n % 2 == 0 else b).send, args=(sender, text))
               for n, text in enumerate(together)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    got = turns(a.tracker(conversation_id("rest", sender))["events"])
    assert sorted(t[0] for t in got[len(said):]) == together
    for turn in got:
        assert turn[-1] == "action:action_listen" and sum(x.startswith("action:action_listen") for x in turn) == 1


def test_an_agent_on_one_instance_takes_over_a_widget_on_the_other(cluster):
    if not CHROMIUM.exists():
        pytest.fail("chromium is missing") if os.environ.get("CI") else pytest.skip("chromium is missing")
    from playwright.sync_api import sync_playwright

    from tests.test_webchat import Chat

    a, b = cluster
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            alice = login(a, "alice")  # the agent works on instance A, signed in before the customer asks
            customer = Chat(browser, b)  # the widget is connected to instance B
            customer.open()
            customer.say("你们这什么破冰箱！！买了才几天就不制冷了")
            queued = "\n".join(customer.say("转人工"))
            assert "排在第" in queued, queued
            conversation = conversation_id("webchat", customer.session_id)
            status, claimed, _ = call(a, "POST", f"/api/conversations/{conversation}/claim", token=alice)
            assert status == 200 and claimed["delivery"] == {"delivered": True, "via": "webchat"}, claimed
            words = "您好，我是客服王丽，师傅明天上午到"
            status, sent, _ = call(a, "POST", f"/api/conversations/{conversation}/messages", {"text": words},
                                   token=alice)
            assert status == 201 and sent["delivery"] == {"delivered": True, "via": "webchat"}, sent
            customer.page.wait_for_function(
                "t => [...document.querySelectorAll('.asc-msg--bot .asc-bubble')].some(e => e.textContent.includes(t))",
                arg=words, timeout=20_000)
            assert not customer.errors
            customer.close()
        finally:
            browser.close()


def test_a_telegram_update_delivered_to_both_instances_is_handled_once(cluster, api):
    a, b = cluster
    chat = random.randint(10**8, 10**9)
    update = text_update(chat, "我的洗衣机不脱水")
    results: dict[str, tuple] = {}

    def deliver(name, stack):
        results[name] = post(stack, update)

    threads = [threading.Thread(target=deliver, args=(n, s)) for n, s in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    statuses = sorted(r[0] for r in results.values())
    # one handled it; the other either found it done (200 duplicate) or still being handled (409: redeliver later)
    assert statuses in ([200, 200], [200, 409]), results
    assert sorted(r[1].get("status") for r in results.values()) in (["duplicate", "ok"], ["in progress", "ok"])
    assert post(b, update) == (200, {"status": "duplicate"})  # Telegram's later redelivery, to either
    assert post(a, update) == (200, {"status": "duplicate"})
    events = a.tracker(conversation_id("telegram", str(chat)))["events"]
    assert [e["text"] for e in events if e["event"] == "user"] == ["我的洗衣机不脱水"]
    time.sleep(0.5)
    assert len(api.messages_to(chat)) == len([e for e in events if e["event"] == "bot"])


def test_both_rasa_servers_are_healthy_ready_and_counted(cluster):
    for stack in cluster:
        assert get(stack.url + "/healthz")[0] == 200
        status, body = get(stack.url + "/readyz")
        assert status == 200 and json.loads(body) == {
            "ready": True, "checks": {"database": "ok", "redis": "ok", "model": "ok"}}
        status, metrics = get(stack.url + "/metrics")
        assert status == 200 and "bot_turns_total{channel=" in metrics and "bot_turn_seconds_count" in metrics
        assert "bot_nlu_seconds_count" in metrics and 'bot_action_seconds_count{action="action_flow_turn"}' in metrics
        assert get(stack.url + "/metrics", {"X-Forwarded-For": "203.0.113.1"})[0] == 401
        log = (stack.tmp / "rasa.log").read_text(encoding="utf-8")
        assert any(line.startswith("{") and json.loads(line).get("level") for line in log.splitlines())
