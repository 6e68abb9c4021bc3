"""WeChat Official Account (公众号) channel for the Rasa server, on wechatpy (signatures, XML, AES safe mode).

Registered in credentials.yml as `bot.channels.wechat.WeChatInput:` (the block may be empty: configuration comes
from the environment; lower-case keys without the WECHAT_ prefix in the block are a fallback):

    WECHAT_TOKEN        the token set under 基本配置 > 服务器配置 (required; signs every push)
    WECHAT_APP_ID       AppID (required)
    WECHAT_APP_SECRET   AppSecret (required; fetches the access token)
    WECHAT_AES_KEY      EncodingAESKey, 43 characters: set it for safe mode (安全模式) or compatible mode
    WECHAT_API_URL      API base URL, default https://api.weixin.qq.com (the tests point it at a loopback server)
    WECHAT_TEMPLATE_<KIND>  template message id for a proactive kind outside the 48-hour window (bot/services/wechat.py)

Without the three required values the channel still registers; its webhook answers 503 "wechat not configured".

Routes (Rasa mounts the blueprint under /webhooks/wechat):
    GET  /webhooks/wechat/          health: 200 {"status": "ok"} (503 when not configured)
    GET  /webhooks/wechat/webhook   URL verification: echostr when the signature is right, else 403
    POST /webhooks/wechat/webhook   a pushed message (XML, plain or AES-encrypted): 403 for a wrong signature or a
                                    timestamp more than 5 minutes off, 400 for a body that is not a WeChat message,
                                    413 over 64 KB; otherwise `success` at once (WeChat gives up after 5 s and
                                    retries) and the message is handled in the background, one at a time per
                                    follower; replies go out through the customer-service API. A retried push
                                    (same MsgId) is answered `success` and not handled again.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

import aiohttp
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.parser import parse_message
from wechatpy.utils import WeChatSigner

from bot.channels.config import settings_reader
from bot.channels.records import ChannelRecords
from bot.services import wechat as store
from bot.services.conversation import conversation_id

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.weixin.qq.com"
TEXT_LIMIT = 2048  # bytes (UTF-8) of one customer-service text message
MAX_BODY = 64 * 1024  # a pushed message is a few hundred bytes; anything this big is not WeChat
MAX_DOWNLOAD = 10 * 1024 * 1024 + 1  # media over the attachments' 10 MB are refused anyway; stop reading there
MAX_SKEW = 300  # seconds: pushes with an older (or future) timestamp are refused as replays
TOKEN_ERRORS = {40001, 40014, 42001}  # the access token is invalid, replaced or expired: fetch a new one, retry once
WINDOW_ERRORS = {45015, 45047}  # outside the 48-hour window / over the 20 replies per customer message


@dataclass(frozen=True)
class WeChatConfig:
    token: str | None
    app_id: str | None
    app_secret: str | None
    aes_key: str | None = None
    api_url: str = DEFAULT_API_URL
    templates: tuple[tuple[str, str], ...] = ()  # (kind, template id)

    @property
    def configured(self) -> bool:
        return bool(self.token and self.app_id and self.app_secret)

    @property
    def missing(self) -> list[str]:
        return [name for name, value in (("WECHAT_TOKEN", self.token), ("WECHAT_APP_ID", self.app_id),
                                         ("WECHAT_APP_SECRET", self.app_secret)) if not value]

    def template_for(self, kind: str) -> str | None:
        return dict(self.templates).get(kind)

    @classmethod
    def load(cls, credentials: dict | None = None, env: dict | None = None) -> "WeChatConfig":
        env = os.environ if env is None else env
        value = settings_reader(env, credentials)
        return cls(token=value("WECHAT_TOKEN", "token"), app_id=value("WECHAT_APP_ID", "app_id"),
                   app_secret=value("WECHAT_APP_SECRET", "app_secret"), aes_key=value("WECHAT_AES_KEY", "aes_key"),
                   api_url=(value("WECHAT_API_URL", "api_url") or DEFAULT_API_URL).rstrip("/"),
                   templates=tuple(sorted(store.template_ids(env).items())))


class WeChatAPIError(Exception):
    """WeChat answered {"errcode": N, "errmsg": ...} with N != 0 (or the HTTP call itself failed: errcode -1)."""

    def __init__(self, errcode: int, errmsg: str):
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode, self.errmsg = errcode, errmsg

    @property
    def window_closed(self) -> bool:
        return self.errcode in WINDOW_ERRORS

    @property
    def retryable(self) -> bool:
        """Worth trying again later: WeChat busy (-1, 45009 over the daily quota) or the HTTP call failed."""
        return self.errcode in (-1, 45009)


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Pieces of at most `limit` UTF-8 bytes, ending at a line break where one is in the second half of the
    piece; blank pieces are dropped (WeChat refuses empty texts)."""
    pieces: list[str] = []
    rest = text or ""
    while len(rest.encode("utf-8")) > limit:
        size, cut = 0, 0
        for i, ch in enumerate(rest):
            size += len(ch.encode("utf-8"))
            if size > limit:
                cut = i
                break
        newline = rest.rfind("\n", 0, cut)
        if newline > cut // 2:
            pieces.append(rest[:newline])
            rest = rest[newline + 1:]
        else:
            pieces.append(rest[:cut])
            rest = rest[cut:]
    pieces.append(rest)
    return [p for p in pieces if p.strip()]


