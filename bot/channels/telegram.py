"""Telegram channel for the Rasa server, on python-telegram-bot (PTB) 22.

Registered in credentials.yml as `bot.channels.telegram.TelegramInput:` (the block may be empty: configuration
comes from the environment):

    TELEGRAM_TOKEN            the bot token from @BotFather (required)
    TELEGRAM_WEBHOOK_SECRET   the secret Telegram sends back in X-Telegram-Bot-Api-Secret-Token (required;
                              1-256 characters of A-Z a-z 0-9 _ -)
    TELEGRAM_API_URL          Bot API base URL, default https://api.telegram.org (a self-hosted Bot API server,
                              or the fake one the tests run on loopback)
    TELEGRAM_WEBHOOK_URL      the public HTTPS URL of POST /webhooks/telegram/webhook; when set, setWebhook is
                              called (with the secret) once the server has started. Leave unset when the webhook
                              is registered some other way, or in development with `python -m bot telegram --polling`.

Keys of the same names in lower case without the TELEGRAM_ prefix (token, webhook_secret, api_url, webhook_url) in
the credentials block are accepted as a fallback; the environment wins. Keep secrets in the environment.

Without TELEGRAM_TOKEN (or without TELEGRAM_WEBHOOK_SECRET) the channel still registers, so `make run` works without
Telegram; its webhook then answers 503 "telegram not configured" and logs a warning once.

Routes (Rasa mounts the blueprint under /webhooks/telegram):
    GET  /webhooks/telegram/          health: 200 {"status": "ok"} (503 when not configured)
    POST /webhooks/telegram/webhook   updates from Telegram: 403 unless the secret header matches (constant-time
                                      compare), 400 for a body that is not JSON or not a Telegram Update; otherwise
                                      the update is handled before answering 200 (so replies to one chat stay in
                                      order). A failure while handling is logged and still answered 200, so Telegram
                                      does not redeliver a poison update; a redelivered update_id is ignored
                                      (200 {"status": "duplicate"}), across instances in the cluster profile
                                      (Redis, bot/cluster.py); while another instance is still handling it: 409,
                                      so that Telegram delivers it again later.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import random
import re
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Iterable

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update, User
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError, TimedOut

from bot.channels.config import settings_reader
from bot.cluster import BUSY, DONE, OnceOnly
from bot.channels.guard import Guard
from bot.services.conversation import conversation_id, sender_of

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.telegram.org"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MESSAGE_LIMIT = 4096  # characters (UTF-16 code units) per message
CALLBACK_DATA_LIMIT = 64  # bytes
MAX_ATTEMPTS = 4
BASE_DELAY = 0.5  # seconds; doubled per attempt on 5xx / network errors / time-outs
MAX_RETRY_AFTER = 60.0  # never sleep longer than this inside a request
ALLOWED_UPDATES = ["message", "callback_query"]
SEEN_UPDATES = 2048  # how many update ids are remembered to drop redeliveries
SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # what setWebhook accepts as secret_token


@dataclass(frozen=True)
class TelegramConfig:
    token: str | None
    secret: str | None
    api_url: str = DEFAULT_API_URL
    webhook_url: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.token and self.secret)

    @property
    def missing(self) -> list[str]:
        return [name for name, value in (("TELEGRAM_TOKEN", self.token), ("TELEGRAM_WEBHOOK_SECRET", self.secret))
                if not value]

    @classmethod
    def load(cls, credentials: dict | None = None, env: dict | None = None) -> "TelegramConfig":
        env = os.environ if env is None else env
        value = settings_reader(env, credentials)
        return cls(token=value("TELEGRAM_TOKEN", "token"), secret=value("TELEGRAM_WEBHOOK_SECRET", "webhook_secret"),
                   api_url=(value("TELEGRAM_API_URL", "api_url") or DEFAULT_API_URL).rstrip("/"),
                   webhook_url=value("TELEGRAM_WEBHOOK_URL", "webhook_url"))


# ---------------------------------------------------------------------------------------------- helpers
def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _fit(text: str, limit: int) -> int:
    """The longest prefix length (in code points) of `text` that is at most `limit` UTF-16 units."""
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return i
    return len(text)


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Pieces of at most `limit` characters as Telegram counts them, cut at line ends when possible, else at a
    space, else hard. Empty and whitespace-only pieces are dropped (Telegram refuses them)."""
    if utf16_len(text) <= limit:
        return [text] if text.strip() else []
    pieces: list[str] = []
    for line in text.splitlines(keepends=True):
        while utf16_len(line) > limit:
            cut = _fit(line, limit)
            space = max(line.rfind(" ", 0, cut), line.rfind("\t", 0, cut))
            if space > cut // 2:
                cut = space + 1
            pieces.append(line[:cut])
            line = line[cut:]
        pieces.append(line)
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and utf16_len(current) + utf16_len(piece) > limit:
            chunks.append(current)
            current = piece
        else:
            current += piece
    chunks.append(current)
    return [c.rstrip("\r\n") for c in chunks if c.strip()]


