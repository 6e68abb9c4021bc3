"""A running stack for end-to-end tests and measurements: action server + Rasa server on free loopback ports,
with their own SQLite database (or the URL given), seeded with the demo data."""
from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from bot.services.conversation import conversation_id
from bot.services.tickets import ticket_json
from bot.settings import ROOT
from bot.store.models import Ticket

MODEL = ROOT / "models" / "assistant.tar.gz"
CONVERSATIONS = ROOT / "tests" / "data" / "conversations.yml"


def script_lines(name: str) -> list[str]:
    """The customer's lines of one scripted conversation in tests/data/conversations.yml (shared by the channel
    tests and `make eval`)."""
    import yaml

    for conversation in yaml.safe_load(CONVERSATIONS.read_text(encoding="utf-8")):
        if conversation["name"] == name:
            return [str(line) for line in conversation["lines"]]
    raise KeyError(name)


VENV_BIN = Path(sys.executable).parent


def action_endpoint(port: int) -> str:
    """endpoints.yml's action endpoint as `make run` uses it (the token comes from BOT_ACTIONS_TOKEN in the
    environment, as there), on another port."""
    text = (ROOT / "endpoints.yml").read_text(encoding="utf-8")
    block = re.search(r"^action_endpoint:\n(?:[ #].*\n|\n)*", text, re.M).group(0)
    assert "${BOT_ACTIONS_TOKEN}" in block, "endpoints.yml's action endpoint has no token"
    return block.replace("127.0.0.1:5055", f"127.0.0.1:{port}")


def need_model() -> None:
    """Tests on the real stack need the trained model: without it they fail under CI and are skipped elsewhere."""
    import pytest

    if not MODEL.exists():
        message = f"no trained model at {MODEL}: run `make train` (make test does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up in {seconds}s:\n{log.read_text()[-3000:]}")


class Stack:
    """`extra_env` reaches both servers; `credentials` replaces credentials.yml (e.g. to add a channel);
    `endpoints_extra` is appended to the endpoints file (e.g. a tracker store, which is in memory without it)."""

    def __init__(self, tmp: Path, db_url: str | None = None, extra_env: dict | None = None,
                 credentials: Path | None = None, endpoints_extra: str = ""):
        self.tmp = tmp
        self.db_url = db_url or f"sqlite:///{tmp / 'service.db'}"
        self.rasa_port = free_port()
        self.actions_port = free_port()
        self.procs: list[subprocess.Popen] = []
        self.extra_env = extra_env or {}
        self.credentials = credentials or ROOT / "credentials.yml"
        self.endpoints_extra = endpoints_extra
        # Closed as `make run` is (scripts/run.sh): an API token, an action server token, a session secret.
        self.api_token = secrets.token_urlsafe(24)
        self.actions_token = secrets.token_urlsafe(24)
        self.session_secret = secrets.token_urlsafe(24)

    def env(self) -> dict:
        env = dict(os.environ, **self.extra_env)
        env.setdefault("BOT_ACTIONS_HOST", "127.0.0.1")
        # Every test client is on 127.0.0.1: the per-address limit would count the whole suite as one client.
        env.setdefault("BOT_RATE_PER_ADDRESS", "0")
        env.update(BOT_API_TOKEN=self.api_token, BOT_ACTIONS_TOKEN=self.actions_token,
                   BOT_SESSION_SECRET=self.session_secret)
        env.update(BOT_DATABASE_URL=self.db_url, BOT_VAR_DIR=str(self.tmp),
                   RASA_TELEMETRY_ENABLED="false", SQLALCHEMY_SILENCE_UBER_WARNING="1", TF_CPP_MIN_LOG_LEVEL="3")
        env["PYTHONPATH"] = str(ROOT)
        return env

    def start(self) -> None:
        env = self.env()
        subprocess.run([str(VENV_BIN / "python"), "-m", "bot", "db", "seed"], cwd=ROOT, env=env, check=True,
                       capture_output=True)
        endpoints = self.tmp / "endpoints.yml"
        endpoints.write_text(action_endpoint(self.actions_port) + self.endpoints_extra, encoding="utf-8")
        self.endpoints = endpoints
        self.actions = self.start_actions(wait=False)
        # Started as scripts/run.sh starts it: `python -m bot.serve run` (bot/serve.py), with the API token and CORS
        # only for BOT_ALLOWED_ORIGINS.
        rlog = self.tmp / "rasa.log"
        cors = [o for o in env.get("BOT_ALLOWED_ORIGINS", "").replace(",", " ").split() if o]
        rasa = subprocess.Popen([str(VENV_BIN / "python"), "-m", "bot.serve", "run", "--model", str(MODEL),
                                 "--endpoints", str(endpoints), "--credentials", str(self.credentials),
                                 "--interface", "127.0.0.1",
                                 "--port", str(self.rasa_port), "--enable-api", f"--auth-token={self.api_token}"]
                                + (["--cors", *cors] if cors else []), cwd=ROOT, env=env,
                                stdout=rlog.open("w"), stderr=subprocess.STDOUT)
        self.procs.append(rasa)
        self.rasa_pid = rasa.pid
        wait_for(f"http://127.0.0.1:{self.actions_port}/health", 120, self.actions, self.tmp / "actions.log")
        wait_for(f"http://127.0.0.1:{self.rasa_port}/status?token={self.api_token}", 180, rasa, rlog)

    def start_actions(self, wait: bool = True) -> subprocess.Popen:
        """The action server as scripts/run.sh starts it (`python -m bot.actions_serve`: loopback, token)."""
        alog = self.tmp / "actions.log"
        actions = subprocess.Popen([str(VENV_BIN / "python"), "-m", "bot.actions_serve", "--port",
                                    str(self.actions_port)], cwd=ROOT, env=self.env(), stdout=alog.open("a"),
                                   stderr=subprocess.STDOUT)
        self.procs.append(actions)
        if wait:
            wait_for(f"http://127.0.0.1:{self.actions_port}/health", 120, actions, alog)
        return actions

    def kill_actions(self) -> None:
        """Stops the action server at once (SIGKILL), as a crash would."""
        self.actions.kill()
        self.actions.wait(timeout=20)
        self.procs.remove(self.actions)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    def send(self, sender: str, text: str, metadata: dict | None = None) -> list[dict]:
        payload = {"sender": sender, "message": text}
        if metadata:
            payload["metadata"] = metadata
        body = json.dumps(payload).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.rasa_port}/webhooks/rest/webhook", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    def api(self, path: str, method: str = "GET", body: dict | None = None, timeout: float = 30) -> dict:
        """A call to the Rasa server's HTTP API (`/conversations/...`, `/status`): every test goes through here, so
        the API's credential is added in one place."""
        data = json.dumps(body).encode() if body is not None else None
        sep = "&" if "?" in path else "?"
        req = urllib.request.Request(f"{self.url}{path}{sep}token={self.api_token}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def tracker(self, conversation: str) -> dict:
        return self.api(f"/conversations/{conversation}/tracker")

    def ticket_of(self, sender: str, channel: str = "rest") -> dict:
        """The newest ticket of the conversation of `sender` on `channel`."""
        conversation = conversation_id(channel, sender)
        engine = create_engine(self.db_url, future=True)
        with Session(engine) as session:
            ticket = session.execute(select(Ticket).where(Ticket.conversation_id == conversation)
                                     .order_by(Ticket.id.desc())).scalars().first()
            data = ticket_json(ticket, with_events=True) if ticket else None
        engine.dispose()
        return data


