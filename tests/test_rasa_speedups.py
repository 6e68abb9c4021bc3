"""bot/rasa_runtime/speedups.py changes how fast Rasa works, never what it does: each patched function gives what Rasa's
own gives, turn after turn of a long conversation kept in one tracker object (as bot/rasa_runtime/tracker_store.py keeps it),
including restarts, new sessions and undos; and the dialogue policies predict the same with and without them."""
from __future__ import annotations

import asyncio
import copy
import os

import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (ActionExecuted, ActionReverted, BotUttered, Restarted, SessionStarted, SlotSet,
                                     UserUttered, UserUtteranceReverted)
from rasa.shared.core.trackers import DialogueStateTracker, EventVerbosity
from rasa.utils.endpoints import EndpointConfig

from bot.rasa_runtime import speedups as rasa_speedups
from bot.settings import ROOT
from tests.stack import MODEL

DOMAIN = Domain.load(str(ROOT / "domain.yml"))
rasa_speedups.apply()
pytestmark = pytest.mark.skipif(not rasa_speedups.ORIGINALS, reason="BOT_RASA_SPEEDUPS=0")

INTENTS = ["greet", "complain", "inform", "affirm", "check_status", "ask_warranty", "nlu_fallback", "deny", "stop",
           "usage_help", "thank", "request_repair", "inform", "goodbye"]


def user(i: int) -> UserUttered:
    intent = INTENTS[i % len(INTENTS)]
    ranking = [{"name": intent, "confidence": 0.8}, {"name": "inform", "confidence": 0.1}]
    entities = [{"entity": "product", "value": "fridge", "start": 0, "end": 2}] if i % 3 == 0 else []
    return UserUttered(f"message {i}", ranking[0], entities, {"text": f"message {i}", "intent": ranking[0],
                                                              "intent_ranking": ranking, "entities": entities},
                       input_channel="rest")


