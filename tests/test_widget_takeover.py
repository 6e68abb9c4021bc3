"""Issue 16 end to end on the real Rasa and action servers with the trained model: the widget says who is talking
(an agent's badge and name, the header while a person serves or the customer waits, the assistant's mark after the
hand-back), one greeting in the customer's language with the agent's name in it, one question at a time after the
hand-back, the heating self-check and the complaint/repair decision over REST.

The browser test runs two Chromium contexts (the customer's widget and the agent's console) and saves
docs/screenshots/widget-takeover.png."""
from __future__ import annotations

import os
import subprocess

import pytest

from bot.services.conversation import conversation_id
from bot.settings import ROOT
from tests.stack import VENV_BIN, Stack, need_model
from tests.test_agent_console import (ARTIFACTS, CHROMIUM, DOCS_SCREENSHOTS, LAUNCH_ARGS, TEXTS, _browser_missing,
                                      call, new_sender, open_desk_seed, rest, texts, tracker_events)
from tests.test_takeover import EN_HEAT, ZH_HEAT

pytestmark = pytest.mark.slow

PASSWORDS = {"wang": "wang-password", "boss": "boss-password"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    need_model()
    tmp = tmp_path_factory.mktemp("widget")
    seed = open_desk_seed(tmp)
    credentials = tmp / "credentials.yml"
    credentials.write_text("\n".join([
        "bot.channels.rest.RestInput:", "bot.channels.agent_console.AgentConsoleInput:",
        "bot.channels.webchat.WebChatInput:", "  user_message_evt: user_uttered", "  bot_message_evt: bot_uttered",
        "  session_persistence: true"]) + "\n", encoding="utf-8")
    stack = Stack(tmp, credentials=credentials, extra_env={"BOT_SEED_DIR": str(seed)})
    try:
        stack.start()
        for name, role, names in (("wang", "agent", ["--display-name", "小王", "--display-name-en", "Wang"]),
                                  ("boss", "supervisor", ["--display-name", "陈主管"])):
            result = subprocess.run([str(VENV_BIN / "python"), "-m", "bot", "agents", "add", name, "--role", role,
                                     "--password", PASSWORDS[name], *names],
                                    cwd=ROOT, env=stack.env(), capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stderr
        yield stack
    finally:
        stack.stop()


def login(stack: Stack, name: str) -> str:
    status, body, _ = call(stack, "POST", "/api/login", {"name": name, "password": PASSWORDS[name]})
    assert status == 200, body
    return body["token"]


# ---------------------------------------------------------------------------------------------- over REST
def test_one_greeting_in_english_with_the_english_name(stack):
    login(stack, "boss")
    sender = new_sender("greet-en")
    assert "in the queue" in texts(stack.send(sender, "I want to talk to a real person please"))
    wang = login(stack, "wang")
    status, claimed, _ = call(stack, "POST", f"/api/conversations/{rest(sender)}/claim", token=wang)
    assert status == 200 and claimed["greeting"] == TEXTS.get("agent_joined", "en", agent="Wang")
    status, _sent, _ = call(stack, "POST", f"/api/conversations/{rest(sender)}/messages",
                            {"text": "Hi, I'm looking at your case now."}, token=wang)
    assert status == 201
    agent_said = [e for e in tracker_events(stack, rest(sender))
                  if e["event"] == "bot" and (e.get("metadata") or {}).get("agent") == "wang"]
    assert [e["text"] for e in agent_said] == [TEXTS.get("agent_joined", "en", agent="Wang"),
                                               "Hi, I'm looking at your case now."]  # exactly one greeting
    assert "小王" not in agent_said[0]["text"]
    assert {e["metadata"]["agent_display_name"] for e in agent_said} == {"Wang"}
    assert call(stack, "POST", f"/api/conversations/{rest(sender)}/handback", token=wang)[0] == 200


def test_heating_self_check_over_rest_in_both_languages(stack):
    assert ZH_HEAT in texts(stack.send(new_sender("heat-zh"), "空调不制热怎么办"))
    assert EN_HEAT in texts(stack.send(new_sender("heat-en"), "My AC is not heating, what can I check?"))


def test_the_angry_fridge_message_makes_a_complaint_ticket(stack):
    sender = new_sender("fridge-en")
    assert texts(stack.send(sender, "my fridge stopped and all the food went bad!"))
    ticket = stack.ticket_of(sender)
    assert ticket["kind"] == "complaint" and ticket["facts"]["product"] == "fridge"


# ---------------------------------------------------------------------------------------------- in a browser
def test_the_widget_says_who_is_talking(stack):
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    from playwright.sync_api import expect, sync_playwright

    from tests.test_webchat import Chat

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    login(stack, "boss")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            customer = Chat(browser, stack)
            customer.open()
            widget = customer.page
            status = widget.locator(".asc-status")
            expect(status).to_have_text("在线 · 通常几秒内回复")
            customer.say("洗衣机不排水了，衣服泡在里面")
            customer.say("转人工")
            # Waiting: the header shows the place in the queue.
            expect(status).to_have_attribute("data-state", "waiting", timeout=10_000)
            expect(status).to_contain_text("正在为您转接人工客服")
            expect(status).to_contain_text("您前面还有" if "您前面还有" in (status.text_content() or "") else "您是下一位")
            conversation = conversation_id("webchat", customer.session_id)

            # The agent, in a second context, takes it over from the console.
            console = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN",
                                          timezone_id="Asia/Shanghai")
            page = console.new_page()
            page.goto(f"{stack.url}/webhooks/agent/")
            page.fill("#login-name", "wang")
            page.fill("#login-password", PASSWORDS["wang"])
            page.click("#login-submit")
            page.locator(f"#queue li[data-conversation='{conversation}']").click(timeout=15_000)
            page.click("#btn-claim")
            expect(page.locator("#case-status")).to_have_text("已接管")

            joined = TEXTS.get("agent_joined", "zh", agent="小王")
            agent_msgs = widget.locator(".asc-msg--agent")
            expect(agent_msgs).to_have_count(1, timeout=20_000)  # one greeting
            expect(agent_msgs.first.locator(".asc-bubble")).to_have_text(joined)
            expect(agent_msgs.first.locator(".asc-badge")).to_have_text("客服")
            expect(agent_msgs.first.locator(".asc-from")).to_have_text("小王")
            expect(status).to_have_text("客服 小王 正在为您服务")
            expect(status).to_have_attribute("data-state", "agent")

            page.fill("#reply", "您好，排水泵可能堵了，我给您安排师傅明天上午上门。")
            page.click("#send")
            expect(agent_msgs).to_have_count(2, timeout=20_000)
            expect(agent_msgs.nth(1)).to_have_attribute("data-agent-name", "小王")
            expect(agent_msgs.nth(1).locator(".asc-bubble")).to_have_text("您好，排水泵可能堵了，我给您安排师傅明天上午上门。")
            customer.shot("widget-takeover.png", docs_name="widget-takeover.png")

            # Hand-back: the assistant's mark is back, the header too, and one question at a time.
            page.click("#btn-handback")
            expect(page.locator("#case-status")).to_have_text("已交还")
            back = widget.locator(".asc-msg--assistant").last
            expect(back.locator(".asc-bubble")).to_have_text(TEXTS.get("handoff_returned", "zh"), timeout=20_000)
            expect(back.locator(".asc-speaker--assistant")).to_be_visible()
            expect(back.locator(".asc-from")).to_have_text("智能助手")
            expect(status).to_have_text("在线 · 通常几秒内回复")
            assert customer.quick_replies() == [TEXTS.get("btn_nothing_else", "zh")]
            assert customer.press(TEXTS.get("btn_nothing_else", "zh")) == [TEXTS.get("survey_ask", "zh")]
            customer.shot("widget-handed-back.png")

            # In English the badge, the assistant's mark and the header follow the interface language.
            widget.click(".asc-lang")
            expect(widget.locator(".asc-msg--agent .asc-badge").first).to_have_text("Agent")
            expect(back.locator(".asc-from")).to_have_text("Assistant")
            assert not customer.errors, customer.errors
            console.close()
            customer.close()
        finally:
            browser.close()
