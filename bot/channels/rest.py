"""The REST channel: Rasa's `rest` channel (same URL /webhooks/rest/webhook, same JSON in and out), with the client
kept in its own space and its input bounded.

Registered in credentials.yml as `bot.channels.rest.RestInput:` instead of `rest:`. Differences from Rasa's:
- the conversation is `conversation_id("rest", sender)` (`rest:<sender>`): a client choosing `"sender": "123"` talks
  in `rest:123`, never in Telegram chat 123's conversation; the answer's `recipient_id` is still the sender it sent;
- `input_channel` is always `rest` (Rasa's lets the client name any channel);
- bodies over MAX_BODY_BYTES are refused on Content-Length (413) before they are read into memory, JSON that is not
  `{"sender", "message"}` gets 400; the message is cut to BOT_MAX_MESSAGE_CHARS before the NLU (and the customer
  told), and senders and client addresses are rate limited (bot/channels/guard.py), with a clear answer;
- client metadata is kept, but the keys the server sets (`client_address`, `message_cut`) cannot be forged;
- `?stream=true` is not offered.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable, Optional, Text

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.guard import Guard, guess_language
from bot.services.conversation import conversation_id

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 2 * 1024 * 1024  # a 300,000-character Chinese message is ~900 KB of UTF-8; the text is cut anyway
MAX_SENDER_CHARS = 128
SERVER_METADATA = ("client_address", "message_cut")


def client_address(request: Request) -> str:
    """The client's address as Sanic sees it (behind a proxy, configure Sanic's PROXIES_COUNT/FORWARDED_SECRET so
    that remote_addr is the real client)."""
    return request.remote_addr or request.ip or ""


def body_too_large(request: Request, limit: int) -> bool:
    """Decided on the Content-Length header, before the body is buffered (Sanic's own cap is REQUEST_MAX_SIZE)."""
    try:
        return int(request.headers.get("content-length") or 0) > limit
    except ValueError:
        return True


class RestInput(InputChannel):
    @classmethod
    def name(cls) -> Text:
        return "rest"

    def __init__(self, guard: Guard | None = None) -> None:
        self.guard = guard or Guard()

    @classmethod
    def from_credentials(cls, credentials: Optional[dict]) -> "RestInput":
        return cls()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("rest_webhook_bounded", __name__)

        @bp.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @bp.route("/webhook", methods=["POST"], stream=True)
        async def receive(request: Request) -> HTTPResponse:
            if body_too_large(request, MAX_BODY_BYTES):
                return response.json({"error": "too_large", "limit_bytes": MAX_BODY_BYTES}, status=413)
            body = b""
            while True:  # read at most MAX_BODY_BYTES even when Content-Length lied or was absent (chunked)
                chunk = await request.stream.read()
                if chunk is None:
                    break
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    return response.json({"error": "too_large", "limit_bytes": MAX_BODY_BYTES}, status=413)
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                return response.json({"error": "bad_request", "detail": "the body is not JSON"}, status=400)
            if not isinstance(data, dict):
                return response.json({"error": "bad_request", "detail": "the body is not an object"}, status=400)
            sender, text = data.get("sender"), data.get("message")
            if isinstance(sender, int) and not isinstance(sender, bool):
                sender = str(sender)
            if not isinstance(sender, str) or not sender.strip() or len(sender) > MAX_SENDER_CHARS:
                return response.json({"error": "bad_request",
                                      "detail": f"sender: a string of 1-{MAX_SENDER_CHARS} characters"}, status=400)
            if text is None:
                text = ""
            if not isinstance(text, str):
                return response.json({"error": "bad_request", "detail": "message: a string"}, status=400)
            metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
            metadata = {k: v for k, v in metadata.items() if k not in SERVER_METADATA}
            address = client_address(request)
            verdict = self.guard.admit(text, sender=conversation_id("rest", sender), address=address)
            language = guess_language(text, (metadata.get("language") or "")[:2] if isinstance(
                metadata.get("language"), str) else None)
            collector = CollectingOutputChannel()
            if verdict.refused:
                log.info("rest: rate limit for a sender from %s (%.0fs)", address, verdict.wait_seconds)
                notice = self.guard.notices(verdict, language)
                return response.json([{"recipient_id": sender, "text": t} for t in notice], status=429)
            metadata["client_address"] = address
            if verdict.cut:
                metadata["message_cut"] = len(text)
                for notice in self.guard.notices(verdict, language):
                    await collector.send_text_message(sender, notice)
            try:
                await on_new_message(UserMessage(verdict.text, collector, conversation_id("rest", sender),
                                                 input_channel=self.name(), metadata=metadata))
            except Exception:  # noqa: BLE001 - as Rasa's: the customer gets what was said so far
                log.exception("rest: handling a message failed")
            for message in collector.messages:
                message["recipient_id"] = sender  # the client's own sender, as Rasa's REST channel answers
            return response.json(collector.messages)

        return bp
