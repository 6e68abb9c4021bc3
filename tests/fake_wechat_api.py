"""A fake WeChat Official Account API server on 127.0.0.1 for the WeChat channel tests.

It speaks the HTTP protocol of api.weixin.qq.com for the four calls the channel makes:
    GET  /cgi-bin/token?grant_type=client_credential&appid=..&secret=..   {"access_token", "expires_in": 7200}
    POST /cgi-bin/message/custom/send?access_token=..                    customer-service message (text, msgmenu)
    GET  /cgi-bin/media/get?access_token=..&media_id=..                   the media's bytes
    POST /cgi-bin/message/template/send?access_token=..                  template message
Errors come back as WeChat sends them: HTTP 200 with {"errcode": N, "errmsg": "..."}: 40001 (invalid or replaced
token), 42001 (token expired), 40013/40125 (wrong app id/secret), 40007 (unknown media), 40037 (unknown template),
45002 (text too long), 45015 (the customer wrote more than 48 hours ago: outside the customer-service window).
Like WeChat, a newly issued token replaces the previous one. Every call is recorded. It runs on
tests/loopback.py's LoopbackServer.
"""
from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
from dataclasses import dataclass, field

from aiohttp import web

from tests.loopback import LoopbackServer

WINDOW_SECONDS = 48 * 3600
TEXT_LIMIT = 2048  # bytes of a customer-service text message


@dataclass
class Call:
    method: str  # token, custom_send, media_get, template_send
    params: dict
    errcode: int = 0
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return self.errcode == 0


