"""The agent console: a Rasa input channel ("agent") that serves the service desk's single-page app and its JSON API.

Registered in credentials.yml as `bot.channels.agent_console.AgentConsoleInput:` (no keys). Everything is under
/webhooks/agent/:

    GET  /webhooks/agent/               the console (plain HTML/CSS/JS from bot/channels/agent_static/, zh and en)
    GET  /webhooks/agent/openapi.json   the API described in OpenAPI 3.0
    /webhooks/agent/api/...             the JSON API; every call but login needs `Authorization: Bearer <token>`
                                        (the desk pages' part — alerts, call-backs, visits, figures — is in
                                        bot/channels/agent_desk.py)

Taking over (the heart of it): claiming a conversation appends `ConversationPaused` to the customer's tracker, so
Rasa predicts nothing for them on any channel until the hand-back; their messages still land in the tracker and
show up in the console. The agent's replies are appended to the same tracker as `BotUttered` with
metadata {"agent": name} and delivered through the customer's own channel: Telegram through the channel's
`send_proactive`, the web widget through its socket.io room, any other channel through its output channel. REST
has no push: a REST client reads agent messages from GET /conversations/{id}/tracker (Rasa's HTTP API) by polling.
Handing back appends `ConversationResumed`, sets the script to the satisfaction survey and has the bot ask whether
anything else is needed; the rating question comes once the customer has answered (issue 16: one question at a time).
Closing resolves the ticket and does the same. Taking over greets the customer once, with the agent's name in their
language, or not at all (desk.yml `takeover.greeting`, bot/services/takeover.py); the web widget is told who holds
the conversation (`push_presence`).

The database work runs in worker threads (`asyncio.to_thread`) so the Rasa server's event loop never waits on it.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import unquote

import yaml
from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.shared.core.events import BotUttered, ConversationResumed, Event, SlotSet
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.agent_customers import add_customer_routes, customer_openapi_paths, suggested_facts
from bot.channels.agent_desk import add_desk_routes, desk_openapi_paths
from bot.flows import after_handoff
from bot.channels.agent_live import LiveHub, add_live_routes, live_openapi_paths
from bot.services.handoff import HTTP_STATUS, HandoffError
from bot.services.holding import BOT, holder_of, tracker_events

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "agent_static"
STATIC_FILES = {
    "console.js": "application/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "desk.js": "application/javascript; charset=utf-8",  # the desk pages: alerts, call-backs, visits, figures
    "desk.css": "text/css; charset=utf-8",
    "customers.js": "application/javascript; charset=utf-8",  # the customers page and the card editor (issue 16)
    "customers.css": "text/css; charset=utf-8",
}
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
}
API_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
MAX_TEXT = 4000
HASHING_CONCURRENCY = 2  # password checks running at once (each argon2id check holds 64 MiB for ~0.1 s)
HASHING_QUEUE = 32  # sign-ins waiting for a turn before new ones get 503
TRANSCRIPT_LIMIT = 500


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Unauthorised(Exception):
    pass


def holding_events(holder: str, tracker) -> list[Event]:
    """The tracker events that make Rasa's pause agree with who holds the conversation (bot/services/holding.py)."""
    paused = tracker is not None and tracker.is_paused()
    return [Event.from_parameters(e) for e in tracker_events(holder, paused)]


# ---------------------------------------------------------------------------------------------- the database side
class ConsoleBackend:
    """Settings, database, desk rules, warranty policy, texts and canned replies; built on first use."""

    def __init__(self, settings=None, app=None):
        """`app`: the process's App (bot/bootstrap.py) unless given; `settings` alone: an App of its own (tests)."""
        from bot.bootstrap import bootstrap_server, process_app
        from bot.services.handoff import load_desk
        from bot.services.takeover import load_takeover
        from bot.services.warranty import load_policy
        from bot.texts import load_texts

        self.app = app or (bootstrap_server(settings) if settings is not None else process_app())
        self.settings = self.app.settings
        self.engine = self.app.engine
        self.sessions = self.app.sessions
        self.desk_config = load_desk(self.settings.seed_dir / "desk.yml")
        self.policy = load_policy(self.settings.policy_path)
        self.texts = load_texts()
        self.canned = load_canned(self.settings.seed_dir / "canned_replies.yml")
        self.takeover = load_takeover(self.settings.seed_dir / "desk.yml")  # issue 16: the greeting setting

    def uow(self):
        return self.app.uow()

    def desk(self, session):
        from bot.services.handoff import HandoffDesk

        return HandoffDesk(session, self.desk_config, self.settings.timezone, self.settings.first_response_hours)

    def accounts(self, session):
        from bot.services.handoff import AgentAccounts

        return AgentAccounts(session, self.desk_config.session_idle_hours)

    def as_agent(self, token: str | None, work: Callable) -> Any:
        """Run `work(uow, agent, now)` in one unit of work as the agent behind the token; commits on success."""
        with self.uow() as uow:
            now = utcnow()
            agent = self.accounts(uow.session).authenticate(token, now)
            if agent is None:
                uow.commit()
                raise Unauthorised()
            result = work(uow, agent, now)
            uow.commit()
            return result


