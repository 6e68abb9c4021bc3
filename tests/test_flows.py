"""bot/flows: a conversation mid-flow during a deploy (a state written by the previous format, or by an unknown
version), the tuning file's validation, and the hand-back API the agent console calls."""
from __future__ import annotations

import pytest
import yaml

from bot.flows import after_handoff
from bot.flows.state import VERSION, ComplaintStep, load_state
from bot.flows.tuning import DEFAULT_PATH, Tuning, TuningError, load_tuning, parse_tuning
from tests.test_script import Chat, joined, tools  # noqa: F401 - `tools` is the script's fixture

REPAIR = [("油烟机吸力不行了，派个师傅来看看", "request_repair"), ("对", "affirm")]


def test_state_of_the_previous_format_is_read_and_versioned():
    old = {"flow": "complaint", "ticket": "SV-1", "kind": "repair", "step": "gather", "asking": "phone",
           "fails": {"phone": 1}, "rejections": 0, "max_anger": 0.2}
    loaded = load_state(old)
    assert loaded.problem is None and loaded.upgraded
    assert loaded.typed.step is ComplaintStep.gather and loaded.typed.fails == {"phone": 1}
    assert loaded.state == old  # nothing lost
    assert load_state({**old, "v": VERSION}).upgraded is False


@pytest.mark.parametrize("slot, why", [
    ({"v": 99, "flow": "complaint", "ticket": "SV-1", "kind": "repair", "step": "gather", "last_ticket": "SV-1"},
     "unknown version"),
    ({"flow": "complaint", "ticket": "SV-1", "kind": "repair", "step": "teleport", "last_ticket": "SV-1"}, "teleport"),
    ({"flow": "wizard", "last_ticket": "SV-1"}, "wizard"),
    ({"flow": "complaint", "kind": "repair", "step": "gather", "last_ticket": "SV-1"}, "ticket"),
])
def test_a_state_that_cannot_be_continued_keeps_only_the_last_ticket(slot, why):
    loaded = load_state(slot)
    assert why in loaded.problem
    assert loaded.state == {"last_ticket": "SV-1"}


def test_mid_flow_in_the_previous_format_the_conversation_continues(tools):
    chat = Chat(tools, "deploy-old-format")
    chat.say(*REPAIR[0])
    chat.say(*REPAIR[1])
    assert chat.state["step"] == "gather" and chat.state["v"] == VERSION
    asking = chat.state["asking"]
    # The slot as the script wrote it before flows were typed: the same keys, no version.
    chat.state = {k: v for k, v in chat.state.items() if k != "v"}
    out = chat.say("CXW-220-E900C11", "inform")
    assert asking == "model" and "购买" in joined(out)  # the model was taken, the next fact is asked
    assert chat.state["v"] == VERSION and chat.state["asking"] == "purchase"
    assert chat.ticket()["facts"]["model"] == "CXW-220-E900C11"


@pytest.mark.parametrize("damage", ["unknown version", "unknown step"])
def test_mid_flow_with_a_state_it_cannot_read_the_bot_restarts_politely(tools, damage):
    chat = Chat(tools, f"deploy-{damage.replace(' ', '-')}")
    chat.say(*REPAIR[0])
    chat.say(*REPAIR[1])
    number = chat.state["ticket"]
    chat.state = dict(chat.state, v=VERSION + 1) if damage == "unknown version" else dict(chat.state, step="teleport")
    out = chat.say("CXW-220-E900C11", "inform")
    assert out == [tools.texts.get("flow_restarted", "zh")]
    assert [b.payload for b in chat.last_reply.messages[0].buttons] == ["/complain", "/request_repair",
                                                                        "/check_status", "/request_human"]
    assert chat.state == {"last_ticket": number}  # the ticket stays reachable for a status look-up
    out = chat.say("查一下进度", "check_status")
    assert number in joined(out)
    en = Chat(tools, f"deploy-en-{damage.replace(' ', '-')}", language="en")
    en.state = {"v": "next", "flow": "status"}
    assert en.say("hello", "greet") == [tools.texts.get("flow_restarted", "en")]
    assert en.state == {}


