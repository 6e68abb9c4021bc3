"""Web chat channel: an embeddable chat widget served by the Rasa server, talking socket.io to it.

Registered in credentials.yml as

    bot.channels.webchat.WebChatInput:
      user_message_evt: user_uttered
      bot_message_evt: bot_uttered
      session_persistence: true

(the other keys of Rasa's `socketio` channel work too: namespace, socketio_path (default /socket.io), jwt_key,
jwt_method, metadata_key). Routes (Rasa mounts the blueprint under /webhooks/webchat):

    GET  /webhooks/webchat/                  demo page: an appliance shop's page with the widget embedded
    GET  /webhooks/webchat/widget.js         the widget (plain JS; loads widget.css and socket.io.min.js from here)
    GET  /webhooks/webchat/widget.css        its styles
    GET  /webhooks/webchat/socket.io.min.js  the socket.io client (vendored from npm socket.io-client 4, MIT)
    GET  /webhooks/webchat/history?session_id=...  the conversation so far (from the tracker store, plus photos
                                             from the ticket records): {"session_id", "messages": [...]}
    POST /webhooks/webchat/upload            multipart: session_id (or sender), file, language (zh|en), sid
                                             (optional socket id). JPEG/PNG/WebP up to 5 MB, stored on the
                                             conversation's current ticket; 200 {"ok", "ticket", "message"}, or
                                             400/413/415 {"error", "message"}.
    GET  /webhooks/webchat/presence?session_id=...&language=zh|en  who holds the conversation (issue 16):
                                             {"state": "assistant"} | {"state": "waiting", "position", "ahead"} |
                                             {"state": "agent", "agent_name"}
    socket.io at /socket.io/ (the app root, not under /webhooks): events session_request -> session_confirm,
             user_uttered {message, session_id, metadata: {language, display_text}} -> bot_uttered {text, ...,
             speaker: "assistant"|"agent", agent_name (agent messages)}; `presence` (as GET /presence) is pushed
             when an agent takes the conversation over or hands it back.

Why a subclass of Rasa's SocketIOInput rather than the stock `socketio` channel:
- Rasa 3.6 calls `sio.enter_room(sid, room)` without awaiting it; in python-socketio >= 5.10 `enter_room` is a
  coroutine, so with session persistence the socket never joins its session's room and every bot reply (emitted to
  the room) is lost. Our `session_request` handler awaits it.
- Session ids are issued and signed by the server (32 hex characters: 16 random, 16 of an HMAC-SHA256 with
  BOT_SESSION_SECRET), and checked on every use: a client cannot make one up, nor pick another conversation's id.
  The conversation is `conversation_id("webchat", session)` (`webchat:<session>`); rooms are named by the session.
- Messages are cut to BOT_MAX_MESSAGE_CHARS before the NLU, senders and client addresses are rate limited
  (bot/channels/guard.py), and uploads are refused on Content-Length before the body is read.
- Message metadata is cleaned (language zh|en, the button title the customer pressed) before it reaches Rasa.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import json
import logging
import os
import re
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.socketio import SocketBlueprint, SocketIOInput, SocketIOOutput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncServer

from bot.channels.guard import Guard, guess_language
from bot.channels.records import ChannelRecords
from bot.channels.rest import body_too_large, client_address
from bot.cluster import socketio_manager
from bot.services.conversation import conversation_id, sender_of

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "webchat_static"
STATIC_FILES = {
    "widget.js": "application/javascript; charset=utf-8",
    "widget.css": "text/css; charset=utf-8",
    "socket.io.min.js": "application/javascript; charset=utf-8",
}
MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # 5 MB
UPLOAD_TYPES = ("image/jpeg", "image/png", "image/webp")
HISTORY_LIMIT = 300  # messages
SESSION_ID = re.compile(r"^[0-9a-f]{32}$")
DISPLAY_TEXT_LIMIT = 200

# What the upload endpoint answers when it refuses a file (the web chat's own limits, stricter than Telegram's).
UPLOAD_ERRORS = {
    "too_large": {"zh": "照片太大了：每张不超过 5 MB。请压缩后再发送。",
                  "en": "That photo is too large: up to 5 MB each. Please send a smaller one."},
    "bad_type": {"zh": "只能发送 JPG、PNG 或 WebP 格式的照片。",
                 "en": "Only photos in JPG, PNG or WebP format can be sent."},
    "no_file": {"zh": "没有收到照片，请重新选择。", "en": "No photo arrived. Please choose it again."},
    "bad_session": {"zh": "会话已失效，请刷新页面后重试。", "en": "The chat session is not valid. Please reload the page."},
    "failed": {"zh": "照片没能保存，请稍后再试。", "en": "The photo could not be saved. Please try again later."},
}


MAX_UPLOAD_BODY = MAX_UPLOAD_BYTES + 64 * 1024  # the photo plus the form fields around it
_SECRET: list[bytes] = []


def session_secret() -> bytes:
    """BOT_SESSION_SECRET (scripts/run.sh makes one), else a random one for this process (sessions then end with
    it; a warning says so)."""
    if not _SECRET:
        raw = os.environ.get("BOT_SESSION_SECRET", "")
        if not raw:
            log.warning("BOT_SESSION_SECRET is not set: web chat sessions will not survive a restart")
            raw = secrets.token_urlsafe(32)
        _SECRET.append(raw.encode("utf-8"))
    return _SECRET[0]


def _signature(nonce: str, secret: str | None = None) -> str:
    key = secret.encode("utf-8") if secret else session_secret()
    return hmac.new(key, b"webchat-session:" + nonce.encode("ascii"), hashlib.sha256).hexdigest()[:16]


def new_session_id() -> str:
    nonce = secrets.token_hex(8)
    return nonce + _signature(nonce)


def valid_session_id(value: Any, secret: str | None = None) -> bool:
    """32 hex characters whose second half signs the first (made by `new_session_id`; `secret`: another server's)."""
    if not (isinstance(value, str) and SESSION_ID.match(value)):
        return False
    return hmac.compare_digest(value[16:], _signature(value[:16], secret))


def clean_language(value: Any) -> Optional[str]:
    code = str(value or "").strip().lower()
    if code.startswith("zh"):
        return "zh"
    if code.startswith("en"):
        return "en"
    return None


def clean_metadata(raw: Any) -> Dict[str, Any]:
    """Only what the bot uses: the UI language and the title of a pressed button."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = {}
    if not isinstance(raw, dict):
        return {}
    metadata: Dict[str, Any] = {}
    language = clean_language(raw.get("language"))
    if language:
        metadata["language"] = language
    display = raw.get("display_text")
    if isinstance(display, str) and display.strip():
        metadata["display_text"] = display.strip()[:DISPLAY_TEXT_LIMIT]
    return metadata


def split_bot_text(text: str) -> List[str]:
    """Like SocketIOOutput: one bubble per paragraph."""
    parts = [p for p in (text or "").strip().split("\n\n") if p.strip()]
    return parts or ([text] if text else [])


def history_messages(events: List[Dict[str, Any]], attachments: List[Dict[str, Any]] | None = None,
                     limit: int = HISTORY_LIMIT) -> List[Dict[str, Any]]:
    """The conversation as the widget shows it, from serialised tracker events (and stored photos).

    Each item: {"sender": "user"|"bot", "text", "at" (epoch seconds)}; bot items also say who spoke: "speaker":
    "assistant" | "agent" (with "agent_name", issue 16); plus "buttons" on the last bot message when
    the customer has not answered it yet, and "kind": "photo" for a photo the customer sent. A pressed button shows
    its title (from the message metadata, else from the buttons it answered), not its payload."""
    items: List[Dict[str, Any]] = []
    last_buttons: List[Dict[str, Any]] = []
    for event in events:
        kind = event.get("event")
        at = float(event.get("timestamp") or 0)
        if kind == "user":
            text = event.get("text")
            if text is None:
                continue
            metadata = event.get("metadata") or {}
            shown = metadata.get("display_text") if isinstance(metadata, dict) else None
            if not shown:
                shown = next((b.get("title") for b in last_buttons if b.get("payload") == text), None) or text
            items.append({"sender": "user", "text": shown, "at": at})
            last_buttons = []
        elif kind == "bot":
            data = event.get("data") or {}
            buttons = [{"title": b.get("title"), "payload": b.get("payload")}
                       for b in (data.get("buttons") or data.get("quick_replies") or []) if b.get("title")]
            parts = split_bot_text(event.get("text") or "")
            if not parts and not buttons:
                continue
            metadata = event.get("metadata") or {}
            speaker = {"speaker": "agent", "agent_name": metadata.get("agent_display_name") or metadata["agent"]} \
                if isinstance(metadata, dict) and metadata.get("agent") else {"speaker": "assistant"}
            for i, part in enumerate(parts or [""]):
                item = {"sender": "bot", "text": part, "at": at, **speaker}
                if buttons and i == len(parts or [""]) - 1:
                    item["buttons"] = buttons
                items.append(item)
            last_buttons = buttons
    for photo in attachments or ():
        items.append({"sender": "user", "kind": "photo", "text": photo["label"], "at": photo["at"]})
        items.append({"sender": "bot", "text": photo["ack"], "at": photo["at"] + 1e-6})
    items.sort(key=lambda item: item["at"])  # stable: events keep their order
    items = items[-limit:]
    # Only the newest bot message keeps its buttons, and only if nothing came after it.
    for i, item in enumerate(items):
        if "buttons" in item and (i != len(items) - 1):
            del item["buttons"]
    return items


class WebChatOutput(SocketIOOutput):
    """Every bot_uttered says who speaks (issue 16): "speaker": "assistant" (the bot) or "agent" with "agent_name"
    (the agent's name in the customer's language). Old clients ignore the extra keys."""

    SPEAKER_KEYS = ("speaker", "agent_name")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._speaker: Dict[str, Any] = {}

    @classmethod
    def name(cls) -> Text:
        return "webchat"

    async def send_response(self, recipient_id: Text, message: Dict[Text, Any]) -> None:
        message = dict(message)
        self._speaker = {k: message.pop(k) for k in self.SPEAKER_KEYS if message.get(k)}
        try:
            await super().send_response(recipient_id, message)
        finally:
            self._speaker = {}

    async def _send_message(self, socket_id: Text, response: Any) -> None:
        # Rasa sends to the conversation id (webchat:<session>); the socket room is the session.
        if isinstance(response, dict):
            response = {**response, "speaker": "assistant", **self._speaker}
        await self.sio.emit(self.bot_message_evt, response, room=sender_of("webchat", socket_id))


class WebChatInput(ChannelRecords, SocketIOInput):
    """Rasa's socket.io channel with the enter_room fix, checked session ids, the widget and photo uploads."""

    @classmethod
    def name(cls) -> Text:
        return "webchat"

    def __init__(self, *args: Any, var_dir: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._var_dir = var_dir
        self._static: Dict[str, bytes] = {}
        self.guard = Guard()

    def get_output_channel(self) -> Optional[WebChatOutput]:
        if self.sio is None:
            return None
        return WebChatOutput(self.sio, self.bot_message_evt)

    # ------------------------------------------------------------------------------------------ static files
    def _file(self, name: str) -> bytes:
        if name not in self._static:
            self._static[name] = (STATIC_DIR / name).read_bytes()
        return self._static[name]

    # ------------------------------------------------------------------------------------------ records
    def _save_photo(self, *, session_id: str, data: bytes, mime_type: str, filename: str | None,
                    language: str) -> str:
        return self.save_file(conversation_id("webchat", session_id), data=data, mime_type=mime_type,
                              filename=filename, language=language)

    def _photos(self, session_id: str, language: str) -> List[Dict[str, Any]]:
        """Photos sent through the web chat in this conversation, for the history."""
        from bot.services.attachments import photo_history
        from bot.texts import load_texts

        texts = load_texts()
        with self.app.uow() as uow:
            rows = photo_history(uow, conversation_id=conversation_id("webchat", session_id), channel=self.name())
        label = "照片" if language == "zh" else "Photo"
        return [{"at": at, "label": label, "ack": texts.get("attachment_saved", language, number=number)}
                for at, number in rows]

    def _presence(self, session_id: str, language: str) -> Dict[str, Any]:
        from bot.services.takeover import presence_in

        return presence_in(self.app.sessions, conversation_id("webchat", session_id), language)

    async def push_presence(self, conversation: str, status: Dict[str, Any]) -> None:
        """Tell the widget(s) of a conversation who holds it now (the agent console calls this on take-over and
        hand-back): socket event `presence` {"state": "assistant"|"waiting"|"agent", "agent_name", "position",
        "ahead"} to the session's room."""
        if self.sio is None:
            return
        await self.sio.emit("presence", dict(status), room=sender_of("webchat", conversation), namespace=self.namespace)

    def _held_shown(self, session_id: str) -> int:
        from bot.services.outbox import mark_held_delivered

        with self.app.uow() as uow:
            shown = mark_held_delivered(uow.session, conversation_id("webchat", session_id), datetime.now(timezone.utc))
            uow.commit()
        return shown

    @staticmethod
    async def _tracker_language(request: Request, session_id: str) -> Optional[str]:
        try:
            tracker = await request.app.ctx.agent.tracker_store.retrieve(conversation_id("webchat", session_id))
            return clean_language(tracker.get_slot("language")) if tracker is not None else None
        except Exception:  # noqa: BLE001 - the widget's language is a good enough fallback
            log.debug("webchat: could not read the language slot of %s", session_id, exc_info=True)
            return None

    # ------------------------------------------------------------------------------------------ blueprint
    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        # As in SocketIOInput: CORS is left to the Sanic app (`rasa run --cors ...`).
        # In the cluster profile, rooms are shared through Redis: an emit reaches the widget on any instance.
        manager = socketio_manager()
        sio = AsyncServer(async_mode="sanic", cors_allowed_origins=[],
                          **({"client_manager": manager} if manager is not None else {}))
        webchat = SocketBlueprint(sio, self.socketio_path, "webchat_webhook", __name__)
        self.sio = sio
        namespace = self.namespace

        # --- socket.io ------------------------------------------------------------------------------
        @sio.on("connect", namespace=namespace)
        async def connect(sid: Text, environ: Dict, auth: Optional[Dict] = None) -> bool:
            if self.jwt_key:
                import rasa.core.channels.channel as channel

                token = (auth or {}).get("token")
                payload = channel.decode_bearer_token(token, self.jwt_key, self.jwt_algorithm) if token else None
                return bool(payload)
            return True

        @sio.on("disconnect", namespace=namespace)
        async def disconnect(sid: Text, reason: Any = None) -> None:
            log.debug("webchat: %s disconnected (%s)", sid, reason)

        @sio.on("session_request", namespace=namespace)
        async def session_request(sid: Text, data: Optional[Dict]) -> None:
            data = data if isinstance(data, dict) else {}
            session_id = data.get("session_id")
            if not valid_session_id(session_id):
                session_id = new_session_id()
            if self.session_persistence:
                # The fix: Rasa 3.6 does not await this, and python-socketio >= 5.10 made it a coroutine.
                entered = sio.enter_room(sid, session_id, namespace=namespace)
                if inspect.isawaitable(entered):
                    await entered
            await sio.emit("session_confirm", session_id, room=sid, namespace=namespace)

        @sio.on(self.user_message_evt, namespace=namespace)
        async def handle_message(sid: Text, data: Dict) -> None:
            if not isinstance(data, dict):
                return
            if self.session_persistence:
                sender_id = data.get("session_id")
                if not valid_session_id(sender_id):
                    log.warning("webchat: message without a valid session_id from %s ignored", sid)
                    return
                # A socket that reconnected without a new session_request still gets the replies.
                if sender_id not in sio.rooms(sid, namespace=namespace):
                    entered = sio.enter_room(sid, sender_id, namespace=namespace)
                    if inspect.isawaitable(entered):
                        await entered
            else:
                sender_id = sid
            text = data.get("message", "")
            if not isinstance(text, str):
                text = str(text)
            metadata = clean_metadata(data.get(self.metadata_key))
            output = WebChatOutput(sio, self.bot_message_evt)
            environ = sio.get_environ(sid, namespace=namespace) or {}
            request = environ.get("sanic.request")
            address = client_address(request) if request is not None else environ.get("REMOTE_ADDR")
            verdict = self.guard.admit(text, sender=conversation_id("webchat", sender_id), address=address)
            for notice in self.guard.notices(verdict, guess_language(text, metadata.get("language"))):
                await sio.emit(self.bot_message_evt, {"text": notice}, room=sid, namespace=namespace)
            if verdict.refused:
                return
            if verdict.cut:
                metadata["message_cut"] = len(text)
            if address:
                metadata["client_address"] = address
            message = UserMessage(verdict.text, output, conversation_id("webchat", sender_id),
                                  input_channel=self.name(), metadata=metadata)
            await on_new_message(message)

        # --- http -----------------------------------------------------------------------------------
        @webchat.route("/", methods=["GET"])
        async def demo(request: Request) -> HTTPResponse:
            if not request.path.endswith("/"):
                return response.redirect(request.path + "/")  # relative URLs in the page need the slash
            return response.html(self._file("demo.html").decode("utf-8"),
                                 headers={"Cache-Control": "no-cache"})

        @webchat.route("/health", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        def static_route(name: str):
            cache = "public, max-age=86400" if name == "socket.io.min.js" else "no-cache"

            async def static(_: Request) -> HTTPResponse:
                return response.raw(self._file(name), content_type=STATIC_FILES[name],
                                    headers={"Cache-Control": cache})

            return static

        for file_name in STATIC_FILES:
            webchat.add_route(static_route(file_name), f"/{file_name}", methods=["GET"],
                              name="static_" + re.sub(r"\W", "_", file_name))

        @webchat.route("/history", methods=["GET"])
        async def history(request: Request) -> HTTPResponse:
            session_id = request.args.get("session_id") or request.args.get("sender")
            if not valid_session_id(session_id):
                return response.json({"error": "bad_session"}, status=400)
            language = clean_language(request.args.get("language")) or "zh"
            store = request.app.ctx.agent.tracker_store
            retrieve = getattr(store, "retrieve_full_tracker", None) or store.retrieve
            tracker = await retrieve(conversation_id("webchat", session_id))
            events = [e.as_dict() for e in tracker.events] if tracker is not None else []
            # Only conversations of this channel: a web chat session id never names another channel's sender.
            channels = {e.get("input_channel") for e in events if e.get("event") == "user"}
            if channels - {self.name(), None}:
                return response.json({"error": "bad_session"}, status=403)
            try:  # the customer is back: what the outbox held for them is shown now
                await asyncio.to_thread(self._held_shown, session_id)
            except Exception:  # noqa: BLE001 - showing the messages matters more than the record of it
                log.exception("webchat: could not mark the held messages of %s as shown", session_id)
            try:
                photos = await asyncio.to_thread(self._photos, session_id, language)
            except Exception:  # noqa: BLE001 - the messages matter more than the photo markers
                log.exception("webchat: could not list the photos of %s", session_id)
                photos = []
            return response.json({"session_id": session_id,
                                  "messages": history_messages(events, photos)},
                                 headers={"Cache-Control": "no-store"})

        @webchat.route("/presence", methods=["GET"])
        async def presence(request: Request) -> HTTPResponse:
            """Who holds the conversation (issue 16): the widget's header reads it on start and while waiting."""
            session_id = request.args.get("session_id")
            if not valid_session_id(session_id):
                return response.json({"error": "bad_session"}, status=400)
            language = clean_language(request.args.get("language")) or "zh"
            try:
                status = await asyncio.to_thread(self._presence, session_id, language)
            except Exception:  # noqa: BLE001 - the header falls back to the assistant
                log.exception("webchat: could not read the presence of %s", session_id)
                status = {"state": "assistant"}
            return response.json(status, headers={"Cache-Control": "no-store"})

        @webchat.route("/upload", methods=["POST"], stream=True)
        async def upload(request: Request) -> HTTPResponse:
            from bot.services.attachments import AttachmentError, normalise_mime, sniff
            from bot.texts import load_texts

            # Refused on Content-Length before anything is buffered; a body that runs past it is cut off too.
            if body_too_large(request, MAX_UPLOAD_BODY):
                log.info("webchat: upload refused on Content-Length (%s)", request.headers.get("content-length"))
                return response.json({"error": "too_large", "message": UPLOAD_ERRORS["too_large"]["zh"] + " "
                                      + UPLOAD_ERRORS["too_large"]["en"]}, status=413)
            body = bytearray()
            while True:
                chunk = await request.stream.read()
                if chunk is None:
                    break
                body += chunk
                if len(body) > MAX_UPLOAD_BODY:
                    return response.json({"error": "too_large", "message": UPLOAD_ERRORS["too_large"]["zh"] + " "
                                          + UPLOAD_ERRORS["too_large"]["en"]}, status=413)
            request.body = bytes(body)
            form = request.form or {}
            session_id = form.get("session_id") or form.get("sender")
            language = clean_language(form.get("language"))

            def refuse(code: str, status: int) -> HTTPResponse:
                lang = language or "zh"
                return response.json({"error": code, "message": UPLOAD_ERRORS[code][lang]}, status=status)

            if not valid_session_id(session_id):
                return refuse("bad_session", 400)
            language = language or await self._tracker_language(request, session_id) or "zh"
            upload_file = (request.files or {}).get("file")
            if upload_file is None or not upload_file.body:
                return refuse("no_file", 400)
            data = upload_file.body
            if len(data) > MAX_UPLOAD_BYTES:
                log.info("webchat: photo refused for %s: %d bytes", session_id, len(data))
                return refuse("too_large", 413)
            declared = normalise_mime(upload_file.type)
            actual = sniff(data)
            if (declared and declared != "application/octet-stream" and declared not in UPLOAD_TYPES) \
                    or actual not in UPLOAD_TYPES:
                log.info("webchat: file refused for %s: declared %s, content %s", session_id, declared, actual)
                return refuse("bad_type", 415)
            try:
                number = await asyncio.to_thread(self._save_photo, session_id=session_id, data=data,
                                                 mime_type=actual, filename=upload_file.name, language=language)
            except AttachmentError as exc:
                return refuse("too_large" if exc.code == "too_large" else "bad_type",
                              413 if exc.code == "too_large" else 415)
            except Exception:  # noqa: BLE001 - the customer gets a clear message; the cause goes to the log
                log.exception("webchat: saving a photo for %s failed", session_id)
                return refuse("failed", 500)
            text = load_texts().get("attachment_saved", language, number=number)
            if self.session_persistence:
                # Other tabs of the same conversation see it too; the uploading tab shows it from this response.
                sid = form.get("sid")
                await sio.emit(self.bot_message_evt, {"text": text}, room=session_id, namespace=namespace,
                               skip_sid=sid or None)
            return response.json({"ok": True, "ticket": number, "message": text})

        return webchat