def load_canned(path: Path) -> list[dict]:
    """Canned replies, each with a title and the text in zh and en (validated: both languages present)."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    replies = data.get("replies") or []
    for reply in replies:
        missing = [lang for lang in ("zh", "en") if not reply.get(lang) or not (reply.get("title") or {}).get(lang)]
        if missing or not reply.get("id"):
            raise ValueError(f"{path}: canned reply {reply.get('id')!r} lacks id, text or title in {missing}")
    return replies


def transcript(events: list[dict], start: int = 0) -> list[dict]:
    """The conversation from serialised tracker events, in order: customer, bot and agent messages, and the
    moments the bot was paused and resumed. `i` is the event's index in the tracker (the polling cursor)."""
    items = []
    for i, event in enumerate(events):
        if i < start:
            continue
        kind = event.get("event")
        at = datetime.fromtimestamp(float(event.get("timestamp") or 0), timezone.utc).isoformat()
        if kind == "user":
            metadata = event.get("metadata") or {}
            shown = metadata.get("display_text") if isinstance(metadata, dict) else None
            items.append({"i": i, "from": "customer", "text": event.get("text") or "", "shown": shown, "at": at,
                          "channel": event.get("input_channel"),
                          "intent": ((event.get("parse_data") or {}).get("intent") or {}).get("name")})
        elif kind == "bot":
            metadata = event.get("metadata") or {}
            data = event.get("data") or {}
            buttons = [b.get("title") for b in (data.get("buttons") or []) if b.get("title")]
            item = {"i": i, "from": "agent" if metadata.get("agent") else "bot", "text": event.get("text") or "",
                    "at": at, "buttons": buttons}
            if metadata.get("agent"):
                item["agent"] = metadata.get("agent")
                item["agent_display_name"] = metadata.get("agent_display_name") or metadata.get("agent")
            items.append(item)
        elif kind in ("pause", "resume"):
            closed = kind == "resume" and (event.get("metadata") or {}).get("after_handoff") == "closed"
            what = "paused" if kind == "pause" else "closed" if closed else "resumed"
            items.append({"i": i, "from": "system", "what": what, "at": at})
    return items[-TRANSCRIPT_LIMIT:]


@dataclass
class Delivery:
    delivered: bool
    via: str
    error: str | None = None

    def as_dict(self) -> dict:
        data = {"delivered": self.delivered, "via": self.via}
        if self.error:
            data["error"] = self.error
        return data


def desk_fingerprint(backend: ConsoleBackend) -> str:
    """The open hand-offs' ids, statuses and agents, read in a unit of work (the live stream's queue watcher)."""
    from bot.services.routing import queue_fingerprint

    with backend.uow() as uow:
        return queue_fingerprint(uow.session)


def zone_of(tz) -> dict:
    """The desk's time zone for the console: its name and current UTC offset (e.g. UTC+8)."""
    offset = datetime.now(tz).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign, minutes = ("+" if minutes >= 0 else "-"), abs(minutes)
    label = f"UTC{sign}{minutes // 60}" + (f":{minutes % 60:02d}" if minutes % 60 else "")
    return {"name": getattr(tz, "key", str(tz)), "offset": label}


