"""/metrics, /healthz, /readyz and JSON log lines (bot/observability.py): the backlog counts on SQLite and
PostgreSQL, who may read /metrics, the action server and the outbox runner's metrics server over real HTTP."""
from __future__ import annotations

import io
import json
import logging
import secrets
import subprocess
import urllib.error
import urllib.request
from datetime import timedelta

import pytest

from bot.observability import BacklogCollector, JsonLines, metrics_allowed, use_json_logs
from bot.services.backlog import backlog
from bot.store.db import session_factory
from bot.store.models import Handoff
from tests.stack import ROOT, VENV_BIN, free_port, wait_for
from tests.test_outbox import CONFIG, NOW, TZ, add_row, new_ticket


def get(url: str, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


def test_the_backlog_counts_due_and_later_promises_and_the_hand_off_queue(db_engine):
    sessions = session_factory(db_engine)
    with sessions() as session:
        t1, t2, t3 = (new_ticket(session, f"c{i}") for i in range(3))
        add_row(session, t1, NOW - timedelta(minutes=5))
        add_row(session, t2, NOW - timedelta(minutes=1), kind="check_back")
        add_row(session, t3, NOW + timedelta(hours=3))
        session.add_all([Handoff(ticket=t1, conversation_id="c0", channel="rest", reason="asked", requested_at=NOW),
                         Handoff(ticket=t2, conversation_id="c1", channel="rest", reason="asked", requested_at=NOW),
                         Handoff(ticket=t3, conversation_id="c2", channel="rest", reason="angry", status="claimed",
                                 requested_at=NOW)])
        session.commit()
        assert backlog(session, NOW) == {"outbox_due": 2, "outbox_pending": 1, "handoffs_waiting": 2,
                                         "handoffs_claimed": 1}
    families = {f.name: {tuple(s.labels.values()): s.value for s in f.samples}
                for f in BacklogCollector(sessions, cache_seconds=0).collect()}
    # the collector counts at the real now: all three promises are due by then
    assert families["bot_outbox_backlog"] == {("due",): 3, ("pending",): 0}
    assert families["bot_handoff_queue"] == {("waiting",): 2, ("claimed",): 1}


def test_a_database_that_does_not_answer_leaves_the_gauges_out_not_the_scrape():
    def broken():
        raise ConnectionError("down")

    assert list(BacklogCollector(broken, cache_seconds=0).collect()) == []


def test_metrics_need_the_token_when_set_else_a_direct_loopback_client():
    assert metrics_allowed({}, "127.0.0.1", {})
    assert metrics_allowed({}, "::1", {})
    assert not metrics_allowed({}, "10.1.2.3", {})
    assert not metrics_allowed({"X-Forwarded-For": "203.0.113.9"}, "127.0.0.1", {})  # through nginx
    assert not metrics_allowed({"X-Real-IP": "203.0.113.9"}, "127.0.0.1", {})
    env = {"BOT_METRICS_TOKEN": "s3cret-token-for-prometheus"}
    assert not metrics_allowed({}, "127.0.0.1", env)
    assert not metrics_allowed({"Authorization": "Bearer wrong"}, "127.0.0.1", env)
    assert metrics_allowed({"Authorization": "Bearer s3cret-token-for-prometheus"}, "10.1.2.3", env)


def test_log_lines_are_json_with_personal_data_masked():
    from bot.pii import install_log_masking

    install_log_masking()
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        root.handlers = []
        use_json_logs(stream)
        root.setLevel(logging.INFO)
        logging.getLogger("bot.test").info("customer %s called about ticket %s", "13812345678", "T-1")
        try:
            raise ValueError("address 北京市朝阳区建国路88号 phone 13812345678")
        except ValueError:
            logging.getLogger("bot.test").exception("failed")
    finally:
        root.handlers, root.level = handlers, level
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(x["level"], x["logger"]) for x in lines] == [("INFO", "bot.test"), ("ERROR", "bot.test")]
    assert "T-1" in lines[0]["message"] and "13812345678" not in lines[0]["message"]
    assert "ValueError" in lines[1]["exc"] and "13812345678" not in lines[1]["exc"]
    assert lines[0]["ts"].endswith("+00:00")
    assert isinstance(JsonLines(), logging.Formatter)


@pytest.fixture
def action_server(tmp_path):
    db = f"sqlite:///{tmp_path / 'service.db'}"
    env = {"BOT_DATABASE_URL": db, "BOT_VAR_DIR": str(tmp_path), "BOT_ACTIONS_TOKEN": secrets.token_urlsafe(24),
           "PYTHONPATH": str(ROOT), "BOT_PROFILE": "single", "BOT_LOG_FORMAT": "json", "PATH": "/usr/bin:/bin"}
    subprocess.run([str(VENV_BIN / "python"), "-m", "bot", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    port = free_port()
    log = tmp_path / "actions.log"
    proc = subprocess.Popen([str(VENV_BIN / "python"), "-m", "bot.actions_serve", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", 120, proc, log)
        yield f"http://127.0.0.1:{port}", env, log
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_the_action_server_has_health_readiness_and_closed_metrics(action_server):
    url, env, log = action_server
    assert get(url + "/healthz") == (200, '{"status":"ok"}')
    status, body = get(url + "/readyz")
    assert status == 200 and json.loads(body) == {"ready": True, "checks": {"database": "ok"}}
    # a custom action call is timed by its name
    call = {"next_action": "action_flow_turn", "sender_id": "x",
            "tracker": {"sender_id": "x", "slots": {}, "latest_message": {}, "events": []}, "domain": {}}
    request = urllib.request.Request(f"{url}/webhook?token={env['BOT_ACTIONS_TOKEN']}",
                                     data=json.dumps(call).encode(), headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=60).read()
    except urllib.error.HTTPError:
        pass  # an odd tracker may fail the action; it is timed all the same
    status, text = get(url + "/metrics")
    assert status == 200
    assert 'bot_action_seconds_count{action="action_flow_turn"} 1.0' in text
    assert 'bot_outbox_backlog{state="due"} 0.0' in text and 'bot_handoff_queue{state="waiting"} 0.0' in text
    assert get(url + "/metrics", {"X-Forwarded-For": "203.0.113.9"})[0] == 401
    assert get(url + "/webhook")[0] in (401, 405)  # the action calls stay closed
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(line["message"].startswith("action server on http://127.0.0.1") for line in lines)


def test_the_outbox_runners_metrics_server(tmp_path, monkeypatch):
    from bot.observability import serve_metrics

    monkeypatch.setenv("BOT_DATABASE_URL", f"sqlite:///{tmp_path / 'service.db'}")
    monkeypatch.setenv("BOT_METRICS_TOKEN", "a-token-for-the-scraper-1234")
    monkeypatch.setenv("BOT_PROFILE", "single")
    from bot.store.db import upgrade

    upgrade(f"sqlite:///{tmp_path / 'service.db'}")
    thread = serve_metrics(0)
    url = f"http://127.0.0.1:{thread.server.server_address[1]}"
    try:
        assert get(url + "/healthz")[0] == 200
        assert get(url + "/readyz")[0] == 200
        assert get(url + "/metrics")[0] == 401
        status, text = get(url + "/metrics", {"Authorization": "Bearer a-token-for-the-scraper-1234"})
        assert status == 200 and "bot_outbox_backlog" in text
    finally:
        thread.server.shutdown()
