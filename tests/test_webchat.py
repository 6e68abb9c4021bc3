"""The web chat widget in a real browser (Debian's chromium, driven by Playwright) against the real Rasa and action
servers with the trained model: the demo page, socket.io with session persistence, quick replies, history after a
reload, photo uploads onto the ticket, the English interface, the keyboard, and the phone layout.

Needs /usr/bin/chromium (and fonts-wqy-microhei for Chinese in the screenshots): `make test` installs both when it
runs as root. Without them the browser tests are skipped with a message. Playwright never downloads a browser here.

Screenshots go to tests/artifacts/ (git-ignored); the final desktop and phone ones are copied to docs/screenshots/.
"""
from __future__ import annotations

import asyncio
import io
import json
import shutil
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from bot.channels import webchat
from bot.services.conversation import conversation_id
from bot.settings import ROOT
from bot.store.models import STEPS, Attachment, Ticket
from tests.stack import Stack, need_model

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
ARTIFACTS = ROOT / "tests" / "artifacts"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}
REPLY_TIMEOUT = 45  # seconds

# The Chinese complaint of tests/test_conversations.py.
ZH_LINES = [
    "你们这什么破冰箱！！买了才几天就不制冷了，里面的肉全臭了",
    "我还专门请了一天假在家等着，气死我了",
    "你们打算怎么处理？",
    "对，就是这样",
    "不知道型号",
    "订单号JD240512345678",
    "13812345678",  # the phone on the order: an order number alone links nobody (issue 18)
    "北京市朝阳区望京西路8号院3号楼1单元502",
    "明天下午",
    "可以",
]


def has_cjk(s: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in s)


def png_bytes(size=(64, 48), color=(200, 40, 40)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def gif_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 0, 255)).save(buf, format="GIF")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- unit tests
def test_session_request_awaits_enter_room():
    """The Rasa 3.6 bug: enter_room (a coroutine in python-socketio >= 5.10) was not awaited, so the socket never
    joined its session's room and replies to the room were lost."""
    channel = webchat.WebChatInput.from_credentials({"session_persistence": True})
    assert isinstance(channel, webchat.WebChatInput) and channel.name() == "webchat"
    channel.blueprint(lambda message: None)
    sio = channel.sio
    joined, emitted = [], []

    async def enter_room(sid, room, namespace=None):
        await asyncio.sleep(0)
        joined.append((sid, room))

    async def emit(event, data=None, room=None, **kwargs):
        emitted.append((event, data, room))

    sio.enter_room, sio.emit = enter_room, emit
    handler = sio.handlers["/"]["session_request"]
    asyncio.run(handler("sid-1", {"session_id": None}))
    (sid, room), = joined
    assert sid == "sid-1" and webchat.valid_session_id(room)
    assert emitted == [("session_confirm", room, "sid-1")]
    # A known id (one the server signed) is kept; anything else (another channel's sender, junk, 32 hex characters
    # the server did not sign) gets a fresh one.
    known = webchat.new_session_id()
    asyncio.run(handler("sid-2", {"session_id": known}))
    assert joined[-1] == ("sid-2", known)
    forged = uuid.uuid4().hex
    asyncio.run(handler("sid-4", {"session_id": forged}))
    assert joined[-1][1] != forged and webchat.valid_session_id(joined[-1][1])
    asyncio.run(handler("sid-3", {"session_id": "rest-zh-1"}))
    assert joined[-1][1] != "rest-zh-1" and webchat.valid_session_id(joined[-1][1])


