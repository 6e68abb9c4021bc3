"""What a production deployment watches: /metrics (Prometheus), /healthz and /readyz on every server, and logs as
JSON lines on stdout.

- The Rasa server (bot/serve.py), the action server (bot/actions_serve.py) and the outbox runner (`python -m bot
  outbox run`, on BOT_METRICS_PORT when set) each serve their own /metrics:
    bot_turns_total{channel}            messages handled (Rasa server)
    bot_turn_seconds                    time to handle one message, NLU to the last reply (Rasa server)
    bot_nlu_seconds                     time of the NLU pipeline per message (Rasa server)
    bot_action_seconds{action}          time of a custom action (action server; Rasa server: the call)
    bot_outbox_backlog{state}           promises due now ("due") and later ("pending")   } read from the records
    bot_handoff_queue{state}            hand-offs "waiting" for an agent and "claimed"   } database at scrape time
  plus the process's own (memory, CPU, open files: prometheus-client's process collector).
- /metrics is closed: with BOT_METRICS_TOKEN set it needs `Authorization: Bearer <token>`; without, it answers only
  a client on the loopback interface that came directly (no X-Forwarded-For / X-Real-IP: not through a proxy).
- /healthz: 200 while the process serves (liveness). /readyz: 200 when the records database answers, Redis answers
  (cluster profile) and, on the Rasa server, the model is loaded; else 503 with which check failed.
- Logs: JSON lines on stdout ({"ts", "level", "logger", "message", "exc"?}) in the cluster profile or with
  BOT_LOG_FORMAT=json; personal data is masked before (bot/pii.py masks each record as it is made).
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Optional

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BACKLOG_CACHE_SECONDS = 5.0  # a scrape every few seconds from several Prometheus servers costs one query a while
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")
_metrics: dict[str, Any] = {}
_lock = threading.Lock()


# ---------------------------------------------------------------------------------------------- metrics
def metrics() -> dict[str, Any]:
    """The process's metrics, made on first use in prometheus-client's default registry."""
    with _lock:
        if not _metrics:
            from prometheus_client import Counter, Histogram

            _metrics.update(
                turns=Counter("bot_turns_total", "Messages handled by the Rasa server", ["channel"]),
                turn=Histogram("bot_turn_seconds", "Time to handle one message (NLU to the last reply)",
                               buckets=LATENCY_BUCKETS),
                nlu=Histogram("bot_nlu_seconds", "Time of the NLU pipeline for one message", buckets=LATENCY_BUCKETS),
                action=Histogram("bot_action_seconds", "Time of one custom action", ["action"],
                                 buckets=LATENCY_BUCKETS),
            )
    return _metrics


class BacklogCollector:
    """bot_outbox_backlog and bot_handoff_queue, counted in the records database when scraped (cached a few
    seconds). A database that does not answer leaves them out of that scrape (the scrape itself still works)."""

    def __init__(self, sessions: Callable[[], Any], cache_seconds: float = BACKLOG_CACHE_SECONDS):
        self._sessions = sessions
        self._cache_seconds = cache_seconds
        self._last: tuple[float, Optional[dict]] = (0.0, None)

    def counts(self) -> Optional[dict]:
        at, counts = self._last
        if counts is not None and time.monotonic() - at < self._cache_seconds:
            return counts
        from bot.services.backlog import backlog

        try:
            session = self._sessions()
            try:
                counts = backlog(session, datetime.now(timezone.utc))
            finally:
                session.close()
        except Exception as exc:  # noqa: BLE001 - /readyz says the database is down; /metrics goes on
            log.warning("metrics: could not count the backlog (%s)", exc.__class__.__name__)
            return None
        self._last = (time.monotonic(), counts)
        return counts

    def collect(self) -> Iterable:
        from prometheus_client.core import GaugeMetricFamily

        counts = self.counts()
        if counts is None:
            return []
        outbox = GaugeMetricFamily("bot_outbox_backlog", "Promises in the outbox not sent yet", labels=["state"])
        outbox.add_metric(["due"], counts["outbox_due"])
        outbox.add_metric(["pending"], counts["outbox_pending"])
        queue = GaugeMetricFamily("bot_handoff_queue", "Hand-offs open at the service desk", labels=["state"])
        queue.add_metric(["waiting"], counts["handoffs_waiting"])
        queue.add_metric(["claimed"], counts["handoffs_claimed"])
        return [outbox, queue]


class Records:
    """The records database of this process, for readiness and the backlog gauges (built on first use)."""

    def __init__(self) -> None:
        self._sessions = None
        self._collector: Optional[BacklogCollector] = None

    def sessions(self):
        if self._sessions is None:
            from bot.settings import load_settings
            from bot.store.db import make_engine, session_factory

            engine = make_engine(load_settings().database_url, **({} if _is_sqlite() else {"pool_size": 2}))
            self._sessions = session_factory(engine)
        return self._sessions()

    def register_backlog(self) -> None:
        if self._collector is None:
            from prometheus_client import REGISTRY

            self._collector = BacklogCollector(self.sessions)
            REGISTRY.register(self._collector)

    def ping(self) -> None:
        from sqlalchemy import text

        session = self.sessions()
        try:
            session.execute(text("SELECT 1"))
        finally:
            session.close()


def _is_sqlite() -> bool:
    return (os.environ.get("BOT_DATABASE_URL") or "sqlite").startswith("sqlite")


RECORDS = Records()


def render_metrics() -> tuple[bytes, str]:
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def metrics_allowed(headers: Mapping[str, str], peer: Optional[str], env: Optional[Mapping[str, str]] = None) -> bool:
    """BOT_METRICS_TOKEN as a bearer token when it is set; else only a direct client on loopback."""
    env = os.environ if env is None else env
    token = env.get("BOT_METRICS_TOKEN") or ""
    lowered = {k.lower(): v for k, v in headers.items()}
    if token:
        given = lowered.get("authorization", "")
        return given.startswith("Bearer ") and hmac.compare_digest(given[7:].strip().encode(), token.encode())
    proxied = any(lowered.get(h) for h in ("x-forwarded-for", "x-real-ip", "forwarded"))
    return peer in LOOPBACK and not proxied


# ---------------------------------------------------------------------------------------------- readiness
async def readiness(model_ready: Optional[Callable[[], bool]] = None) -> dict:
    """{"ready": bool, "checks": {"database": "ok"|why, "redis": ..., "model": ...}}."""
    from bot.cluster import profile_of

    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(asyncio.to_thread(RECORDS.ping), 5)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure is "not ready"
        checks["database"] = exc.__class__.__name__
    profile = profile_of()
    if profile.cluster:
        try:
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(profile.redis_url, socket_timeout=2, socket_connect_timeout=2)
            try:
                await client.ping()
            finally:
                await client.close()
            checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["redis"] = exc.__class__.__name__
    if model_ready is not None:
        checks["model"] = "ok" if model_ready() else "not loaded"
    return {"ready": all(v == "ok" for v in checks.values()), "checks": checks}


def add_sanic_routes(app, model_ready: Optional[Callable[[Any], bool]] = None, backlog: bool = True) -> None:
    """/healthz, /readyz and /metrics on a Sanic app (the Rasa server's, the action server's).
    `model_ready(app)`: whether the app can answer (the Rasa server: its model is loaded)."""
    from sanic import response

    metrics()
    if backlog:
        RECORDS.register_backlog()

    async def healthz(request):
        return response.json({"status": "ok"})

    async def readyz(request):
        state = await readiness((lambda: model_ready(request.app)) if model_ready else None)
        return response.json(state, status=200 if state["ready"] else 503)

    async def metrics_route(request):
        peer = request.conn_info.client_ip if request.conn_info else None
        if not metrics_allowed(request.headers, peer):
            return response.json({"error": "unauthorized"}, status=401)
        body, content_type = await asyncio.to_thread(render_metrics)
        return response.raw(body, content_type=content_type)

    app.add_route(healthz, "/healthz", methods=["GET"], name="bot_healthz")
    app.add_route(readyz, "/readyz", methods=["GET"], name="bot_readyz")
    app.add_route(metrics_route, "/metrics", methods=["GET"], name="bot_metrics")


# ---------------------------------------------------------------------------------------------- the Rasa server
def rasa_model_ready(app) -> bool:
    agent = getattr(app.ctx, "agent", None)
    return bool(agent is not None and agent.is_ready())


def instrument_rasa() -> None:
    """Turn, NLU and custom action times from Rasa's MessageProcessor (after bot/hardening.py's patches)."""
    from rasa.core.actions.action import RemoteAction
    from rasa.core.processor import MessageProcessor

    if getattr(MessageProcessor.handle_message, "_bot_metrics", False):
        return
    m = metrics()
    handle_message, parse_message, run_action = (MessageProcessor.handle_message, MessageProcessor.parse_message,
                                                 MessageProcessor._run_action)

    async def timed_handle_message(self, message):
        start = time.perf_counter()
        try:
            return await handle_message(self, message)
        finally:
            m["turn"].observe(time.perf_counter() - start)
            m["turns"].labels(channel=str(message.input_channel or "none")[:32]).inc()

    async def timed_parse_message(self, message, *args, **kwargs):
        start = time.perf_counter()
        try:
            return await parse_message(self, message, *args, **kwargs)
        finally:
            m["nlu"].observe(time.perf_counter() - start)

    async def timed_run_action(self, action, *args, **kwargs):
        if not isinstance(action, RemoteAction):
            return await run_action(self, action, *args, **kwargs)
        start = time.perf_counter()
        try:
            return await run_action(self, action, *args, **kwargs)
        finally:
            m["action"].labels(action=action.name()[:64]).observe(time.perf_counter() - start)

    timed_handle_message._bot_metrics = True  # type: ignore[attr-defined]
    MessageProcessor.handle_message = timed_handle_message
    MessageProcessor.parse_message = timed_parse_message
    MessageProcessor._run_action = timed_run_action


def patch_rasa_app() -> None:
    """Every app `rasa run` makes gets /healthz, /readyz and /metrics, and JSON logs when they are chosen."""
    import rasa.core.run as rasa_run

    if getattr(rasa_run.configure_app, "_bot_routes", False):
        return
    configure_app = rasa_run.configure_app

    def configured(*args, **kwargs):
        app = configure_app(*args, **kwargs)
        add_sanic_routes(app, rasa_model_ready)
        if json_logs_wanted():
            use_json_logs()
            app.register_listener(lambda *_: use_json_logs(), "before_server_start")
        return app

    configured._bot_routes = True  # type: ignore[attr-defined]
    rasa_run.configure_app = configured
    instrument_rasa()


# ---------------------------------------------------------------------------------------------- the action server
def instrument_action_server(app) -> None:
    """Time each /webhook call by the action it runs."""
    m = metrics()

    @app.on_request
    async def _start(request):
        request.ctx.bot_started = time.perf_counter()

    @app.on_response
    async def _stop(request, response):
        started = getattr(request.ctx, "bot_started", None)
        if started is None or request.path != "/webhook":
            return
        try:
            name = str((request.json or {}).get("next_action") or "unknown")[:64]
        except Exception:  # noqa: BLE001 - a body that is not JSON was refused anyway
            name = "unknown"
        m["action"].labels(action=name).observe(time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------- other processes
def serve_metrics(port: int, host: Optional[str] = None) -> threading.Thread:
    """/metrics, /healthz and /readyz for a process without a web server (the outbox runner), in a thread."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    host = host or os.environ.get("BOT_METRICS_HOST") or "127.0.0.1"
    RECORDS.register_backlog()

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200, b'{"status": "ok"}')
            elif path == "/readyz":
                state = asyncio.run(readiness())
                self._send(200 if state["ready"] else 503, json.dumps(state).encode())
            elif path == "/metrics":
                if not metrics_allowed(dict(self.headers), self.client_address[0]):
                    self._send(401, b'{"error": "unauthorized"}')
                    return
                body, content_type = render_metrics()
                self._send(200, body, content_type)
            else:
                self._send(404, b'{"error": "not found"}')

        def log_message(self, *args) -> None:  # no access log on stderr
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    log.info("metrics on http://%s:%d/metrics", host, server.server_address[1])
    thread.server = server  # type: ignore[attr-defined]
    return thread


# ---------------------------------------------------------------------------------------------- logs
class JsonLines(logging.Formatter):
    """One JSON object per record: ts (UTC, ISO 8601), level, logger, message, exc (traceback) when any."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


def json_logs_wanted(env: Optional[Mapping[str, str]] = None) -> bool:
    env = os.environ if env is None else env
    chosen = (env.get("BOT_LOG_FORMAT") or "").strip().lower()
    if chosen:
        return chosen == "json"
    from bot.cluster import profile_of

    return profile_of(env).cluster


def use_json_logs(stream=None) -> None:
    """Root, Sanic's and Rasa's loggers write JSON lines to stdout and nothing else (idempotent)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonLines())
    handler._bot_json = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    if not any(getattr(h, "_bot_json", False) for h in root.handlers):
        root.handlers = [handler]
    for name in ("sanic.root", "sanic.error", "sanic.access", "rasa", "rasa_sdk"):
        logger = logging.getLogger(name)
        if logger.handlers:
            logger.handlers = [h if getattr(h, "_bot_json", False) else handler for h in logger.handlers][:1]
