"""The Telegram channel end to end: the real Rasa and action servers with the trained model, talking to a fake
Telegram Bot API server on loopback (tests/fake_bot_api.py) that records every call.

Updates are posted to POST /webhooks/telegram/webhook the way Telegram posts them; the channel handles an update
before it answers, so once the POST returns, everything the bot sent for it is in the fake server's record.
The output side (splitting, retries, keyboards) is also tested directly against the fake server, and the
attachment service against a SQLite database.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from telegram.error import BadRequest

from bot.channels.telegram import (
    SECRET_HEADER,
    TelegramConfig,
    TelegramInput,
    TelegramOutput,
    keyboard,
    language_of,
    split_message,
    utf16_len,
)
from bot.services.attachments import AttachmentError, save_attachment
from bot.services.conversation import conversation_id
from bot.services.tickets import SLA, TicketBook
from bot.settings import ROOT
from bot.store.db import UnitOfWork, session_factory
from bot.store.models import STEPS, Attachment, Ticket, TicketEvent
from bot.texts import load_texts
from tests.conftest import NOW
from tests.fake_bot_api import FakeBotAPI
from tests.stack import Stack, need_model, script_lines

TOKEN = "700000001:TEST-token_for-the-fake-api"
SECRET = "test-secret_0123456789"
WEBHOOK_URL = "https://bot.example.com/webhooks/telegram/webhook"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01" + bytes(random.Random(1).getrandbits(8) for _ in range(3000)) + b"\xff\xd9"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
TEXTS = load_texts()

_update_ids = itertools.count(random.randint(10_000, 90_000) * 1000)
_chat_ids = itertools.count(random.randint(100_000, 900_000) * 1000)


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def api():
    fake = FakeBotAPI(TOKEN).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def stack(api, tmp_path_factory):
    need_model()
    tmp = tmp_path_factory.mktemp("tgstack")
    credentials = tmp / "credentials.yml"
    credentials.write_text("bot.channels.rest.RestInput:\nbot.channels.telegram.TelegramInput:\n")
    stack = Stack(tmp, credentials=credentials, extra_env={
        "TELEGRAM_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": SECRET, "TELEGRAM_API_URL": api.url,
        "TELEGRAM_WEBHOOK_URL": WEBHOOK_URL})
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def output(api):
    return TelegramOutput(TelegramConfig(TOKEN, SECRET, api.url), base_delay=0.05)


# ---------------------------------------------------------------------------------------------- helpers
def new_chat() -> int:
    return next(_chat_ids)


def tg_user(chat_id: int, language_code: str | None) -> dict:
    user = {"id": chat_id, "is_bot": False, "first_name": "Test"}
    if language_code:
        user["language_code"] = language_code
    return user


def tg_message(chat_id: int, language_code: str | None = "zh-hans", **content) -> dict:
    return {"message_id": random.randint(1, 10**6), "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "Test"},
            "from": tg_user(chat_id, language_code), **content}


def text_update(chat_id: int, text: str, language_code: str | None = "zh-hans") -> dict:
    return {"update_id": next(_update_ids), "message": tg_message(chat_id, language_code, text=text)}


def callback_update(chat_id: int, data: str, language_code: str | None = "zh-hans") -> dict:
    return {"update_id": next(_update_ids), "callback_query": {
        "id": f"cb-{random.randint(1, 10**9)}", "from": tg_user(chat_id, language_code), "chat_instance": "ci-1",
        "data": data, "message": tg_message(chat_id, None, text="(the bot's question)")}}


def photo_update(chat_id: int, file_id: str, caption: str | None = None, language_code: str = "zh-hans") -> dict:
    sizes = [{"file_id": f"{file_id}-small", "file_unique_id": f"{file_id}-su", "width": 90, "height": 67,
              "file_size": 900},
             {"file_id": file_id, "file_unique_id": f"{file_id}-u", "width": 1280, "height": 960,
              "file_size": len(JPEG)}]
    content = {"photo": sizes}
    if caption:
        content["caption"] = caption
    return {"update_id": next(_update_ids), "message": tg_message(chat_id, language_code, **content)}


def document_update(chat_id: int, file_id: str, mime_type: str, file_name: str, file_size: int,
                    language_code: str = "en") -> dict:
    document = {"file_id": file_id, "file_unique_id": f"{file_id}-u", "file_name": file_name,
                "mime_type": mime_type, "file_size": file_size}
    return {"update_id": next(_update_ids), "message": tg_message(chat_id, language_code, document=document)}


def post(stack: Stack, body, secret: str | None = SECRET) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    req = urllib.request.Request(f"{stack.url}/webhooks/telegram/webhook", data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def deliver(stack: Stack, api: FakeBotAPI, update: dict) -> list[dict]:
    """Post one update; returns the messages the chat received for it."""
    chat_id = (update.get("message") or update.get("callback_query", {}).get("message"))["chat"]["id"]
    before = len(api.messages_to(chat_id))
    status, body = post(stack, update)
    assert status == 200, body
    return api.messages_to(chat_id)[before:]


def texts_of(messages: list[dict]) -> str:
    return "\n".join(m["text"] for m in messages)


def has_cjk(s: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in s)


def tracker(stack: Stack, chat_id: int) -> dict:
    return stack.tracker(conversation_id("telegram", chat_id))


def user_events(stack: Stack, chat_id: int) -> list[dict]:
    return [e for e in tracker(stack, chat_id)["events"] if e["event"] == "user"]


_engines: dict = {}


def db_session(stack: Stack) -> Session:
    if stack.db_url not in _engines:
        _engines[stack.db_url] = create_engine(stack.db_url, future=True)
    return Session(_engines[stack.db_url])


def tickets_of(stack: Stack, chat_id: int) -> list[Ticket]:
    with db_session(stack) as session:
        return list(session.execute(select(Ticket).where(Ticket.conversation_id == conversation_id("telegram", chat_id))
                                    .order_by(Ticket.id)).scalars())


def attachments_of(stack: Stack, chat_id: int) -> list[tuple[Attachment, str]]:
    with db_session(stack) as session:
        rows = session.execute(select(Attachment, Ticket.number).join(Ticket)
                               .where(Ticket.conversation_id == conversation_id("telegram", chat_id)).order_by(Attachment.id)).all()
        return [(a, number) for a, number in rows]


# ---------------------------------------------------------------------------------------------- output unit tests
def test_split_message_keeps_lines_and_counts_like_telegram():
    text = "\n".join(f"line {i:04d} " + "x" * 40 for i in range(200))  # ~10,000 characters
    parts = split_message(text)
    assert len(parts) == 3 and all(utf16_len(p) <= 4096 for p in parts)
    assert "\n".join(parts) == text and all(p.startswith("line ") for p in parts)
    emoji = "😡" * 3000  # 2 UTF-16 units each: 6000 units
    parts = split_message(emoji)
    assert [utf16_len(p) for p in parts] == [4096, 1904] and "".join(parts) == emoji
    assert split_message("   \n  ") == [] and split_message("short") == ["short"]


def test_callback_data_is_the_payload_cut_safely_to_64_bytes():
    long_payload = '/inform{"address":"' + "北京市朝阳区望京西路" * 5 + '"}'
    markup = keyboard([{"title": "是", "payload": "/affirm"}, {"title": "地址", "payload": long_payload},
                       {"title": "Site", "type": "web_url", "url": "https://example.com"}])
    rows = markup.inline_keyboard
    assert all(len(row) == 1 for row in rows)
    assert rows[0][0].callback_data == "/affirm"
    cut = rows[1][0].callback_data
    assert len(cut.encode()) <= 64 and long_payload.startswith(cut) and len(cut.encode()) > 60
    assert rows[2][0].url == "https://example.com" and rows[2][0].callback_data is None


def test_language_for_attachment_replies():
    class U:
        def __init__(self, code):
            self.language_code = code

    assert language_of(U("zh-hans")) == "zh" and language_of(U("zh-TW")) == "zh"
    assert language_of(U("en")) == "en" and language_of(U("de")) == "en"
    assert language_of(U("en"), slot="zh") == "zh" and language_of(None) == "zh"


def test_5000_character_reply_is_split_into_two_messages(api, output):
    chat = new_chat()
    text = "\n".join(f"第{i}行：" + "说明" * 20 for i in range(110))
    assert 4096 < len(text) < 6000
    asyncio.run(output.send_text_message(str(chat), text))
    sent = api.messages_to(chat)
    assert len(sent) == 2 and all(len(m["text"]) <= 4096 for m in sent)
    assert "\n".join(m["text"] for m in sent) == text
    one_line = "x" * 5000  # no line break to cut at: cut hard
    asyncio.run(output.send_text_message(str(chat), one_line))
    assert [len(m["text"]) for m in api.messages_to(chat)[2:]] == [4096, 904]


def test_buttons_go_on_the_last_part_of_a_split_message(api, output):
    chat = new_chat()
    asyncio.run(output.send_text_with_buttons(str(chat), "y" * 5000, [{"title": "OK", "payload": "/affirm"}]))
    sent = api.messages_to(chat)
    assert len(sent) == 2 and "reply_markup" not in sent[0]
    assert sent[1]["reply_markup"] == {"inline_keyboard": [[{"text": "OK", "callback_data": "/affirm"}]]}


def test_429_is_retried_after_retry_after_and_delivered_once(api, output):
    chat = new_chat()
    api.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", {"retry_after": 1})
    started = time.monotonic()
    asyncio.run(output.send_text_message(str(chat), "您好，工单已登记。"))
    elapsed = time.monotonic() - started
    attempts = api.calls_of("sendMessage", chat_id=chat)
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 0.95 and elapsed >= 0.95
    assert [m["text"] for m in api.messages_to(chat)] == ["您好，工单已登记。"]


def test_server_errors_back_off_and_client_errors_are_not_retried(api, output):
    chat = new_chat()
    api.fail_next("sendMessage", 502, "Bad Gateway")
    api.fail_next("sendMessage", 500, "Internal Server Error")
    asyncio.run(output.send_text_message(str(chat), "third time lucky"))
    assert [c.status for c in api.calls_of("sendMessage", chat_id=chat)] == [502, 500, 200]
    for _ in range(4):
        api.fail_next("sendMessage", 503, "Service Unavailable")
    with pytest.raises(Exception):
        asyncio.run(output.send_text_message(str(chat), "never arrives"))
    assert len(api.calls_of("sendMessage", chat_id=chat, text="never arrives")) == 4
    api.fail_next("sendMessage", 400, "Bad Request: chat not found")
    with pytest.raises(BadRequest):
        asyncio.run(output.send_text_message(str(chat), "no such chat"))
    assert len(api.calls_of("sendMessage", chat_id=chat, text="no such chat")) == 1


def test_send_proactive_works_from_any_running_loop(api):
    channel = TelegramInput(TelegramConfig(TOKEN, SECRET, api.url))
    chat = new_chat()
    asyncio.run(channel.send_proactive(chat, "您的工程师明天上午到。"))

    async def later():  # a second event loop, e.g. a scheduler started separately
        await asyncio.sleep(0)
        return await channel.send_proactive(chat, "请确认：", buttons=[{"title": "确认", "payload": "/affirm"}])

    asyncio.run(later())
    sent = api.messages_to(chat)
    assert [m["text"] for m in sent] == ["您的工程师明天上午到。", "请确认："]
    assert sent[1]["reply_markup"]["inline_keyboard"] == [[{"text": "确认", "callback_data": "/affirm"}]]
    unconfigured = TelegramInput(TelegramConfig(None, None))
    with pytest.raises(RuntimeError, match="not configured"):
        asyncio.run(unconfigured.send_proactive(chat, "x"))


def test_unconfigured_channel_answers_503_and_processes_nothing():
    import aiohttp
    from sanic import Sanic

    received = []

    async def on_new_message(message):
        received.append(message)

    async def scenario():
        channel = TelegramInput(TelegramConfig.load(None, env={}))  # as from_credentials with no TELEGRAM_* set
        app = Sanic(f"tg_unconfigured_{random.randint(1, 10**9)}", configure_logging=False)
        app.blueprint(channel.blueprint(on_new_message), url_prefix="/webhooks/telegram")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True)
        await server.startup()
        try:
            async with aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{port}/webhooks/telegram"
                async with http.post(f"{url}/webhook", json=text_update(1, "hi"),
                                     headers={SECRET_HEADER: "anything"}) as resp:
                    first = (resp.status, await resp.json())
                async with http.post(f"{url}/webhook", json=text_update(1, "hi")) as resp:
                    second = resp.status
                async with http.get(f"{url}/") as resp:
                    health = resp.status
        finally:
            server.close()
            await server.wait_closed()
        return first, second, health

    first, second, health = asyncio.run(scenario())
    assert first == (503, {"error": "telegram not configured"}) and second == 503 and health == 503
    assert received == []


# ---------------------------------------------------------------------------------------------- attachment service
@pytest.fixture
def book_uow(sqlite_engine, tmp_path):
    sessions = session_factory(sqlite_engine)
    return lambda: UnitOfWork(sessions)


def test_save_attachment_uses_the_open_ticket_or_opens_an_inquiry(book_uow, settings, tmp_path):
    with book_uow() as uow:
        book = TicketBook(uow.session, settings.timezone, SLA())
        complaint, _ = book.open(conversation_id="c1", channel="telegram", kind="complaint", language="zh", now=NOW)
        uow.commit()
        number = complaint.number
    with book_uow() as uow:
        got, attachment = save_attachment(uow, conversation_id="c1", channel="telegram", data=JPEG,
                                          mime_type="image/jpeg", filename=None, language="zh", now=NOW,
                                          var_dir=tmp_path)
        uow.commit()
    assert got == number and Path(attachment.path).read_bytes() == JPEG
    assert Path(attachment.path).parent == (tmp_path / "attachments" / number).resolve()
    assert attachment.path.endswith(".jpg") and attachment.size == len(JPEG) and attachment.channel == "telegram"
    with book_uow() as uow:
        got2, pdf = save_attachment(uow, conversation_id="c2", channel="telegram", data=PDF,
                                    mime_type="application/pdf", filename="invoice.pdf", language="en", now=NOW,
                                    var_dir=tmp_path)
        uow.commit()
        ticket = uow.session.execute(select(Ticket).where(Ticket.number == got2)).scalar_one()
        assert got2 != number and ticket.kind == "inquiry" and ticket.language == "en"
        assert [e.kind for e in ticket.events] == ["ticket_created", "attachment_added"]
        assert pdf.path.endswith(".pdf")


@pytest.mark.parametrize("data,mime,code", [
    (b"x" * (10 * 1024 * 1024 + 1), "image/jpeg", "too_large"),
    (b"PK\x03\x04 zip", "application/zip", "bad_type"),
    (b"MZ\x90\x00 not really a photo", "image/png", "bad_type"),
    (b"", "image/png", "bad_type"),
])
def test_save_attachment_refuses_big_or_foreign_files(book_uow, tmp_path, data, mime, code):
    with book_uow() as uow:
        with pytest.raises(AttachmentError) as err:
            save_attachment(uow, conversation_id="c3", channel="telegram", data=data, mime_type=mime,
                            filename="f", language="zh", now=NOW, var_dir=tmp_path)
        assert isinstance(err.value, ValueError) and err.value.code == code
        assert uow.session.execute(select(Ticket)).first() is None
    assert not (tmp_path / "attachments").exists()


# ---------------------------------------------------------------------------------------------- through the stack
pytestmark_slow = pytest.mark.slow


@pytestmark_slow
def test_webhook_is_registered_with_the_secret_on_start(stack, api):
    calls = api.wait_for("setWebhook", timeout=15)
    assert calls, "setWebhook was not called"
    assert calls[-1].params["url"] == WEBHOOK_URL and calls[-1].params["secret_token"] == SECRET
    assert set(calls[-1].params["allowed_updates"]) >= {"message", "callback_query"}
    with urllib.request.urlopen(f"{stack.url}/webhooks/telegram/", timeout=10) as resp:
        assert resp.status == 200


@pytestmark_slow
def test_chinese_complaint_gets_a_chinese_reply_in_the_right_chat(stack, api):
    chat = new_chat()
    got = deliver(stack, api, text_update(chat, "你们这什么破冰箱！！买了才几天就不制冷了，里面的肉全臭了"))
    assert got and has_cjk(texts_of(got))
    assert all(m["chat_id"] == chat for m in got)
    [event] = user_events(stack, chat)
    assert event["input_channel"] == "telegram"
    assert event["metadata"]["chat_id"] == chat and event["metadata"]["telegram_user_id"] == chat
    assert event["metadata"]["language_code"] == "zh-hans"
    [ticket] = tickets_of(stack, chat)
    assert ticket.channel == "telegram" and ticket.kind == "complaint"


@pytestmark_slow
def test_english_user_gets_an_english_reply(stack, api):
    chat = new_chat()
    got = deliver(stack, api, text_update(chat, "Hello, my washing machine is leaking water everywhere", "en"))
    assert got and not has_cjk(texts_of(got)), got


@pytestmark_slow
def test_buttons_become_an_inline_keyboard_of_the_payloads(stack, api):
    chat = new_chat()
    got = deliver(stack, api, text_update(chat, "你好"))
    rest = stack.send(f"rest-twin-{chat}", "你好")
    expected = [[{"text": b["title"], "callback_data": b["payload"]}] for r in rest for b in r.get("buttons", [])]
    with_keyboard = [m for m in got if m.get("reply_markup")]
    assert expected and len(with_keyboard) == 1
    assert with_keyboard[0]["reply_markup"]["inline_keyboard"] == expected


@pytestmark_slow
def test_button_press_is_answered_and_its_payload_reaches_the_bot(stack, api):
    chat = new_chat()
    deliver(stack, api, text_update(chat, "你好"))
    update = callback_update(chat, "/check_status")
    got = deliver(stack, api, update)
    assert api.calls_of("answerCallbackQuery", ok=True, callback_query_id=update["callback_query"]["id"])
    assert texts_of(got) == TEXTS.get("status_ask", "zh")
    last = user_events(stack, chat)[-1]
    assert last["text"] == "/check_status" and last["parse_data"]["intent"]["name"] == "check_status"


@pytestmark_slow
@pytest.mark.parametrize("secret", ["wrong-secret", None, "", SECRET + "x"])
def test_wrong_or_missing_secret_is_refused_and_nothing_is_processed(stack, api, secret):
    chat = new_chat()
    calls_before = api.count()
    status, _ = post(stack, text_update(chat, "我的冰箱坏了，不制冷"), secret=secret)
    assert status == 403
    assert api.count() == calls_before and api.messages_to(chat) == []
    assert user_events(stack, chat) == []
    assert tickets_of(stack, chat) == []


@pytestmark_slow
@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", b'"text"',
                                  json.dumps({"message": {"text": "hi"}}).encode(),
                                  json.dumps({"update_id": 5, "message": {"text": "no date or chat"}}).encode()])
def test_malformed_updates_are_refused_with_400(stack, api, body):
    calls_before = api.count()
    status, _ = post(stack, body)
    assert status == 400
    assert api.count() == calls_before


@pytestmark_slow
def test_redelivered_update_is_handled_once(stack, api):
    chat = new_chat()
    update = text_update(chat, "你好")
    first = deliver(stack, api, update)
    again = deliver(stack, api, update)
    assert first and again == [] and len(user_events(stack, chat)) == 1


@pytestmark_slow
def test_photo_is_downloaded_and_saved_on_the_conversations_ticket(stack, api):
    chat = new_chat()
    deliver(stack, api, text_update(chat, "你们这什么破冰箱！！买了才几天就不制冷了，里面的肉全臭了"))
    [ticket] = tickets_of(stack, chat)
    file_id = f"photo-{chat}"
    api.add_file(file_id, JPEG, f"photos/file_{chat}.jpg")
    got = deliver(stack, api, photo_update(chat, file_id))
    assert api.calls_of("getFile", ok=True, file_id=file_id)  # the largest size, not the thumbnail
    assert api.calls_of("download", ok=True, path=f"photos/file_{chat}.jpg")
    [(attachment, number)] = attachments_of(stack, chat)
    assert number == ticket.number
    assert attachment.channel == "telegram" and attachment.mime_type == "image/jpeg" and attachment.size == len(JPEG)
    path = Path(attachment.path)
    assert path.read_bytes() == JPEG and path.parent == stack.tmp.resolve() / "attachments" / ticket.number
    assert texts_of(got) == TEXTS.get("attachment_saved", "zh", number=ticket.number)
    with db_session(stack) as session:
        kinds = list(session.execute(select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket.id)).scalars())
    assert "attachment_added" in kinds


@pytestmark_slow
def test_photo_caption_reaches_the_bot_and_the_photo_its_ticket(stack, api):
    chat = new_chat()
    file_id = f"photo-{chat}"
    api.add_file(file_id, JPEG, f"photos/file_{chat}.jpg")
    got = deliver(stack, api, photo_update(chat, file_id, caption="我家冰箱不制冷了，您看这照片"))
    assert [e["text"] for e in user_events(stack, chat)] == ["我家冰箱不制冷了，您看这照片"]
    [(attachment, number)] = attachments_of(stack, chat)
    assert number == tickets_of(stack, chat)[-1].number
    assert len(got) >= 2 and got[-1]["text"] == TEXTS.get("attachment_saved", "zh", number=number)


@pytestmark_slow
def test_pdf_without_a_ticket_opens_an_inquiry_and_is_acknowledged_in_english(stack, api):
    chat = new_chat()
    file_id = f"doc-{chat}"
    api.add_file(file_id, PDF, f"documents/file_{chat}.pdf")
    got = deliver(stack, api, document_update(chat, file_id, "application/pdf", "receipt.pdf", len(PDF), "en"))
    [ticket] = tickets_of(stack, chat)
    assert ticket.kind == "inquiry" and ticket.channel == "telegram" and ticket.language == "en"
    [(attachment, number)] = attachments_of(stack, chat)
    assert number == ticket.number and attachment.path.endswith(".pdf")
    assert texts_of(got) == TEXTS.get("attachment_saved", "en", number=ticket.number)


@pytestmark_slow
def test_unacceptable_files_are_refused_politely(stack, api):
    chat = new_chat()
    zip_update = document_update(chat, f"zip-{chat}", "application/zip", "photos.zip", 2000)
    big_update = document_update(chat, f"big-{chat}", "image/png", "huge.png", 11 * 1024 * 1024)
    api.add_file(f"fake-{chat}", b"MZ\x90\x00" + b"\x00" * 500, f"documents/fake_{chat}.png")
    fake_update = document_update(chat, f"fake-{chat}", "image/png", "virus.png", 504)
    refused = TEXTS.get("attachment_rejected", "en")
    for update in (zip_update, big_update, fake_update):
        assert texts_of(deliver(stack, api, update)) == refused
    assert not api.calls_of("getFile", file_id=f"zip-{chat}") and not api.calls_of("getFile", file_id=f"big-{chat}")
    assert api.calls_of("getFile", file_id=f"fake-{chat}")  # declared PNG: fetched, then the bytes give it away
    assert attachments_of(stack, chat) == [] and tickets_of(stack, chat) == []


@pytestmark_slow
@pytest.mark.parametrize("script, language_code, language, apology", [
    ("zh-complaint-fridge", "zh-hans", "zh", ("抱歉", "冰箱")),
    ("en-complaint-washer", "en", "en", ("sorry", "washing machine")),
])
def test_six_step_complaint_over_telegram(stack, api, script, language_code, language, apology):
    chat = new_chat()
    seen = []
    for line in script_lines(script):
        got = deliver(stack, api, text_update(chat, line, language_code=language_code))
        assert got, f"no reply to {line!r}"
        seen.append(texts_of(got))
    assert all(word in seen[2].lower() for word in apology), seen[2]
    if language == "en":
        assert not any(re.search(r"[\u4e00-\u9fff]", text) for text in seen), seen
    [ticket] = tickets_of(stack, chat)
    assert ticket.number in seen[-1]
    assert ticket.channel == "telegram" and ticket.language == language and ticket.conversation_id == conversation_id("telegram", chat)
    steps = [getattr(ticket, f"step_{s}_at") for s in STEPS]
    assert all(steps) and steps == sorted(steps), steps
    assert ticket.remedy_accepted and ticket.follow_up_due and ticket.order_id


@pytestmark_slow
def test_rasa_can_message_a_telegram_chat_proactively(stack, api):
    chat = new_chat()
    deliver(stack, api, text_update(chat, "你好"))
    before = len(api.messages_to(chat))
    answer = stack.api(f"/conversations/{conversation_id('telegram', chat)}/trigger_intent?output_channel=latest",
                       "POST", {"name": "greet"}, timeout=60)
    assert answer["tracker"]["sender_id"] == conversation_id("telegram", chat)
    sent = api.messages_to(chat)[before:]
    assert sent and has_cjk(texts_of(sent))


@pytestmark_slow
def test_polling_mode_forwards_updates_to_the_rasa_webhook(stack, api):
    chat = new_chat()
    api.queue_update(text_update(chat, "你好"))
    env = dict(os.environ, TELEGRAM_TOKEN=TOKEN, TELEGRAM_WEBHOOK_SECRET=SECRET, TELEGRAM_API_URL=api.url,
               PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "bot", "telegram", "--polling", "--once", "--timeout", "1",
                           "--rasa-url", f"{stack.url}/webhooks/telegram/webhook"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "forwarded 1 update" in proc.stdout
    assert api.calls_of("deleteWebhook", ok=True)
    assert api.messages_to(chat) and [e["text"] for e in user_events(stack, chat)] == ["你好"]