def test_history_shows_titles_and_only_the_pending_buttons():
    buttons = [{"title": "可以", "payload": "/affirm"}, {"title": "不对", "payload": "/deny"}]
    events = [
        {"event": "action", "name": "action_session_start", "timestamp": 1.0},
        {"event": "user", "text": "冰箱坏了", "timestamp": 2.0, "input_channel": "webchat"},
        {"event": "bot", "text": "我在听。\n\n您慢慢说", "timestamp": 3.0, "data": {}},
        {"event": "bot", "text": "对吗？", "timestamp": 4.0, "data": {"buttons": buttons}},
        {"event": "user", "text": "/affirm", "timestamp": 5.0},
        {"event": "bot", "text": "型号？", "timestamp": 6.0, "data": {"buttons": [{"title": "不知道", "payload": "不知道"}]}},
        {"event": "user", "text": "/deny", "timestamp": 7.0, "metadata": {"display_text": "不对，我补充一下"}},
        {"event": "bot", "text": "好的", "timestamp": 8.0, "data": {"buttons": buttons}},
    ]
    photos = [{"at": 2.5, "label": "照片", "ack": "收到"}]
    items = webchat.history_messages(events, photos)
    assert [(i["sender"], i["text"]) for i in items] == [
        ("user", "冰箱坏了"), ("user", "照片"), ("bot", "收到"), ("bot", "我在听。"), ("bot", "您慢慢说"),
        ("bot", "对吗？"), ("user", "可以"), ("bot", "型号？"), ("user", "不对，我补充一下"), ("bot", "好的")]
    assert items[1]["kind"] == "photo"
    assert [i for i, item in enumerate(items) if "buttons" in item] == [len(items) - 1]
    assert items[-1]["buttons"] == buttons


def test_metadata_is_cleaned():
    assert webchat.clean_metadata({"language": "en-GB", "display_text": " 可以 ", "x": 1}) == \
        {"language": "en", "display_text": "可以"}
    assert webchat.clean_metadata('{"language": "zh-Hans"}') == {"language": "zh"}
    assert webchat.clean_metadata("not json") == {} and webchat.clean_metadata(["zh"]) == {}
    assert webchat.clean_metadata({"language": "fr"}) == {}


# ---------------------------------------------------------------------------------------------- fixtures
def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: run `make setup` (it is in requirements.lock)"
    if not CHROMIUM.exists():
        return (f"no browser at {CHROMIUM}: install Debian's chromium and fonts-wqy-microhei "
                "(`make test` does it when run as root: apt-get install chromium fonts-wqy-microhei)")
    return None


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    need_model()
    tmp = tmp_path_factory.mktemp("webchat")
    credentials = tmp / "credentials.yml"
    credentials.write_text("rest:\n"
                           "bot.channels.webchat.WebChatInput:\n"
                           "  user_message_evt: user_uttered\n"
                           "  bot_message_evt: bot_uttered\n"
                           "  session_persistence: true\n", encoding="utf-8")
    stack = Stack(tmp, credentials=credentials)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def browser(stack):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Chat:
    """One browser page with the demo shop and the widget."""

    def __init__(self, browser, stack: Stack, viewport=DESKTOP, lang: str | None = None, **context_args):
        self.stack = stack
        self.context = browser.new_context(viewport=viewport, locale="zh-CN", **context_args)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.url = f"{stack.url}/webhooks/webchat/" + (f"?lang={lang}" if lang else "")
        self.page.goto(self.url)
        self.page.wait_for_selector(".asc-launcher", state="visible")

    def close(self):
        self.context.close()

    # -- widget
    def open(self):
        if self.page.get_attribute(".asc-launcher", "aria-expanded") != "true":
            self.page.click(".asc-launcher")
        self.page.wait_for_selector(".asc-window", state="visible")
        self.page.wait_for_selector(".asc-root[data-session-id]", state="attached", timeout=20_000)
        self.wait_ready()

    def wait_ready(self):
        self.page.wait_for_function("AfterSalesChat.widget && AfterSalesChat.widget.ready === true",
                                    timeout=20_000)

    @property
    def session_id(self) -> str:
        return self.page.get_attribute(".asc-root", "data-session-id")

    def bot_texts(self) -> list[str]:
        return self.page.eval_on_selector_all(".asc-msg--bot:not(.asc-welcome) .asc-bubble",
                                              "els => els.map(e => e.textContent)")

    def user_texts(self) -> list[str]:
        return self.page.eval_on_selector_all(".asc-msg--user .asc-bubble", "els => els.map(e => e.textContent)")

    def notices(self) -> list[str]:
        return self.page.eval_on_selector_all(".asc-msg--notice .asc-bubble", "els => els.map(e => e.textContent)")

    def quick_replies(self) -> list[str]:
        return self.page.eval_on_selector_all(".asc-qr", "els => els.map(e => e.textContent)")

    def _wait_for_replies(self, before: int) -> list[str]:
        """The bot's messages of one turn: wait for the first, then until no more arrive for a moment."""
        self.page.wait_for_function(
            "n => document.querySelectorAll('.asc-msg--bot:not(.asc-welcome)').length > n", arg=before,
            timeout=REPLY_TIMEOUT * 1000)
        count, stable_since = -1, time.monotonic()
        while time.monotonic() - stable_since < 0.6:
            now = len(self.bot_texts())
            if now != count:
                count, stable_since = now, time.monotonic()
            time.sleep(0.1)
        return self.bot_texts()[before:]

    def say(self, text: str) -> list[str]:
        before = len(self.bot_texts())
        self.page.fill(".asc-input", text)
        self.page.press(".asc-input", "Enter")
        return self._wait_for_replies(before)

    def press(self, title: str) -> list[str]:
        before = len(self.bot_texts())
        self.page.click(f".asc-qr:text-is('{title}')")
        return self._wait_for_replies(before)

    def upload(self, name: str, mime: str, data: bytes) -> None:
        self.page.set_input_files(".asc-file", files=[{"name": name, "mimeType": mime, "buffer": data}])

    def shot(self, name: str, docs_name: str | None = None) -> Path:
        path = ARTIFACTS / name
        self.page.mouse.move(0, 0)  # no hover effect in the picture
        self.page.wait_for_timeout(350)  # let the smooth scroll of the log settle
        self.page.screenshot(path=str(path))
        if docs_name:
            DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOCS_SCREENSHOTS / docs_name)
        return path