class WeChatStore:
    """The database behind the channel: a session factory given, or built from the settings on first use (nothing
    happens at import or registration)."""

    def __init__(self, sessions=None):
        self._sessions = sessions
        self._records = None

    @property
    def records(self):
        """The process's App (bot/bootstrap.py), or one over the session factory given."""
        if self._records is None:
            from bot.bootstrap import bootstrap_server, process_app

            self._records = process_app() if self._sessions is None else bootstrap_server(sessions=self._sessions)
        return self._records

    @property
    def settings(self):
        return self.records.settings

    def uow(self):
        return self.records.uow()

    async def run(self, work: Callable[..., Any], *args: Any, commit: bool = True) -> Any:
        """`work(uow, *args)` in a worker thread, committed: the Rasa server's event loop never waits on the
        database."""
        def unit() -> Any:
            with self.uow() as uow:
                result = work(uow, *args)
                if commit:
                    uow.commit()
                return result

        return await asyncio.to_thread(unit)


# ---------------------------------------------------------------------------------------------- the API
class WeChatAPI:
    """The four API calls the channel makes, with the shared access token fetched, cached in the database and
    fetched again when WeChat says it is invalid or expired."""

    def __init__(self, config: WeChatConfig, db: WeChatStore, timeout: float = 10.0):
        self.config, self.db = config, db
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._fetching: dict[int, asyncio.Lock] = {}

    async def _http(self, method: str, path: str, params: dict, body: dict | None = None) -> tuple[str, bytes]:
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as http:
                async with http.request(method, f"{self.config.api_url}{path}", params=params,
                                        data=None if body is None else json.dumps(body, ensure_ascii=False),
                                        headers=None if body is None else {"Content-Type": "application/json"},
                                        ) as resp:
                    if resp.status != 200:
                        raise WeChatAPIError(-1, f"HTTP {resp.status}")
                    data = bytearray()
                    async for chunk in resp.content.iter_chunked(64 * 1024):
                        data += chunk
                        if len(data) > MAX_DOWNLOAD:
                            raise WeChatAPIError(-1, f"answer over {MAX_DOWNLOAD} bytes")
                    return resp.headers.get("Content-Type", ""), bytes(data)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            # the class only: the message may hold the URL, and the URL the access token or the AppSecret
            raise WeChatAPIError(-1, exc.__class__.__name__) from exc

    @staticmethod
    def _answer(content_type: str, raw: bytes) -> dict:
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            raise WeChatAPIError(-1, f"not a JSON object ({content_type})") from exc
        if data.get("errcode"):
            raise WeChatAPIError(int(data["errcode"]), str(data.get("errmsg", "")))
        return data

    async def access_token(self) -> str:
        now = datetime.now(timezone.utc)
        token = await self.db.run(store.cached_token, self.config.app_id, now, commit=False)
        if token:
            return token
        lock = self._fetching.setdefault(id(asyncio.get_running_loop()), asyncio.Lock())
        async with lock:  # one fetch per instance; a token another instance stored meanwhile is used
            token = await self.db.run(store.cached_token, self.config.app_id, datetime.now(timezone.utc),
                                      commit=False)
            if token:
                return token
            data = self._answer(*await self._http("GET", "/cgi-bin/token", {
                "grant_type": "client_credential", "appid": self.config.app_id, "secret": self.config.app_secret}))
            token = str(data["access_token"])
            await self.db.run(store.store_token, self.config.app_id, token, int(data.get("expires_in", 7200)),
                              datetime.now(timezone.utc))
            log.info("wechat: fetched a new access token")
            return token

    async def call(self, method: str, path: str, body: dict | None = None, params: dict | None = None,
                   raw: bool = False) -> Any:
        for attempt in (1, 2):
            token = await self.access_token()
            content_type, data = await self._http(method, path, dict(params or {}, access_token=token), body)
            if raw and not content_type.startswith(("application/json", "text/plain")):
                return content_type, data
            try:
                return self._answer(content_type, data)
            except WeChatAPIError as exc:
                if exc.errcode not in TOKEN_ERRORS or attempt == 2:
                    raise
                log.info("wechat: access token refused (%s), fetching a new one", exc.errcode)
                await self.db.run(store.drop_token, self.config.app_id, token)
        raise AssertionError("unreachable")  # pragma: no cover

    async def send_text(self, openid: str, text: str) -> None:
        await self.call("POST", "/cgi-bin/message/custom/send",
                        {"touser": openid, "msgtype": "text", "text": {"content": text}})

    async def send_menu(self, openid: str, head: str, items: list[tuple[str, str]], tail: str = "") -> None:
        await self.call("POST", "/cgi-bin/message/custom/send", {
            "touser": openid, "msgtype": "msgmenu",
            "msgmenu": {"head_content": head, "list": [{"id": i, "content": c} for i, c in items],
                        "tail_content": tail}})

    async def send_template(self, openid: str, template_id: str, data: dict[str, str]) -> int | None:
        answer = await self.call("POST", "/cgi-bin/message/template/send", {
            "touser": openid, "template_id": template_id,
            "data": {key: {"value": value} for key, value in data.items()}})
        return answer.get("msgid")

    async def media(self, media_id: str) -> tuple[str, bytes]:
        return await self.call("GET", "/cgi-bin/media/get", params={"media_id": media_id}, raw=True)


