"""The WeChat Official Account channel: the store's service functions on SQLite and PostgreSQL, the API client and
the 48-hour rule against a fake WeChat API server on loopback (tests/fake_wechat_api.py), safe mode (AES) through
an in-process server, and end to end through the real Rasa and action servers with the trained model.

WeChat pushes are signed here by hand (SHA-1 of the sorted token, timestamp and nonce), not with the code under
test, and encrypted for safe mode with wechatpy's WeChatCrypto as WeChat would.
"""
from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import Session

from bot.channels.wechat import (
    WeChatAPI,
    WeChatConfig,
    WeChatDeliverer,
    WeChatInput,
    WeChatStore,
    split_text,
)
from bot.services import wechat as service
from bot.services.conversation import conversation_id
from bot.settings import ROOT
from bot.store.db import session_factory
from bot.store.models import (Attachment, Engineer, OutboxItem, Ticket, Visit, WeChatHeld, WeChatInbound,
                              WeChatUser)
from bot.texts import load_texts
from tests.conftest import NOW
from tests.fake_wechat_api import FakeWeChatAPI
from tests.stack import VENV_BIN, Stack, need_model, script_lines
from tests.test_outbox_channels import GATE, OUTBOX_TOKEN

WX_TOKEN = "wx_test_token_2026"
APP_ID = "wx1a2b3c4d5e6f7a8b"
APP_SECRET = "0123456789abcdef0123456789abcdef"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"  # 43 characters, as the account settings page gives it
ACCOUNT = "gh_0123456789ab"  # the Official Account's own id (ToUserName)
TEMPLATE_DAY_BEFORE = "tpl-visit-reminder-day-before-0001"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01" + bytes(random.Random(2).getrandbits(8) for _ in range(2000)) + b"\xff\xd9"
TEXTS = load_texts()
PASSWORD = "wang-password"

_msg_ids = itertools.count(random.randint(10**9, 9 * 10**9) * 1000)


# ---------------------------------------------------------------------------------------------- helpers
def new_openid() -> str:
    return "oWx_" + "".join(random.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
                            for _ in range(24))


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def text_xml(openid: str, content: str, msg_id: int | None = None, created: int | None = None, extra: str = "") -> str:
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{created or int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id or next(_msg_ids)}</MsgId>{extra}</xml>")


def image_xml(openid: str, media_id: str) -> str:
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[image]]></MsgType>"
            f"<PicUrl><![CDATA[http://mmbiz.qpic.cn/{media_id}]]></PicUrl><MediaId><![CDATA[{media_id}]]></MediaId>"
            f"<MsgId>{next(_msg_ids)}</MsgId></xml>")


def event_xml(openid: str, event: str, key: str = "", created: int | None = None) -> str:
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{created or int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[{event}]]></Event><EventKey><![CDATA[{key}]]></EventKey></xml>")


def voice_xml(openid: str, recognition: str | None) -> str:
    rec = f"<Recognition><![CDATA[{recognition}]]></Recognition>" if recognition is not None else ""
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[voice]]></MsgType>"
            f"<MediaId><![CDATA[voice-{openid}]]></MediaId><Format><![CDATA[amr]]></Format>{rec}"
            f"<MsgId>{next(_msg_ids)}</MsgId></xml>")


def signed_query(token: str = WX_TOKEN, timestamp: int | None = None, **extra: str) -> dict:
    ts, nonce = str(timestamp or int(time.time())), str(random.randint(10**8, 10**9))
    return {"signature": sign(token, ts, nonce), "timestamp": ts, "nonce": nonce, **extra}