@pytest.fixture
def chat_factory(browser, stack):
    chats: list[Chat] = []

    def make(**kwargs) -> Chat:
        chat = Chat(browser, stack, **kwargs)
        chats.append(chat)
        return chat

    yield make
    for chat in chats:
        assert not chat.errors, f"JavaScript errors on the page: {chat.errors}"
        chat.close()


def db_attachments(stack: Stack, session_id: str) -> list[tuple[Attachment, Ticket]]:
    """The photos on the tickets of the web chat session `session_id`."""
    conversation = conversation_id("webchat", session_id)
    engine = create_engine(stack.db_url, future=True)
    try:
        with Session(engine) as session:
            rows = session.execute(select(Attachment, Ticket).join(Ticket, Attachment.ticket_id == Ticket.id)
                                   .where(Ticket.conversation_id == conversation)
                                   .order_by(Attachment.id)).all()
            for attachment, ticket in rows:
                session.expunge(attachment)
                session.expunge(ticket)
            return [tuple(row) for row in rows]
    finally:
        engine.dispose()


def count_attachments(stack: Stack) -> int:
    engine = create_engine(stack.db_url, future=True)
    try:
        with Session(engine) as session:
            return session.execute(select(func.count(Attachment.id))).scalar_one()
    finally:
        engine.dispose()


def post_upload(stack: Stack, fields: dict, file: tuple[str, str, bytes] | None) -> tuple[int, dict]:
    boundary = uuid.uuid4().hex
    parts = []
    for key, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode())
    if file:
        name, mime, data = file
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                     f'Content-Type: {mime}\r\n\r\n'.encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{stack.url}/webhooks/webchat/upload", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


# ---------------------------------------------------------------------------------------------- browser tests
@pytest.mark.slow
def test_widget_is_served(stack):
    with urllib.request.urlopen(f"{stack.url}/webhooks/webchat/", timeout=10) as resp:
        page = resp.read().decode("utf-8")
        assert resp.headers["Content-Type"].startswith("text/html")
    assert page.count('src="widget.js"') == 1 and "AfterSalesChat.init(" in page
    for name, kind in (("widget.js", "javascript"), ("widget.css", "text/css"), ("socket.io.min.js", "javascript")):
        with urllib.request.urlopen(f"{stack.url}/webhooks/webchat/{name}", timeout=10) as resp:
            assert kind in resp.headers["Content-Type"] and resp.read()
    # A session id must be one the server made; another channel's conversation is not readable from here.
    assert get_json(f"{stack.url}/webhooks/webchat/history?session_id=rest-zh-1")[0] == 400
    # A REST client's sender that looks like a session id is not one the server signed (and its conversation is
    # rest:<sender> anyway).
    rest_sender = uuid.uuid4().hex
    stack.send(rest_sender, "你好")
    assert get_json(f"{stack.url}/webhooks/webchat/history?session_id={rest_sender}")[0] == 400


