"""A fake Telegram Bot API server on 127.0.0.1 for the Telegram channel tests.

It speaks the Bot API's HTTP protocol as python-telegram-bot uses it: POST /bot<token>/<method> with form-encoded,
multipart or JSON bodies, answers {"ok": true, "result": ...} or {"ok": false, "error_code", "description",
"parameters"}, and serves files at GET /file/bot<token>/<file_path>. Every call is recorded. It runs an aiohttp app
in a background thread with its own event loop, so the code under test can run in any loop or process.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from aiohttp import web

from tests.loopback import LoopbackServer

# Parameters python-telegram-bot JSON-encodes in form bodies (strings such as `text` are sent as they are).
JSON_FIELDS = {"reply_markup", "allowed_updates", "offset", "limit", "timeout", "show_alert", "drop_pending_updates",
               "max_connections", "cache_time", "link_preview_options", "reply_parameters", "entities",
               "caption_entities", "disable_notification", "protect_content", "message_id"}
BOT_ID = 700000001


@dataclass
class Call:
    method: str
    params: dict
    status: int = 200
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return self.status == 200


class FakeBotAPI(LoopbackServer):
    thread_name = "fake-bot-api"
    client_max_size = 60 * 1024 * 1024

    def __init__(self, token: str):
        super().__init__()
        self.token = token
        self.calls: list[Call] = []
        self.files: dict[str, tuple[str, bytes]] = {}
        self.updates: list[dict] = []
        self._failures: dict[str, list[tuple[int, str, dict | None]]] = defaultdict(list)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ control from the tests
    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/bot{token}/{method}", self._api)
        router.add_get("/file/bot{token}/{path:.+}", self._file)

    def fail_next(self, method: str, status: int, description: str = "", parameters: dict | None = None) -> None:
        """The next call of `method` gets this error (queued: call several times for several failures)."""
        with self._lock:
            self._failures[method].append((status, description or f"error {status}", parameters))

    def add_file(self, file_id: str, data: bytes, file_path: str) -> None:
        with self._lock:
            self.files[file_id] = (file_path, data)

    def queue_update(self, update: dict) -> None:
        with self._lock:
            self.updates.append(update)

    def calls_of(self, method: str, ok: bool | None = None, **match) -> list[Call]:
        with self._lock:
            calls = list(self.calls)
        return [c for c in calls if c.method == method and (ok is None or c.ok == ok)
                and all(c.params.get(k) == v for k, v in match.items())]

    def messages_to(self, chat_id: int) -> list[dict]:
        """What the chat received: successful sendMessage calls, in order."""
        return [c.params for c in self.calls_of("sendMessage", ok=True, chat_id=chat_id)]

    def count(self) -> int:
        with self._lock:
            return len(self.calls)

    def wait_for(self, method: str, timeout: float = 10.0, **match) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.calls_of(method, **match)
            if found:
                return found
            time.sleep(0.05)
        return []

    # ------------------------------------------------------------------ the HTTP side
    @staticmethod
    async def _params(request: web.Request) -> dict:
        if request.content_type == "application/json":
            body = await request.read()
            return json.loads(body) if body else {}
        form = await request.post()  # form-urlencoded and multipart; empty for a body-less call
        params: dict = dict(request.query)
        for key, value in form.items():
            if isinstance(value, web.FileField):
                data = value.file.read()
                params[key] = {"filename": value.filename, "content_type": value.content_type, "size": len(data)}
            elif key in JSON_FIELDS:
                params[key] = json.loads(value)
            elif key in ("chat_id", "user_id") and value.lstrip("-").isdigit():
                params[key] = int(value)
            else:
                params[key] = value
        return params

    def _record(self, method: str, params: dict, status: int = 200) -> None:
        with self._lock:
            self.calls.append(Call(method, params, status))

    @staticmethod
    def _error(status: int, description: str, parameters: dict | None = None) -> web.Response:
        body = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=status)

    def _message(self, chat_id, **content) -> dict:
        return {"message_id": next(self._ids), "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "Service", "username": "service_test_bot"},
                **content}

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            params = await self._params(request)
        except Exception as exc:  # noqa: BLE001
            self._record(method, {"_unparsable": str(exc)}, 400)
            return self._error(400, f"Bad Request: {exc}")
        if request.match_info["token"] != self.token:
            self._record(method, params, 401)
            return self._error(401, "Unauthorized")
        with self._lock:
            failure = self._failures[method].pop(0) if self._failures[method] else None
        if failure is not None:
            status, description, parameters = failure
            self._record(method, params, status)
            return self._error(status, description, parameters)

        if method == "getMe":
            result = {"id": BOT_ID, "is_bot": True, "first_name": "Service", "username": "service_test_bot",
                      "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}
        elif method in ("setWebhook", "deleteWebhook", "answerCallbackQuery"):
            result = True
        elif method == "sendMessage":
            if not str(params.get("text") or "").strip():
                self._record(method, params, 400)
                return self._error(400, "Bad Request: message text is empty")
            if len(str(params["text"]).encode("utf-16-le")) // 2 > 4096:
                self._record(method, params, 400)
                return self._error(400, "Bad Request: message is too long")
            extra = {"reply_markup": params["reply_markup"]} if params.get("reply_markup") else {}
            result = self._message(params.get("chat_id"), text=params["text"], **extra)
        elif method == "sendPhoto":
            result = self._message(params.get("chat_id"), photo=[
                {"file_id": "sent-photo", "file_unique_id": "sent-photo-u", "width": 1, "height": 1}])
        elif method == "getFile":
            with self._lock:
                known = self.files.get(params.get("file_id"))
            if known is None:
                self._record(method, params, 400)
                return self._error(400, "Bad Request: invalid file_id")
            path, data = known
            result = {"file_id": params["file_id"], "file_unique_id": params["file_id"] + "-u",
                      "file_size": len(data), "file_path": path}
        elif method == "getUpdates":
            offset = int(params.get("offset") or 0)
            deadline = time.monotonic() + min(float(params.get("timeout") or 0), 2.0)
            while True:
                with self._lock:
                    result = [u for u in self.updates if u["update_id"] >= offset]
                    self.updates = result[:]  # confirmed ones are forgotten, as Telegram does
                if result or time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0.05)
        else:
            self._record(method, params, 404)
            return self._error(404, "Not Found")
        self._record(method, params)
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        if request.match_info["token"] != self.token:
            self._record("download", {"path": path}, 401)
            return web.Response(status=401)
        with self._lock:
            data = next((d for p, d in self.files.values() if p == path), None)
        if data is None:
            self._record("download", {"path": path}, 404)
            return web.Response(status=404)
        self._record("download", {"path": path})
        return web.Response(body=data, content_type="application/octet-stream")
