"""The two systems under test: our stack (tests/stack.py's Stack, with a tracker store and start-up timing) and
Rasa's starter assistant made by `rasa init`."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml

from bench.procs import Server, free_port, model_loaded
from tests.stack import MODEL, Stack

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
RASA = str(VENV_BIN / "rasa")
# Our Rasa server is started as scripts/run.sh starts it (bot/serve.py: `rasa` without JAX).
OUR_RASA_SERVER = [str(VENV_BIN / "python"), "-m", "bot.serve"]
QUIET_ENV = {"RASA_TELEMETRY_ENABLED": "false", "SQLALCHEMY_SILENCE_UBER_WARNING": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
             "PYTHONDONTWRITEBYTECODE": "1",
             # The load comes from one loopback address at hundreds of messages a second: no rate limits
             # (bot/channels/guard.py) in the way of the measurement.
             "BOT_RATE_PER_SENDER": "0", "BOT_RATE_PER_ADDRESS": "0"}


def project_tracker_store() -> dict:
    """The tracker_store section of the project's endpoints.yml without its connection options (type SQL if none)."""
    config = (yaml.safe_load((ROOT / "endpoints.yml").read_text(encoding="utf-8")) or {}).get("tracker_store") or {}
    section = {k: v for k, v in config.items()
               if k not in ("url", "dialect", "host", "port", "db", "username", "password", "login_db", "query")}
    section.setdefault("type", "SQL")
    return section


def sqlite_tracker_store(path: Path, base: dict | None = None) -> dict:
    """`base`: the tracker_store section to complete (default: Rasa's SQLTrackerStore, type SQL)."""
    return dict(base or {"type": "SQL"}, dialect="sqlite", db=str(path))


def postgres_tracker_store(db: str, host: str = "127.0.0.1", port: int = 5432, user: str = "postgres",
                           base: dict | None = None) -> dict:
    base = base or {"type": "SQL"}
    if str(base.get("type")).lower() == "sql":
        return dict(base, dialect="postgresql", host=host, port=port, db=db, username=user)
    # Rasa passes a custom tracker store's `url` as its `host`: the connection goes in one URL.
    return dict(base, url=f"postgresql://{user}@{host}:{port}/{db}")


class OurStack(Stack):
    """Action server + Rasa server with the trained model, the project's endpoints.yml (action endpoint options)
    and credentials.yml, a seeded records database and the given tracker store (None: Rasa's in-memory one).
    The action server is started and waited for first, then the Rasa server, so each start-up is timed alone."""

    def __init__(self, tmp: Path, db_url: str | None = None, tracker_store: dict | None = None,
                 extra_env: dict | None = None, launcher: list[str] | None = None,
                 action_endpoint: dict | None = None):
        """`launcher`: how the Rasa server is started (default: as scripts/run.sh does); `action_endpoint`: options
        replacing those of endpoints.yml (for comparisons)."""
        super().__init__(tmp, db_url=db_url, extra_env=dict(QUIET_ENV, **(extra_env or {})))
        self.tracker_store = tracker_store
        self.launcher = launcher or OUR_RASA_SERVER
        self.action_endpoint = action_endpoint
        self.actions: Server | None = None
        self.rasa: Server | None = None
        self.seed_s: float | None = None

    def endpoints(self) -> Path:
        config = yaml.safe_load((ROOT / "endpoints.yml").read_text(encoding="utf-8")) or {}
        action = dict(config.get("action_endpoint") or {}) if self.action_endpoint is None else dict(self.action_endpoint)
        action["url"] = f"http://127.0.0.1:{self.actions_port}/webhook"
        config["action_endpoint"] = action
        config.pop("tracker_store", None)
        if self.tracker_store:
            config["tracker_store"] = self.tracker_store
        path = self.tmp / "endpoints.yml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
        return path

    def start(self) -> None:
        env = self.env()
        started = time.monotonic()
        subprocess.run([str(VENV_BIN / "python"), "-m", "bot", "db", "seed"], cwd=ROOT, env=env, check=True,
                       capture_output=True)
        self.seed_s = round(time.monotonic() - started, 2)
        endpoints = self.endpoints()
        self.actions = Server("action server", [RASA, "run", "actions", "--actions", "actions", "--port",
                                                str(self.actions_port)], ROOT, env, self.tmp / "actions.log",
                              f"http://127.0.0.1:{self.actions_port}/health")
        self.actions.start(timeout=120)
        self.procs.append(self.actions.proc)  # Stack.stop() stops what is in self.procs
        self.rasa = Server("Rasa server", [*self.launcher, "run", "--model", str(MODEL), "--endpoints", str(endpoints),
                                           "--credentials", str(self.credentials), "--interface", "127.0.0.1",
                                           "--port", str(self.rasa_port), "--enable-api"], ROOT, env,
                           self.tmp / "rasa.log", f"http://127.0.0.1:{self.rasa_port}/status", model_loaded)
        self.rasa.start(timeout=180)
        self.procs.append(self.rasa.proc)


class Reference:
    """Rasa's starter assistant: `rasa init --no-prompt` (which trains it with the default config), served with
    `rasa run` and its (empty) action server, default in-memory tracker store."""

    def __init__(self, tmp: Path):
        self.dir = tmp / "reference"
        self.rasa_port = free_port()
        self.actions_port = free_port()
        self.actions: Server | None = None
        self.rasa: Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    def env(self) -> dict:
        import os

        env = dict(os.environ, **QUIET_ENV)
        env.pop("PYTHONPATH", None)
        return env

    def init(self) -> float:
        """Seconds for `rasa init --no-prompt` (scaffold + full training with the default config)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        log = self.dir.parent / "reference-init.log"
        started = time.monotonic()
        result = subprocess.run([RASA, "init", "--no-prompt", "--init-dir", str(self.dir)], cwd=self.dir,
                                env=self.env(), stdout=log.open("w"), stderr=subprocess.STDOUT, timeout=900)
        seconds = round(time.monotonic() - started, 1)
        if result.returncode != 0 or not list((self.dir / "models").glob("*.tar.gz")):
            raise RuntimeError(f"rasa init failed:\n{log.read_text(errors='replace')[-3000:]}")
        return seconds

    def start(self) -> None:
        env = self.env()
        model = sorted((self.dir / "models").glob("*.tar.gz"))[-1]
        endpoints = self.dir.parent / "reference-endpoints.yml"
        endpoints.write_text(f'action_endpoint:\n  url: "http://127.0.0.1:{self.actions_port}/webhook"\n')
        self.actions = Server("reference action server", [RASA, "run", "actions", "--actions", "actions", "--port",
                                                          str(self.actions_port)], self.dir, env,
                              self.dir.parent / "reference-actions.log", f"http://127.0.0.1:{self.actions_port}/health")
        self.actions.start(timeout=120)
        self.rasa = Server("reference Rasa server", [RASA, "run", "--model", str(model), "--endpoints", str(endpoints),
                                                     "--credentials", str(self.dir / "credentials.yml"),
                                                     "--interface", "127.0.0.1", "--port", str(self.rasa_port),
                                                     "--enable-api"], self.dir, env,
                           self.dir.parent / "reference-rasa.log", f"http://127.0.0.1:{self.rasa_port}/status",
                           model_loaded)
        self.rasa.start(timeout=240)

    def stop(self) -> None:
        for server in (self.rasa, self.actions):
            if server:
                server.stop()