@pytest.mark.slow
def test_chinese_complaint_through_the_widget(chat_factory, stack):
    """Complaint, a photo, quick replies, a reload in the middle (same conversation, history shown again), and the
    six steps to the end; the ticket is a web chat ticket with every step stamped and the photo on it."""
    chat = chat_factory()
    chat.open()
    assert chat.page.get_attribute(".asc-log", "role") == "log"
    assert chat.page.get_attribute(".asc-log", "aria-live") == "polite"
    session_id = chat.session_id
    assert webchat.valid_session_id(session_id, stack.session_secret)

    first = chat.say(ZH_LINES[0])
    assert first and has_cjk(first[0]) and not first[-1].endswith(("？", "?"))  # step 1 listens

    # A photo of the fault goes onto the ticket, and the bot says so.
    photo = png_bytes()
    before = len(chat.bot_texts())
    chat.upload("fridge.png", "image/png", photo)
    chat.page.wait_for_function("n => document.querySelectorAll('.asc-msg--bot:not(.asc-welcome)').length > n",
                                arg=before, timeout=REPLY_TIMEOUT * 1000)
    ack = chat.bot_texts()[-1]
    chat.page.wait_for_selector(".asc-msg--photo img.asc-photo")
    (attachment, ticket), = db_attachments(stack, session_id)
    assert ticket.number in ack and "保存" in ack
    assert attachment.channel == "webchat" and attachment.mime_type == "image/png" and attachment.size == len(photo)
    assert Path(attachment.path).read_bytes() == photo
    chat.shot("zh-photo.png")

    chat.say(ZH_LINES[1])
    apology = "\n".join(chat.say(ZH_LINES[2]))
    assert "抱歉" in apology and "冰箱" in apology and "不制冷" in apology
    assert "可以" in chat.quick_replies()
    gather = chat.press("可以")  # step 2 confirmed with a quick reply: the title shows, the payload goes
    assert chat.user_texts()[-1] == "可以"
    assert gather and "型号" in "\n".join(gather)
    assert chat.quick_replies() == ["不知道"]
    chat.shot("zh-before-reload.png")

    # Reload: the same conversation, the earlier messages shown again, the pending quick reply too.
    shown_before = chat.bot_texts()
    chat.page.reload()
    chat.open()
    chat.page.wait_for_selector(".asc-root[data-history]", state="attached", timeout=20_000)
    assert chat.session_id == session_id
    assert chat.page.evaluate("Object.entries(localStorage).find(([k]) => k.endsWith(':session'))[1]") == session_id
    assert chat.bot_texts() == shown_before
    users = chat.user_texts()
    assert users[0] == ZH_LINES[0] and "可以" in users and "/affirm" not in users and "照片" in users
    assert chat.quick_replies() == ["不知道"]
    chat.shot("zh-after-reload.png")

    # The conversation goes on after the reload: to the end of the six steps.
    assert "买" in "\n".join(chat.press("不知道"))  # the model is not known; next: when was it bought
    chat.say(ZH_LINES[5])
    chat.say(ZH_LINES[6])
    chat.say(ZH_LINES[7])
    proposal = "\n".join(chat.say(ZH_LINES[8]))
    assert "依据条款" in proposal
    assert "可以" in chat.quick_replies()
    closing = "\n".join(chat.press("可以"))
    ticket_json = stack.ticket_of(session_id, "webchat")
    assert ticket_json["number"] == ticket.number and ticket_json["number"] in closing
    assert ticket_json["channel"] == "webchat" and ticket_json["language"] == "zh"
    assert all(ticket_json["steps"][s] for s in STEPS), ticket_json["steps"]
    assert [ticket_json["steps"][s] for s in STEPS] == sorted(ticket_json["steps"][s] for s in STEPS)
    assert ticket_json["facts"]["order_id"] == "JD240512345678" and ticket_json["remedy"]["accepted"]
    assert ticket_json["follow_up_due"]
    assert len(db_attachments(stack, session_id)) == 1
    chat.shot("widget-desktop.png", docs_name="widget-desktop.png")