def http(url: str, query: dict, body: bytes | None = None) -> tuple[int, str]:
    req = urllib.request.Request(f"{url}?{urllib.parse.urlencode(query)}", data=body,
                                 headers={"Content-Type": "text/xml"} if body is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def webhook(stack: Stack) -> str:
    return f"{stack.url}/webhooks/wechat/webhook"


def push(stack: Stack, api: FakeWeChatAPI, xml: str | bytes, query: dict | None = None) -> tuple[int, str]:
    """POST a message as WeChat does; WeChat itself now counts the customer as having written (its 48-hour
    window)."""
    body = xml.encode() if isinstance(xml, str) else xml
    status, answer = http(webhook(stack), query or signed_query(openid="x"), body)
    if status == 200 and isinstance(xml, str) and "<FromUserName><![CDATA[" in xml:
        api.user_wrote(xml.split("<FromUserName><![CDATA[", 1)[1].split("]]>", 1)[0])
    return status, answer


def user_events(stack: Stack, openid: str) -> list[dict]:
    return [e for e in stack.tracker(conversation_id("wechat", openid))["events"] if e["event"] == "user"]


def settle(stack: Stack, openid: str, turns: int, timeout: float = 60) -> None:
    """Wait until Rasa has finished `turns` customer messages of this follower (replies are then sent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = stack.tracker(conversation_id("wechat", openid))["events"]
        users = [e for e in events if e["event"] == "user"]
        if len(users) >= turns and events[-1]["event"] == "action" and events[-1]["name"] == "action_listen":
            time.sleep(0.3)
            return
        time.sleep(0.1)
    raise AssertionError(f"turn {turns} of {openid} not finished in {timeout}s")


def say(stack: Stack, api: FakeWeChatAPI, openid: str, text: str) -> list[str]:
    """The customer writes; returns what they read back."""
    before = len(api.texts_to(openid))
    turns = len(user_events(stack, openid)) + 1
    status, answer = push(stack, api, text_xml(openid, text))
    assert (status, answer) == (200, "success")
    settle(stack, openid, turns)
    return api.texts_to(openid)[before:]


def has_cjk(s: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in s)


_engines: dict = {}


def db(stack: Stack) -> Session:
    if stack.db_url not in _engines:
        _engines[stack.db_url] = create_engine(stack.db_url, future=True)
    return Session(_engines[stack.db_url])


def tickets_of(stack: Stack, openid: str) -> list[Ticket]:
    with db(stack) as session:
        return list(session.execute(select(Ticket).where(
            Ticket.conversation_id == conversation_id("wechat", openid)).order_by(Ticket.id)).scalars())


def move_last_message_back(stack: Stack, api: FakeWeChatAPI, openid: str, hours: float) -> None:
    """Time passes: the customer's last message was `hours` ago, for us and for WeChat."""
    with db(stack) as session:
        session.execute(update(WeChatUser).where(WeChatUser.openid == openid).values(
            last_inbound_at=datetime.now(timezone.utc) - timedelta(hours=hours)))
        session.commit()
    api.user_wrote(openid, time.time() - hours * 3600)


# ---------------------------------------------------------------------------------------------- service
def test_message_keys_and_retries_are_taken_once(uow_factory):
    assert service.message_key({"MsgId": "123", "FromUserName": "o1"}) == "msg:123"
    event = {"FromUserName": "o1", "CreateTime": "1700000000", "Event": "subscribe"}
    assert service.message_key(event) == "evt:o1:1700000000:subscribe"
    with uow_factory() as uow:
        assert service.take_inbound(uow, "msg:1", "o1", NOW) is True
        assert service.take_inbound(uow, "msg:1", "o1", NOW) is False  # the retry, same unit of work
        uow.commit()
    with uow_factory() as uow:
        assert service.take_inbound(uow, "msg:1", "o1", NOW + timedelta(seconds=5)) is False  # a later retry
        assert service.take_inbound(uow, "msg:2", "o1", NOW + timedelta(hours=30)) is True
        uow.commit()
    with uow_factory() as uow:
        # keys older than a day are forgotten; the follower's window counts from the newest message
        assert [r.msg_key for r in uow.session.execute(select(WeChatInbound)).scalars()] == ["msg:2"]
        assert service.last_inbound(uow, "o1") == NOW + timedelta(hours=30)


def test_the_48_hour_window(uow_factory):
    with uow_factory() as uow:
        assert not service.in_window(uow, "o2", NOW)  # never wrote
        service.take_inbound(uow, "msg:10", "o2", NOW)
        uow.commit()
    with uow_factory() as uow:
        assert service.in_window(uow, "o2", NOW + timedelta(hours=47, minutes=59))
        assert not service.in_window(uow, "o2", NOW + timedelta(hours=48))


def test_access_token_is_shared_and_dropped_only_if_it_is_the_refused_one(uow_factory):
    with uow_factory() as uow:
        assert service.cached_token(uow, "app", NOW) is None
        service.store_token(uow, "app", "T1", 7200, NOW)
        uow.commit()
    with uow_factory() as uow:  # another instance reads the same token
        assert service.cached_token(uow, "app", NOW + timedelta(minutes=50)) == "T1"
        assert service.cached_token(uow, "app", NOW + timedelta(minutes=116)) is None  # 5 minutes before expiry
        service.store_token(uow, "app", "T2", 7200, NOW + timedelta(minutes=1))
        service.drop_token(uow, "app", "T1")  # an instance that was refused T1: T2 stays
        uow.commit()
    with uow_factory() as uow:
        assert service.cached_token(uow, "app", NOW + timedelta(minutes=2)) == "T2"
        service.drop_token(uow, "app", "T2")
        uow.commit()
    with uow_factory() as uow:
        assert service.cached_token(uow, "app", NOW + timedelta(minutes=2)) is None


def test_held_messages_and_menus(uow_factory):
    with uow_factory() as uow:
        first = service.hold(uow, "o3", "visit_reminder_two_hours", "zh", [{"text": "提醒一"}], NOW)
        service.hold(uow, "o3", "survey", "zh", [{"text": "请评分", "buttons": [{"title": "5", "payload": "5"}]}],
                     NOW + timedelta(minutes=1))
        service.remember_menu(uow, "o3", {"101": "/affirm", "102": "/deny"}, NOW)
        uow.commit()
    with uow_factory() as uow:
        held = service.held_for(uow, "o3")
        assert [h.kind for h in held] == ["visit_reminder_two_hours", "survey"] and held[0].id == first
        assert held[1].messages[0]["buttons"] == [{"title": "5", "payload": "5"}]
        service.mark_sent(uow, first, NOW + timedelta(days=3))
        assert service.menu_payload(uow, "o3", "102") == "/deny" and service.menu_payload(uow, "o3", "9") is None
        uow.commit()
    with uow_factory() as uow:
        assert [h.kind for h in service.held_for(uow, "o3")] == ["survey"]
        assert service.held_for(uow, "o4") == []


def test_migration_downgrades_and_upgrades_again(db_engine):
    from alembic import command
    from sqlalchemy import inspect

    from bot.store.db import alembic_config

    tables = {"wechat_tokens", "wechat_inbound", "wechat_users", "wechat_held"}
    cfg = alembic_config(str(db_engine.url))
    with db_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        assert tables <= set(inspect(conn).get_table_names())
        command.downgrade(cfg, "0002")
        assert not tables & set(inspect(conn).get_table_names())
        command.upgrade(cfg, "head")
        assert tables <= set(inspect(conn).get_table_names())
        [unique] = inspect(conn).get_unique_constraints("wechat_inbound")
        assert unique["column_names"] == ["msg_key"]


def test_template_ids_come_from_the_environment():
    env = {"WECHAT_TEMPLATE_VISIT_REMINDER_DAY_BEFORE": " tpl-1 ", "WECHAT_TEMPLATE_SURVEY": "", "OTHER": "x"}
    assert service.template_ids(env) == {"visit_reminder_day_before": "tpl-1"}
    assert service.openid_of("wechat:oAbc") == "oAbc" and service.openid_of("oAbc") == "oAbc"


def test_split_text_at_wechats_2048_bytes():
    lines = "\n".join(f"第{i}行：" + "说明" * 30 for i in range(40))  # ~8,000 bytes
    parts = split_text(lines)
    assert len(parts) == 4 and all(len(p.encode()) <= 2048 for p in parts)
    assert "\n".join(parts) == lines and all(p.startswith("第") for p in parts)
    hard = "冰" * 1000  # 3,000 bytes, no line break
    assert [len(p) for p in split_text(hard)] == [682, 318] and "".join(split_text(hard)) == hard
    assert split_text("  \n ") == [] and split_text("好") == ["好"]


# ---------------------------------------------------------------------------------------------- API and delivery
@pytest.fixture(scope="module")
def api():
    fake = FakeWeChatAPI(APP_ID, APP_SECRET).start()
    fake.add_template(TEMPLATE_DAY_BEFORE)
    yield fake
    fake.stop()


def config(api: FakeWeChatAPI, **changes) -> WeChatConfig:
    values = dict(token=WX_TOKEN, app_id=APP_ID, app_secret=APP_SECRET, api_url=api.url,
                  templates=(("visit_reminder_day_before", TEMPLATE_DAY_BEFORE),))
    values.update(changes)
    return WeChatConfig(**values)


@pytest.fixture
def sessions(sqlite_engine):
    return session_factory(sqlite_engine)


def test_token_is_fetched_once_shared_and_refreshed_on_42001_and_40001(api, sessions):
    openid = new_openid()
    api.user_wrote(openid)
    before = len(api.calls_of("token"))
    one = WeChatAPI(config(api), WeChatStore(sessions))
    other = WeChatAPI(config(api), WeChatStore(sessions))  # a second server instance, same database

    async def scenario():
        await one.send_text(openid, "第一条")
        await other.send_text(openid, "第二条")
        api.expire_token()
        await other.send_text(openid, "第三条")  # 42001 -> new token -> sent
        await one.send_text(openid, "第四条")  # the token other stored is used
        api.token = "replaced-elsewhere"  # e.g. someone fetched one with the same AppSecret: 40001
        await one.send_text(openid, "第五条")

    asyncio.run(scenario())
    assert api.texts_to(openid) == ["第一条", "第二条", "第三条", "第四条", "第五条"]
    assert len(api.calls_of("token")) - before == 3  # the first, after 42001, after 40001
    refused = [c.errcode for c in api.calls_of("custom_send", ok=False, touser=openid)]
    assert refused == [42001, 40001]


def test_a_long_reply_is_split_into_messages_of_at_most_2048_bytes(api, sessions):
    from bot.channels.wechat import WeChatOutput

    openid = new_openid()
    api.user_wrote(openid)
    text = "\n".join(f"第{i}步：" + "请检查冰箱门封条是否严密" * 4 for i in range(60))  # ~9,000 bytes
    asyncio.run(WeChatOutput(WeChatAPI(config(api), WeChatStore(sessions))).send_text_message(f"wechat:{openid}", text))
    sent = api.texts_to(openid)
    assert len(sent) == 5 and all(len(t.encode()) <= 2048 for t in sent) and "\n".join(sent) == text
    assert not api.calls_of("custom_send", ok=False, touser=openid)


def test_wrong_app_secret_raises_with_wechats_code(api, sessions):
    bad = WeChatAPI(config(api, app_secret="wrong"), WeChatStore(sessions))
    with pytest.raises(Exception) as err:
        asyncio.run(bad.send_text("o", "x"))
    assert getattr(err.value, "errcode", None) == 40125


def test_buttons_become_a_menu_and_a_click_comes_back_as_the_payload(api, sessions):
    openid = new_openid()
    api.user_wrote(openid)
    deliverer = WeChatDeliverer(config(api), WeChatStore(sessions))
    with sessions() as s:
        s.add(WeChatUser(openid=openid, menu={}, last_inbound_at=datetime.now(timezone.utc)))
        s.commit()
    buttons = [{"title": "查询进度", "payload": "/check_status"}, {"title": "我要投诉", "payload": "/complain"}]
    got = asyncio.run(deliverer.deliver(openid, "agent_reply", "zh", [{"text": "请选择：", "buttons": buttons}]))
    assert got.via == "custom"
    [sent] = api.messages_to(openid)
    assert sent["msgtype"] == "msgmenu" and sent["msgmenu"]["head_content"] == "请选择："
    assert [i["content"] for i in sent["msgmenu"]["list"]] == ["查询进度", "我要投诉"]
    ids = [i["id"] for i in sent["msgmenu"]["list"]]
    from bot.store.db import UnitOfWork

    with UnitOfWork(sessions) as uow:
        assert [service.menu_payload(uow, openid, i) for i in ids] == ["/check_status", "/complain"]


def test_proactive_outside_the_window_goes_as_template_or_is_held(api, sessions):
    openid = new_openid()
    api.user_wrote(openid, time.time() - 49 * 3600)
    deliverer = WeChatDeliverer(config(api), WeChatStore(sessions))
    with sessions() as s:
        s.add(WeChatUser(openid=openid, menu={}, last_inbound_at=datetime.now(timezone.utc) - timedelta(hours=49)))
        s.commit()
    reminder = [{"text": "明天上午9:00-11:00工程师上门"}, {"text": "如需改期请回复"}]
    got = asyncio.run(deliverer.deliver(f"wechat:{openid}", "visit_reminder_day_before", "zh", reminder,
                                        fields={"ticket": "T-1", "when": "明天上午"}))
    assert got.via == "template" and got.sent and got.template_msgid
    [call] = api.calls_of("template_send", touser=openid)
    assert call.params["template_id"] == TEMPLATE_DAY_BEFORE
    assert call.params["data"] == {"first": {"value": "明天上午9:00-11:00工程师上门"}, "keyword1": {"value": "T-1"},
                                   "keyword2": {"value": "明天上午"}, "remark": {"value": "如需改期请回复"}}
    held = asyncio.run(deliverer.deliver(openid, "survey", "zh", [{"text": "请为本次服务评分"}]))
    assert held.via == "held" and not held.sent and api.messages_to(openid) == []
    with sessions() as s:
        [row] = s.execute(select(WeChatHeld).where(WeChatHeld.openid == openid)).scalars()
        assert row.kind == "survey" and row.sent_at is None and row.id == held.held_id


# ---------------------------------------------------------------------------------------------- unconfigured
def test_unconfigured_channel_answers_503_and_processes_nothing():
    """Both webhook routes go through `_refuse` first; without WECHAT_TOKEN/APP_ID/APP_SECRET it answers 503 (the
    same check the stack tests pass through with a configured channel)."""
    from types import SimpleNamespace

    channel = WeChatInput(WeChatConfig.load(None, env={}))  # as from_credentials with no WECHAT_* set
    assert channel.get_output_channel() is None and channel.deliverer is None
    answer = channel._refuse(SimpleNamespace(args=signed_query(), ip="127.0.0.1"))
    assert answer.status == 503 and b"wechat not configured" in answer.body
    with pytest.raises(RuntimeError, match="not configured"):
        asyncio.run(channel.send_proactive("wechat:o1", "x"))


# ---------------------------------------------------------------------------------------------- through the stack
@pytest.fixture(scope="module")
def stack(api, tmp_path_factory):
    need_model()
    tmp = tmp_path_factory.mktemp("wxstack")
    seed = tmp / "seed"  # the desk open around the clock, so a hand-off does not depend on the hour
    shutil.copytree(ROOT / "data" / "seed", seed)
    desk = yaml.safe_load((seed / "desk.yml").read_text(encoding="utf-8"))
    desk["hours"] = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    (seed / "desk.yml").write_text(yaml.safe_dump(desk), encoding="utf-8")
    credentials = tmp / "credentials.yml"
    credentials.write_text("bot.channels.rest.RestInput:\nbot.channels.wechat.WeChatInput:\n"
                           "bot.channels.agent_console.AgentConsoleInput:\n" + GATE)
    stack = Stack(tmp, credentials=credentials, extra_env={"BOT_OUTBOX_TOKEN": OUTBOX_TOKEN,
        "BOT_SEED_DIR": str(seed), "WECHAT_TOKEN": WX_TOKEN, "WECHAT_APP_ID": APP_ID, "WECHAT_APP_SECRET": APP_SECRET,
        "WECHAT_API_URL": api.url, "WECHAT_AES_KEY": AES_KEY, "WECHAT_TEMPLATE_VISIT_REMINDER_DAY_BEFORE": TEMPLATE_DAY_BEFORE})
    try:
        stack.start()
        result = subprocess.run([str(VENV_BIN / "python"), "-m", "bot", "agents", "add", "wang", "--password",
                                 PASSWORD, "--display-name", "王丽"], cwd=ROOT, env=stack.env(),
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def complaint(stack, api):
    """A follower who complained in Chinese over WeChat, all the way to a booked visit."""
    openid = new_openid()
    replies = [say(stack, api, openid, line) for line in script_lines("zh-complaint-fridge")]
    return openid, replies


slow = pytest.mark.slow


@slow
def test_url_verification_answers_echostr_only_when_signed(stack):
    assert http(webhook(stack), signed_query(echostr="5837397520238213458")) == (200, "5837397520238213458")
    assert http(webhook(stack), signed_query(token="other", echostr="1"))[0] == 403
    assert http(webhook(stack), signed_query(timestamp=int(time.time()) - 400, echostr="1"))[0] == 403  # replay
    with urllib.request.urlopen(f"{stack.url}/webhooks/wechat/", timeout=10) as resp:
        assert resp.status == 200


@slow
@pytest.mark.parametrize("query", [
    lambda: signed_query(token="forged"),
    lambda: {**signed_query(), "signature": "0" * 40},
    lambda: {k: v for k, v in signed_query().items() if k != "signature"},
    lambda: signed_query(timestamp=int(time.time()) - 301),  # a replay of an old, correctly signed push
])
def test_forged_or_replayed_push_is_refused_and_nothing_is_processed(stack, api, query):
    openid = new_openid()
    calls = api.count()
    status, _ = http(webhook(stack), query(), text_xml(openid, "我的冰箱坏了，不制冷").encode())
    assert status == 403
    time.sleep(0.5)
    assert api.count() == calls and user_events(stack, openid) == [] and tickets_of(stack, openid) == []
    with db(stack) as session:
        assert session.execute(select(WeChatInbound).where(WeChatInbound.openid == openid)).first() is None


@slow
@pytest.mark.parametrize("body, status", [
    (b"", 400), (b"not xml at all", 400), (b'{"MsgType": "text"}', 400), (b"<xml><Content>hi</Content></xml>", 400),
    (b"<xml><MsgType>text</MsgType><Content>no sender</Content></xml>", 400),
    (b"<!DOCTYPE x [<!ENTITY a 'aaaa'>]><xml><MsgType>text</MsgType>" + b"&a;" * 30000 + b"</xml>", 413),
    (b"<!DOCTYPE x [<!ENTITY a 'oWx_entity'>]><xml><FromUserName>&a;</FromUserName><MsgType>text</MsgType>"
     b"<Content>hi</Content><MsgId>1</MsgId></xml>", 400),  # entities are not expanded: refused
])
def test_bodies_that_are_not_wechat_messages_are_refused(stack, api, body, status):
    calls = api.count()
    assert http(webhook(stack), signed_query(), body)[0] == status
    assert api.count() == calls


@slow
def test_a_full_chinese_complaint_over_wechat_reaches_its_ticket(stack, api, complaint):
    openid, replies = complaint
    assert all(replies) and all(has_cjk("\n".join(r)) for r in replies)
    assert "抱歉" in "\n".join(replies[2]) and "冰箱" in "\n".join(replies[2])
    [ticket] = tickets_of(stack, openid)
    assert ticket.channel == "wechat" and ticket.kind == "complaint" and ticket.language == "zh"
    assert ticket.conversation_id == conversation_id("wechat", openid) and ticket.number in "\n".join(replies[-1])
    assert ticket.remedy_accepted and ticket.order_id == "JD240512345678"
    events = user_events(stack, openid)
    assert [e["text"] for e in events] == script_lines("zh-complaint-fridge")
    assert all(e["input_channel"] == "wechat" and e["metadata"]["wechat_openid"] == openid for e in events)


@slow
def test_a_photo_is_fetched_through_the_media_api_and_stored_on_the_ticket(stack, api, complaint):
    openid, _ = complaint
    [ticket] = tickets_of(stack, openid)
    media_id = f"media-{openid}"
    api.add_media(media_id, JPEG)
    before = len(api.texts_to(openid))
    assert push(stack, api, image_xml(openid, media_id)) == (200, "success")
    got = api.wait_for_messages(openid, before + 1)[before:]
    assert api.calls_of("media_get", ok=True, media_id=media_id)
    assert [m["text"]["content"] for m in got] == [TEXTS.get("attachment_saved", "zh", number=ticket.number)]
    with db(stack) as session:
        [attachment] = session.execute(select(Attachment).where(Attachment.ticket_id == ticket.id)).scalars()
        assert attachment.channel == "wechat" and attachment.mime_type == "image/jpeg"
        assert Path(attachment.path).read_bytes() == JPEG
        assert Path(attachment.path).parent == stack.tmp.resolve() / "attachments" / ticket.number
    # a "photo" that is not one is refused politely and not stored
    api.add_media(f"fake-{openid}", b"MZ\x90\x00" + b"\x00" * 300)
    before = len(api.texts_to(openid))
    push(stack, api, image_xml(openid, f"fake-{openid}"))
    got = api.wait_for_messages(openid, before + 1)[before:]
    assert [m["text"]["content"] for m in got] == [TEXTS.get("attachment_rejected", "zh")]
    api.add_media(f"huge-{openid}", JPEG[:-2] + b"\x00" * (11 * 1024 * 1024) + b"\xff\xd9")  # over 10 MB
    before = len(api.texts_to(openid))
    push(stack, api, image_xml(openid, f"huge-{openid}"))
    got = api.wait_for_messages(openid, before + 1)[before:]
    assert [m["text"]["content"] for m in got] == [TEXTS.get("attachment_rejected", "zh")]
    with db(stack) as session:
        assert len(session.execute(select(Attachment).where(Attachment.ticket_id == ticket.id)).all()) == 1


def visit_reminder(stack: Stack, openid: str) -> tuple[str, str, str]:
    """The day-before reminder text of the follower's booked visit (the outbox's wording is its own; this one is
    built from the visit as booked)."""
    [ticket] = tickets_of(stack, openid)
    with db(stack) as session:
        [visit] = session.execute(select(Visit).where(Visit.ticket_id == ticket.id, Visit.status == "booked")).scalars()
        engineer = session.get(Engineer, visit.engineer_id)
        start = visit.start.replace(tzinfo=timezone.utc) if visit.start.tzinfo is None else visit.start
        when = start.astimezone(timezone(timedelta(hours=8))).strftime("%m月%d日 %H:%M")
        name = engineer.name_zh
    return f"提醒：工程师{name}将于{when}上门维修（工单 {ticket.number}）。如需改期请直接回复。", ticket.number, when


@slow
def test_a_booked_visits_reminder_follows_the_48_hour_rule(stack, api):
    openid = new_openid()
    for line in script_lines("zh-repair-aircon"):  # a repair visit booked over WeChat
        assert say(stack, api, openid, line), line
    text, number, when = visit_reminder(stack, openid)
    engine = create_engine(stack.db_url, future=True)
    config_ = WeChatConfig.load(None, env={**stack.env(), "WECHAT_API_URL": api.url})
    deliverer = WeChatDeliverer(config_, WeChatStore(session_factory(engine)))  # e.g. the outbox runner
    tokens = len(api.calls_of("token"))

    inside = asyncio.run(deliverer.deliver(conversation_id("wechat", openid), "visit_reminder_day_before", "zh",
                                           [{"text": text}], fields={"ticket": number, "when": when}))
    assert inside.via == "custom" and api.texts_to(openid)[-1] == text
    assert len(api.calls_of("token")) == tokens  # the server's token, shared through the database

    move_last_message_back(stack, api, openid, hours=49)
    outside = asyncio.run(deliverer.deliver(conversation_id("wechat", openid), "visit_reminder_day_before", "zh",
                                            [{"text": text}], fields={"ticket": number, "when": when}))
    assert outside.via == "template" and api.texts_to(openid)[-1] == text  # nothing more by customer service
    call = api.calls_of("template_send", touser=openid)[-1]
    assert call.params["template_id"] == TEMPLATE_DAY_BEFORE and call.params["data"]["first"]["value"] == text
    assert call.params["data"]["keyword1"]["value"] == number
    assert not api.calls_of("custom_send", ok=False, touser=openid)  # the window was known: no refused attempt

    # No template for the two-hour reminder: it waits, and is the first thing they read when they write again.
    two_hours = f"工程师两小时后到达（工单 {number}），请保持电话畅通。"
    held = asyncio.run(deliverer.deliver(conversation_id("wechat", openid), "visit_reminder_two_hours", "zh",
                                         [{"text": two_hours}]))
    assert held.held and api.texts_to(openid)[-1] == text
    got = say(stack, api, openid, "你好，我想问下工程师什么时候到")
    assert got[0] == two_hours and len(got) >= 2
    with db(stack) as session:
        row = session.get(WeChatHeld, held.held_id)
        assert row.sent_at is not None and row.kind == "visit_reminder_two_hours"
    engine.dispose()


@slow
def test_the_outbox_keeps_a_wechat_customers_reminders_by_the_48_hour_rule(stack, api):
    """The reminders of a visit booked over WeChat go through the outbox runner and the Rasa server's gate to the
    WeChat deliverer: inside the window as a customer-service message; outside it, with no template for the kind,
    held (the row says so) and read first when the customer writes again."""
    from tests.test_outbox_channels import BOOKING, run_once, visit_and_reminders

    openid = new_openid()
    for line in BOOKING:  # the day after tomorrow, afternoon: neither reminder falls in quiet hours
        assert say(stack, api, openid, line), line
    for _ in range(8):  # decline the self-check, accept the repair, take the first window, confirm
        if any("预约好" in t for t in api.texts_to(openid)[-2:]):
            break
        menus = [m for m in api.messages_to(openid) if m["msgtype"] == "msgmenu"]
        assert menus, api.texts_to(openid)[-2:]
        items = menus[-1]["msgmenu"]["list"]
        last = api.texts_to(openid)[-1]
        item = items[-1] if "SELF-CHECK" in last else next((i for i in items if i["content"] == "可以"), items[0])
        turns = len(user_events(stack, openid)) + 1
        push(stack, api, text_xml(openid, item["content"], extra=f"<bizmsgmenuid>{item['id']}</bizmsgmenuid>"))
        settle(stack, openid, turns)
    assert any("预约好" in t for t in api.texts_to(openid)[-2:]), api.texts_to(openid)[-3:]
    visit, (day_before, two_hours) = visit_and_reminders(stack, conversation_id("wechat", openid))
    assert {day_before.channel, two_hours.channel} == {"wechat"}
    with db(stack) as session:
        engineer = session.get(Engineer, visit.engineer_id).name_zh

    sent = len(api.texts_to(openid))
    proc = run_once(stack, day_before.due_at.replace(tzinfo=timezone.utc))  # (other tests' rows may be due too)
    with db(stack) as session:
        assert session.get(OutboxItem, day_before.id).status == "sent", proc.stdout + proc.stderr
    # (an earlier promise of this conversation may go out with it: a call-back after a repeat complaint)
    reminder = [t for t in api.texts_to(openid)[sent:] if engineer in t and "明天" in t]
    assert len(reminder) == 1, api.texts_to(openid)[sent:]

    move_last_message_back(stack, api, openid, hours=49)
    sent = len(api.texts_to(openid))
    proc = run_once(stack, two_hours.due_at.replace(tzinfo=timezone.utc))
    assert len(api.texts_to(openid)) == sent, proc.stdout + proc.stderr  # nothing sent outside the window  # nothing sent: outside the window, no template for this kind
    with db(stack) as session:
        assert session.get(OutboxItem, two_hours.id).status == "held"
        [held] = session.execute(select(WeChatHeld).where(WeChatHeld.openid == openid,
                                                          WeChatHeld.kind == "visit_reminder_two_hours")).scalars()
        assert held.sent_at is None
        waiting = len(list(session.execute(select(WeChatHeld.id).where(WeChatHeld.openid == openid,
                                                                         WeChatHeld.sent_at.is_(None)))))
    got = say(stack, api, openid, "师傅几点到？")
    # what waited comes first, before the answer: the two-hour reminder among it
    assert any(engineer in t and "两小时" in t for t in got[:waiting]), got
    with db(stack) as session:
        assert session.get(WeChatHeld, held.id).sent_at is not None


@slow
def test_the_same_push_delivered_three_times_is_one_turn(stack, api):
    openid = new_openid()
    xml = text_xml(openid, "你好")
    for _ in range(3):  # WeChat's retries: same MsgId
        assert push(stack, api, xml) == (200, "success")
    settle(stack, openid, 1)
    time.sleep(1.0)
    assert [e["text"] for e in user_events(stack, openid)] == ["你好"]
    replies = api.texts_to(openid)
    assert replies and has_cjk("\n".join(replies))
    assert len(api.calls_of("custom_send", touser=openid)) == len(replies)  # answered once, not three times

    follower = new_openid()  # a new follower subscribes: a welcome in Chinese, once for a retried event
    subscribe = event_xml(follower, "subscribe", created=int(time.time()) - 5)
    for _ in range(2):  # an event has no MsgId: FromUserName + CreateTime + Event
        assert push(stack, api, subscribe) == (200, "success")
    settle(stack, follower, 1)
    time.sleep(1.0)
    assert [e["text"] for e in user_events(stack, follower)] == ["/greet"]
    welcome = api.texts_to(follower)
    assert welcome and has_cjk(welcome[0])


@slow
def test_menu_click_voice_and_unsupported_messages(stack, api):
    openid = new_openid()
    say(stack, api, openid, "你好")
    menus = [m for m in api.messages_to(openid) if m["msgtype"] == "msgmenu"]
    rest = stack.send(f"rest-twin-{openid}", "你好")
    buttons = [b for r in rest for b in r.get("buttons", [])]
    assert menus and [i["content"] for i in menus[-1]["msgmenu"]["list"]] == [b["title"] for b in buttons]
    item = menus[-1]["msgmenu"]["list"][0]
    click = text_xml(openid, item["content"], extra=f"<bizmsgmenuid>{item['id']}</bizmsgmenuid>")
    push(stack, api, click)
    settle(stack, openid, 2)
    assert user_events(stack, openid)[-1]["text"] == buttons[0]["payload"]

    before = len(api.texts_to(openid))
    push(stack, api, voice_xml(openid, None))
    assert api.wait_for_messages(openid, before + 1)[before:][0]["text"]["content"] == \
        TEXTS.get("wechat_voice_unrecognised", "zh")
    push(stack, api, voice_xml(openid, "我的洗衣机漏水了"))
    settle(stack, openid, 3)
    assert user_events(stack, openid)[-1]["text"] == "我的洗衣机漏水了"

    push(stack, api, event_xml(openid, "CLICK", key="/check_status"))  # the account's own menu (自定义菜单)
    settle(stack, openid, 4)
    assert user_events(stack, openid)[-1]["text"] == "/check_status"
    before = len(api.texts_to(openid))
    video = voice_xml(openid, None).replace("[voice]", "[video]").replace("<Format><![CDATA[amr]]></Format>", "")
    push(stack, api, video)
    got = api.wait_for_messages(openid, before + 1)[before:]
    assert [m["text"]["content"] for m in got] == [TEXTS.get("attachment_rejected", "zh")]
    assert len(user_events(stack, openid)) == 4  # nothing of it reached the bot


def console(stack: Stack, method: str, path: str, body=None, token: str | None = None) -> tuple[int, dict]:
    import json

    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(f"{stack.url}/webhooks/agent{path}", method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


@slow
def test_an_agents_reply_reaches_the_wechat_user_or_waits_past_48_hours(stack, api):
    openid = new_openid()
    conversation = conversation_id("wechat", openid)
    say(stack, api, openid, "我要投诉，你们这冰箱买了五天就不制冷了！")
    say(stack, api, openid, "转人工")
    status, login = console(stack, "POST", "/api/login", {"name": "wang", "password": PASSWORD})
    assert status == 200
    token = login["token"]
    queue = console(stack, "GET", "/api/queue?order=newest", token=token)[1]
    [item] = [i for i in queue["items"] if i["conversation_id"] == conversation]
    assert item["channel"] == "wechat"
    status, claimed = console(stack, "POST", f"/api/conversations/{conversation}/claim", token=token)
    assert status == 200 and claimed["delivery"] == {"delivered": True, "via": "wechat"}
    reply = "您好，我是王丽，已经查到您的订单，马上为您安排换货。"
    status, sent = console(stack, "POST", f"/api/conversations/{conversation}/messages", {"text": reply}, token=token)
    assert status == 201 and sent["delivery"] == {"delivered": True, "via": "wechat"}
    assert api.texts_to(openid)[-1] == reply

    move_last_message_back(stack, api, openid, hours=50)
    later = "王丽：换货的冰箱明天送到。"
    status, sent = console(stack, "POST", f"/api/conversations/{conversation}/messages", {"text": later}, token=token)
    assert status == 201 and sent["delivery"] == {"delivered": False, "via": "wechat-held"}
    assert api.texts_to(openid)[-1] == reply and not api.calls_of("custom_send", ok=False, touser=openid)
    before = len(api.texts_to(openid))
    push(stack, api, text_xml(openid, "好的，谢谢"))
    assert api.wait_for_messages(openid, before + 1)[before]["text"]["content"] == later


@slow
def test_safe_mode_round_trip(stack, api):
    """Safe mode: WeChat encrypts the message with the EncodingAESKey and signs the ciphertext (msg_signature); the
    channel decrypts it and the bot's answer goes out through the customer-service API. A ciphertext signed wrongly
    gets 403, one encrypted with another key 400, and neither reaches the bot."""
    from wechatpy.crypto import WeChatCrypto

    openid = new_openid()

    def encrypted(key: str, xml: str, good_signature: bool = True) -> tuple[dict, bytes]:
        query = signed_query(encrypt_type="aes", openid=openid)
        envelope = WeChatCrypto(WX_TOKEN, key, APP_ID).encrypt_message(xml, query["nonce"], query["timestamp"])
        cipher = envelope.split("<Encrypt><![CDATA[", 1)[1].split("]]>", 1)[0]
        query["msg_signature"] = sign(WX_TOKEN, query["timestamp"], query["nonce"], cipher if good_signature else "x")
        body = f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{cipher}]]></Encrypt></xml>"
        return query, body.encode()

    assert http(webhook(stack), *encrypted(AES_KEY, text_xml(openid, "伪造"), good_signature=False))[0] == 403
    assert http(webhook(stack), *encrypted("B" * 43, text_xml(openid, "别的密钥")))[0] == 400
    api.user_wrote(openid)
    assert http(webhook(stack), *encrypted(AES_KEY, text_xml(openid, "你好，冰箱不制冷了"))) == (200, "success")
    settle(stack, openid, 1)
    assert [e["text"] for e in user_events(stack, openid)] == ["你好，冰箱不制冷了"]
    assert api.texts_to(openid) and has_cjk("\n".join(api.texts_to(openid)))