# ---------------------------------------------------------------------------------------------- output
class WeChatOutput(OutputChannel):
    """The bot's messages as customer-service messages: texts split at 2048 bytes, buttons as a menu (msgmenu)
    whose ids are remembered so a click comes back as the button's payload."""

    def __init__(self, api: WeChatAPI):
        self.api = api

    @classmethod
    def name(cls) -> str:
        return "wechat"

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        """A message WeChat does not take is logged, not raised: the turn is recorded and must not be lost."""
        try:
            await super().send_response(recipient_id, message)
        except WeChatAPIError:
            log.exception("wechat: could not deliver a message to %s", store.openid_of(recipient_id)[:6])

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        for piece in split_text(text):
            await self.api.send_text(store.openid_of(recipient_id), piece)

    async def send_text_with_buttons(self, recipient_id: str, text: str, buttons: list[dict[str, Any]],
                                     **kwargs: Any) -> None:
        openid = store.openid_of(recipient_id)
        pieces = split_text(text) or [""]
        for piece in pieces[:-1]:
            await self.api.send_text(openid, piece)
        base = random.randint(100_000, 999_999) * 100  # ids of an older menu are not mistaken for this one's
        items, payloads = [], {}
        for n, button in enumerate(buttons or ()):
            title = str(button.get("title") or button.get("payload") or "").strip()
            if not title:
                continue
            menu_id = str(base + n + 1)
            items.append((menu_id, title))
            payloads[menu_id] = str(button.get("payload") or title)
        if not items:
            if pieces[-1]:
                await self.api.send_text(openid, pieces[-1])
            return
        await self.api.db.run(store.remember_menu, openid, payloads, datetime.now(timezone.utc))
        await self.api.send_menu(openid, pieces[-1], items)

    async def send_quick_replies(self, recipient_id: str, text: str, quick_replies: list[dict[str, Any]],
                                 **kwargs: Any) -> None:
        await self.send_text_with_buttons(recipient_id, text, quick_replies)

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        await self.send_text_message(recipient_id, image)  # an image message needs media uploaded first