@pytest.mark.slow
def test_bad_uploads_are_refused_and_nothing_is_stored(chat_factory, stack):
    chat = chat_factory()
    chat.open()
    session_id = chat.session_id
    stored = count_attachments(stack)

    # Caught in the widget before sending.
    chat.upload("notes.txt", "text/plain", b"not a photo")
    chat.page.wait_for_function("document.querySelectorAll('.asc-msg--notice').length >= 1")
    big = png_bytes() + b"\0" * (webchat.MAX_UPLOAD_BYTES + 1)
    chat.upload("huge.png", "image/png", big)
    chat.page.wait_for_function("document.querySelectorAll('.asc-msg--notice').length >= 2")
    # Refused by the server: says PNG, is a GIF.
    chat.upload("fake.png", "image/png", gif_bytes())
    chat.page.wait_for_function("document.querySelectorAll('.asc-msg--notice').length >= 3", timeout=20_000)
    notices = chat.notices()
    assert "JPG、PNG 或 WebP" in notices[0] and "5 MB" in notices[1] and "JPG、PNG 或 WebP" in notices[2]
    chat.shot("zh-upload-refused.png")

    # The server's limits, whatever the client does.
    status, body = post_upload(stack, {"session_id": session_id, "language": "en"}, ("huge.png", "image/png", big))
    assert status == 413 and body["error"] == "too_large" and "5 MB" in body["message"]
    status, body = post_upload(stack, {"session_id": session_id}, ("a.pdf", "application/pdf", b"%PDF-1.4\n"))
    assert status == 415 and body["error"] == "bad_type" and "JPG" in body["message"]
    status, body = post_upload(stack, {"sender": session_id}, ("x.png", "image/png", b"MZ\x90\x00 not an image"))
    assert status == 415 and body["error"] == "bad_type"
    status, body = post_upload(stack, {"session_id": "../../etc"}, ("a.png", "image/png", png_bytes()))
    assert status == 400 and body["error"] == "bad_session"
    assert post_upload(stack, {"session_id": session_id}, None)[0] == 400
    assert count_attachments(stack) == stored and db_attachments(stack, session_id) == []
    assert stack.ticket_of(session_id, "webchat") is None  # no ticket was opened for a refused file

    # A JPEG straight to the endpoint is stored (an inquiry ticket is opened for a conversation without one).
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 120, 10)).save(buf, format="JPEG")
    status, body = post_upload(stack, {"session_id": session_id, "language": "en"}, ("p.jpg", "image/jpeg",
                                                                                      buf.getvalue()))
    assert status == 200 and body["ok"] and body["ticket"] in body["message"] and not has_cjk(body["message"])
    (attachment, ticket), = db_attachments(stack, session_id)
    assert ticket.kind == "inquiry" and ticket.channel == "webchat" and attachment.mime_type == "image/jpeg"


@pytest.mark.slow
def test_english_interface_and_replies(chat_factory, stack):
    chat = chat_factory(lang="en")
    page = chat.page
    assert page.inner_text(".asc-launcher").strip() == "Chat with us"
    chat.open()
    assert page.get_attribute(".asc-input", "placeholder") == "Type your message…"
    assert page.get_attribute(".asc-send", "aria-label") == "Send"
    assert page.get_attribute(".asc-attach", "aria-label") == "Upload a photo"
    assert not has_cjk(page.inner_text(".asc-welcome"))
    replies = chat.say("I am so angry, my new washing machine is leaking water all over the floor!!")
    replies += chat.say("that's all, what are you going to do?")
    assert replies and not any(has_cjk(r) for r in replies), replies
    assert "sorry" in "\n".join(replies).lower()
    assert chat.quick_replies() and not any(has_cjk(q) for q in chat.quick_replies())
    chat.shot("en-conversation.png")
    # The language goes with each message as metadata.
    tracker = stack.tracker(conversation_id("webchat", chat.session_id))
    user_events = [e for e in tracker["events"] if e["event"] == "user"]
    assert user_events and all(e["metadata"].get("language") == "en" for e in user_events)
    assert all(e["input_channel"] == "webchat" for e in user_events)

    # Switchable: the toggle turns the interface Chinese, and back.
    page.click(".asc-lang")
    assert page.get_attribute(".asc-input", "placeholder") == "请输入您的问题…"
    assert page.get_attribute(".asc-close", "aria-label") == "关闭对话窗口"
    page.click(".asc-lang")
    assert page.get_attribute(".asc-input", "placeholder") == "Type your message…"

    # ... and the six steps run to the end in English.
    assert "model" in "\n".join(chat.press("Yes")).lower()
    chat.say("XQG100-HBD14126L")
    chat.say("order TM2026101500123")
    chat.say("13998765432")  # the phone on the order
    chat.say("Room 1202, 18 Tiyu West Road, Tianhe District, Guangzhou")
    proposal = "\n".join(chat.say("tomorrow afternoon"))
    assert not has_cjk(proposal) and "clause" in proposal.lower()
    closing = "\n".join(chat.say("yes that works"))
    ticket = stack.ticket_of(chat.session_id, "webchat")
    assert ticket["number"] in closing and not has_cjk(closing)
    assert ticket["channel"] == "webchat" and ticket["language"] == "en"
    assert all(ticket["steps"][s] for s in STEPS), ticket["steps"]
    assert ticket["facts"]["model"] == "XQG100-HBD14126L" and ticket["remedy"]["accepted"] and ticket["follow_up_due"]


