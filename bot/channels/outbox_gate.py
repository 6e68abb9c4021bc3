"""The outbox runner's way into the Rasa server: `POST /webhooks/outbox/deliver` (a Rasa input channel, "outbox").

Why an endpoint on the Rasa server: the runner is a process of its own, but the customer's channels live here — the
Telegram output with its retries, the widget's socket.io rooms (who is connected right now) — and so does the
conversation's tracker, which must show everything sent (the agent console reads it) and carry the question a
promise opens (the `flow_state` slot), under Rasa's own conversation lock so a message arriving at the same moment
is not lost. One authenticated call does all of it:

1. the tracker already has a message of this outbox row (a retry after a lost answer): `sent`, nothing repeated;
2. push through the customer's channel: Telegram (`send_proactive`), the widget (socket.io emit to the session's
   room when a socket is in it; otherwise nothing is pushed and the answer is `held`: the message is in the
   tracker and the widget shows it from its history when the customer comes back), REST (no push: REST clients
   read the tracker), any other channel through its output channel;
3. append the messages as `BotUttered` (metadata {"outbox_id", "promise"}) and, for a promise that asks something,
   the script's state for the answer (`flow`, `flow_state`; bot/services/promises.py `promise_state`).

Closed by default: `Authorization: Bearer $BOT_OUTBOX_TOKEN` (compared in constant time); without the variable the
endpoint answers 503. The body is cut at 64 KB before it is parsed.
Answers: 200 {"status": "sent"|"held", "duplicate"}; 400 bad body; 401 bad token; 422 {"retryable": false}
(nothing to send it with); 502 {"retryable": true} (the channel failed; nothing was written).
"""
from __future__ import annotations

import hmac
import json
import logging
import os
from typing import Any, Awaitable, Callable

from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.shared.core.events import BotUttered, SlotSet
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.services.conversation import sender_of
from bot.services.promises import promise_state

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
TOKEN_ENV = "BOT_OUTBOX_TOKEN"


class GateError(Exception):
    def __init__(self, status: int, code: str, retryable: bool):
        super().__init__(code)
        self.status, self.code, self.retryable = status, code, retryable


def parse_body(raw: bytes) -> dict:
    """The runner's request, checked: conversation, channel, 1-10 messages of text (and buttons)."""
    if len(raw) > MAX_BODY:
        raise GateError(413, "too_large", False)
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise GateError(400, "bad_json", False)
    ok = (isinstance(body, dict) and isinstance(body.get("outbox_id"), int)
          and isinstance(body.get("conversation_id"), str) and 0 < len(body["conversation_id"]) <= 128
          and isinstance(body.get("channel"), str) and isinstance(body.get("messages"), list)
          and 0 < len(body["messages"]) <= 10
          and all(isinstance(m, dict) and isinstance(m.get("text"), str) for m in body["messages"])
          and (body.get("question") is None or isinstance(body["question"], dict)))
    if not ok:
        raise GateError(400, "bad_request", False)
    return body


class OutboxGateInput(InputChannel):
    @classmethod
    def name(cls) -> str:
        return "outbox"

    @classmethod
    def from_credentials(cls, credentials: dict | None) -> "OutboxGateInput":
        return cls()

    def __init__(self, token: str | None = None):
        self._token = token

    @property
    def token(self) -> str | None:
        return self._token if self._token is not None else (os.environ.get(TOKEN_ENV) or None)

    # ------------------------------------------------------------------------------------------- delivery
    @staticmethod
    async def push(app, channel: str, conversation_id: str, messages: list[dict], kind: str = "",
                   language: str = "zh") -> str:
        """Through the customer's channel: "sent", or "held" (a widget nobody has open, a WeChat follower outside
        the 48-hour window with no template for `kind`). Raises GateError."""
        if channel == "rest":
            return "sent"  # REST has no push: the client reads the conversation (GET /conversations/{id}/tracker)
        channels = getattr(app.ctx, "input_channels", None) or []
        target = next((c for c in channels if c.name() == channel), None)
        if target is None:
            raise GateError(422, f"channel {channel} is not served here", False)
        recipient = sender_of(channel, conversation_id)
        try:
            if getattr(target, "deliverer", None) is not None:  # WeChat: the 48-hour rule, templates per kind
                delivery = await target.deliverer.deliver(conversation_id, kind or "reminder", language,
                                                          [dict(m) for m in messages])
                return "held" if delivery.via == "held" else "sent"
            if hasattr(target, "send_proactive"):  # Telegram
                for m in messages:
                    await target.send_proactive(recipient, m["text"], m.get("buttons"))
                return "sent"
            sio = getattr(target, "sio", None)
            if sio is not None:  # the web widget: only a socket in the session's room sees an emit
                namespace = getattr(target, "namespace", None) or "/"
                if not any(True for _ in sio.manager.get_participants(namespace, recipient)):
                    return "held"
            output = target.get_output_channel()
            if output is None:
                raise GateError(422, f"channel {channel} cannot send", False)
            for m in messages:
                await output.send_response(recipient, dict(m))
            return "sent"
        except GateError:
            raise
        except Exception as exc:  # noqa: BLE001 - the runner retries later; nothing was written
            from telegram.error import BadRequest, Forbidden

            log.warning("outbox gate: %s to a %s conversation failed: %s", "push", channel, exc.__class__.__name__)
            retryable = getattr(exc, "retryable", None)  # WeChat's API errors say; Telegram's by their class
            raise GateError(502, exc.__class__.__name__,
                            not isinstance(exc, (BadRequest, Forbidden)) if retryable is None else bool(retryable))

    async def deliver(self, app, body: dict) -> dict:
        agent = app.ctx.agent
        conversation_id = body["conversation_id"]
        outbox_id = body["outbox_id"]
        async with agent.lock_store.lock(conversation_id, wait_time_in_seconds=0.05):
            tracker = await agent.processor.get_tracker(conversation_id)
            if any(isinstance(e, BotUttered) and (e.metadata or {}).get("outbox_id") == outbox_id
                   for e in tracker.events):
                return {"status": "sent", "duplicate": True}
            messages = [{"text": m["text"][:4096], **({"buttons": m["buttons"]} if m.get("buttons") else {})}
                        for m in body["messages"]]
            status = await self.push(app, body["channel"], conversation_id, messages, str(body.get("kind") or ""),
                                     str(body.get("language") or "zh"))
            meta = {"outbox_id": outbox_id, "promise": str(body.get("kind") or "")}
            for m in messages:
                tracker.update(BotUttered(m["text"], {"buttons": m.get("buttons") or []}, dict(meta)))
            if body.get("question"):
                state = promise_state(tracker.get_slot("flow_state"), body["question"])
                tracker.update(SlotSet("flow_state", state))
                tracker.update(SlotSet("flow", state["flow"]))
            await agent.processor.save_tracker(tracker)
        return {"status": status, "duplicate": False}

    # ------------------------------------------------------------------------------------------- route
    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("outbox_gate", __name__)

        def error(status: int, code: str, retryable: bool) -> HTTPResponse:
            return response.json({"error": code, "retryable": retryable}, status=status)

        @bp.route("/deliver", methods=["POST"])
        async def deliver(request: Request) -> HTTPResponse:
            token = self.token
            if not token:
                return error(503, "outbox gate not configured", True)
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return error(401, "unauthorised", False)
            try:
                body = parse_body(request.body or b"")
                return response.json(await self.deliver(request.app, body))
            except GateError as exc:
                return error(exc.status, exc.code, exc.retryable)

        return bp