# ---------------------------------------------------------------------------------------------- proactive
@dataclass(frozen=True)
class WeChatDelivery:
    """How a proactive message went: `custom` (customer-service API, inside the 48-hour window), `template`
    (template message, outside it) or `held` (waits until the customer writes again; `held_id` is its row)."""

    via: str
    held_id: int | None = None
    template_msgid: int | None = None

    @property
    def sent(self) -> bool:
        return self.via in ("custom", "template")

    @property
    def held(self) -> bool:
        return self.via == "held"


class WeChatDeliverer:
    """Proactive messages (reminders, check-backs, surveys, agent replies) to a WeChat follower, by WeChat's rules:
    the customer-service API within 48 hours of the customer's last message; outside it a template message when
    one is configured for the kind (WECHAT_TEMPLATE_<KIND>), else held and sent first when the customer writes."""

    channel = "wechat"

    def __init__(self, config: WeChatConfig, db: WeChatStore | None = None, api: WeChatAPI | None = None):
        self.config = config
        self.db = db or WeChatStore()
        self.api = api or WeChatAPI(config, self.db)
        self.output = WeChatOutput(self.api)

    @classmethod
    def from_env(cls, sessions=None, env: dict | None = None) -> "WeChatDeliverer":
        return cls(WeChatConfig.load(None, env), WeChatStore(sessions))

    async def deliver(self, conversation_id: str, kind: str, language: str, messages: list[dict],
                      fields: dict[str, str] | None = None) -> WeChatDelivery:
        """Send `messages` ([{"text", "buttons"?}]); `fields` fill a template's keyword1.. in order (e.g. the
        ticket number and the visit time). Raises WeChatAPIError when WeChat refuses for another reason."""
        openid = store.openid_of(conversation_id)
        now = datetime.now(timezone.utc)
        if await self.db.run(store.in_window, openid, now, commit=False):
            try:
                for message in messages:
                    await self._custom(openid, message)
                return WeChatDelivery("custom")
            except WeChatAPIError as exc:
                if not exc.window_closed:
                    raise
                log.info("wechat: window closed for %s (%s)", openid[:6], exc.errcode)
        template = self.config.template_for(kind)
        if template:
            texts = [str(m.get("text") or "") for m in messages]
            data = {"first": texts[0] if texts else ""}
            for n, value in enumerate((fields or {}).values(), start=1):
                data[f"keyword{n}"] = str(value)
            data["remark"] = "\n".join(texts[1:])
            msgid = await self.api.send_template(openid, template, {k: v[:200] for k, v in data.items()})
            return WeChatDelivery("template", template_msgid=msgid)
        held_id = await self.db.run(store.hold, openid, kind, language, messages, now)
        log.info("wechat: %s held for %s until they write (no template for it)", kind, openid[:6])
        return WeChatDelivery("held", held_id=held_id)

    async def _custom(self, openid: str, message: dict) -> None:
        if message.get("buttons"):
            await self.output.send_text_with_buttons(openid, str(message.get("text") or ""), message["buttons"])
        else:
            await self.output.send_text_message(openid, str(message.get("text") or ""))

    async def send_held(self, openid: str) -> int:
        """Send what waited for this customer (they just wrote); returns how many went out."""
        sent = 0
        for held in await self.db.run(store.held_for, openid, commit=False):
            for message in held.messages:
                await self._custom(openid, message)
            await self.db.run(store.mark_sent, held.id, datetime.now(timezone.utc))
            sent += 1
        return sent


# ---------------------------------------------------------------------------------------------- input
def signature_ok(token: str, signature: str, timestamp: str, nonce: str) -> bool:
    signer = WeChatSigner()
    signer.add_data(token, timestamp, nonce)
    return hmac.compare_digest(signer.signature, signature or "")