@pytest.mark.slow
def test_keyboard_only(chat_factory):
    chat = chat_factory()
    page = chat.page
    page.focus(".asc-launcher")
    assert page.get_attribute(".asc-launcher", "aria-label") == "打开在线客服"
    page.keyboard.press("Enter")
    chat.wait_ready()
    assert page.evaluate("document.activeElement.classList.contains('asc-input')")
    assert page.get_attribute(".asc-launcher", "aria-expanded") == "true"
    # Focus order inside the composer: photo button, text box, send button.
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.classList.contains('asc-attach')")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.classList.contains('asc-send')")
    page.keyboard.press("Shift+Tab")
    for selector in (".asc-lang", ".asc-close", ".asc-attach", ".asc-send", ".asc-input"):
        assert page.get_attribute(selector, "aria-label"), selector
    # Enter sends; the typing indicator shows while the bot works.
    page.evaluate("""() => { window.__sawTyping = false;
        new MutationObserver(() => { if (!document.querySelector('.asc-typing').hidden) window.__sawTyping = true; })
          .observe(document.querySelector('.asc-typing'), {attributes: true}); }""")
    before = len(chat.bot_texts())
    page.keyboard.type("你好")
    page.keyboard.press("Enter")
    assert chat._wait_for_replies(before)
    assert page.evaluate("window.__sawTyping") and page.is_hidden(".asc-typing")
    assert chat.user_texts()[-1] == "你好" and page.input_value(".asc-input") == ""
    # Escape closes and gives the focus back to the launcher.
    page.focus(".asc-input")
    page.keyboard.press("Escape")
    assert page.is_hidden(".asc-window")
    assert page.evaluate("document.activeElement.classList.contains('asc-launcher')")
    assert page.get_attribute(".asc-launcher", "aria-expanded") == "false"


@pytest.mark.slow
def test_phone_layout(chat_factory):
    chat = chat_factory(viewport=PHONE, has_touch=True, is_mobile=True)
    page = chat.page
    launcher = page.locator(".asc-launcher").bounding_box()
    assert launcher["x"] + launcher["width"] <= PHONE["width"] and launcher["y"] + launcher["height"] <= PHONE["height"]
    chat.shot("phone-closed.png")
    chat.open()
    box = page.locator(".asc-window").bounding_box()
    assert (round(box["x"]), round(box["y"]), round(box["width"]), round(box["height"])) == \
        (0, 0, PHONE["width"], PHONE["height"])  # full screen
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    chat.say(ZH_LINES[0])
    chat.say(ZH_LINES[1])
    chat.say(ZH_LINES[2])
    assert chat.quick_replies()
    for selector in (".asc-send", ".asc-input", ".asc-close", ".asc-qr"):
        b = page.locator(selector).first.bounding_box()
        assert b["x"] >= 0 and b["x"] + b["width"] <= PHONE["width"] and b["height"] >= 30, selector
    chat.shot("widget-phone.png", docs_name="widget-phone.png")