def test_the_tuning_file_is_read_and_validated(tmp_path):
    assert load_tuning() == Tuning()  # data/seed/script.yml holds today's numbers
    raw = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    assert parse_tuning({**raw, "rejections_before_person": 3}).rejections_before_person == 3
    bad = [({**raw, "rejections_before_person": 0}, "rejections_before_person"),
           ({**raw, "rejections_before_person": "two"}, "rejections_before_person"),
           ({**raw, "anger": {**raw["anger"], "hot": 1.5}}, "anger_hot"),
           ({**raw, "anger": {"upset": 0.7, "hot": 0.6, "escalate": 0.8}}, "rise"),
           ({**raw, "hot_turn": 2}, "hot_turn"),
           ({**raw, "version": 2}, "version")]
    for value, named in bad:
        with pytest.raises(TuningError, match=named):
            parse_tuning(value)
    path = tmp_path / "script.yml"
    path.write_text("version: 1\nanger: [0.5]\n", encoding="utf-8")
    with pytest.raises(TuningError, match="anger"):
        load_tuning(path)


def test_tuning_changes_what_the_script_does(tools):
    """Three rejections instead of two before a person is offered: the third remedy is still proposed."""
    from dataclasses import replace

    strict, patient = Chat(tools, "tuning-two"), Chat(replace(tools, tuning=Tuning(rejections_before_person=3)),
                                                     "tuning-three")
    for chat in (strict, patient):
        for text, intent in [("冰箱不制冷了，里面东西都坏了", "complain"), ("就这些", "affirm"), ("对", "affirm"),
                             ("BCD-470WGPZV", "inform"), ("订单号是JD240512345678", "inform"),
                             ("13812345678", "inform"), ("北京市朝阳区望京西路8号院3号楼1单元502", "inform"),
                             ("明天下午", "inform")]:
            chat.say(text, intent)
        assert chat.state["step"] == "opinion"
        chat.say("不要", "deny")
        chat.say("也不要", "deny")
    assert strict.state["flow"] == "human"
    assert patient.state["flow"] == "complaint" and patient.state["rejections"] == 2


def test_after_handoff_says_the_hand_back_and_opens_the_survey(tools):
    back = after_handoff(tools.texts, "SV-9", "en", closed=True)
    assert back.flow == "survey"
    assert back.state == {"flow": "survey", "step": "anything_else", "last_ticket": "SV-9", "v": VERSION}
    # Issue 16: one question at a time: "anything else?" (its button says no) before the rating question.
    assert [m.text for m in back.messages] == [tools.texts.get("handoff_closed_by_agent", "en", number="SV-9")]
    assert [(b.title, b.payload) for b in back.messages[0].buttons] == [(tools.texts.get("btn_nothing_else", "en"),
                                                                         "/deny")]
    assert after_handoff(tools.texts, "SV-9", "zh", closed=False).messages[0].text == tools.texts.get(
        "handoff_returned", "zh")
    chat = Chat(tools, "after-handoff")
    chat.state = back.state
    assert chat.say("/deny", "deny") == [tools.texts.get("survey_ask", "zh")]
    assert [b.payload for b in chat.last_reply.messages[0].buttons] == ["5", "4", "3", "2", "1"]
    assert "谢谢" in joined(chat.say("5", "inform"))  # the survey flow takes the score


def test_deciding_who_joins_and_what_comes_after_a_rejection_is_plain_logic():
    from bot.flows.complaint import after_rejection, supervisor_reason

    tuning = Tuning()
    assert supervisor_reason({"safety": True, "max_anger": 0.9}, tuning) == "safety"
    assert supervisor_reason({"max_anger": 0.8}, tuning) == "anger"
    assert supervisor_reason({"max_anger": 0.7, "anger_high_turns": 2}, tuning) == "anger"
    assert supervisor_reason({"max_anger": 0.7, "anger_high_turns": 1}, tuning) is None
    assert supervisor_reason({"max_anger": 0.7}, Tuning(anger_escalate=0.7)) == "anger"
    assert after_rejection(0, 0, 3, "return", tuning) == (1, 1, None)  # the next remedy
    assert after_rejection(1, 1, 3, "exchange", tuning) == (2, 1, "rejected_twice")
    assert after_rejection(0, 0, 3, "self_check", tuning) == (0, 1, None)  # a self-check declined is no rejection
    assert after_rejection(0, 1, 2, "self_check", tuning) == (0, 2, "no_remedy")
    assert after_rejection(1, 1, 3, "exchange", Tuning(rejections_before_person=3)) == (2, 2, None)
