"""The deployment files checked without building or deploying anything (docs/DEPLOY.md): they parse, name what the
code serves (probe paths, ports, roles), keep their variables documented, and nginx accepts the configurations."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.settings import ROOT

K8S = ROOT / "deploy" / "k8s"
PROBE_PATHS = {"/healthz", "/readyz"}
ROLES = {"rasa", "actions", "outbox", "migrate"}


def k8s_documents() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


def of_kind(kind: str) -> list[dict]:
    return [d for d in k8s_documents() if d["kind"] == kind]


def test_the_manifests_have_every_kind_the_deployment_needs():
    kinds = {d["kind"] for d in k8s_documents()}
    assert {"Deployment", "Service", "Ingress", "ConfigMap", "Secret", "HorizontalPodAutoscaler", "Job"} <= kinds
    names = {d["metadata"]["name"] for d in of_kind("Deployment")}
    assert names == {"assistant-rasa", "assistant-actions", "assistant-outbox"}


def test_probe_paths_are_the_ones_the_servers_serve():
    served = (ROOT / "bot" / "observability.py").read_text(encoding="utf-8")
    for path in PROBE_PATHS:
        assert f'"{path}"' in served or f"'{path}'" in served, f"{path} is not served (bot/observability.py)"
    for deployment in of_kind("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            for probe in ("livenessProbe", "readinessProbe"):
                get = container[probe]["httpGet"]
                assert get["path"] in PROBE_PATHS and get["port"] in ports, (deployment["metadata"]["name"], probe)
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
            assert container["args"][0] in ROLES
    ports = {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
             for d in of_kind("Deployment")}
    assert ports["assistant-rasa"] == 5005 and ports["assistant-actions"] == 5055


def test_ingress_is_sticky_for_socketio_and_points_at_the_rasa_service():
    (ingress,) = of_kind("Ingress")
    notes = ingress["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    services = {s["metadata"]["name"]: s for s in of_kind("Service")}
    assert backend["name"] in services and backend["name"] == "assistant-rasa"
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind("HorizontalPodAutoscaler")}
    assert targets == {"assistant-rasa", "assistant-actions"}


def _variables() -> set[str]:
    names = set()
    for d in of_kind("ConfigMap"):
        names |= set(d["data"])
    for d in of_kind("Secret"):
        names |= set(d["stringData"])
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    names |= set(compose["x-assistant"]["environment"])
    names |= set(re.findall(r"\b((?:BOT|TELEGRAM)_[A-Z_]+)", (ROOT / "deploy" / "entrypoint.sh").read_text()))
    return names


def test_every_variable_the_deployment_sets_is_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = sorted(n for n in _variables() if f"`{n}`" not in readme)
    assert not missing, f"not documented in README.md: {missing}"


def test_compose_has_the_topology_of_make_cluster():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "rasa-1", "rasa-2", "actions-1", "actions-2", "outbox-1", "outbox-2",
            "nginx"} <= set(services)
    assert services["nginx"]["ports"] == ["127.0.0.1:8080:8080"]
    for name in ("rasa-1", "rasa-2", "actions-1", "actions-2", "outbox-1", "outbox-2"):
        assert services[name]["command"][0] in ROLES
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_the_image_installs_the_lock_with_hashes_and_trains_nothing_at_start():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.10-slim\b", dockerfile, re.M)
    assert "--require-hashes -r requirements.lock" in dockerfile
    entry = (ROOT / "deploy" / "entrypoint.sh").read_text(encoding="utf-8")
    assert "train" not in entry  # the model comes with the image
    assert 'ENTRYPOINT ["/app/deploy/entrypoint.sh"]' in dockerfile
    assert os.access(ROOT / "deploy" / "entrypoint.sh", os.X_OK)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".git"} <= set(ignored)  # no local secrets (var/*_token) or venv in the image


def _nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else "")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("nginx is not installed (scripts/test.sh installs nginx-light)")
        pytest.skip("nginx is not installed")
    return found


def _nginx_accepts(conf: str, tmp_path: Path) -> None:
    (tmp_path / "log").mkdir(exist_ok=True)
    path = tmp_path / "nginx.conf"
    path.write_text(conf, encoding="utf-8")
    result = subprocess.run([_nginx(), "-t", "-q", "-c", str(path), "-p", str(tmp_path), "-e",
                             str(tmp_path / "log" / "error.log")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_nginx_accepts_the_compose_configuration(tmp_path):
    conf = (ROOT / "deploy" / "compose-nginx.conf").read_text(encoding="utf-8")
    # The containers' names do not resolve here: the same file with loopback addresses.
    conf = re.sub(r"\b(rasa|actions)-\d:", "127.0.0.1:", conf)
    _nginx_accepts(conf.replace("listen 8080;", "listen 127.0.0.1:1;").replace("listen 5150;", "listen 127.0.0.1:2;"),
                   tmp_path)


def test_nginx_accepts_the_generated_cluster_configuration(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    import cluster

    layout = cluster.Layout(str(tmp_path), 18080, 15150, [15101, 15102], [15151, 15152])
    conf = cluster.nginx_conf(layout)
    assert "least_conn" in conf and "proxy_next_upstream error timeout;" in conf
    assert "map $cookie_bot_node $socketio_upstream" in conf and "Upgrade $http_upgrade" in conf
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / "nginx" / kind).mkdir(parents=True, exist_ok=True)
    _nginx_accepts(conf, tmp_path)
