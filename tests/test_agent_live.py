"""The console live (issue 16): desk time whatever the browser's zone, the server-sent event stream instead of
polling, transfers with a note, routing by language and skill, and Close with a resolution note and a confirmation.

The real Rasa and action servers with the trained model (REST and the console), agents added with the CLI, and
Debian's chromium in two browser contexts (one in UTC, one in Asia/Shanghai). Screenshots go to tests/artifacts/ and
the two README ones to docs/screenshots/console-live-*.png.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from datetime import datetime

import pytest
import yaml

from bot.settings import ROOT
from tests.stack import VENV_BIN, Stack, need_model
from tests.test_agent_console import (ARTIFACTS, CHROMIUM, DOCS_SCREENSHOTS, LAUNCH_ARGS, _browser_missing, call,
                                      new_sender, rest, shot)

pytestmark = pytest.mark.slow

AGENTS = {  # name: (display name, languages, skills, password)
    "lina": ("李娜", "zh", "", "lina-password"),
    "mark": ("Mark", "zh,en", "", "mark-password"),
    "erin": ("Erin", "en", "fridge", "erin-password"),
}
DESK_ZONE = "Asia/Shanghai"


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    need_model()
    tmp = tmp_path_factory.mktemp("live")
    seed = tmp / "seed"
    shutil.copytree(ROOT / "data" / "seed", seed)
    rules = yaml.safe_load((seed / "desk.yml").read_text(encoding="utf-8"))
    rules["hours"] = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    rules["routing"] = {"others_after_seconds": 3600}  # the others never catch up during a test
    (seed / "desk.yml").write_text(yaml.safe_dump(rules), encoding="utf-8")
    credentials = tmp / "credentials.yml"
    credentials.write_text("bot.channels.rest.RestInput:\nbot.channels.agent_console.AgentConsoleInput:\n",
                           encoding="utf-8")
    stack = Stack(tmp, credentials=credentials, extra_env={"BOT_SEED_DIR": str(seed), "BOT_TIMEZONE": DESK_ZONE})
    try:
        stack.start()
        for name, (display, languages, skills, password) in AGENTS.items():
            for args in (["add", name, "--password", password, "--display-name", display],
                         ["routing", name, "--languages", languages, "--skills", skills]):
                done = subprocess.run([str(VENV_BIN / "python"), "-m", "bot", "agents", *args], cwd=ROOT,
                                      env=stack.env(), capture_output=True, text=True, timeout=120)
                assert done.returncode == 0, done.stderr
        yield stack
    finally:
        stack.stop()


def sign_in(stack: Stack, name: str) -> str:
    status, body, _ = call(stack, "POST", "/api/login", {"name": name, "password": AGENTS[name][3]})
    assert status == 200, body
    return body["token"]


def queue_of(stack: Stack, token: str) -> list[dict]:
    status, body, _ = call(stack, "GET", "/api/queue", token=token)
    assert status == 200, body
    assert body["zone"] == {"name": DESK_ZONE, "offset": "UTC+8"}
    return body["items"]


def item_of(items: list[dict], conversation: str) -> dict:
    return next(i for i in items if i["conversation_id"] == conversation)


def ticket_events(stack: Stack, sender: str) -> list[dict]:
    return stack.ticket_of(sender)["events"]


# ---------------------------------------------------------------------------------------------- the API
def test_an_english_customer_is_offered_to_the_english_speaking_agent_first(desk):
    english, chinese = new_sender("live-en"), new_sender("live-zh")
    desk.send(chinese, "我要找人工客服")
    desk.send(english, "I want to talk to a real person please")
    lina, erin = sign_in(desk, "lina"), sign_in(desk, "erin")
    for_erin, for_lina = queue_of(desk, erin), queue_of(desk, lina)
    en_erin, en_lina = item_of(for_erin, rest(english)), item_of(for_lina, rest(english))
    assert en_erin["language"] == "en" and en_erin["status"] == "waiting"
    assert en_erin["routed"] and en_erin["offered"]  # Erin speaks English: offered to her now
    assert not en_lina["routed"] and not en_lina["offered"]  # Lina (Chinese only) sees it, not offered yet
    zh_erin, zh_lina = item_of(for_erin, rest(chinese)), item_of(for_lina, rest(chinese))
    assert zh_lina["offered"] and not zh_erin["offered"]
    # Each agent's offered cases come first, whatever the requested time says.
    assert [i["conversation_id"] for i in for_erin].index(rest(english)) < \
        [i["conversation_id"] for i in for_erin].index(rest(chinese))
    assert [i["conversation_id"] for i in for_lina].index(rest(chinese)) < \
        [i["conversation_id"] for i in for_lina].index(rest(english))
    for sender, token in ((english, erin), (chinese, lina)):  # leave the queue empty for the next tests
        assert call(desk, "POST", f"/api/conversations/{rest(sender)}/claim", token=token)[0] == 200
        assert call(desk, "POST", f"/api/conversations/{rest(sender)}/close", {"note": "done"}, token=token)[0] == 200


def test_skills_route_within_a_language():
    from bot.services.routing import suits
    from bot.store.models import Agent

    erin = Agent(name="erin", languages=["en"], skills=["fridge"])
    assert suits(erin, "en", "fridge") and suits(erin, "en", None)
    assert not suits(erin, "en", "washing_machine") and not suits(erin, "zh", "fridge")
    assert suits(Agent(name="any", languages=[], skills=None), "en", "tv")


def test_the_stream_needs_a_token_and_says_when_a_case_starts_waiting(desk):
    assert call(desk, "GET", "/api/stream")[0] == 401
    assert call(desk, "GET", "/api/stream", token="not-a-token")[0] == 401
    mark = sign_in(desk, "mark")
    request = urllib.request.Request(f"{desk.url}/webhooks/agent/api/stream",
                                     headers={"Authorization": f"Bearer {mark}"})
    lines: list[str] = []
    with urllib.request.urlopen(request, timeout=30) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")

        def read() -> None:
            for raw in stream:
                lines.append(raw.decode("utf-8").rstrip("\n"))
                if sum(1 for line in lines if line == "event: queue") >= 2:
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + 20
        while "event: queue" not in lines and time.monotonic() < deadline:  # the first read, on connecting
            time.sleep(0.05)
        sender = new_sender("live-stream")
        desk.send(sender, "转人工")
        reader.join(timeout=20)
    assert lines[:2] == ["retry: 2000", "event: hello"]
    hello = json.loads(lines[2].removeprefix("data: "))
    assert hello == {"agent": "mark", "zone": {"name": DESK_ZONE, "offset": "UTC+8"}}
    assert lines.count("event: queue") >= 2, lines  # on connecting, and when the case started waiting
    assert item_of(queue_of(desk, mark), rest(sender))["status"] == "waiting"
    assert call(desk, "POST", f"/api/conversations/{rest(sender)}/claim", token=mark)[0] == 200
    assert call(desk, "POST", f"/api/conversations/{rest(sender)}/close", {"note": "ok"}, token=mark)[0] == 200


def test_transfer_moves_the_case_with_its_note_and_close_stores_the_resolution(desk):
    lina, mark = sign_in(desk, "lina"), sign_in(desk, "mark")
    sender = new_sender("live-transfer")
    desk.send(sender, "我要找人工客服")
    conv = rest(sender)
    assert call(desk, "POST", f"/api/conversations/{conv}/transfer", {"to": "mark", "note": "x"}, token=lina)[0] == 409
    assert call(desk, "POST", f"/api/conversations/{conv}/claim", token=lina)[0] == 200
    # the note is required; the colleague must exist; only the holder transfers
    assert call(desk, "POST", f"/api/conversations/{conv}/transfer", {"to": "mark", "note": " "}, token=lina)[0] == 400
    assert call(desk, "POST", f"/api/conversations/{conv}/transfer", {"to": "nobody", "note": "x"},
                token=lina)[0] == 404
    assert call(desk, "POST", f"/api/conversations/{conv}/transfer", {"to": "lina", "note": "x"}, token=mark)[0] == 403
    colleagues = call(desk, "GET", "/api/agents", token=lina)[1]["agents"]
    assert {a["name"] for a in colleagues} == {"mark", "erin"}
    assert next(a for a in colleagues if a["name"] == "erin")["skills"] == ["fridge"]

    status, moved, _ = call(desk, "POST", f"/api/conversations/{conv}/transfer",
                            {"to": "mark", "note": "客户要求退货，订单已核实"}, token=lina)
    assert status == 200 and moved["status"] == "claimed" and moved["to"] == "mark"
    mine = item_of(queue_of(desk, mark), conv)
    assert mine["agent"] == "mark" and mine["transfer"]["note"] == "客户要求退货，订单已核实"
    assert mine["transfer"]["from"] == "lina"
    card = call(desk, "GET", f"/api/conversations/{conv}", token=mark)[1]
    assert card["transfer"]["note"] == "客户要求退货，订单已核实" and not card["masked"]
    assert call(desk, "POST", f"/api/conversations/{conv}/messages", {"text": "hi"}, token=lina)[0] == 403
    assert call(desk, "POST", f"/api/conversations/{conv}/messages", {"text": "我是 Mark"}, token=mark)[0] == 201
    assert desk.send(sender, "好的") == []  # the bot stays paused: a person still has the customer

    # back to the queue, with a note; it waits again in its old place
    status, back, _ = call(desk, "POST", f"/api/conversations/{conv}/transfer", {"to": None, "note": "需要冰箱专家"},
                           token=mark)
    assert status == 200 and back["status"] == "waiting" and back["to"] is None
    waiting = item_of(queue_of(desk, lina), conv)
    assert waiting["status"] == "waiting" and waiting["agent"] is None and waiting["transfer"]["note"] == "需要冰箱专家"
    assert desk.send(sender, "还在吗") == []
    events = ticket_events(desk, sender)
    transfers = [e["data"] for e in events if e["kind"] == "handoff_transferred"]
    assert [(t["from"], t["to"], t["note"]) for t in transfers] == [
        ("lina", "mark", "客户要求退货，订单已核实"), ("mark", None, "需要冰箱专家")]

    # close: the resolution note is a ticket event; the transcript shows a close, not a hand-back
    assert call(desk, "POST", f"/api/conversations/{conv}/claim", token=lina)[0] == 200
    status, closed, _ = call(desk, "POST", f"/api/conversations/{conv}/close", {"note": "已安排退货退款"}, token=lina)
    assert status == 200 and closed["ticket_status"] == "resolved"
    resolution = [e for e in ticket_events(desk, sender) if e["kind"] == "resolution_note"]
    assert [(e["data"]["agent"], e["data"]["text"]) for e in resolution] == [("lina", "已安排退货退款")]
    card = call(desk, "GET", f"/api/conversations/{conv}", token=lina)[1]
    system = [i["what"] for i in card["transcript"] if i["from"] == "system"]
    # One pause for the whole hand-off (a re-claim of a paused conversation adds none: bot/services/holding.py), and
    # after it no hand-back marker, only the close.
    last_pause = len(system) - 1 - system[::-1].index("paused")
    assert system[-1] == "closed" and "resumed" not in system[last_pause:]


# ---------------------------------------------------------------------------------------------- in the browser
def test_two_consoles_live_in_desk_time_with_transfer_and_close(desk):
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []

    def console(browser, zone: str, name: str):
        context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN", timezone_id=zone)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{desk.url}/webhooks/agent/")
        page.fill("#login-name", name)
        page.fill("#login-password", AGENTS[name][3])
        page.click("#login-submit")
        expect(page.locator("#live-status")).to_contain_text("实时", timeout=15_000)  # the stream is up
        # Record when each case first shows in the queue (the browser's clock is the machine's clock).
        page.evaluate("""() => { window.__seen = {};
            new MutationObserver(() => document.querySelectorAll('#queue li').forEach(li => {
              const id = li.getAttribute('data-conversation'); if (!(id in window.__seen)) window.__seen[id] = Date.now();
            })).observe(document.getElementById('queue'), {childList: true, subtree: true}); }""")
        return context, page

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            utc_context, lina = console(browser, "UTC", "lina")
            sh_context, mark = console(browser, "Asia/Shanghai", "mark")
            assert mark.title().startswith("售后客服工作台") and mark.get_attribute("body", "data-alerted") is None

            # --- a case starts waiting: in both consoles within a second, without reloading
            sender = new_sender("live-browser")
            conv = rest(sender)
            desk.send(sender, "你们这什么破冰箱！！买了才几天就不制冷了")
            sent = time.time()
            desk.send(sender, "转人工")
            answered = time.time()
            for page in (lina, mark):
                expect(page.locator(f"#queue li[data-conversation='{conv}']")).to_be_visible(timeout=5_000)
            requested = datetime.fromisoformat(stack_ticket_handoff(desk, sender)).timestamp()
            seen = {who: page.evaluate("id => window.__seen[id]", conv) / 1000 for who, page in
                    (("lina", lina), ("mark", mark))}
            # From the moment the case started waiting (the hand-off's requested_at) to the second console's DOM,
            # and from the customer's message being sent (which includes the bot's own turn) to it.
            wait_to_dom, message_to_dom = seen["mark"] - requested, seen["mark"] - sent
            print(f"live: requested->DOM {wait_to_dom:.3f} s, message->DOM {message_to_dom:.3f} s, "
                  f"message->REST answer {answered - sent:.3f} s")
            assert wait_to_dom <= 1.0, wait_to_dom
            assert message_to_dom <= 1.0 + (answered - sent), (message_to_dom, answered - sent)
            # the signal: the title badge and the alert (sound) in the second console
            mark.wait_for_function("() => document.title.startsWith('(1) ')", timeout=5_000)
            assert mark.get_attribute("body", "data-alerted") == "1"
            mark.uncheck("#alert-sound")  # switchable, and remembered
            assert not mark.title().startswith("(")
            assert mark.evaluate("() => localStorage.getItem('agentAlerts')") == "off"
            mark.check("#alert-sound")

            # --- desk time whatever the browser's zone: the same text, labelled; the agent's own zone as tooltip
            for page in (lina, mark):
                page.click(f"#queue li[data-conversation='{conv}']")
                expect(page.locator("#card time.dt").first).to_be_visible()
            texts = {}
            for who, page in (("lina", lina), ("mark", mark)):
                texts[who] = (page.locator("#card time.dt").all_inner_texts(),
                              page.locator("#transcript time.dt").all_inner_texts())
            assert texts["lina"] == texts["mark"], texts
            requested_text = texts["mark"][0][0]
            assert "(UTC+8 Asia/Shanghai)" in requested_text, requested_text
            local = datetime.fromtimestamp(requested, tz=__import__("zoneinfo").ZoneInfo(DESK_ZONE))
            assert f"{local.hour:02d}:{local.minute:02d}" in requested_text
            assert all(t.endswith("UTC+8") for t in texts["lina"][1]) and texts["lina"][1]
            assert "UTC" in lina.get_attribute("#card time.dt", "title")
            assert "Asia/Shanghai" in mark.get_attribute("#card time.dt", "title")
            expect(lina.locator("#desk-zone")).to_contain_text("Asia/Shanghai (UTC+8)")
            shot(mark, "console-live-queue.png", docs=True)

            # --- Lina takes it and transfers it to Mark with a note: his console shows it live
            lina.click("#btn-claim")
            expect(lina.locator("#case-status")).to_have_text("已接管")
            lina.click("#btn-transfer")
            expect(lina.locator("#transfer-to option[value='mark']")).to_have_count(1)
            lina.click("#transfer-ok")  # no note: refused in the page
            expect(lina.locator("#case-error")).to_contain_text("请填写转接说明")
            lina.select_option("#transfer-to", "mark")
            lina.fill("#transfer-note", "客户冰箱不制冷，肉坏了，需要赔偿方案")
            lina.click("#transfer-ok")
            expect(lina.locator("#transfer-form")).to_be_hidden()
            item = mark.locator(f"#queue li[data-conversation='{conv}']")
            expect(item.locator(".q-note")).to_contain_text("客户冰箱不制冷，肉坏了，需要赔偿方案", timeout=5_000)
            expect(item).to_contain_text("Mark")
            expect(mark.locator("#case-transfer")).to_contain_text("李娜 转来：客户冰箱不制冷", timeout=5_000)
            expect(mark.locator("#case-status")).to_have_text("已接管")
            expect(mark.locator("#reply")).to_be_enabled()
            expect(lina.locator("#case")).to_be_hidden(timeout=5_000)  # no longer hers: the case view closes
            expect(lina.locator(f"#queue li[data-conversation='{conv}']")).to_have_count(0)
            mark.fill("#reply", "您好，我是 Mark，接下来由我为您处理。")
            mark.press("#reply", "Enter")
            expect(mark.locator("#transcript .msg.agent").last).to_contain_text("由我为您处理", timeout=10_000)
            assert desk.send(sender, "好的谢谢") == []
            expect(mark.locator("#transcript .msg.customer").last).to_contain_text("好的谢谢", timeout=5_000)
            shot(mark, "console-live-transfer.png", docs=True)

            # --- Close asks for the resolution and a confirmation; no "handed back" marker after it
            mark.click("#btn-close")
            mark.click("#close-ok")
            expect(mark.locator("#close-error")).to_have_text("请填写处理结果")
            mark.fill("#close-note", "同意换新机并补偿食物损失200元")
            mark.click("#close-ok")
            expect(mark.locator("#close-error")).to_have_text("请勾选确认")
            expect(mark.locator("#case-status")).to_have_text("已接管")  # nothing closed yet
            mark.check("#close-confirm")
            mark.click("#close-ok")
            expect(mark.locator("#case-status")).to_have_text("已结案")
            expect(mark.locator("#transcript .sys").last).to_have_text("—— 客服已结案 ——")
            expect(mark.locator("#transcript .sys", has_text="已交还机器人")).to_have_count(0)
            resolution = [e["data"] for e in ticket_events(desk, sender) if e["kind"] == "resolution_note"]
            assert resolution == [{"handoff_id": resolution[0]["handoff_id"], "agent": "mark",
                                   "text": "同意换新机并补偿食物损失200元"}]
            expect(lina.locator(f"#queue li[data-conversation='{conv}']")).to_have_count(0, timeout=5_000)
            utc_context.close()
            sh_context.close()
        finally:
            browser.close()
    assert not errors, f"JavaScript errors on the console page: {errors}"


def stack_ticket_handoff(stack: Stack, sender: str) -> str:
    """When the conversation's hand-off was requested (the handoff_queued ticket event)."""
    return next(e["at"] for e in stack.ticket_of(sender)["events"] if e["kind"] == "handoff_queued")
