"""actions/flow.py: where the action server runs each turn (bot/bootstrap.py `turn_executor`)."""
from __future__ import annotations

import asyncio
import threading
import time

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

import actions.flow as flow
from bot.bootstrap import bootstrap
from bot.settings import load_settings
from bot.store.db import upgrade
from tests.conftest import PG_URL


def tracker(sender: str, text: str) -> Tracker:
    message = {"text": text, "intent": {"name": "request_repair", "confidence": 0.9}, "entities": [],
               "language_detected": {"code": "zh", "confidence": 0.99}}
    return Tracker(sender, {}, message, [], False, None, {}, "action_listen")


def test_on_sqlite_turns_run_one_at_a_time_in_arrival_order(tmp_path, monkeypatch):
    settings = load_settings({"BOT_VAR_DIR": str(tmp_path)})
    upgrade(settings.database_url)
    app = bootstrap(settings)
    monkeypatch.setattr(flow, "_app", app)
    runs, handle = [], app.assistant.handle

    def recorded(turn, state):
        start = time.perf_counter()
        reply = handle(turn, state)
        runs.append((turn.conversation_id, threading.current_thread().name, start, time.perf_counter()))
        return reply

    monkeypatch.setattr(app.assistant, "handle", recorded)

    async def many():
        action = flow.ActionFlowTurn()
        return await asyncio.gather(*(action.run(CollectingDispatcher(), tracker(f"c{i}", "我的冰箱不制冷了"), {})
                                      for i in range(8)))

    results = asyncio.run(many())
    assert all(any(e.get("name") == "flow_state" and e.get("value") for e in events) for events in results)
    assert [r[0] for r in runs] == [f"c{i}" for i in range(8)]  # in the order they arrived
    assert {r[1] for r in runs} == {"turn_0"}  # one thread
    assert all(earlier[3] <= later[2] for earlier, later in zip(runs, runs[1:]))  # never side by side
    app.turn_executor.shutdown()


def test_on_postgresql_turns_share_the_default_pool():
    app = bootstrap(load_settings({"BOT_DATABASE_URL": PG_URL}))
    assert app.turn_executor is None
    app.engine.dispose()