class FakeWeChatAPI(LoopbackServer):
    thread_name = "fake-wechat-api"

    def __init__(self, app_id: str, app_secret: str):
        super().__init__()
        self.app_id, self.app_secret = app_id, app_secret
        self.calls: list[Call] = []
        self.media: dict[str, tuple[str, bytes]] = {}
        self.templates: set[str] = set()
        self.last_message_at: dict[str, float] = {}  # openid -> when they last wrote (epoch seconds)
        self.token: str | None = None
        self.expired = False
        self._lock = threading.Lock()
        self._ids = itertools.count(200228332)

    # ------------------------------------------------------------------ control from the tests
    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/cgi-bin/token", self._token)
        router.add_post("/cgi-bin/message/custom/send", self._custom_send)
        router.add_get("/cgi-bin/media/get", self._media_get)
        router.add_post("/cgi-bin/message/template/send", self._template_send)

    def user_wrote(self, openid: str, at: float | None = None) -> None:
        """WeChat knows when a follower last wrote: the customer-service window is counted from it."""
        with self._lock:
            self.last_message_at[openid] = time.time() if at is None else at

    def expire_token(self) -> None:
        """The current token expires (the next call with it gets 42001)."""
        with self._lock:
            self.expired = True

    def add_media(self, media_id: str, data: bytes, content_type: str = "image/jpeg") -> None:
        with self._lock:
            self.media[media_id] = (content_type, data)

    def add_template(self, template_id: str) -> None:
        with self._lock:
            self.templates.add(template_id)

    def calls_of(self, method: str, ok: bool | None = None, **match) -> list[Call]:
        with self._lock:
            calls = list(self.calls)
        return [c for c in calls if c.method == method and (ok is None or c.ok == ok)
                and all(c.params.get(k) == v for k, v in match.items())]

    def messages_to(self, openid: str) -> list[dict]:
        """Customer-service messages the follower received, in order."""
        return [c.params for c in self.calls_of("custom_send", ok=True, touser=openid)]

    def texts_to(self, openid: str) -> list[str]:
        """What the follower read: texts, and a menu as its head, items and tail."""
        out = []
        for m in self.messages_to(openid):
            if m["msgtype"] == "text":
                out.append(m["text"]["content"])
            elif m["msgtype"] == "msgmenu":
                menu = m["msgmenu"]
                out.append("\n".join([menu.get("head_content", "")] + [i["content"] for i in menu["list"]]
                                     + [menu.get("tail_content", "")]).strip())
        return out

    def wait_for_messages(self, openid: str, count: int, timeout: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.messages_to(openid)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        return self.messages_to(openid)

    def count(self) -> int:
        with self._lock:
            return len(self.calls)

    # ------------------------------------------------------------------ the HTTP side
    def _record(self, method: str, params: dict, errcode: int = 0) -> None:
        with self._lock:
            self.calls.append(Call(method, params, errcode))

    def _error(self, method: str, params: dict, errcode: int, errmsg: str) -> web.Response:
        self._record(method, params, errcode)
        return web.json_response({"errcode": errcode, "errmsg": f"{errmsg} rid: {secrets.token_hex(6)}"})

    def _check_token(self, method: str, params: dict, token: str | None) -> web.Response | None:
        with self._lock:
            current, expired = self.token, self.expired
        if not token or token != current:
            return self._error(method, params, 40001,
                               "invalid credential, access_token is invalid or not latest")
        if expired:
            return self._error(method, params, 42001, "access_token expired")
        return None

    async def _token(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        if params.get("grant_type") != "client_credential":
            return self._error("token", params, 40002, "invalid grant_type")
        if params.get("appid") != self.app_id:
            return self._error("token", params, 40013, "invalid appid")
        if params.get("secret") != self.app_secret:
            return self._error("token", params, 40125, "invalid appsecret")
        with self._lock:
            self.token, self.expired = secrets.token_urlsafe(48), False
            token = self.token
        self._record("token", params)
        return web.json_response({"access_token": token, "expires_in": 7200})

    async def _json(self, request: web.Request, method: str) -> tuple[dict, web.Response | None]:
        try:
            body = json.loads(await request.read())
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            return {}, self._error(method, {}, 47001, "data format error")
        return body, self._check_token(method, body, request.query.get("access_token"))

    async def _custom_send(self, request: web.Request) -> web.Response:
        body, refused = await self._json(request, "custom_send")
        if refused is not None:
            return refused
        openid = body.get("touser")
        with self._lock:
            wrote = self.last_message_at.get(openid)
        if wrote is None or time.time() - wrote > WINDOW_SECONDS:
            return self._error("custom_send", body, 45015, "response out of time limit or subscription is canceled")
        kind = body.get("msgtype")
        if kind == "text":
            content = str((body.get("text") or {}).get("content") or "")
            if not content.strip():
                return self._error("custom_send", body, 44003, "empty news data")
            if len(content.encode("utf-8")) > TEXT_LIMIT:
                return self._error("custom_send", body, 45002, "content size out of limit")
        elif kind == "msgmenu":
            items = (body.get("msgmenu") or {}).get("list") or []
            if not items or not all(i.get("id") and i.get("content") for i in items):
                return self._error("custom_send", body, 47001, "data format error")
        elif kind not in ("image", "voice", "video", "music", "news", "mpnews", "wxcard", "miniprogrampage"):
            return self._error("custom_send", body, 40008, "invalid message type")
        self._record("custom_send", body)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _template_send(self, request: web.Request) -> web.Response:
        body, refused = await self._json(request, "template_send")
        if refused is not None:
            return refused
        with self._lock:
            known = body.get("template_id") in self.templates
        if not known:
            return self._error("template_send", body, 40037, "invalid template_id")
        if not body.get("touser") or not isinstance(body.get("data"), dict):
            return self._error("template_send", body, 47001, "data format error")
        msgid = next(self._ids)
        self._record("template_send", dict(body, msgid=msgid))
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": msgid})

    async def _media_get(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        params.pop("access_token", None)
        refused = self._check_token("media_get", params, request.query.get("access_token"))
        if refused is not None:
            return refused
        with self._lock:
            known = self.media.get(params.get("media_id", ""))
        if known is None:
            return self._error("media_get", params, 40007, "invalid media_id")
        content_type, data = known
        self._record("media_get", params)
        return web.Response(body=data, content_type=content_type, headers={
            "Content-disposition": f'attachment; filename="{params["media_id"]}.jpg"'})