def truncate_bytes(text: str, limit: int = CALLBACK_DATA_LIMIT) -> str:
    """At most `limit` UTF-8 bytes, never cutting a character in half."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", errors="ignore")


def keyboard(buttons: Iterable[dict]) -> InlineKeyboardMarkup | None:
    """Rasa buttons as an inline keyboard: one button per row; callback_data is the payload (<= 64 bytes)."""
    rows = []
    for button in buttons or ():
        title = str(button.get("title") or button.get("payload") or "").strip()
        if not title:
            continue
        if button.get("type") == "web_url" or (button.get("url") and not button.get("payload")):
            rows.append([InlineKeyboardButton(title, url=str(button.get("url") or button.get("payload")))])
            continue
        payload = str(button.get("payload") or title)
        data = truncate_bytes(payload)
        if data != payload:
            log.warning("telegram: button payload %r cut to 64 bytes: %r", payload, data)
        rows.append([InlineKeyboardButton(title, callback_data=data)])
    return InlineKeyboardMarkup(rows) if rows else None


def retry_after_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PTB 22 deprecates the int form
        value = exc.retry_after
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def language_of(user: User | None, slot: str | None = None) -> str:
    """The conversation's language slot if known, else Telegram's language_code (zh* -> zh, other -> en),
    else zh (the desk's default)."""
    if slot in ("zh", "en"):
        return slot
    code = str(getattr(user, "language_code", None) or "").lower()
    if not code:
        return "zh"
    return "zh" if code.startswith("zh") else "en"


# ---------------------------------------------------------------------------------------------- output
class TelegramOutput(OutputChannel):
    """Sends the bot's messages through the Bot API, with retries.

    One PTB `Bot` per channel, built here and initialised (getMe) lazily on first use inside the running event loop.
    (If it is later used from another event loop, e.g. a script calling asyncio.run twice, a fresh Bot is built for
    that loop: PTB's HTTP client belongs to the loop it was first used in.)
    """

    def __init__(self, config: TelegramConfig, *, max_attempts: int = MAX_ATTEMPTS, base_delay: float = BASE_DELAY):
        if not config.token:
            raise ValueError("TelegramOutput needs a token")
        self.config = config
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self._bot = self._build_bot()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._initialised = False

    @classmethod
    def name(cls) -> str:
        return "telegram"

    def _build_bot(self) -> Bot:
        api = self.config.api_url
        return Bot(self.config.token, base_url=f"{api}/bot", base_file_url=f"{api}/file/bot")

    @property
    def parser_bot(self) -> Bot:
        """The Bot that parsed objects are bound to (no network needed for parsing)."""
        return self._bot

    async def bot(self) -> Bot:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:
                self._bot = self._build_bot()
            self._loop, self._lock, self._initialised = loop, asyncio.Lock(), False
        if not self._initialised:
            async with self._lock:
                if not self._initialised:
                    await self._bot.initialize()
                    self._initialised = True
        return self._bot

    async def close(self) -> None:
        if self._initialised and self._loop is asyncio.get_running_loop():
            try:
                await self._bot.shutdown()
            except Exception:  # noqa: BLE001 - closing down, nothing to do about it
                log.debug("telegram: bot shutdown failed", exc_info=True)
        self._initialised = False

    async def call(self, what: str, operation: Callable[[Bot], Awaitable[Any]]) -> Any:
        """Run `operation(bot)`, retrying up to `max_attempts` times: after RetryAfter (429) it waits as long as
        Telegram says; after a 5xx, a network error or a time-out it backs off exponentially. Client errors
        (400 BadRequest, 403 Forbidden, 401/404 InvalidToken) are not retried."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                bot = await self.bot()
                return await operation(bot)
            except RetryAfter as exc:
                delay = retry_after_seconds(exc)
                error: TelegramError = exc
            except BadRequest:
                raise
            except (TimedOut, NetworkError) as exc:
                delay = self.base_delay * (2 ** (attempt - 1)) * (1 + random.random() * 0.2)
                error = exc
            if attempt == self.max_attempts:
                log.error("telegram: %s failed after %d attempts: %s", what, attempt, error)
                raise error
            log.warning("telegram: %s failed (%s), attempt %d of %d, retrying in %.1fs", what, error, attempt,
                        self.max_attempts, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        """What Rasa calls for each bot message. A message Telegram will not take even after the retries is logged,
        not raised: the turn is already recorded (tickets, tracker) and must not be lost for a failed send."""
        try:
            await super().send_response(recipient_id, message)
        except TelegramError:
            log.exception("telegram: could not deliver a message to chat %s", recipient_id)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> list[Message]:
        return await self._send_text(recipient_id, text, None)

    async def send_text_with_buttons(self, recipient_id: str, text: str, buttons: list[dict[str, Any]],
                                     **kwargs: Any) -> list[Message]:
        return await self._send_text(recipient_id, text, keyboard(buttons))

    async def send_quick_replies(self, recipient_id: str, text: str, quick_replies: list[dict[str, Any]],
                                 **kwargs: Any) -> list[Message]:
        return await self._send_text(recipient_id, text, keyboard(quick_replies))

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> Message:
        chat_id = sender_of("telegram", str(recipient_id))
        return await self.call("sendPhoto", lambda bot: bot.send_photo(chat_id=chat_id, photo=image))

    async def _send_text(self, chat_id: str | int, text: str, markup: InlineKeyboardMarkup | None) -> list[Message]:
        chat_id = sender_of("telegram", str(chat_id))  # Rasa sends to the conversation id, telegram:<chat id>
        chunks = split_message(text or "")
        if not chunks and markup is not None:
            chunks = ["👇"]  # buttons need a message to hang on
        sent = []
        for i, chunk in enumerate(chunks):
            reply_markup = markup if i == len(chunks) - 1 else None
            sent.append(await self.call("sendMessage", lambda bot, c=chunk, m=reply_markup: bot.send_message(
                chat_id=chat_id, text=c, reply_markup=m)))
        return sent

    async def answer_callback_query(self, callback_query_id: str) -> None:
        await self.call("answerCallbackQuery", lambda bot: bot.answer_callback_query(callback_query_id))

    async def download(self, file_id: str) -> bytes:
        """getFile, then the bytes from the file URL."""
        tg_file = await self.call("getFile", lambda bot: bot.get_file(file_id))
        return bytes(await self.call("download", lambda bot: tg_file.download_as_bytearray()))

    async def set_webhook(self, url: str, secret: str) -> None:
        await self.call("setWebhook", lambda bot: bot.set_webhook(url=url, secret_token=secret,
                                                                  allowed_updates=ALLOWED_UPDATES))


# ---------------------------------------------------------------------------------------------- input
class TelegramInput(InputChannel):
    """Telegram webhook -> Rasa. Text and button presses become user messages; photos and documents are stored
    on the conversation's ticket (bot/services/attachments.py)."""

    @classmethod
    def name(cls) -> str:
        return "telegram"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> "TelegramInput":
        return cls(TelegramConfig.load(credentials))

    def __init__(self, config: TelegramConfig | None = None, var_dir: str | None = None):
        self.config = config or TelegramConfig.load()
        self.output: TelegramOutput | None = TelegramOutput(self.config) if self.config.configured else None
        self._warned = False
        # update_ids already taken: shared through Redis in the cluster profile (bot/cluster.py), else this process's
        self._seen = OnceOnly("telegram-" + (self.config.token or "").split(":", 1)[0], memory=SEEN_UPDATES)
        self._store = None  # (settings, session factory), built on first attachment
        self._var_dir = var_dir
        self.guard = Guard()
        if not self.config.configured:
            log.info("telegram channel registered but not configured (missing %s): its webhook answers 503",
                     ", ".join(self.config.missing))
        elif not SECRET_RE.match(self.config.secret):
            log.warning("TELEGRAM_WEBHOOK_SECRET should be 1-256 characters of A-Z a-z 0-9 _ -; "
                        "Telegram's setWebhook refuses anything else")

    def get_output_channel(self) -> OutputChannel | None:
        """Lets Rasa send proactively (e.g. POST /conversations/<chat id>/trigger_intent?output_channel=telegram)."""
        return self.output

    async def send_proactive(self, chat_id: int | str, text: str, buttons: list[dict] | None = None) -> list[Message]:
        """Send a message the customer did not just ask for (an agent's reply, a reminder). Works from any running
        event loop; raises TelegramError when Telegram does not take it after the retries."""
        if self.output is None:
            raise RuntimeError("telegram not configured: set " + ", ".join(self.config.missing))
        if buttons:
            return await self.output.send_text_with_buttons(str(chat_id), text, buttons)
        return await self.output.send_text_message(str(chat_id), text)

    async def register_webhook(self) -> None:
        if self.output is None or not self.config.webhook_url:
            return
        await self.output.set_webhook(self.config.webhook_url, self.config.secret)
        log.info("telegram: webhook registered at %s", self.config.webhook_url)

    # --------------------------------------------------------------------------------------- routes
    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("telegram_webhook", __name__)

        @bp.listener("after_server_start")
        async def _register(app, loop) -> None:
            try:
                await self.register_webhook()
            except Exception:  # noqa: BLE001 - the server must come up even if Telegram cannot be reached
                log.exception("telegram: setWebhook failed; updates will not arrive until it is set")

        @bp.listener("before_server_stop")
        async def _close(app, loop) -> None:
            if self.output is not None:
                await self.output.close()

        @bp.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            if not self.config.configured:
                return response.json({"status": "telegram not configured"}, status=503)
            return response.json({"status": "ok"})

        @bp.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not self.config.configured:
                if not self._warned:
                    self._warned = True
                    log.warning("telegram webhook called but the channel is not configured (missing %s)",
                                ", ".join(self.config.missing))
                return response.json({"error": "telegram not configured"}, status=503)
            given = request.headers.get(SECRET_HEADER, "")
            if not hmac.compare_digest(given.encode("utf-8"), self.config.secret.encode("utf-8")):
                log.warning("telegram webhook: wrong or missing secret token from %s", request.ip)
                return response.json({"error": "forbidden"}, status=403)
            try:
                data = json.loads(request.body or b"")
                if not isinstance(data, dict):
                    raise ValueError("not an object")
                update = Update.de_json(data, self.output.parser_bot)
                if update is None:
                    raise ValueError("empty update")
            except Exception as exc:  # noqa: BLE001 - anything PTB cannot parse is a bad request
                log.warning("telegram webhook: malformed update (%s)", exc.__class__.__name__)
                return response.json({"error": "malformed update"}, status=400)
            state = await self._seen.claim(update.update_id)
            if state == DONE:
                return response.json({"status": "duplicate"})
            if state == BUSY:  # another instance is on it: Telegram delivers it again later, when it is done
                return response.json({"status": "in progress"}, status=409)
            try:
                await self.handle_update(update, on_new_message, request)
            except Exception:  # noqa: BLE001 - logged; 200 so Telegram does not redeliver it forever
                log.exception("telegram: handling update %s failed", update.update_id)
            await self._seen.done(update.update_id)
            return response.json({"status": "ok"})

        return bp

    # --------------------------------------------------------------------------------------- updates
    async def handle_update(self, update: Update, on_new_message: Callable[[UserMessage], Awaitable[Any]],
                            request: Request | None = None) -> None:
        chat = update.effective_chat
        if chat is not None and chat.type != "private":
            # Groups share one chat: one customer's ticket would be shown to all. Served only in private chats; the
            # refusal is in both languages (a group has many members).
            texts = self._texts()
            await self.output.send_text_message(str(chat.id), texts.get("telegram_private_only", "zh") + "\n\n"
                                                + texts.get("telegram_private_only", "en"))
            return
        query = update.callback_query
        if query is not None:
            try:
                await self.output.answer_callback_query(query.id)  # stops the button's spinner
            except TelegramError:
                log.warning("telegram: answerCallbackQuery failed for %s", query.id, exc_info=True)
            if query.message is None or not query.data:
                return  # inline-mode or game callbacks: nothing of ours
            await self._to_rasa(on_new_message, query.data, query.message.chat.id, query.from_user, update)
            return
        message = update.message
        if message is None:
            return  # edits, channel posts, other update kinds: not handled
        chat_id, user = message.chat.id, message.from_user
        if message.text:
            text = message.text
            if text == "/start" or text.startswith("/start "):
                text = "/greet"  # what Telegram sends when someone opens the bot
            await self._to_rasa(on_new_message, text, chat_id, user, update)
        elif message.photo or message.document:
            if message.caption:
                await self._to_rasa(on_new_message, message.caption, chat_id, user, update)
            await self._attachment(message, chat_id, user, request)
        elif message.contact and message.contact.phone_number:
            await self._to_rasa(on_new_message, message.contact.phone_number, chat_id, user, update)
        elif message.voice or message.audio or message.video or message.video_note or message.animation:
            language = await self._language(request, chat_id, user)
            await self.output.send_text_message(str(chat_id), self._texts().get("attachment_rejected", language))

    async def _to_rasa(self, on_new_message, text: str, chat_id: int, user: User | None, update: Update) -> None:
        # A Telegram chat has no client address of its own (every update comes from Telegram's servers): the
        # sender limit is per chat, the address limit per Telegram user.
        verdict = self.guard.admit(text, sender=conversation_id("telegram", chat_id),
                                   address=f"telegram-user:{user.id}" if user else None)
        if verdict.refused or verdict.cut:
            language = language_of(user)
            for notice in self.guard.notices(verdict, language):
                await self.output.send_text_message(str(chat_id), notice)
            if verdict.refused:
                return
        text = verdict.text
        metadata = {
            "language_code": user.language_code if user else None,
            "telegram_user_id": user.id if user else None,
            "chat_id": chat_id,
            "update_id": update.update_id,
        }
        if verdict.cut:
            metadata["message_cut"] = True
        await on_new_message(UserMessage(text, self.output, sender_id=conversation_id("telegram", chat_id),
                                         input_channel=self.name(), metadata=metadata))

    # --------------------------------------------------------------------------------------- attachments
    @staticmethod
    def _texts():
        from bot.texts import load_texts

        return load_texts()

    async def _language(self, request: Request | None, chat_id: int, user: User | None) -> str:
        slot = None
        try:
            agent = request.app.ctx.agent if request is not None else None
            store = getattr(agent, "tracker_store", None)
            tracker = await store.retrieve(conversation_id("telegram", chat_id)) if store is not None else None
            slot = tracker.get_slot("language") if tracker is not None else None
        except Exception:  # noqa: BLE001 - the language code is a good enough fallback
            log.debug("telegram: could not read the language slot of %s", chat_id, exc_info=True)
        return language_of(user, slot)

    def _stores(self):
        if self._store is None:
            from bot.settings import load_settings
            from bot.store.db import make_engine, session_factory

            settings = load_settings()
            self._store = (settings, session_factory(make_engine(settings.database_url)))
        return self._store

    def _save(self, *, chat_id: int, data: bytes, mime_type: str | None, filename: str | None,
              language: str) -> str:
        from bot.services.attachments import store_attachment
        from bot.store.db import UnitOfWork

        settings, sessions = self._stores()
        with UnitOfWork(sessions) as uow:
            return store_attachment(uow, settings, conversation_id=conversation_id("telegram", chat_id), channel=self.name(), data=data,
                                    mime_type=mime_type, filename=filename, language=language,
                                    now=datetime.now(timezone.utc), var_dir=self._var_dir)

    async def _attachment(self, message: Message, chat_id: int, user: User | None, request: Request | None) -> None:
        from bot.services.attachments import ALLOWED_TYPES, MAX_BYTES, AttachmentError, normalise_mime

        if message.photo:
            largest = message.photo[-1]  # Telegram lists the sizes smallest first; photos are JPEG
            file_id, size, mime, filename = largest.file_id, largest.file_size, "image/jpeg", None
        else:
            doc = message.document
            file_id, size, mime, filename = doc.file_id, doc.file_size, doc.mime_type, doc.file_name
        language = await self._language(request, chat_id, user)
        texts = self._texts()
        declared = normalise_mime(mime)
        if (size and size > MAX_BYTES) or (declared and declared != "application/octet-stream"
                                           and declared not in ALLOWED_TYPES):
            log.info("telegram: attachment refused before download (%s, %s bytes)", declared, size)
            await self.output.send_text_message(str(chat_id), texts.get("attachment_rejected", language))
            return
        try:
            data = await self.output.download(file_id)
            number = await asyncio.to_thread(self._save, chat_id=chat_id, data=data, mime_type=mime,
                                             filename=filename, language=language)
        except AttachmentError as exc:
            log.info("telegram: attachment refused (%s)", exc)
            await self.output.send_text_message(str(chat_id), texts.get("attachment_rejected", language))
            return
        except TelegramError as exc:  # e.g. getFile refuses files over 20 MB, or Telegram stayed unreachable
            log.warning("telegram: could not fetch attachment %s: %s", file_id, exc)
            await self.output.send_text_message(str(chat_id), texts.get("attachment_rejected", language))
            return
        await self.output.send_text_message(str(chat_id), texts.get("attachment_saved", language, number=number))