# ---------------------------------------------------------------------------------------------- the channel
class AgentConsoleInput(InputChannel):
    """The service desk's console and API, served by the Rasa server under /webhooks/agent/."""

    @classmethod
    def name(cls) -> str:
        return "agent"

    @classmethod
    def from_credentials(cls, credentials: dict | None) -> "AgentConsoleInput":
        return cls()

    def __init__(self, backend: ConsoleBackend | None = None):
        self._backend = backend
        self._static: dict[str, bytes] = {}
        self._hashing: asyncio.Semaphore | None = None
        self._hashing_waiting = 0
        self.live = LiveHub(lambda: desk_fingerprint(self.backend))  # the console's live stream (agent_live.py)

    @property
    def hashing(self) -> asyncio.Semaphore:
        """At most HASHING_CONCURRENCY password checks at once (made on first use, inside the server's loop)."""
        if self._hashing is None:
            self._hashing = asyncio.Semaphore(HASHING_CONCURRENCY)
        return self._hashing

    @property
    def backend(self) -> ConsoleBackend:
        if self._backend is None:
            self._backend = ConsoleBackend()
        return self._backend

    def _file(self, name: str) -> bytes:
        if name not in self._static:
            self._static[name] = (STATIC_DIR / name).read_bytes()
        return self._static[name]

    # --------------------------------------------------------------------------------------- tracker and channels
    @staticmethod
    async def _tracker_events(app, conversation_id: str) -> tuple[list[dict], Any]:
        store = app.ctx.agent.tracker_store
        retrieve = getattr(store, "retrieve_full_tracker", None) or store.retrieve
        tracker = await retrieve(conversation_id)
        if tracker is None:
            return [], None
        return [e.as_dict() for e in tracker.events], tracker

    @staticmethod
    async def _append(app, conversation_id: str, events: list[Event]) -> Any:
        """Append events to the customer's tracker under Rasa's conversation lock (a message being handled for the
        same customer finishes first)."""
        agent = app.ctx.agent
        async with agent.lock_store.lock(conversation_id, wait_time_in_seconds=0.05):
            tracker = await agent.processor.get_tracker(conversation_id)
            for event in events:
                tracker.update(event)
            await agent.processor.save_tracker(tracker)
        return tracker

    @staticmethod
    async def _deliver(app, conversation_id: str, channel: str | None, messages: list[dict]) -> Delivery:
        """Push messages through the customer's own channel. REST (and any channel without an output) has no push:
        the messages are in the tracker, where REST clients read them."""
        channels = getattr(app.ctx, "input_channels", None) or []
        target = next((c for c in channels if c.name() == channel), None)
        if target is None or channel in ("rest", "agent"):
            return Delivery(False, "tracker")
        try:
            if hasattr(target, "send_proactive"):  # Telegram, WeChat
                outcome = None
                for m in messages:
                    outcome = await target.send_proactive(conversation_id, m["text"], m.get("buttons"))
                if getattr(outcome, "held", False):  # WeChat past its 48-hour window: sent when the customer writes
                    return Delivery(False, f"{channel}-held")
                return Delivery(True, channel)
            output = target.get_output_channel()
            if output is None:
                return Delivery(False, "tracker")
            for m in messages:  # the web widget: socket.io emit of bot_uttered to the customer's room
                await output.send_response(conversation_id, dict(m))
            return Delivery(True, channel)
        except Exception as exc:  # noqa: BLE001 - the message is in the tracker; the agent is told it did not go out
            log.exception("agent console: could not deliver to %s over %s", conversation_id, channel)
            return Delivery(False, channel, error=exc.__class__.__name__)

    @staticmethod
    def _language(tracker, fallback: str) -> str:
        language = tracker.get_slot("language") if tracker is not None else None
        return language if language in ("zh", "en") else (fallback if fallback in ("zh", "en") else "zh")

    @staticmethod
    async def _push_presence(app, conversation_id: str, channel: str | None, status: dict) -> None:
        """Tell the customer's widget who holds the conversation now (issue 16; other channels have no header)."""
        channels = getattr(app.ctx, "input_channels", None) or []
        target = next((c for c in channels if c.name() == channel), None)
        if target is None or not hasattr(target, "push_presence"):
            return
        try:
            await target.push_presence(conversation_id, status)
        except Exception:  # noqa: BLE001 - the header catches up on the widget's next status check
            log.exception("agent console: could not push the presence to %s", conversation_id)

    async def _return_to_bot(self, app, info: dict, closed: bool) -> dict:
        """Resume Rasa (if paused), let the script take the conversation back (the survey), and have the bot speak."""
        conversation_id = info["conversation_id"]
        _events, current = await self._tracker_events(app, conversation_id)
        lang = self._language(current, info["language"])
        back = after_handoff(self.backend.texts, info["ticket"], lang, closed)  # the script says what comes next
        messages = [dict(m.as_dict(), speaker="assistant") for m in back.messages]  # the widget marks who speaks
        # Rasa's pause follows who holds the conversation (bot/services/holding.py): the bot again, so resumed.
        events: list[Event] = holding_events(info.get("holder", BOT), current)
        for event in events:  # marked, so that a close shows as a close in the transcript, not a hand-back
            if isinstance(event, ConversationResumed):
                event.metadata = {"handoff_id": info["handoff_id"], "after_handoff": "closed" if closed else "returned"}
        events += [SlotSet("flow_state", back.state), SlotSet("flow", back.flow)]
        meta = {"handoff_id": info["handoff_id"], "after_handoff": "closed" if closed else "returned"}
        events += [BotUttered(m["text"], {"buttons": m.get("buttons") or []}, dict(meta)) for m in messages]
        tracker = await self._append(app, conversation_id, events)
        channel = tracker.get_latest_input_channel() or info["channel"]
        delivery = await self._deliver(app, conversation_id, channel, messages)
        await self._push_presence(app, conversation_id, channel, {"state": "assistant"})
        return delivery.as_dict()

    # --------------------------------------------------------------------------------------- routes
    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("agent_console", __name__)
        backend = lambda: self.backend  # noqa: E731 - built on the first request, inside the server

        def error(status: int, code: str, detail: str = "") -> HTTPResponse:
            headers = dict(API_HEADERS)
            if status == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="agent console"'
            body = {"error": code}
            if detail:
                body["detail"] = detail
            return response.json(body, status=status, headers=headers)

        def ok(data: Any, status: int = 200) -> HTTPResponse:
            return response.json(data, status=status, headers=API_HEADERS, ensure_ascii=False)

        def client_address(request: Request) -> str:
            # Behind a reverse proxy set SANIC_PROXIES_COUNT=1 (docs/SECURITY.md), so remote_addr is the client's.
            return str(request.remote_addr or request.ip or "")[:64]

        def bearer(request: Request) -> str | None:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None

        async def as_agent(request: Request, work: Callable) -> Any:
            return await asyncio.to_thread(backend().as_agent, bearer(request), work)

        def body_of(request: Request) -> dict:
            try:
                data = json.loads(request.body or b"{}")
            except ValueError:
                raise HandoffError("bad_request", "the body is not JSON")
            if not isinstance(data, dict):
                raise HandoffError("bad_request", "the body is not a JSON object")
            return data

        def guarded(handler):
            async def wrapped(request: Request, *args, **kwargs) -> HTTPResponse:
                try:
                    return await handler(request, *args, **kwargs)
                except Unauthorised:
                    return error(401, "unauthorised", "sign in: Authorization: Bearer <token>")
                except HandoffError as exc:
                    status = getattr(exc, "http_status", None) or HTTP_STATUS.get(exc.code, 400)
                    return error(status, exc.code, str(exc))
            wrapped.__name__ = handler.__name__
            return wrapped

        def handoff_of(uow, conversation_id: str):
            desk = backend().desk(uow.session)
            handoff = desk.latest_for(conversation_id)
            if handoff is None:
                raise HandoffError("not_found", f"no hand-off for conversation {conversation_id}")
            return desk, handoff

        @bp.listener("before_server_start")
        async def _validate(app, loop) -> None:
            # The desk rules, canned replies and policy are checked at start-up: a broken file stops the server.
            await asyncio.to_thread(lambda: self.backend)

        @bp.listener("before_server_stop")
        async def _close(app, loop) -> None:
            if self._backend is not None:
                self._backend.engine.dispose()

        # --- the page ---------------------------------------------------------------------------
        @bp.route("/", methods=["GET"])
        async def page(request: Request) -> HTTPResponse:
            if not request.path.endswith("/"):
                return response.redirect(request.path + "/")  # the page's relative URLs need the slash
            page_text = self._file("index.html").decode("utf-8").replace("{{DESK_ZONE}}", desk_zone()["name"])
            return response.html(page_text, headers=PAGE_HEADERS)

        def static_route(name: str):
            async def static(_: Request) -> HTTPResponse:
                return response.raw(self._file(name), content_type=STATIC_FILES[name],
                                    headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})
            return static

        for file_name in STATIC_FILES:
            bp.add_route(static_route(file_name), f"/static/{file_name}", methods=["GET"],
                         name="static_" + file_name.replace(".", "_"))

        @bp.route("/openapi.json", methods=["GET"])
        async def openapi(_: Request) -> HTTPResponse:
            return response.json(openapi_document(), headers={"Cache-Control": "no-cache"})

        # --- signing in -------------------------------------------------------------------------
        @bp.route("/api/login", methods=["POST"])
        @guarded
        async def login(request: Request) -> HTTPResponse:
            from bot.services.handoff import SignInThrottled, sign_in_in_steps

            data = body_of(request)
            name, password = str(data.get("name") or "")[:200], str(data.get("password") or "")[:1024]
            address = client_address(request)

            def work():
                return sign_in_in_steps(backend().uow, name, password, utcnow(), address=address,
                                        idle_hours=backend().desk_config.session_idle_hours)

            if self._hashing_waiting >= HASHING_QUEUE:
                return error(503, "busy", "too many sign-ins at once; try again in a few seconds")
            self._hashing_waiting += 1
            try:
                # Each check is a 64 MiB argon2id hash in a worker thread: a few at a time, never on the event loop.
                async with self.hashing:
                    return ok(await asyncio.to_thread(work))
            except SignInThrottled as exc:
                log.warning("agent console: sign-in throttled (%s) for %r from %s", exc.throttle.by, name[:64],
                            address)
                refused = error(429, "throttled", str(exc))
                refused.headers["Retry-After"] = str(exc.throttle.retry_after_seconds)
                return refused
            except HandoffError:
                log.info("agent console: failed sign-in for %r from %s", name[:64], address)
                return error(401, "bad_credentials", "wrong name or password")
            finally:
                self._hashing_waiting -= 1

        @bp.route("/api/logout", methods=["POST"])
        @guarded
        async def logout(request: Request) -> HTTPResponse:
            token = bearer(request)

            def work(uow, agent, now):
                backend().accounts(uow.session).revoke(token, now)
                return {"signed_out": True}

            return ok(await as_agent(request, work))

        @bp.route("/api/me", methods=["GET"])
        @guarded
        async def me(request: Request) -> HTTPResponse:
            from bot.services.handoff import agent_json

            return ok(await as_agent(request, lambda uow, agent, now: {"agent": agent_json(agent)}))

        # --- the queue --------------------------------------------------------------------------
        @bp.route("/api/queue", methods=["GET"])
        @guarded
        async def queue(request: Request) -> HTTPResponse:
            order = request.args.get("order", "oldest")
            if order not in ("oldest", "newest"):
                raise HandoffError("bad_request", "order is oldest or newest")

            def work(uow, agent, now):
                from bot.services.routing import load_routing, route_queue

                desk = backend().desk(uow.session)
                items = [e.as_dict() for e in desk.queue(now, viewer=agent, order=order)]
                items = route_queue(uow.session, items, agent, load_routing(backend().settings.seed_dir / "desk.yml"))
                median = desk.median_handling_minutes()
                online = desk.agents_online(now)
                for item in items:
                    if item["position"]:
                        item["expected_wait_minutes"] = desk.expected_wait_minutes(item["position"], online)
                return {"order": order, "now": now.isoformat(), "agents_online": online, "zone": desk_zone(),
                        "open_now": desk.is_open(now), "median_handling_minutes": round(median, 1), "items": items}

            return ok(await as_agent(request, work))

        @bp.route("/api/canned", methods=["GET"])
        @guarded
        async def canned(request: Request) -> HTTPResponse:
            lang = request.args.get("lang")
            if lang not in (None, "zh", "en"):
                raise HandoffError("bad_request", "lang is zh or en")
            await as_agent(request, lambda uow, agent, now: None)
            replies = [{"id": r["id"], "title": r["title"][lang], "text": r[lang]} if lang
                       else {"id": r["id"], "title": r["title"], "zh": r["zh"], "en": r["en"]}
                       for r in backend().canned]
            return ok({"lang": lang, "replies": replies})

        # --- one conversation -------------------------------------------------------------------
        @bp.route("/api/conversations/<conversation_id:str>", methods=["GET"])
        @guarded
        async def conversation(request: Request, conversation_id: str) -> HTTPResponse:
            from bot.services.handoff import case_card, holds, masked_card, may_act, may_view
            from bot.services.routing import last_transfers

            conversation_id = unquote(conversation_id)

            def work(uow, agent, now):
                desk, handoff = handoff_of(uow, conversation_id)
                if not may_view(agent, handoff):
                    raise HandoffError("forbidden")
                card = case_card(uow.session, handoff, policy=backend().policy,
                                 today=now.astimezone(backend().settings.timezone).date(), desk=desk, now=now)
                card["may_act"] = may_act(agent, handoff)
                card["masked"] = not holds(agent, handoff)
                card["transfer"] = last_transfers(uow.session, [handoff.id]).get(handoff.id)  # note to the receiver
                return card

            card = await as_agent(request, work)
            events, _tracker = await self._tracker_events(request.app, conversation_id)
            card["transcript"] = transcript(events)
            card["cursor"] = len(events)
            card["suggested_facts"] = suggested_facts(card) if not card["masked"] else []
            # Personal data only for the agent who holds the case (or a supervisor): PIPL's need-to-know.
            return ok(masked_card(card) if card["masked"] else card)

        @bp.route("/api/conversations/<conversation_id:str>/events", methods=["GET"])
        @guarded
        async def conversation_events(request: Request, conversation_id: str) -> HTTPResponse:
            from bot.pii import mask_value
            from bot.services.handoff import holds, may_act, may_view

            conversation_id = unquote(conversation_id)
            try:
                after = max(0, int(request.args.get("after", "0")))
            except ValueError:
                raise HandoffError("bad_request", "after is a whole number")

            def work(uow, agent, now):
                _desk, handoff = handoff_of(uow, conversation_id)
                if not may_view(agent, handoff):
                    raise HandoffError("forbidden")
                return {"status": handoff.status, "agent": handoff.agent.name if handoff.agent else None,
                        "may_act": may_act(agent, handoff), "masked": not holds(agent, handoff)}

            state = await as_agent(request, work)
            events, _tracker = await self._tracker_events(request.app, conversation_id)
            items = transcript(events, start=after)
            return ok({"cursor": len(events), "items": mask_value(items) if state["masked"] else items,
                       "handoff": state})

        @bp.route("/api/conversations/<conversation_id:str>/claim", methods=["POST"])
        @guarded
        async def claim(request: Request, conversation_id: str) -> HTTPResponse:
            from bot.services.takeover import agent_names, greeting_due

            conversation_id = unquote(conversation_id)

            def work(uow, agent, now):
                desk, handoff = handoff_of(uow, conversation_id)
                desk.claim(handoff, agent, now)
                return {"handoff_id": handoff.id, "ticket": handoff.ticket.number, "channel": handoff.channel,
                        "holder": holder_of(handoff),
                        "language": handoff.language, "agent": agent.name, "agent_display_name": agent.display_name,
                        "agent_names": agent_names(agent), "claimed_at": now.isoformat()}

            info = await as_agent(request, work)
            events, current = await self._tracker_events(request.app, conversation_id)
            lang = self._language(current, info["language"])
            # Issue 16: one greeting, with the agent's name in the customer's language, or none (desk.yml).
            name = info["agent_names"][lang]
            joined = None
            if greeting_due(backend().takeover, events, info["handoff_id"], info["agent"]):
                joined = backend().texts.get("agent_joined", lang, agent=name)
            meta = {"agent": info["agent"], "agent_display_name": name, "handoff_id": info["handoff_id"],
                    "greeting": True}
            tracker = await self._append(request.app, conversation_id, holding_events(info["holder"], current)
                                         + ([BotUttered(joined, {}, meta)] if joined else []))
            channel = tracker.get_latest_input_channel() or info["channel"]
            await self._push_presence(request.app, conversation_id, channel, {"state": "agent", "agent_name": name})
            delivery = await self._deliver(request.app, conversation_id, channel,
                                           [{"text": joined, "speaker": "agent", "agent_name": name}] if joined else [])
            return ok({"status": "claimed", "handoff_id": info["handoff_id"], "ticket": info["ticket"],
                       "agent": info["agent"], "greeting": joined, "delivery": delivery.as_dict()})

        @bp.route("/api/conversations/<conversation_id:str>/messages", methods=["POST"])
        @guarded
        async def reply(request: Request, conversation_id: str) -> HTTPResponse:
            from bot.services.takeover import agent_names

            conversation_id = unquote(conversation_id)
            text = str(body_of(request).get("text") or "").strip()
            if not text:
                raise HandoffError("empty_text", "write something first")
            if len(text) > MAX_TEXT:
                raise HandoffError("bad_request", f"at most {MAX_TEXT} characters")

            def work(uow, agent, now):
                desk, handoff = handoff_of(uow, conversation_id)
                desk.record_reply(handoff, agent, text, now)
                return {"handoff_id": handoff.id, "channel": handoff.channel, "agent": agent.name,
                        "agent_display_name": agent.display_name, "agent_names": agent_names(agent),
                        "language": handoff.language}

            info = await as_agent(request, work)
            _events, current = await self._tracker_events(request.app, conversation_id)
            name = info["agent_names"][self._language(current, info["language"])]  # issue 16: in their language
            meta = {"agent": info["agent"], "agent_display_name": name, "handoff_id": info["handoff_id"]}
            tracker = await self._append(request.app, conversation_id, [BotUttered(text, {}, meta)])
            delivery = await self._deliver(request.app, conversation_id,
                                           tracker.get_latest_input_channel() or info["channel"],
                                           [{"text": text, "speaker": "agent", "agent_name": name}])
            return ok({"sent": True, "text": text, "cursor": len(tracker.events), "delivery": delivery.as_dict()},
                      status=201)

        @bp.route("/api/conversations/<conversation_id:str>/handback", methods=["POST"])
        @guarded
        async def handback(request: Request, conversation_id: str) -> HTTPResponse:
            conversation_id = unquote(conversation_id)

            def work(uow, agent, now):
                desk, handoff = handoff_of(uow, conversation_id)
                desk.hand_back(handoff, agent, now)
                return {"handoff_id": handoff.id, "ticket": handoff.ticket.number, "channel": handoff.channel,
                        "holder": holder_of(handoff),
                        "language": handoff.language, "conversation_id": conversation_id}

            info = await as_agent(request, work)
            delivery = await self._return_to_bot(request.app, info, closed=False)
            return ok({"status": "returned", "ticket": info["ticket"], "delivery": delivery})

        @bp.route("/api/conversations/<conversation_id:str>/close", methods=["POST"])
        @guarded
        async def close(request: Request, conversation_id: str) -> HTTPResponse:
            conversation_id = unquote(conversation_id)
            note = str(body_of(request).get("note") or "")[:500]

            def work(uow, agent, now):
                from bot.services.routing import record_resolution

                desk, handoff = handoff_of(uow, conversation_id)
                desk.close(handoff, agent, now, note=note)
                if note.strip():
                    record_resolution(desk, handoff, agent, now, note.strip())
                return {"handoff_id": handoff.id, "ticket": handoff.ticket.number, "channel": handoff.channel,
                        "holder": holder_of(handoff),
                        "language": handoff.language, "conversation_id": conversation_id,
                        "ticket_status": handoff.ticket.status}

            info = await as_agent(request, work)
            delivery = await self._return_to_bot(request.app, info, closed=True)
            return ok({"status": "closed", "ticket": info["ticket"], "ticket_status": info["ticket_status"],
                       "delivery": delivery})

        @bp.route("/api/conversations/<conversation_id:str>/notes", methods=["POST"])
        @guarded
        async def notes(request: Request, conversation_id: str) -> HTTPResponse:
            conversation_id = unquote(conversation_id)
            text = str(body_of(request).get("text") or "").strip()

            def work(uow, agent, now):
                _desk, handoff = handoff_of(uow, conversation_id)
                backend().desk(uow.session).add_note(handoff, agent, text, now)
                return {"added": True, "ticket": handoff.ticket.number, "agent": agent.name, "at": now.isoformat(),
                        "text": text}

            return ok(await as_agent(request, work), status=201)

        def desk_zone() -> dict:
            return zone_of(backend().settings.timezone)

        add_desk_routes(bp, backend, as_agent, ok, guarded)
        add_live_routes(bp, self.live, backend, as_agent, ok, guarded, body_of, handoff_of, desk_zone)
        add_customer_routes(bp, backend, as_agent, ok, guarded, handoff_of)
        return bp


