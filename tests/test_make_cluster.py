"""`make cluster` in short (scripts/cluster.py, scripts/cluster_load.py): nginx in front of two Rasa servers and two
action servers on PostgreSQL and Redis, 20 simulated customers for 20 s through nginx, one Rasa server and one action
server killed with SIGKILL at half time. Nothing lost, doubled or out of order; every booking confirmed within two
tries; `down` leaves none of the started processes. Under CI a missing nginx, PostgreSQL or Redis fails the test."""
from __future__ import annotations

import os
import socket
import sys

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


def test_cluster_through_nginx_loses_nothing_when_a_server_of_each_kind_dies(services, tmp_path):
    directory = tmp_path / "cluster"
    report = cluster_load.run(customers=20, seconds=20, instances=2, kill_halfway=True, directory=directory,
                              port=0, log=lambda msg: None)
    assert report["killed"] == ["rasa-2", "actions-2"]
    assert report["problem_counts"] == {name: 0 for name in report["problem_counts"]}, report["problems"]
    assert report["passed"]
    # Customers were served before and after the kill, and got their tickets and visits.
    assert report["conversations_finished"] >= 20 and report["tickets_told"] >= 10
    assert report["bookings_confirmed"] == report["bookings_offered"] > 0
    # `down` stopped exactly what `up` started: no process of this cluster is left.
    assert not any(cluster.status(directory).values())
    assert not list((directory / "pids").glob("*.pid"))