class WeChatInput(ChannelRecords, InputChannel):
    """WeChat pushes -> Rasa. Text, menu clicks, voice with recognition text and locations become user messages;
    images are stored on the conversation's ticket (bot/services/attachments.py); subscribing greets."""

    @classmethod
    def name(cls) -> str:
        return "wechat"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> "WeChatInput":
        return cls(WeChatConfig.load(credentials))

    def __init__(self, config: WeChatConfig | None = None, sessions=None, var_dir: str | None = None):
        self.config = config or WeChatConfig.load()
        self.deliverer = WeChatDeliverer(self.config, WeChatStore(sessions)) if self.config.configured else None
        self.output = self.deliverer.output if self.deliverer else None
        self.crypto = (WeChatCrypto(self.config.token, self.config.aes_key, self.config.app_id)
                       if self.config.configured and self.config.aes_key else None)
        self._var_dir = var_dir
        self._tails: dict[str, asyncio.Task] = {}
        self._app = None
        self._warned = False
        if not self.config.configured:
            log.info("wechat channel registered but not configured (missing %s): its webhook answers 503",
                     ", ".join(self.config.missing))

    def get_output_channel(self) -> OutputChannel | None:
        return self.output

    async def send_proactive(self, conversation_id: str, text: str, buttons: list[dict] | None = None,
                             kind: str = "agent_reply", language: str = "zh") -> WeChatDelivery:
        """An agent's reply or another message the customer did not just ask for, by the 48-hour rule."""
        if self.deliverer is None:
            raise RuntimeError("wechat not configured: set " + ", ".join(self.config.missing))
        message = {"text": text, **({"buttons": buttons} if buttons else {})}
        return await self.deliverer.deliver(conversation_id, kind, language, [message])

    # --------------------------------------------------------------------------------------- routes
    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("wechat_webhook", __name__)

        @bp.listener("before_server_stop")
        async def _drain(app, loop) -> None:
            pending = [t for t in self._tails.values() if not t.done()]
            if pending:
                await asyncio.wait(pending, timeout=10)

        @bp.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            if not self.config.configured:
                return response.json({"status": "wechat not configured"}, status=503)
            return response.json({"status": "ok"})

        @bp.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            refused = self._refuse(request)
            if refused is not None:
                return refused
            return response.text(request.args.get("echostr", ""))

        @bp.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            refused = self._refuse(request)
            if refused is not None:
                return refused
            body = request.body or b""
            if len(body) > MAX_BODY:
                return response.text("too large", status=413)
            args = request.args
            try:
                if args.get("encrypt_type") == "aes":
                    if self.crypto is None:
                        return response.text("safe mode not configured", status=400)
                    body = self.crypto.decrypt_message(body, args.get("msg_signature", ""), args.get("timestamp"),
                                                       args.get("nonce"))
                message = parse_message(body)  # a MsgType wechatpy does not know yet is an UnknownMessage
                if message is None or not message.source or not message._data.get("MsgType"):
                    raise ValueError("not a WeChat message")
                data = dict(message._data)
            except InvalidSignatureException:
                log.warning("wechat webhook: wrong msg_signature from %s", request.ip)
                return response.text("forbidden", status=403)
            except Exception as exc:  # noqa: BLE001 - anything wechatpy/expat cannot read is a bad request
                log.warning("wechat webhook: malformed message (%s)", exc.__class__.__name__)
                return response.text("bad request", status=400)
            openid = str(message.source)[:64]
            first = await self.deliverer.db.run(store.take_inbound, store.message_key(data), openid,
                                                datetime.now(timezone.utc))
            if first:
                self._app = request.app
                self._in_order(openid, lambda: self.handle(data, openid, on_new_message))
            return response.text("success")

        return bp

    def _refuse(self, request: Request) -> HTTPResponse | None:
        """503 when not configured; 403 for a wrong signature or a timestamp more than five minutes off."""
        if not self.config.configured:
            if not self._warned:
                self._warned = True
                log.warning("wechat webhook called but the channel is not configured (missing %s)",
                            ", ".join(self.config.missing))
            return response.json({"error": "wechat not configured"}, status=503)
        args = request.args
        timestamp = args.get("timestamp", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_SKEW:
            log.warning("wechat webhook: stale or missing timestamp from %s", request.ip)
            return response.text("forbidden", status=403)
        if not signature_ok(self.config.token, args.get("signature", ""), timestamp, args.get("nonce", "")):
            log.warning("wechat webhook: wrong signature from %s", request.ip)
            return response.text("forbidden", status=403)
        return None

    def _in_order(self, openid: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` after the follower's previous message is handled (answers stay in order)."""
        previous = self._tails.get(openid)

        async def run() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            try:
                await work()
            except Exception:  # noqa: BLE001 - logged; the next message must still be handled
                log.exception("wechat: handling a message from %s failed", openid[:6])

        task = asyncio.get_running_loop().create_task(run())
        self._tails[openid] = task
        task.add_done_callback(lambda t: self._tails.pop(openid) if self._tails.get(openid) is t else None)

    # --------------------------------------------------------------------------------------- messages
    async def handle(self, data: dict, openid: str, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        try:
            await self.deliverer.send_held(openid)
        except WeChatAPIError:
            log.exception("wechat: could not send the held messages of %s", openid[:6])
        kind = str(data.get("MsgType", "")).lower()
        if kind == "text":
            text = str(data.get("Content") or "")
            menu_id = data.get("bizmsgmenuid")
            if menu_id:
                text = await self.deliverer.db.run(store.menu_payload, openid, str(menu_id), commit=False) or text
            await self._to_rasa(on_new_message, text, openid, data)
        elif kind == "image":
            await self._image(openid, str(data.get("MediaId") or ""))
        elif kind == "voice":
            recognition = str(data.get("Recognition") or "").strip()
            if recognition:
                await self._to_rasa(on_new_message, recognition, openid, data)
            else:
                await self._say(openid, "wechat_voice_unrecognised")
        elif kind == "location" and data.get("Label"):
            await self._to_rasa(on_new_message, str(data["Label"]), openid, data)
        elif kind == "event":
            event = str(data.get("Event") or "").lower()
            if event == "subscribe":
                await self._to_rasa(on_new_message, "/greet", openid, data)
            elif event == "click" and data.get("EventKey"):
                await self._to_rasa(on_new_message, str(data["EventKey"]), openid, data)
        else:  # video, short video, link, location without a label
            await self._say(openid, "attachment_rejected")

    async def _to_rasa(self, on_new_message, text: str, openid: str, data: dict) -> None:
        metadata = {"wechat_openid": openid, "msg_type": data.get("MsgType"), "msg_id": data.get("MsgId")}
        await on_new_message(UserMessage(text[:4000], self.output, sender_id=conversation_id("wechat", openid),
                                         input_channel=self.name(), metadata=metadata))

    @staticmethod
    def _texts():
        from bot.texts import load_texts

        return load_texts()

    async def _language(self, openid: str) -> str:
        """The conversation's language slot, else Chinese (WeChat's customers are Chinese first)."""
        try:
            store_ = self._app.ctx.agent.tracker_store
            tracker = await store_.retrieve(conversation_id("wechat", openid))
            slot = tracker.get_slot("language") if tracker is not None else None
        except Exception:  # noqa: BLE001 - Chinese is a good enough fallback
            slot = None
        return slot if slot in ("zh", "en") else "zh"

    async def _say(self, openid: str, key: str, **values: Any) -> None:
        text = self._texts().get(key, await self._language(openid), **values)
        await self.output.send_text_message(openid, text)

    @property
    def app(self):
        """The records the deliverer uses (a session factory given to the channel, else the process's App)."""
        return self.deliverer.db.records if self.deliverer is not None else ChannelRecords.app.fget(self)

    def _save(self, openid: str, data: bytes, mime_type: str | None, language: str) -> str:
        return self.save_file(conversation_id("wechat", openid), data=data, mime_type=mime_type, filename=None,
                              language=language)

    async def _image(self, openid: str, media_id: str) -> None:
        from bot.services.attachments import AttachmentError

        language = await self._language(openid)
        try:
            content_type, data = await self.deliverer.api.media(media_id)
            number = await asyncio.to_thread(self._save, openid, data, content_type, language)
        except (AttachmentError, WeChatAPIError) as exc:
            log.info("wechat: image refused or not fetched (%s)", exc)
            await self._say(openid, "attachment_rejected")
            return
        await self._say(openid, "attachment_saved", number=number)
