"""Issue 16, the script's side of who is talking: agents' names per language, one greeting per take-over, the widget's
presence (assistant / waiting with the place in the queue / agent), one question at a time after a hand-back, the
heating self-check in zh and en, and the complaint/repair decision as the script applies it. Real databases
(SQLite and PostgreSQL, tests/conftest.py); the trained model is not needed (tests/test_widget_takeover.py has it)."""
from __future__ import annotations

import subprocess
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml

from bot.services.handoff import AgentAccounts, HandoffDesk, agent_json
from bot.services.takeover import (TakeoverConfig, agent_name, greeting_due, load_takeover, nothing_else,
                                   parse_takeover, presence, set_display_names)
from bot.services.tickets import TicketBook
from bot.settings import ROOT
from tests.test_script import NOW, Chat, joined, tools  # noqa: F401 - the script's fixture

ZH_HEAT = "确认遥控器是“制热”模式（太阳图标），不是“制冷”“送风”或“除湿”"
EN_HEAT = "Check the remote is in Heat mode (sun icon), not Cool, Fan or Dry"


# ---------------------------------------------------------------------------------------------- names and greeting
def test_agents_have_a_name_per_language_stored(uow_factory):
    with uow_factory() as uow:
        agent, _ = AgentAccounts(uow.session).create("wang", display_name="小王", now=NOW)
        assert agent_name(agent, "en") == "小王"  # nothing set: the display name
        set_display_names(agent, zh="小王", en="  Wang   Li ")
        uow.commit()
    with uow_factory() as uow:
        agent = AgentAccounts(uow.session).get("wang")
        assert (agent.display_name_zh, agent.display_name_en) == ("小王", "Wang Li")
        assert agent_name(agent, "zh") == "小王" and agent_name(agent, "en") == "Wang Li"
        assert agent_name(agent, None) == "小王"
        assert agent_json(agent)["display_names"] == {"zh": "小王", "en": "Wang Li"}
        set_display_names(agent, en="")  # removed: the display name again
        assert agent_name(agent, "en") == "小王"


def test_the_greeting_goes_once_and_only_in_auto_mode():
    auto, quiet = TakeoverConfig("auto"), TakeoverConfig("first_message")
    greeted = [{"event": "bot", "text": "hi", "metadata": {"agent": "wang", "handoff_id": 7, "greeting": True}}]
    assert greeting_due(auto, [], 7, "wang")
    assert not greeting_due(auto, greeted, 7, "wang")  # taken over again: not twice
    assert greeting_due(auto, greeted, 8, "wang") and greeting_due(auto, greeted, 7, "li")
    assert not greeting_due(quiet, [], 7, "wang")  # the agent's first message greets
    assert parse_takeover({"takeover": {"greeting": "first_message"}}).greeting == "first_message"
    assert parse_takeover({}).greeting == "auto"
    with pytest.raises(ValueError):
        parse_takeover({"takeover": {"greeting": "twice"}})
    assert load_takeover(ROOT / "data" / "seed" / "desk.yml").greeting == "auto"  # the shipped desk


