"""The agent console, live: a server-sent event stream instead of polling, and transfers between agents (issue 16).

    GET  /webhooks/agent/api/stream[?conversation=ID]   text/event-stream, `Authorization: Bearer <token>` as every
                                                        other call (the console reads it with fetch, not EventSource,
                                                        so the token never goes into a URL). Events:
                                                          hello         {"agent", "zone"} once, at the start
                                                          queue         {} the queue changed: read GET api/queue
                                                          conversation  {"id"} the open conversation's tracker grew:
                                                                        read GET .../events?after=cursor
                                                          bye           {"reason"} the token expired or was revoked
                                                        plus a comment line every 15 s; the stream ends after 10
                                                        minutes and the console reconnects (as it does on any drop,
                                                        polling every 10 s until it is back).
    GET  /webhooks/agent/api/agents                     colleagues to transfer to (online, languages, skills)
    POST /webhooks/agent/api/conversations/{id}/transfer {"to": NAME | null, "note": TEXT}: to a colleague, or back to
                                                        the queue (to null); the note is required

Where the news comes from, without polling the database per agent: every tracker save in this Rasa server (a customer
message on any channel, an agent's reply, a take-over) goes through the tracker store, whose `save` the hub wraps: the
conversation's watchers hear of it at once, and the shared queue watcher looks at the queue's fingerprint (one small
query) right away. The watcher also looks every WATCH_SECONDS for changes made elsewhere (the CLI, another server).
No database or SQL here: the services do that (bot/services/routing.py).
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import unquote

from sanic.request import Request
from sanic.response import HTTPResponse

from bot.services.handoff import HandoffError

log = logging.getLogger(__name__)

WATCH_SECONDS = 1.0  # the queue watcher's look for changes made outside this server
KEEPALIVE_SECONDS = 15.0
REAUTH_SECONDS = 30.0  # the token is checked again this often (a revoked one ends the stream; keeps "online")
STREAM_SECONDS = 600.0  # then the console reconnects
MAX_SUBSCRIBERS = 200
MAX_PENDING = 64  # events waiting for a slow console before it is told to reload everything


@dataclass(eq=False)
class Subscriber:
    agent: str
    conversation: str | None
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(MAX_PENDING))

    def put(self, event: str, data: dict) -> None:
        try:
            self.queue.put_nowait((event, data))
        except asyncio.QueueFull:  # a console that does not read: it rereads everything on the next event
            pass


class LiveHub:
    """The consoles connected to this server and what they are told. Lives in the server's event loop."""

    def __init__(self, fingerprint: Callable[[], str]):
        self._fingerprint = fingerprint  # blocking: runs in a worker thread
        self.subscribers: set[Subscriber] = set()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._last: str | None = None
        self._hooked: set[int] = set()

    # --- who listens ------------------------------------------------------------------------------
    def subscribe(self, agent: str, conversation: str | None) -> Subscriber:
        if len(self.subscribers) >= MAX_SUBSCRIBERS:
            busy = HandoffError("busy", "too many live consoles; the console polls meanwhile")
            busy.http_status = 503
            raise busy
        subscriber = Subscriber(agent, conversation)
        self.subscribers.add(subscriber)
        if self._wake is None:
            self._wake = asyncio.Event()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch())
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    # --- what happened ----------------------------------------------------------------------------
    def poke(self, conversation_id: str | None = None) -> None:
        """Something may have changed: the conversation's watchers are told, and the queue is looked at now."""
        if conversation_id is not None:
            for subscriber in list(self.subscribers):
                if subscriber.conversation == conversation_id:
                    subscriber.put("conversation", {"id": conversation_id})
        if self._wake is not None:
            self._wake.set()

    def hook(self, app) -> None:
        """Wrap the tracker store's `save` so that every saved tracker pokes the hub (once per store object)."""
        agent = getattr(app.ctx, "agent", None)
        stores = {id(s): s for s in (getattr(agent, "tracker_store", None),
                                     getattr(getattr(agent, "processor", None), "tracker_store", None)) if s}
        for key, store in stores.items():
            if key in self._hooked:
                continue
            original = store.save
            hub = self

            async def save(tracker, *args, _original=original, **kwargs):
                result = await _original(tracker, *args, **kwargs)
                hub.poke(tracker.sender_id)
                return result

            store.save = save
            self._hooked.add(key)

    async def _watch(self) -> None:
        """Tell every console when the queue's fingerprint changes; runs while anyone listens."""
        try:
            while self.subscribers:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=WATCH_SECONDS)
                except asyncio.TimeoutError:
                    pass
                self._wake.clear()
                try:
                    current = await asyncio.to_thread(self._fingerprint)
                except Exception:  # noqa: BLE001 - the database away for a moment: try again on the next turn
                    log.exception("agent console: the live queue watcher could not read the queue")
                    await asyncio.sleep(WATCH_SECONDS)
                    continue
                if current != self._last:
                    self._last = current
                    for subscriber in list(self.subscribers):
                        subscriber.put("queue", {})
        finally:
            self._task = None


def sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def add_live_routes(bp, hub: LiveHub, backend: Callable, as_agent: Callable, ok: Callable, guarded: Callable,
                    body_of: Callable, handoff_of: Callable, zone: Callable[[], dict]) -> None:
    """The stream, the colleagues list and transfers, on the console's blueprint (helpers from agent_console)."""

    @bp.route("/api/stream", methods=["GET"])
    @guarded
    async def stream(request: Request) -> HTTPResponse | None:
        from bot.services.handoff import may_view

        conversation = unquote(request.args.get("conversation", ""))[:128] or None

        def work(uow, agent, now):
            if conversation is not None:
                _desk, handoff = handoff_of(uow, conversation)
                if not may_view(agent, handoff):
                    raise HandoffError("forbidden")
            return agent.name

        name = await as_agent(request, work)
        hub.hook(request.app)
        subscriber = hub.subscribe(name, conversation)
        loop = asyncio.get_running_loop()
        response = await request.respond(content_type="text/event-stream; charset=utf-8",
                                         headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no",
                                                  "X-Content-Type-Options": "nosniff"})
        try:
            await response.send("retry: 2000\n" + sse("hello", {"agent": name, "zone": zone()}))
            subscriber.put("queue", {})  # read the queue once now: anything missed while disconnected
            ends, recheck = loop.time() + STREAM_SECONDS, loop.time() + REAUTH_SECONDS
            while loop.time() < ends:
                try:
                    event, data = await asyncio.wait_for(subscriber.queue.get(), timeout=KEEPALIVE_SECONDS)
                    await response.send(sse(event, data))
                except asyncio.TimeoutError:
                    await response.send(": keep-alive\n\n")
                if loop.time() >= recheck:
                    recheck = loop.time() + REAUTH_SECONDS
                    try:
                        await as_agent(request, lambda uow, agent, now: None)
                    except Exception:  # noqa: BLE001 - revoked, expired or deactivated: the stream ends
                        await response.send(sse("bye", {"reason": "signed_out"}))
                        break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            hub.unsubscribe(subscriber)
        try:
            await response.eof()
        except Exception:  # noqa: BLE001 - the console went away first
            pass
        return None

    @bp.route("/api/agents", methods=["GET"])
    @guarded
    async def agents(request: Request) -> HTTPResponse:
        from bot.services.routing import colleagues

        def work(uow, agent, now):
            return {"agents": colleagues(uow.session, agent, now, backend().desk_config.online_minutes)}

        return ok(await as_agent(request, work))

    @bp.route("/api/conversations/<conversation_id:str>/transfer", methods=["POST"])
    @guarded
    async def transfer(request: Request, conversation_id: str) -> HTTPResponse:
        from bot.services.routing import transfer as move

        conversation_id = unquote(conversation_id)
        body = body_of(request)
        to = body.get("to") or None
        if to is not None and not isinstance(to, str):
            raise HandoffError("bad_request", "to is an agent's name or null")
        note = str(body.get("note") or "")

        def work(uow, agent, now):
            desk, handoff = handoff_of(uow, conversation_id)
            return move(desk, handoff, agent, now, to=to, note=note)

        info: dict[str, Any] = await as_agent(request, work)
        hub.poke(conversation_id)
        return ok({"status": info["status"], "ticket": info["ticket"], "to": info["to"],
                   "to_display_name": info["to_display_name"], "note": info["note"]})


def live_openapi_paths(op: Callable, obj: dict, conv: dict) -> dict:
    """The OpenAPI entries of the routes above (merged into the console's document)."""
    stream = op("Live updates as server-sent events (queue, the open conversation)", {"type": "string"},
                params=[{"name": "conversation", "in": "query", "required": False, "schema": {"type": "string"},
                         "description": "also tell when this conversation's transcript grows"}],
                with_errors=("401", "403", "404"),
                description="text/event-stream: `hello` {agent, zone}, `queue` {} (read GET /api/queue), "
                            "`conversation` {id} (read its /events), `bye` {reason}; a keep-alive comment every "
                            "15 s; ends after 10 minutes (reconnect).")
    stream["responses"]["200"] = {"description": "the event stream", "content": {"text/event-stream": {}}}
    return {
        "/api/stream": {"get": stream},
        "/api/agents": {"get": op("Colleagues to transfer to: online, languages, skills", obj,
                                  with_errors=("401",))},
        "/api/conversations/{conversation_id}/transfer": {"post": op(
            "Transfer a taken case to a colleague, or back to the queue (to: null), with a note", obj,
            params=[conv], body={"type": "object", "required": ["note"], "properties": {
                "to": {"type": "string", "nullable": True}, "note": {"type": "string", "maxLength": 500}}})},
    }
