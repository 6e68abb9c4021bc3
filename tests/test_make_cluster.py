"""`make cluster` in short (scripts/cluster.py, scripts/cluster_load.py): nginx in front of two Rasa servers and two
action servers on PostgreSQL and Redis, 20 simulated customers for 20 s through nginx, one Rasa server and one action
server killed with SIGKILL at half time. Nothing lost, doubled or out of order; every booking confirmed within two
tries; `down` leaves none of the started processes. Under CI a missing nginx, PostgreSQL or Redis fails the test."""
from __future__ import annotations

import json
import os
import socket
import sys
import urllib.error
import urllib.request

import pytest

from bot.settings import ROOT
from tests.stack import need_model

sys.path.insert(0, str(ROOT / "scripts"))
import cluster  # noqa: E402  (scripts/cluster.py)
import cluster_load  # noqa: E402


def _need(what: str, ok: bool) -> None:
    if ok:
        return
    message = f"{what} is needed for the cluster test"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def services():
    need_model()
    _need("nginx (scripts/test.sh installs nginx-light)", bool(cluster.find_nginx(install=False)))
    _need("PostgreSQL on 127.0.0.1:5432", _listening(5432))
    _need("Redis on 127.0.0.1:6379", _listening(6379))


def _http(url: str, data: bytes | None = None, cookie: str = "") -> tuple[int, str, str]:
    """(status, body, the bot_node cookie set) of one request through nginx."""
    req = urllib.request.Request(url, data=data, headers={"Cookie": cookie} if cookie else {},
                                 method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, body, headers = resp.status, resp.read().decode("utf-8", "replace"), resp.headers
    except urllib.error.HTTPError as exc:
        status, body, headers = exc.code, exc.read().decode("utf-8", "replace"), exc.headers
    set_cookie = " ".join(headers.get_all("Set-Cookie") or [])
    node = set_cookie.split("bot_node=", 1)[1].split(";", 1)[0] if "bot_node=" in set_cookie else ""
    return status, body, node


def through_nginx(layout) -> dict:
    """What the widget, the console and the Telegram webhook meet at nginx's port, before any load."""
    url = layout.url
    seen = {"widget": _http(f"{url}/webhooks/webchat/widget.js")[0],
            "console": _http(f"{url}/webhooks/agent/")[0],
            "telegram": _http(f"{url}/webhooks/telegram/webhook", data=b"{}")[0], "sessions": []}
    # socket.io long-polling sessions: every request of a session must reach the server that opened it. Six
    # sessions, each opened, connected (POST "40") and read (GET) with the cookie nginx set on the first answer.
    for _ in range(6):
        status, body, node = _http(f"{url}/socket.io/?EIO=4&transport=polling")
        assert status == 200 and body.startswith("0"), (status, body[:200])
        sid = json.loads(body[1:])["sid"]
        session = f"{url}/socket.io/?EIO=4&transport=polling&sid={sid}"
        posted = _http(session, data=b"40", cookie=f"bot_node={node}")
        read = _http(session, cookie=f"bot_node={node}")
        seen["sessions"].append((node, posted[0], read[0], read[1][:2]))
    return seen


def test_cluster_through_nginx_loses_nothing_when_a_server_of_each_kind_dies(services, tmp_path):
    directory = tmp_path / "cluster"
    report = cluster_load.run(customers=20, seconds=20, instances=2, kill_halfway=True, directory=directory,
                              port=0, log=lambda msg: None, on_up=through_nginx)
    seen = report["on_up"]
    assert seen["widget"] == 200 and seen["console"] == 200
    assert seen["telegram"] not in (404, 502)  # the webhook is routed (and refuses an unsigned update)
    assert {node for node, *_ in seen["sessions"]} <= {"r1", "r2"}
    assert all(posted == 200 and read == 200 and body.startswith("4") for _, posted, read, body in seen["sessions"]), \
        seen["sessions"]
    assert report["killed"] == ["rasa-2", "actions-2"]
    assert report["problem_counts"] == {name: 0 for name in report["problem_counts"]}, report["problems"]
    assert report["passed"]
    # Customers were served before and after the kill, and got their tickets and visits.
    assert report["conversations_finished"] >= 20 and report["tickets_told"] >= 10
    assert report["bookings_confirmed"] == report["bookings_offered"] > 0
    # `down` stopped exactly what `up` started: no process of this cluster is left.
    assert not any(cluster.status(directory).values())
    assert not list((directory / "pids").glob("*.pid"))


def test_a_conversation_is_heard_twice_only_when_a_resent_message_was_also_taken_in_the_first_time():
    conv = cluster_load.Conversation("s", "zh-booking", sent=["a", "b", "b", "c"], resent=["b"])
    assert not cluster_load.heard_twice(conv, 3)  # "b" failed the first time: a, b, c stored
    assert cluster_load.heard_twice(conv, 4)  # both tries of "b" reached the bot
    calm = cluster_load.Conversation("t", "zh-booking", sent=["a", "b"])
    assert not cluster_load.heard_twice(calm, 2)
    assert not cluster_load.heard_twice(calm, 3)  # no resend: the booking check still applies in full