def script_turn(i: int) -> list:
    """What one turn of a conversation leaves in the tracker: a flow opens, runs and closes now and then, and
    sometimes the history is rewritten (undo, restart, new session)."""
    flow = "complaint" if (i // 4) % 2 else None
    events = [user(i), SlotSet("language", "zh" if i % 2 else "en"), ActionExecuted("action_flow_turn"),
              BotUttered(f"reply {i}", {"buttons": [{"title": "ok", "payload": "/affirm"}]}),
              SlotSet("flow", flow), SlotSet("flow_state", {"step": i % 5} if flow else None),
              ActionExecuted("action_listen")]
    if i % 17 == 16:
        events += [user(i + 100), UserUtteranceReverted()]
    if i % 23 == 22:
        events += [ActionExecuted("utter_greet"), ActionReverted()]
    if i == 30:
        events += [Restarted(), ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")]
    if i == 45:
        events += [ActionExecuted("action_session_start"), SessionStarted(), SlotSet("flow", None),
                   ActionExecuted("action_listen")]
    return events


def tracker_state(tracker: DialogueStateTracker) -> dict:
    d = {k: v for k, v in vars(tracker).items() if not k.startswith("_bot_") and k != "slots"}
    d["events"] = list(d["events"])
    d["slots"] = {name: (slot.value, slot.has_been_set) for name, slot in tracker.slots.items()}
    return d


def test_applied_events_past_states_and_copies_are_rasas_turn_after_turn():
    tracker = DialogueStateTracker.from_events("s", [ActionExecuted("action_session_start"), SessionStarted(),
                                                     ActionExecuted("action_listen")], DOMAIN.slots)
    for i in range(60):
        for event in script_turn(i):
            tracker.update(event)
        fast_applied = tracker.applied_events()
        fast_states = tracker.past_states(DOMAIN)
        fast_states_omit = tracker.past_states(DOMAIN, omit_unset_slots=True)
        fast_copy = tracker.copy()
        with rasa_speedups.restored():
            assert DialogueStateTracker.copy is not type(tracker).__dict__.get("_never")  # restored is in effect
            applied = tracker.applied_events()
            states = tracker.past_states(DOMAIN)
            states_omit = tracker.past_states(DOMAIN, omit_unset_slots=True)
            replayed = tracker.copy()
        assert [id(e) for e in fast_applied] == [id(e) for e in applied], i
        assert fast_states == states, i
        assert fast_states_omit == states_omit, i
        assert tracker_state(fast_copy) == tracker_state(replayed), i
        # A copy is independent: what happens to it changes neither the tracker nor the next copy.
        fast_copy.update(SlotSet("flow", "changed"))
        fast_copy.update(ActionExecuted("utter_greet"))
        assert tracker.get_slot("flow") != "changed" or i == -1
        assert tracker_state(tracker.copy()) == tracker_state(replayed), i
    assert "_bot_past_states" in vars(tracker) and "_bot_replica" in vars(tracker)


def test_the_flow_action_gets_the_current_turn_and_the_same_state():
    tracker = DialogueStateTracker.from_events("s", [ActionExecuted("action_listen")], DOMAIN.slots)
    for i in range(5):
        for event in script_turn(i):
            tracker.update(event)
    tracker.update(user(99))
    for endpoint in (EndpointConfig("http://127.0.0.1:1/webhook"),
                     EndpointConfig("http://127.0.0.1:1/webhook", enable_selective_domain=True)):
        action = RemoteAction("action_flow_turn", endpoint)
        fast = action._action_call_format(tracker, DOMAIN)
        with rasa_speedups.restored():
            full = action._action_call_format(tracker, DOMAIN)
        assert fast["tracker"]["events"] == full["tracker"]["events"][-1:]  # from the latest user message on
        assert fast["tracker"]["events"][0]["event"] == "user"
        fast["tracker"].pop("events"), full["tracker"].pop("events")
        assert fast == full
    other = RemoteAction("action_other", EndpointConfig("http://127.0.0.1:1/webhook"))
    assert len(other._action_call_format(tracker, DOMAIN)["tracker"]["events"]) == len(tracker.events)


@pytest.mark.parametrize("response", [
    {"events": [{"event": "slot", "name": "flow", "value": None, "timestamp": None}],
     "responses": [{"text": "hi", "buttons": []}]},
    {"events": [], "responses": []},
    {},
    {"events": [{"event": "bot", "text": "x"}, {"event": "followup", "name": "utter_greet"}]},
    {"events": [{"event": "slot", "value": 1}]},  # no name
    {"events": [{"event": "nonsense"}]},
    {"events": [{"timestamp": 1.0}]},
    {"events": "not a list"},
    {"events": [{"event": "user", "text": "x", "parse_data": {"intent": {"name": 3}}}]},
    {"responses": ["not an object"]},
])
def test_action_responses_are_validated_as_rasa_does(response):
    action = RemoteAction("action_flow_turn", None)

    def outcome():
        try:
            return action._validate_action_result(copy.deepcopy(response))
        except ValidationError as exc:
            return ("error", exc.message, list(exc.path))

    fast = outcome()
    with rasa_speedups.restored():
        assert outcome() == fast


def test_speedups_can_be_turned_off():
    import subprocess
    import sys

    code = ("from bot.rasa_runtime import speedups as rasa_speedups; rasa_speedups.apply(); "
            "print(len(rasa_speedups.ORIGINALS))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, BOT_RASA_SPEEDUPS="0", PYTHONPATH=str(ROOT)), timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "0", out.stderr[-2000:]


@pytest.mark.slow
def test_the_trained_policies_predict_the_same_with_and_without_the_speedups():
    if not MODEL.exists():
        pytest.skip(f"no trained model at {MODEL}")
    from rasa.core.agent import load_agent

    agent = asyncio.run(load_agent(model_path=str(MODEL)))
    processor = agent.processor
    domain = agent.domain
    tracker = DialogueStateTracker.from_events("p", [ActionExecuted("action_session_start"), SessionStarted(),
                                                     ActionExecuted("action_listen")], domain.slots)
    predicted = []
    for i in range(80):
        tracker.update(user(i))
        for _ in range(3):
            fast = processor._predict_next_with_tracker(tracker)
            with rasa_speedups.restored():
                fresh = DialogueStateTracker.from_events("p", list(tracker.events), domain.slots)
                full = processor._predict_next_with_tracker(fresh)
            assert fast == full, (i, fast, full)
            assert (fast.hide_rule_turn, fast.is_no_user_prediction, fast.events) == \
                (full.hide_rule_turn, full.is_no_user_prediction, full.events), i
            action = domain.action_names_or_texts[fast.max_confidence_index]
            predicted.append(action)
            tracker.update(ActionExecuted(action, fast.policy_name, fast.max_confidence))
            if action == "action_listen":
                break
            if action == "action_flow_turn":
                flow = "complaint" if (i // 5) % 2 else None
                for event in (BotUttered(f"reply {i}"), SlotSet("flow", flow),
                              SlotSet("flow_state", {"step": i} if flow else None)):
                    tracker.update(event)
        if i in (40, 60):
            tracker.update(Restarted() if i == 40 else UserUtteranceReverted())
    # The conversation went through the script, the rules and the flow policy.
    assert {"action_flow_turn", "action_listen", "utter_greet"} <= set(predicted)
    assert tracker.current_state(EventVerbosity.ALL)["events"]
    # The NLU graph too gives the same with and without them.
    for text in ["你们这什么破冰箱！！买了才几天就不制冷了", "my washing machine is leaking", "订单号JD240512345678",
                 "明天下午", "yes", "😡😡😡", "where is your service centre in Shanghai"]:
        fast = asyncio.run(agent.parse_message(text))
        with rasa_speedups.restored():
            full = asyncio.run(agent.parse_message(text))
        assert fast == full, text


@pytest.mark.slow
def test_rules_matching_the_conversation_are_the_ones_rasa_finds():
    if not MODEL.exists():
        pytest.skip(f"no trained model at {MODEL}")
    from rasa.core.agent import load_agent
    from rasa.core.policies.rule_policy import RULES, RULES_FOR_LOOP_UNHAPPY_PATH, RulePolicy

    agent = asyncio.run(load_agent(model_path=str(MODEL)))
    policy = next(p for p in agent.processor.graph_runner._instantiated_nodes.values()
                  if isinstance(getattr(p, "_component", None), RulePolicy))._component
    rasas = rasa_speedups.original(RulePolicy, "_get_possible_keys")
    assert RulePolicy._get_possible_keys is not rasas  # the replacement is what is compared
    checked = []
    tracker = DialogueStateTracker.from_events("r", [ActionExecuted("action_session_start"), SessionStarted(),
                                                     ActionExecuted("action_listen")], agent.domain.slots)
    for i in range(60):
        for event in script_turn(i):
            tracker.update(event)
            states = policy._prediction_states(tracker, agent.domain)
            for table in (RULES, RULES_FOR_LOOP_UNHAPPY_PATH):
                lookup = policy.lookup.get(table, {})
                fast = policy._get_possible_keys(lookup, states)
                assert fast == rasas(policy, lookup, states), (i, event)
                checked.append(len(fast))
    assert len(policy.lookup[RULES]) > 10 and any(checked) and not all(checked)  # rules found, and none at times


@pytest.mark.slow
def test_the_server_launcher_is_rasa_without_jax():
    import subprocess
    import sys

    code = ("import sys, runpy; sys.argv = ['rasa', '--version']\n"
            "try:\n    runpy.run_module('bot.serve', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "import tensorflow\ntensorflow.constant(1)\n"  # deferred by the launcher (bot/rasa_runtime/lazy_imports.py): run it
            "print('jax' in sys.modules and sys.modules['jax'] is not None)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3"))
    assert "Rasa Version" in out.stdout, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_empty_domain_check():
    from rasa.shared.core.domain import Domain

    assert Domain.empty().is_empty() and not DOMAIN.is_empty()
    with rasa_speedups.restored():
        assert Domain.empty().is_empty() and not DOMAIN.is_empty()


def test_on_a_growing_tracker_only_the_new_events_are_replayed(monkeypatch):
    tracker = DialogueStateTracker.from_events("s", [ActionExecuted("action_session_start"), SessionStarted(),
                                                     ActionExecuted("action_listen")], DOMAIN.slots)
    for i in range(20):  # with an undone user message at turn 16: history was rewritten once
        for event in script_turn(i):
            tracker.update(event)
    plain_turns = [i for i in range(20, 60) if i % 17 != 16 and i % 23 != 22 and i not in (30, 45)]
    tracker.copy(), tracker.past_states(DOMAIN), tracker.applied_events()
    applied = vars(tracker)["_bot_applied"]
    replays = []
    init_copy = DialogueStateTracker.init_copy
    monkeypatch.setattr(DialogueStateTracker, "init_copy", lambda self: replays.append(1) or init_copy(self))
    for i in plain_turns:
        for event in script_turn(i):
            tracker.update(event)
        tracker.copy(), tracker.past_states(DOMAIN), tracker.applied_events()
    assert not replays  # no replay from the first event
    assert vars(tracker)["_bot_applied"] is applied


def test_action_calls_share_one_http_session_and_survive_idle_connections():

    from aiohttp import web

    from tests.stack import free_port

    async def scenario():
        seen = []

        async def webhook(request):
            seen.append(request.transport.get_extra_info("peername"))
            return web.json_response({"events": [], "responses": [{"text": "ok"}]})

        app = web.Application()
        app.router.add_post("/webhook", webhook)
        runner = web.AppRunner(app, keepalive_timeout=3)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        endpoint = EndpointConfig(f"http://127.0.0.1:{port}/webhook")
        try:
            first = await endpoint.request(json={"a": 1})
            second = await endpoint.request(json={"a": 2})
            await asyncio.sleep(3.5)  # longer than the server keeps an idle connection
            third = await endpoint.request(json={"a": 3})
        finally:
            await runner.cleanup()
            for key, (_, session) in list(rasa_speedups._SESSIONS.items()):
                if key[1] == id(asyncio.get_running_loop()):
                    await session.close()
                    del rasa_speedups._SESSIONS[key]
        return [first, second, third], seen

    replies, peers = asyncio.run(scenario())
    assert all(r == {"events": [], "responses": [{"text": "ok"}]} for r in replies)
    assert peers[0] == peers[1]  # the same kept-alive connection