def test_agents_cli_sets_the_names(tmp_path):
    env = {"BOT_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "PATH": "/usr/bin:/bin"}
    python = str(ROOT / ".venv" / "bin" / "python")

    def run(*args):
        result = subprocess.run([python, "-m", "bot", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=180)
        assert result.returncode == 0, result.stderr
        return result.stdout

    subprocess.run([python, "-m", "bot", "db", "upgrade"], cwd=ROOT, env=env, capture_output=True, timeout=180)
    run("agents", "add", "wang", "--password", "wang-password", "--display-name", "小王", "--display-name-en", "Wang")
    out = run("agents", "names", "wang", "--zh", "王丽")
    assert "王丽 (zh)" in out and "Wang (en)" in out
    [row] = yaml.safe_load(run("agents", "list", "--json"))
    assert row["display_names"] == {"zh": "王丽", "en": "Wang"} and row["display_name"] == "小王"


# ---------------------------------------------------------------------------------------------- presence
def test_presence_says_assistant_queue_place_or_agent(uow_factory):
    with uow_factory() as uow:
        book = TicketBook(uow.session, ZoneInfo("Asia/Shanghai"))
        desk = HandoffDesk(uow.session)
        agent, _ = AgentAccounts(uow.session).create("li", display_name="小李", now=NOW)
        set_display_names(agent, en="Li")
        handoffs = []
        for i in range(3):
            ticket, _ = book.open(conversation_id=f"webchat:p{i}", channel="webchat", kind="repair", language="zh",
                                  now=NOW + timedelta(minutes=i))
            handoffs.append(desk.request(ticket, reason="customer_request", now=NOW + timedelta(minutes=i))[0])
        uow.commit()
        assert presence(uow.session, "webchat:nobody", "zh") == {"state": "assistant"}
        assert presence(uow.session, "webchat:p2", "zh") == {"state": "waiting", "position": 3, "ahead": 2}
        desk.claim(handoffs[0], agent, NOW + timedelta(minutes=5))
        uow.commit()
        assert presence(uow.session, "webchat:p0", "en") == {"state": "agent", "agent_name": "Li"}
        assert presence(uow.session, "webchat:p0", "zh") == {"state": "agent", "agent_name": "小李"}
        assert presence(uow.session, "webchat:p2", "en")["ahead"] == 1  # one taken: the queue moved


# ---------------------------------------------------------------------------------------------- after the hand-back
def test_nothing_else_is_told_apart_from_a_new_question():
    for text, intent in (("没有了，谢谢", None), ("No, that's all", None), ("/deny", "deny"), ("谢谢", "thank"),
                         ("nothing else, thanks", "inform")):
        assert nothing_else(text, intent), text
    for text, intent in (("没有热水", "inform"), ("no hot water", "inform"), ("我还有个问题", "inform"),
                         ("没有了吗？我的洗衣机也坏了", "request_repair")):
        assert not nothing_else(text, intent), text


def test_after_a_hand_back_the_rating_waits_for_the_answer(tools):  # noqa: F811
    chat = Chat(tools, "after-handback", language="en")
    chat.say("my washing machine is leaking, please send an engineer", "request_repair")
    number = chat.state["ticket"]
    # What the console sets when the agent hands back (bot/channels/agent_console.py _return_to_bot).
    chat.state = {"flow": "survey", "step": "anything_else", "last_ticket": number}
    out = chat.say("No, that's all", "deny")
    assert out == [tools.texts.get("survey_ask", "en")]
    assert [b.title for b in chat.last_reply.messages[-1].buttons] == ["5", "4", "3", "2", "1"]
    assert chat.say("5", "inform") == [tools.texts.get("survey_thanks", "en")]
    assert chat.ticket()["satisfaction"] == 5
    # Something else instead: the bot takes it up and asks no rating yet.
    chat.state = {"flow": "survey", "step": "anything_else", "last_ticket": number}
    out = chat.say("how long is the warranty on a fridge", "ask_warranty")
    assert "months" in joined(out) and tools.texts.get("survey_ask", "en") not in out


# ---------------------------------------------------------------------------------------------- self-checks and kinds
def test_heating_self_check_in_chinese_and_english(tools):  # noqa: F811
    out = Chat(tools, "heat-zh").say("空调不制热怎么办", "usage_help")
    assert ZH_HEAT in joined(out) and "制冷”模式（雪花图标）" not in joined(out)
    out = Chat(tools, "heat-en", language="en").say("my AC is not heating, what can I check?", "usage_help")
    assert EN_HEAT in joined(out) and "Cool mode (snowflake icon)" not in joined(out)
    # The cooling guide still answers a cooling question.
    assert "雪花图标" in joined(Chat(tools, "cool-zh").say("空调不制冷怎么办", "usage_help"))


def test_every_symptom_of_the_lexicon_has_a_guide_in_both_languages():
    lexicon = yaml.safe_load((ROOT / "data" / "problems.yml").read_text(encoding="utf-8"))
    guides = yaml.safe_load((ROOT / "data" / "selfcheck.yml").read_text(encoding="utf-8"))["guides"]
    for symptom in lexicon["symptoms"]:
        found = [key for key in guides if key.split(".", 1)[1] == symptom]
        assert found, f"no self-check for {symptom}"
    for key, guide in guides.items():
        assert guide["zh"] and len(guide["zh"]) == len(guide["en"]), key


def test_the_script_opens_a_complaint_for_harm_and_a_repair_for_a_calm_report(tools):  # noqa: F811
    angry = Chat(tools, "kind-en", language="en")
    angry.say("my fridge stopped and all the food went bad!", "request_repair")
    assert angry.ticket()["kind"] == "complaint"
    calm = Chat(tools, "kind-zh")
    calm.say("空调不制冷了，麻烦安排师傅上门看看", "complain")
    assert calm.ticket()["kind"] == "repair"
