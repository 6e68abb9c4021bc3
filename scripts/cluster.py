"""`make cluster` / `make cluster-down`: the assistant as a cluster on one machine, the way it is deployed on several.

nginx (Debian's package; installed with apt-get when missing and run as root) on 127.0.0.1:8080 in front of N Rasa
servers (default 2) and N action servers, two outbox runners, the machine's PostgreSQL (records, tracker store) and
Redis (Rasa's lock store). What it writes goes to var/cluster/ (CLUSTER_DIR): nginx.conf, endpoints.yml, logs in log/,
one pid file per process in pids/ and cluster.json (ports, URLs). `down` stops exactly the processes of those pid
files (each checked against its command line first, so a reused pid is never signalled).

    python scripts/cluster.py up [--instances 2] [--port 8080]   # returns when every process answers
    python scripts/cluster.py status | down | kill rasa-2 actions-2

Environment: BOT_DATABASE_URL when it is a PostgreSQL URL (else postgresql+psycopg2://postgres@127.0.0.1:5432/test),
BOT_REDIS_URL (default redis://127.0.0.1:6379/0), the tokens as `make run` takes them (scripts/run.sh: from the
environment, else var/*_token, made when missing), CLUSTER_PORT (8080), CLUSTER_BASE_PORT (5100: Rasa servers on
5101.., action servers on 5151.., nginx's internal action listener on 5150; 0 picks free ports), CLUSTER_DIR,
BOT_TRACKER_CACHE (the tracker store's cache_size; endpoints.yml's when unset; bot/cluster.py).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
MODEL = ROOT / "models" / "assistant.tar.gz"
DEFAULT_DATABASE = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
# A dead server's conversation lock expires after this many seconds (Rasa's default is 60): the other servers then
# take its conversations' turns.
LOCK_LIFETIME = "20"
SECRETS = (("BOT_API_TOKEN", "api_token"), ("BOT_ACTIONS_TOKEN", "actions_token"),
           ("BOT_SESSION_SECRET", "session_secret"), ("BOT_OUTBOX_TOKEN", "outbox_token"))


def database_url(env: dict) -> str:
    url = env.get("BOT_DATABASE_URL") or ""
    return url if url.startswith("postgresql") else DEFAULT_DATABASE


def redis_url(env: dict) -> str:
    return env.get("BOT_REDIS_URL") or DEFAULT_REDIS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Layout:
    """Where everything of one cluster is: written to <dir>/cluster.json by `up`, read by the other commands."""
    dir: str
    port: int
    actions_port: int
    rasa_ports: list[int]
    action_ports: list[int]
    runners: int = 2
    processes: dict[str, dict] = field(default_factory=dict)  # name -> {pid, marker, log}

    @classmethod
    def plan(cls, directory: Path, instances: int, port: int, base: int, runners: int = 2) -> "Layout":
        if base:
            rasa = [base + 1 + i for i in range(instances)]
            actions = [base + 51 + i for i in range(instances)]
            actions_lb = base + 50
        else:
            rasa = [free_port() for _ in range(instances)]
            actions = [free_port() for _ in range(instances)]
            actions_lb = free_port()
        return cls(str(directory), port or free_port(), actions_lb, rasa, actions, runners)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def path(self) -> Path:
        return Path(self.dir)

    def save(self) -> None:
        (self.path / "cluster.json").write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> "Layout | None":
        state = directory / "cluster.json"
        return cls(**json.loads(state.read_text(encoding="utf-8"))) if state.exists() else None


# --- configuration ------------------------------------------------------------------------------------------------

def nginx_conf(layout: Layout, worker_user: str | None = None) -> str:
    """nginx in front of the Rasa servers (public port) and the action servers (an internal port).

    REST, webhooks and the console go to any Rasa server (least connections); a request that could not reach one
    (refused, reset before an answer) goes to the next: nginx never resends a POST a server has already received.
    socket.io needs every request of one session on the server that opened it (the polling requests before the
    websocket upgrade): the first answer sets a `bot_node` cookie naming that server, and the later requests of the
    session follow it (to the other server, which the client then reconnects to, if that one is down). Open-source
    nginx has no `sticky`; ip_hash would put every client of a proxy or of this machine on one server.
    """
    d = layout.path
    rasa = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in layout.rasa_ports)
    actions = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in layout.action_ports)
    pinned, cookie_map, node_map = [], [], []
    for i, port in enumerate(layout.rasa_ports, start=1):
        backups = "".join(f"    server 127.0.0.1:{p} backup;\n" for p in layout.rasa_ports if p != port)
        pinned.append(f"  upstream rasa_{i} {{\n    server 127.0.0.1:{port};\n{backups}  }}")
        cookie_map.append(f"    r{i} rasa_{i};")
        node_map.append(f"    ~:{port}$ r{i};")
    user = f"user {worker_user};\n" if worker_user else ""
    temp = "\n".join(f"  {kind}_temp_path {d}/nginx/{kind};" for kind in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    pinned_text = "\n".join(pinned)
    return f"""# Generated by scripts/cluster.py: do not edit (make cluster writes it again).
{user}worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/log/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  log_format upstream '$remote_addr [$time_local] "$request_method $uri" $status $body_bytes_sent $request_time '
                      'upstream=$upstream_addr $upstream_response_time';
  access_log {d}/log/nginx-access.log upstream;
{temp}
  client_max_body_size 16m;
  server_tokens off;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  upstream rasa {{
    least_conn;
{rasa}
    keepalive 64;
  }}
{pinned_text}
  map $cookie_bot_node $socketio_upstream {{
{chr(10).join(cookie_map)}
    default rasa;
  }}
  map $upstream_addr $socketio_node {{
{chr(10).join(node_map)}
    default "";
  }}
  upstream actions {{
{actions}
    keepalive 32;
  }}
  server {{
    listen 127.0.0.1:{layout.port};
    proxy_http_version 1.1;
    proxy_set_header Host $host;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_read_timeout 120s;
    proxy_next_upstream error timeout;
    location /socket.io/ {{
      proxy_pass http://$socketio_upstream;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_buffering off;
      proxy_read_timeout 3600s;
      add_header Set-Cookie "bot_node=$socketio_node; Path=/socket.io/; HttpOnly; SameSite=Lax" always;
    }}
    location / {{
      proxy_pass http://rasa;
      proxy_set_header Connection "";
    }}
  }}
  # The action servers, for the Rasa servers only (loopback): a call that cannot reach one goes to the other.
  server {{
    listen 127.0.0.1:{layout.actions_port};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_read_timeout 60s;
    proxy_next_upstream error timeout;
    location / {{ proxy_pass http://actions; }}
  }}
}}
"""


def endpoints_yml(layout: Layout, env: dict) -> str:
    """endpoints.yml for the cluster, as the cluster profile writes it (bot/cluster.py: Rasa's Redis lock store on
    BOT_REDIS_URL under BOT_REDIS_PREFIX, cache_size from BOT_TRACKER_CACHE), with the actions behind nginx."""
    from bot.cluster import cluster_endpoints

    config = yaml.safe_load((ROOT / "endpoints.yml").read_text(encoding="utf-8")) or {}
    config = cluster_endpoints(config, dict(env, BOT_ACTIONS_URL=f"http://127.0.0.1:{layout.actions_port}/webhook"))
    return "# Generated by scripts/cluster.py from endpoints.yml: do not edit.\n" + yaml.safe_dump(
        config, sort_keys=False, allow_unicode=True)


def cluster_env(layout: Layout, env: dict | None = None) -> dict:
    """The environment of every process: the shared database and Redis, the tokens, the cluster profile."""
    env = dict(os.environ if env is None else env)
    var = ROOT / "var"
    var.mkdir(exist_ok=True)
    for name, filename in SECRETS:  # as scripts/run.sh: the environment's, else var/<file>, made when missing
        if not env.get(name):
            path = var / filename
            if not path.exists() or not path.read_text().strip():
                old = os.umask(0o077)
                try:
                    path.write_text(secrets.token_urlsafe(32) + "\n")
                finally:
                    os.umask(old)
                print(f"generated {name} into {path}")
            env[name] = path.read_text().strip()
    env.update(BOT_DATABASE_URL=database_url(env), BOT_REDIS_URL=redis_url(env), BOT_PROFILE="cluster",
               BOT_ACTIONS_HOST="127.0.0.1", RASA_TELEMETRY_ENABLED="false", SQLALCHEMY_SILENCE_UBER_WARNING="1",
               TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    env.setdefault("BOT_VAR_DIR", str(layout.path / "var"))
    # Redis keys (locks, socket.io channel, Telegram de-duplication) of this cluster only: one per folder.
    env.setdefault("BOT_REDIS_PREFIX", "bot" + re.sub(r"[^A-Za-z0-9]", "", layout.path.name)[:29])
    env.setdefault("TICKET_LOCK_LIFETIME", LOCK_LIFETIME)
    # Behind nginx: Sanic takes the client's address from X-Forwarded-For (rate limits, sign-in limits; SECURITY.md).
    env.setdefault("SANIC_PROXIES_COUNT", "1")
    return env


# --- nginx --------------------------------------------------------------------------------------------------------

def find_nginx(install: bool = True) -> str:
    """The nginx binary; Debian's nginx-light installed with apt-get when missing and we are root (as
    scripts/test.sh installs chromium)."""
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if found or not install:
        return found or ""
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing nginx-light with apt-get")
        quiet = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=quiet, check=False)
        for package in ("nginx-light", "nginx"):  # newer Debian releases ship only `nginx`
            if subprocess.run(["apt-get", "install", "-y", "-qq", package], env=quiet, check=False,
                              stdout=subprocess.DEVNULL).returncode == 0:
                break
        found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if not found:
        raise SystemExit("nginx is not installed and could not be installed: sudo apt-get install nginx-light")
    return found


def _nginx_args(directory: Path) -> list[str]:
    """Its configuration, prefix and start-up error log, all in the cluster's folder."""
    return ["-c", str(directory / "nginx.conf"), "-p", str(directory), "-e", str(directory / "log" / "nginx-error.log")]