# ---------------------------------------------------------------------------------------------- OpenAPI
def openapi_document() -> dict:
    """The console API in OpenAPI 3.0 (served at /webhooks/agent/openapi.json)."""
    def ref(name: str) -> dict:
        return {"$ref": f"#/components/schemas/{name}"}

    def json_body(schema: dict, description: str = "") -> dict:
        return {"description": description or "OK", "content": {"application/json": {"schema": schema}}}

    errors = {"401": {"$ref": "#/components/responses/Unauthorised"},
              "403": {"$ref": "#/components/responses/Forbidden"},
              "404": {"$ref": "#/components/responses/NotFound"},
              "409": {"$ref": "#/components/responses/Conflict"},
              "429": {"$ref": "#/components/responses/TooManyRequests"}}
    conv = {"name": "conversation_id", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "The customer's conversation (Rasa sender id: REST sender, Telegram chat id, widget "
                           "session id)."}

    def op(summary: str, ok_schema: dict, *, body: dict | None = None, params: list | None = None,
           status: str = "200", with_errors: tuple = ("401", "403", "404", "409"), description: str = "") -> dict:
        operation = {"summary": summary, "responses": {status: json_body(ok_schema)}}
        if description:
            operation["description"] = description
        operation["responses"].update({k: errors[k] for k in with_errors})
        if body is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
        if params:
            operation["parameters"] = params
        return operation

    obj = {"type": "object"}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Agent console API", "version": "1.0.0",
                 "description": "Hand-off to a person: the queue, taking a conversation over from the bot, replying "
                                "through the customer's channel, handing back, closing, notes. Every call except "
                                "login needs `Authorization: Bearer <token>` (401 without or expired; 403 for a "
                                "conversation the agent may not act on: agents see waiting conversations and their "
                                "own; supervisors see all). REST customers have no push: they read agent messages "
                                "from Rasa's GET /conversations/{id}/tracker."},
        "servers": [{"url": "/webhooks/agent"}],
        "security": [{"bearerAuth": []}],
        "paths": {
            "/api/login": {"post": dict(op("Sign in", ref("SignIn"), body={
                "type": "object", "required": ["name", "password"],
                "properties": {"name": {"type": "string"}, "password": {"type": "string", "format": "password"}}},
                with_errors=("401", "429"), description="At most 5 failed sign-ins per name and per client "
                "address in 15 minutes; after that 429 with Retry-After, even with the right password."),
                security=[])},
            "/api/logout": {"post": op("Sign out (revokes the token)", obj, with_errors=("401",))},
            "/api/me": {"get": op("The signed-in agent", obj, with_errors=("401",))},
            "/api/queue": {"get": op("Waiting and taken conversations the agent may see", ref("Queue"), params=[
                {"name": "order", "in": "query", "schema": {"type": "string", "enum": ["oldest", "newest"],
                                                           "default": "oldest"}}], with_errors=("401",))},
            "/api/canned": {"get": op("Canned replies", obj, params=[
                {"name": "lang", "in": "query", "schema": {"type": "string", "enum": ["zh", "en"]},
                 "description": "one language (title and text); without it both"}], with_errors=("401",))},
            "/api/conversations/{conversation_id}": {"get": op(
                "The case card and transcript", ref("CaseCard"), params=[conv], with_errors=("401", "403", "404"),
                description="Customer, purchase and warranty status, facts, the six steps with times, the remedy "
                            "and the customer's answer, earlier tickets and visits, hand-off reason and anger, and "
                            "the transcript from the tracker (customer, bot and agent messages in order).")},
            "/api/conversations/{conversation_id}/events": {"get": op(
                "New transcript items since a cursor (poll every 1-2 s)", ref("Events"), params=[
                    conv, {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0},
                           "description": "the cursor from the last answer (number of tracker events seen)"}],
                with_errors=("401", "403", "404"))},
            "/api/conversations/{conversation_id}/claim": {"post": op(
                "Take the conversation over (only while waiting): the bot is paused for this customer", obj,
                params=[conv])},
            "/api/conversations/{conversation_id}/messages": {"post": op(
                "Reply to the customer through their channel", obj, params=[conv], status="201",
                body={"type": "object", "required": ["text"], "properties": {"text": {"type": "string",
                                                                                       "maxLength": MAX_TEXT}}})},
            "/api/conversations/{conversation_id}/handback": {"post": op(
                "Hand the conversation back to the bot, which asks if anything else is needed (then for a rating)",
                obj, params=[conv])},
            "/api/conversations/{conversation_id}/close": {"post": op(
                "Close: the hand-off ends and the ticket is resolved; the bot asks for a rating", obj, params=[conv],
                body={"type": "object", "properties": {"note": {"type": "string"}}})},
            "/api/conversations/{conversation_id}/notes": {"post": op(
                "Add an internal note to the ticket", obj, params=[conv], status="201",
                body={"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}})},
            **desk_openapi_paths(op, obj),
            **live_openapi_paths(op, obj, conv),
            **customer_openapi_paths(op, obj),
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "responses": {
                name: {"description": text, "content": {"application/json": {"schema": ref("Error")}}}
                for name, text in (("Unauthorised", "no token, or an expired or revoked one"),
                                   ("Forbidden", "not a conversation this agent may see or act on"),
                                   ("NotFound", "no hand-off for this conversation"),
                                   ("Conflict", "not in a state for this (e.g. already taken, not taken yet)"),
                                   ("TooManyRequests", "too many failed sign-ins; see the Retry-After header"))},
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "string"}, "detail": {"type": "string"}}},
                "Agent": {"type": "object", "properties": {
                    "name": {"type": "string"}, "display_name": {"type": "string"},
                    "role": {"type": "string", "enum": ["agent", "supervisor"]},
                    "languages": {"type": "array", "items": {"type": "string"}}}},
                "SignIn": {"type": "object", "properties": {
                    "token": {"type": "string"}, "expires_at": {"type": "string", "format": "date-time"},
                    "agent": ref("Agent")}},
                "QueueItem": {"type": "object", "properties": {
                    "conversation_id": {"type": "string"}, "ticket": {"type": "string"},
                    "channel": {"type": "string"}, "reason": {"type": "string"},
                    "status": {"type": "string", "enum": ["waiting", "claimed"]},
                    "language": {"type": "string"}, "anger": {"type": "number"},
                    "requested_at": {"type": "string", "format": "date-time"},
                    "waiting_seconds": {"type": "integer"}, "position": {"type": "integer", "nullable": True},
                    "expected_wait_minutes": {"type": "integer"}, "agent": {"type": "string", "nullable": True},
                    "callback_due": {"type": "string", "format": "date-time", "nullable": True}}},
                "Queue": {"type": "object", "properties": {
                    "order": {"type": "string"}, "agents_online": {"type": "integer"},
                    "open_now": {"type": "boolean"}, "median_handling_minutes": {"type": "number"},
                    "items": {"type": "array", "items": ref("QueueItem")}}},
                "TranscriptItem": {"type": "object", "properties": {
                    "i": {"type": "integer"}, "from": {"type": "string", "enum": ["customer", "bot", "agent",
                                                                                  "system"]},
                    "text": {"type": "string"}, "at": {"type": "string", "format": "date-time"},
                    "agent": {"type": "string"}, "what": {"type": "string", "enum": ["paused", "resumed"]}}},
                "Events": {"type": "object", "properties": {
                    "cursor": {"type": "integer"}, "items": {"type": "array", "items": ref("TranscriptItem")},
                    "handoff": obj}},
                "CaseCard": {"type": "object", "properties": {
                    "conversation_id": {"type": "string"}, "channel": {"type": "string"}, "handoff": obj,
                    "ticket": obj, "customer": obj, "facts": obj, "steps": {"type": "array", "items": obj},
                    "remedy": obj, "purchase": {"type": "object", "nullable": True},
                    "warranty": {"type": "object", "nullable": True}, "history": obj,
                    "notes": {"type": "array", "items": obj}, "may_act": {"type": "boolean"},
                    "masked": {"type": "boolean", "description": "personal data hidden: the agent does not hold "
                                                                 "the case (take it over to see it)"},
                    "transcript": {"type": "array", "items": ref("TranscriptItem")}, "cursor": {"type": "integer"}}},
            },
        },
    }