def _worker_user() -> str | None:
    """Run as root, nginx's workers drop to www-data (Debian's nginx user), which must own the temp folders."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam("www-data")
        return "www-data"
    except KeyError:
        return "nobody"


# --- processes ----------------------------------------------------------------------------------------------------

def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int, marker: str) -> bool:
    return marker in _cmdline(pid)


def _spawn(layout: Layout, name: str, argv: list[str], env: dict, marker: str) -> None:
    log = layout.path / "log" / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    (layout.path / "pids" / f"{name}.pid").write_text(f"{proc.pid}\n")
    layout.processes[name] = {"pid": proc.pid, "marker": marker, "log": str(log)}


def _get(url: str, timeout: float = 3) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _wait(layout: Layout, checks: dict[str, str], seconds: float) -> None:
    pending = dict(checks)
    deadline = time.monotonic() + seconds
    while pending and time.monotonic() < deadline:
        for name, url in list(pending.items()):
            info = layout.processes[name]
            if not _alive(info["pid"], info["marker"]):
                tail = Path(info["log"]).read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited while starting (log {info['log']}):\n{tail}")
            if _get(url) == 200:
                del pending[name]
        time.sleep(0.5)
    if pending:
        raise RuntimeError(f"not up after {seconds:.0f}s: {', '.join(pending)} (logs in {layout.path / 'log'})")


def up(directory: Path, instances: int = 2, port: int = 8080, base: int = 5100, runners: int = 2,
       env: dict | None = None, wait_seconds: float = 300) -> Layout:
    """Starts the cluster and returns when nginx, every Rasa server and every action server answer."""
    old = Layout.load(directory)
    if old and any(_alive(p["pid"], p["marker"]) for p in old.processes.values()):
        raise SystemExit(f"a cluster is already running from {directory} (make cluster-down stops it)")
    if not MODEL.exists():
        raise SystemExit(f"no trained model at {MODEL}: run `make train`")
    nginx = find_nginx()
    for sub in ("log", "pids", "nginx", "var"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    layout = Layout.plan(directory, instances, port, base, runners)
    env = cluster_env(layout, env)
    user = _worker_user()
    (directory / "nginx.conf").write_text(nginx_conf(layout, user), encoding="utf-8")
    (directory / "endpoints.yml").write_text(endpoints_yml(layout, env), encoding="utf-8")
    if user:
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (directory / "nginx" / kind).mkdir(exist_ok=True)
            shutil.chown(directory / "nginx" / kind, user=user)
    check = subprocess.run([nginx, "-t", "-q", *_nginx_args(directory)],
                           capture_output=True, text=True)
    if check.returncode:
        raise SystemExit(f"nginx refused {directory / 'nginx.conf'}:\n{check.stderr}")
    subprocess.run([PYTHON, "-m", "bot", "db", "upgrade"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([PYTHON, "-m", "bot", "db", "seed", "--if-empty"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    cors = [o for o in env.get("BOT_ALLOWED_ORIGINS", "").replace(",", " ").split() if o]
    checks = {}
    try:
        for i, (rport, aport) in enumerate(zip(layout.rasa_ports, layout.action_ports), start=1):
            _spawn(layout, f"actions-{i}", [PYTHON, "-m", "bot.actions_serve", "--port", str(aport)], env,
                   "bot.actions_serve")
            checks[f"actions-{i}"] = f"http://127.0.0.1:{aport}/health"
            # As scripts/run.sh starts it: `python -m bot.serve run` (bot/serve.py), the API token, CORS.
            _spawn(layout, f"rasa-{i}", [PYTHON, "-m", "bot.serve", "run", "--model", str(MODEL), "--endpoints",
                                         str(directory / "endpoints.yml"), "--credentials",
                                         str(ROOT / "credentials.yml"), "--interface", "127.0.0.1", "--port",
                                         str(rport), "--enable-api", f"--auth-token={env['BOT_API_TOKEN']}"]
                   + (["--cors", *cors] if cors else []), env, "bot.serve")
            checks[f"rasa-{i}"] = f"http://127.0.0.1:{rport}/status?token={env['BOT_API_TOKEN']}"
        # nginx's master stays in the foreground of its own session (daemon off): its pid is the one we started.
        _spawn(layout, "nginx", [nginx, *_nginx_args(directory), "-g", "daemon off;"], env, "nginx")
        runner_env = dict(env, BOT_RASA_URL=layout.url)
        for i in range(1, runners + 1):
            _spawn(layout, f"outbox-{i}", [PYTHON, "-m", "bot", "outbox", "run"], runner_env, "bot outbox run")
        layout.save()
        _wait(layout, checks, wait_seconds)
        _wait(layout, {"nginx": f"{layout.url}/"}, 30)
    except BaseException:
        layout.save()
        down(directory)
        raise
    return layout


def _signal(info: dict, sig: int) -> bool:
    """Signals the process group of one started process (its own session), if it is still the one we started."""
    if not _alive(info["pid"], info["marker"]):
        return False
    try:
        os.killpg(info["pid"], sig)
    except ProcessLookupError:
        return False
    return True


def kill(directory: Path, names: list[str]) -> list[str]:
    """SIGKILL to the named processes, as a crash would; returns the names killed."""
    layout = Layout.load(directory)
    if layout is None:
        raise SystemExit(f"no cluster in {directory}")
    killed = []
    for name in names:
        info = layout.processes.get(name)
        if info is None:
            raise SystemExit(f"no process {name!r} in {directory} (known: {', '.join(layout.processes)})")
        if _signal(info, signal.SIGKILL):
            killed.append(name)
    return killed


def down(directory: Path, seconds: float = 20) -> list[str]:
    """Stops exactly the processes of <dir>/pids (SIGTERM, SIGKILL after `seconds`); returns their names."""
    layout = Layout.load(directory)
    infos = dict(layout.processes) if layout else {}
    for pidfile in (directory / "pids").glob("*.pid") if (directory / "pids").exists() else []:
        name = pidfile.stem
        if name not in infos:  # a pid file without a recorded marker (an interrupted `up`): check by name
            infos[name] = {"pid": int(pidfile.read_text().strip() or 0),
                           "marker": "nginx" if name == "nginx" else "bot"}
    stopped = [name for name, info in infos.items() if _signal(info, signal.SIGTERM)]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(i["pid"], i["marker"]) for i in infos.values()):
        time.sleep(0.2)
    for info in infos.values():
        _signal(info, signal.SIGKILL)
    for name in infos:
        (directory / "pids" / f"{name}.pid").unlink(missing_ok=True)
    return stopped


def status(directory: Path) -> dict[str, bool]:
    layout = Layout.load(directory)
    return {name: _alive(i["pid"], i["marker"]) for name, i in (layout.processes if layout else {}).items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("CLUSTER_DIR") or ROOT / "var" / "cluster"))
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("up", help="start the cluster")
    start.add_argument("--instances", type=int, default=int(os.environ.get("CLUSTER_INSTANCES") or 2))
    start.add_argument("--port", type=int, default=int(os.environ.get("CLUSTER_PORT") or 8080))
    start.add_argument("--base-port", type=int, default=int(os.environ.get("CLUSTER_BASE_PORT") or 5100))
    start.add_argument("--runners", type=int, default=2)
    sub.add_parser("down", help="stop what `up` started")
    sub.add_parser("status", help="which started processes are alive")
    killer = sub.add_parser("kill", help="SIGKILL named processes (rasa-2, actions-2, ...), as a crash would")
    killer.add_argument("names", nargs="+")
    args = parser.parse_args(argv)
    directory = args.dir.resolve()
    if args.command == "up":
        layout = up(directory, args.instances, args.port, args.base_port, args.runners)
        print(f"""
  The cluster is up on {layout.url} (nginx) in front of {len(layout.rasa_ports)} Rasa servers \
(127.0.0.1:{', '.join(map(str, layout.rasa_ports))}) and {len(layout.action_ports)} action servers, \
{layout.runners} outbox runners.
  REST:          curl -s {layout.url}/webhooks/rest/webhook -d '{{"sender":"me","message":"my fridge stopped cooling"}}'
  Web chat:      {layout.url}/webhooks/webchat/      Agent console: {layout.url}/webhooks/agent/
  Telegram:      POST {layout.url}/webhooks/telegram/webhook
  Records:       BOT_DATABASE_URL={database_url(os.environ)} .venv/bin/python -m bot tickets list
  Config, logs and pid files in {directory}/; stop with `make cluster-down`.
""")
    elif args.command == "down":
        stopped = down(directory)
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    elif args.command == "status":
        states = status(directory)
        for name, alive in states.items():
            print(f"{name:10} {'up' if alive else 'down'}")
        return 0 if states and all(states.values()) else 1
    elif args.command == "kill":
        print(f"killed: {', '.join(kill(directory, args.names)) or 'none (not running)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
