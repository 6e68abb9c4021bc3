"""Measured speed-ups for the Rasa 3.6 server, applied by its launcher (bot/serve.py; see docs/PERFORMANCE.md).

1. Custom-action responses: Rasa's `RemoteAction._validate_action_result` calls `jsonschema.validate()`, which
   re-checks the response schema against the draft 2020-12 meta-schema on every call before validating the
   response. That check cost about 40 ms of CPU per `action_flow_turn` call, 63 % of the Rasa server's work per
   turn. Here the validator is built (and its schema checked) once, and each event is checked against the
   one alternative of the events schema's "oneOf" that names its type (the others cannot match) instead of all 23.
   A response that does not pass is validated against the whole schema as before, so an invalid one raises the
   same `ValidationError` with the same message.
2. Event types: `Event.resolve_by_type` walks every Event subclass (and asks `inspect.isabstract` of each) for
   every event it deserialises, i.e. for every stored event of the conversation on every turn when the tracker is
   loaded. A type name resolves to the same class every time, so the answer is kept.
3. `action_flow_turn` reads only the current turn (latest message, slots, sender id, input channel); its state is
   in the `flow_state` slot, not in the event history. Rasa sends the whole event history with every call, which
   grows with the conversation (~0.5 MB per call by turn 200). It is sent the events of the current turn (from the
   latest user message on) instead; slots, latest message and the rest of the tracker state are unchanged.
4. Dialogue states: to predict, RulePolicy turns the tracker into one state per action of the whole conversation
   (`DialogueStateTracker.past_states`), by replaying every event from the start, twice per prediction. The states
   of earlier actions never change while events are only appended, so they are kept on the tracker object and only
   the new events are replayed; anything that rewrites history (restart, new session, undo, forms) replays it all,
   as Rasa does. Only when the same tracker object is used again (bot/rasa_runtime/tracker_store.py keeps it) does this help.
5. RulePolicy matches a rule against the last states only (as many as the rule has; longer history always
   matches), but formats, copies and searches all of them. It is given the last (longest rule + 1) states; which
   rules match, and so what it predicts, is the same (tests/test_rasa_speedups.py).
6. `DialogueStateTracker.copy()` (twice per turn, before each action runs) replays every event of the conversation
   into a new tracker. A replica kept on the tracker replays only the new events, and each copy is a copy of that
   replica (its own slots, events list and loop state, the same event objects, as a replay gives).
7. `DialogueStateTracker.applied_events()` (every turn, to see whether a session has started) walks every event;
   while events are only appended (no restart, new session, undo or form) the list is extended instead.
8. `Domain.is_empty()` (every message) builds a new empty Domain to compare with; its dict is built once.
9. Graphs (the NLU pipeline, the policies) run their nodes in dependency order directly, instead of through
   `dask.get` (which orders, schedules and tracks every task anew on every run, ~10 % of the Rasa server's CPU),
   and the part of the graph a set of targets needs is worked out once instead of on every run. Each node gets
   the same inputs and the results are the same; only independent nodes may run in another order.
10. Action calls reuse one HTTP session (and keep-alive connections) per endpoint instead of a new session and
   connection per call (~5 %). Idle connections are closed by the client after 2 s, before the action server's
   5 s keep-alive timeout could close them under it.

11. RulePolicy finds the rules that match the conversation's last states with a filter, a lambda and a new set for
   every state, and reverses each rule's states anew for every check (~14 % of the Rasa server's samples, py-spy
   2026-12-02). The same checks, in the same order, run in a plain loop over rule states reversed once per rule.

`BOT_RASA_SPEEDUPS=0` applies none of them; `BOT_RASA_SPEEDUPS_SKIP=name,...` leaves out those named (PATCHES).

4, 6 and 7 only help when the same tracker object is used again on the next turn, i.e. with
bot/rasa_runtime/tracker_store.py, which keeps it; each checks that the tracker's events are those it has seen (same count, same
last event object) and otherwise starts over as Rasa does.
"""
from __future__ import annotations

import atexit
import contextlib
import os
from typing import Any, Dict, Iterator, Optional, Text, Type

# Custom actions that read only the current turn of the tracker (see 3. above).
CURRENT_TURN_ACTIONS = frozenset({"action_flow_turn"})

# (class, attribute) -> Rasa's own implementation (_INHERITED: none on that class), for `restored()` and tests.
ORIGINALS: Dict[tuple, Any] = {}
_INHERITED = object()
_applied = False


def _patch(owner: type, name: str, new: Any) -> None:
    """Replaces owner.name with `new`, remembering the original."""
    ORIGINALS[(owner, name)] = owner.__dict__.get(name, _INHERITED)
    setattr(owner, name, new)


def original(owner: type, name: str) -> Any:
    """Rasa's own implementation of a patched attribute (a function; staticmethods unwrapped)."""
    value = ORIGINALS.get((owner, name), owner.__dict__.get(name, _INHERITED))
    if value is _INHERITED:
        return getattr(owner.__mro__[1], name)
    return value.__func__ if isinstance(value, staticmethod) else value


@contextlib.contextmanager
def restored() -> Iterator[None]:
    """Rasa's own implementations for the duration of the block (for comparisons in tests)."""
    patched = {key: key[0].__dict__[key[1]] for key in ORIGINALS}
    for (owner, name), value in ORIGINALS.items():
        if value is _INHERITED:
            delattr(owner, name)
        else:
            setattr(owner, name, value)
    try:
        yield
    finally:
        for (owner, name), value in patched.items():
            setattr(owner, name, value)


def apply() -> None:
    """Idempotent. `BOT_RASA_SPEEDUPS=0` leaves Rasa as it is; `BOT_RASA_SPEEDUPS_SKIP=copy,rule_window` leaves out
    the ones named (see PATCHES), to measure each or to rule one out."""
    global _applied
    if _applied or os.environ.get("BOT_RASA_SPEEDUPS", "1") == "0":
        return
    from bot.rasa_runtime import supported

    if not supported("speed-ups"):  # written against Rasa's internals of one release
        return
    skip = {name.strip() for name in os.environ.get("BOT_RASA_SPEEDUPS_SKIP", "").split(",") if name.strip()}
    unknown = skip - set(PATCHES)
    if unknown:
        raise SystemExit(f"BOT_RASA_SPEEDUPS_SKIP: unknown {sorted(unknown)}; known: {list(PATCHES)}")
    for name, patch in PATCHES.items():
        if name not in skip:
            patch()
    _applied = True


def _validate_with_checked_schema() -> None:
    from jsonschema import ValidationError, exceptions, validators
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL
    from rasa.shared.utils.schemas.events import EVENT_SCHEMA

    schema = RemoteAction.action_response_format_spec()
    cls = validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema)
    # An event matches at most one of EVENT_SCHEMA's "oneOf" alternatives, the one whose "event" constant is its
    # own: checking that one alone tells whether the event is valid, without trying the other 22.
    common = {k: v for k, v in EVENT_SCHEMA.items() if k != "oneOf"}
    by_type = {}
    for alternative in EVENT_SCHEMA["oneOf"]:
        event_schema = dict(common, allOf=[alternative])
        cls.check_schema(event_schema)
        by_type[alternative["properties"]["event"]["const"]] = cls(event_schema)

    def plainly_valid(result: Any) -> bool:
        if not isinstance(result, dict):
            return False
        events, responses = result.get("events", []), result.get("responses", [])
        if not isinstance(events, list) or not isinstance(responses, list):
            return False
        if not all(isinstance(r, dict) for r in responses):
            return False
        for event in events:
            kind = event.get("event") if isinstance(event, dict) else None
            if not isinstance(kind, str) or kind not in by_type or not by_type[kind].is_valid(event):
                return False
        return True

    def _validate_action_result(self: RemoteAction, result: Dict[Text, Any]) -> bool:
        if plainly_valid(result):
            return True
        # Anything else goes through the whole schema, for Rasa's own answer and error.
        error = exceptions.best_match(validator.iter_errors(result))
        if error is None:
            return True
        assert isinstance(error, ValidationError)
        error.message += (
            f". Failed to validate Action server response from API, "
            f"make sure your response from the Action endpoint is valid. "
            f"For more information about the format visit "
            f"{DOCS_BASE_URL}/custom-actions"
        )
        raise error

    _patch(RemoteAction, "_validate_action_result", _validate_action_result)


def _cache_event_types() -> None:
    from rasa.shared.core.events import Event

    resolve = original(Event, "resolve_by_type")
    known: Dict[Text, Type[Event]] = {}

    def resolve_by_type(type_name: Text, default: Optional[Type[Event]] = None) -> Optional[Type[Event]]:
        cls = known.get(type_name)
        if cls is None:
            cls = resolve(type_name, default)
            if cls is not None and cls is not default:
                known[type_name] = cls
        return cls

    _patch(Event, "resolve_by_type", staticmethod(resolve_by_type))


def _send_current_turn_only() -> None:
    import rasa
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.core.events import UserUttered
    from rasa.shared.core.trackers import EventVerbosity

    full_format = original(RemoteAction, "_action_call_format")

    def _action_call_format(self: RemoteAction, tracker, domain) -> Dict[Text, Any]:
        if self.name() not in CURRENT_TURN_ACTIONS:
            return full_format(self, tracker, domain)
        state = tracker.current_state(EventVerbosity.NONE)
        events = tracker.events
        start = 0
        for index in range(len(events) - 1, -1, -1):
            if isinstance(events[index], UserUttered):
                start = index
                break
        state["events"] = [events[i].as_dict() for i in range(start, len(events))]
        result = {"next_action": self._name, "sender_id": tracker.sender_id, "tracker": state,
                  "version": rasa.__version__}
        if not self._is_selective_domain_enabled() or domain.does_custom_action_explicitly_need_domain(self.name()):
            result["domain"] = domain.as_dict()
        return result

    _patch(RemoteAction, "_action_call_format", _action_call_format)


class _PastStates:
    __slots__ = ("domain", "omit_unset_slots", "length", "last", "replay", "states")


def _incremental_past_states() -> None:
    from rasa.shared.core.events import (ActionExecuted, ActionReverted, ActiveLoop, Restarted, SessionStarted,
                                         UserUtteranceReverted)
    from rasa.shared.core.trackers import DialogueStateTracker

    rewinds = (Restarted, SessionStarted, ActionReverted, UserUtteranceReverted, ActiveLoop)
    full_past_states = original(DialogueStateTracker, "past_states")

    def rebuild(tracker, domain, omit_unset_slots: bool):
        """What Domain.states_for_tracker_history does (without rule-only turns), keeping the replay."""
        if any(isinstance(e, ActiveLoop) for e in tracker.events):
            return None  # loops undo their own turns: not appended-only
        kept = _PastStates()
        kept.domain, kept.omit_unset_slots = domain, omit_unset_slots
        kept.replay, kept.states = tracker.init_copy(), []
        for event in tracker.applied_events():
            if isinstance(event, ActionExecuted):
                kept.states.append(domain.get_active_state(kept.replay, omit_unset_slots=omit_unset_slots))
            kept.replay.update(event)
        kept.length = len(tracker.events)
        kept.last = tracker.events[-1] if tracker.events else None
        return kept

    def past_states(self, domain, omit_unset_slots: bool = False, ignore_rule_only_turns: bool = False,
                    rule_only_data=None):
        if ignore_rule_only_turns or type(self) is not DialogueStateTracker or self._max_event_history is not None:
            return full_past_states(self, domain, omit_unset_slots=omit_unset_slots,
                                    ignore_rule_only_turns=ignore_rule_only_turns, rule_only_data=rule_only_data)
        events = self.events
        kept = self.__dict__.get("_bot_past_states")
        fresh = (kept is not None and kept.domain is domain and kept.omit_unset_slots == omit_unset_slots
                 and kept.length <= len(events) and (kept.length == 0 or events[kept.length - 1] is kept.last))
        if fresh:
            new = [events[i] for i in range(kept.length, len(events))]
            if any(isinstance(e, rewinds) for e in new):
                fresh = False
            else:
                for event in new:
                    if isinstance(event, ActionExecuted):
                        kept.states.append(domain.get_active_state(kept.replay, omit_unset_slots=omit_unset_slots))
                    kept.replay.update(event)
                kept.length = len(events)
                kept.last = events[-1] if events else None
        if not fresh:
            kept = rebuild(self, domain, omit_unset_slots)
            self.__dict__["_bot_past_states"] = kept
            if kept is None:
                return full_past_states(self, domain, omit_unset_slots=omit_unset_slots)
        return kept.states + [domain.get_active_state(kept.replay, omit_unset_slots=omit_unset_slots)]

    _patch(DialogueStateTracker, "past_states", past_states)


def _window_rule_policy_states() -> None:
    from rasa.core.policies.rule_policy import RULES, RULES_FOR_LOOP_UNHAPPY_PATH, RulePolicy
    from rasa.shared.core.trackers import DialogueStateTracker

    all_states = original(RulePolicy, "_prediction_states")  # inherited from Policy

    def window(policy: RulePolicy) -> int:
        size = policy.__dict__.get("_bot_states_window")
        if size is None:
            longest = max((len(policy._rule_key_to_state(key)) for table in (RULES, RULES_FOR_LOOP_UNHAPPY_PATH)
                           for key in policy.lookup.get(table, {})), default=0)
            size = policy.__dict__["_bot_states_window"] = longest + 1
        return size

    def _prediction_states(self, tracker, domain, use_text_for_last_user_input: bool = False,
                           rule_only_data=None):
        states = all_states(self, tracker, domain, use_text_for_last_user_input=use_text_for_last_user_input,
                            rule_only_data=rule_only_data)
        if type(tracker) is DialogueStateTracker:
            size = window(self)
            if len(states) > size:
                return states[-size:]
        return states

    _patch(RulePolicy, "_prediction_states", _prediction_states)


def _filter_rule_keys() -> None:
    from rasa.core.policies.rule_policy import RulePolicy
    from rasa.shared.core.constants import PREVIOUS_ACTION

    rasas = original(RulePolicy, "_get_possible_keys")
    applicable = RulePolicy._is_rule_applicable
    reversed_states: Dict[str, tuple] = {}  # rule key -> its states, last first (as `_is_rule_applicable` reads them)

    def _get_possible_keys(self, lookup, states):
        if type(self)._is_rule_applicable is not applicable:  # a subclass with its own rule check: Rasa's code
            return rasas(self, lookup, states)
        match = self._does_rule_match_state
        possible = list(lookup)
        for i, state in enumerate(reversed(states)):
            current_previous_action = state.get(PREVIOUS_ACTION)
            kept = []
            for key in possible:
                rule_states = reversed_states.get(key)
                if rule_states is None:
                    rule_states = reversed_states[key] = tuple(reversed(self._rule_key_to_state(key)))
                # `_is_rule_applicable(key, i, state)`, step by step
                if i >= len(rule_states):
                    kept.append(key)
                    continue
                rule_previous_action = rule_states[i].get(PREVIOUS_ACTION)
                if not rule_previous_action and not current_previous_action:
                    kept.append(key)
                elif rule_previous_action and current_previous_action and match(rule_states[i], state):
                    kept.append(key)
            possible = kept
        return set(possible)

    _patch(RulePolicy, "_get_possible_keys", _get_possible_keys)


class _Seen:
    """What was derived from a tracker's first `length` events (the last one being `last`)."""

    __slots__ = ("length", "last", "value")

    def __init__(self, events, value) -> None:
        self.length, self.last, self.value = len(events), (events[-1] if events else None), value

    def new_events(self, events) -> list | None:
        """The events added since, or None when the tracker's events are not a continuation."""
        if self.length > len(events) or (self.length and events[self.length - 1] is not self.last):
            return None
        return [events[i] for i in range(self.length, len(events))]

    def seen(self, events) -> None:
        self.length, self.last = len(events), (events[-1] if events else None)


def _replica_tracker_copy() -> None:
    import copy as copy_module
    from collections import deque

    from rasa.shared.core.trackers import DialogueStateTracker

    replay_copy = original(DialogueStateTracker, "copy")
    fields = {"_max_event_history", "events", "sender_id", "slots", "sender_source", "is_rule_tracker", "_paused",
              "followup_action", "latest_action", "latest_message", "latest_bot_utterance", "active_loop",
              "model_id", "assistant_id"}

    def clone(replica: DialogueStateTracker) -> DialogueStateTracker:
        new = DialogueStateTracker.__new__(DialogueStateTracker)
        d = {k: replica.__dict__[k] for k in fields}
        d["events"] = deque(replica.events, replica._max_event_history)
        d["slots"] = {name: copy_module.copy(slot) for name, slot in replica.slots.items()}
        d["latest_action"] = dict(replica.latest_action) if replica.latest_action is not None else None
        d["active_loop"] = copy_module.copy(replica.active_loop)
        new.__dict__.update(d)
        return new

    def copy(self: DialogueStateTracker) -> DialogueStateTracker:
        if (type(self) is not DialogueStateTracker or not fields <= self.__dict__.keys()
                or self._max_event_history is not None):
            return replay_copy(self)
        seen = self.__dict__.get("_bot_replica")
        new = seen.new_events(self.events) if seen is not None else None
        if new is None:
            seen = _Seen(self.events, replay_copy(self))  # Rasa's own replay
            self.__dict__["_bot_replica"] = seen
        else:
            for event in new:
                seen.value.update(event)
            seen.seen(self.events)
        if {k for k in seen.value.__dict__ if not k.startswith("_bot_")} != fields:
            return replay_copy(self)
        return clone(seen.value)

    _patch(DialogueStateTracker, "copy", copy)


def _incremental_applied_events() -> None:
    from rasa.shared.core.events import (ActionReverted, ActiveLoop, Restarted, SessionStarted,
                                         UserUtteranceReverted)
    from rasa.shared.core.trackers import DialogueStateTracker

    rewinds = (Restarted, SessionStarted, ActionReverted, UserUtteranceReverted, ActiveLoop)
    all_applied = original(DialogueStateTracker, "applied_events")

    def applied_events(self: DialogueStateTracker) -> list:
        if type(self) is not DialogueStateTracker or self._max_event_history is not None:
            return all_applied(self)
        seen = self.__dict__.get("_bot_applied")
        new = seen.new_events(self.events) if seen is not None else None
        if new is None or any(isinstance(e, rewinds) for e in new):
            if any(isinstance(e, ActiveLoop) for e in self.events):
                self.__dict__.pop("_bot_applied", None)
                return all_applied(self)
            seen = _Seen(self.events, all_applied(self))
            self.__dict__["_bot_applied"] = seen
        else:
            seen.value.extend(new)
            seen.seen(self.events)
        return list(seen.value)

    _patch(DialogueStateTracker, "applied_events", applied_events)


def _empty_domain_once() -> None:
    from rasa.shared.core.domain import Domain

    empty = Domain.empty().as_dict()

    def is_empty(self: Domain) -> bool:
        return self.as_dict() == empty

    _patch(Domain, "is_empty", is_empty)




def _run_graph_in_order() -> None:
    import logging

    from rasa.engine.exceptions import GraphRunError
    from rasa.engine.runner.dask import DaskGraphRunner

    logger = logging.getLogger("rasa.engine.runner.dask")

    def run(self: DaskGraphRunner, inputs: Optional[Dict[Text, Any]] = None, targets: Optional[list] = None):
        run_targets = targets if targets else self._graph_schema.target_names
        graphs = self.__dict__.setdefault("_bot_graphs", {})
        graph = graphs.get(tuple(run_targets))
        if graph is None:
            graph = graphs[tuple(run_targets)] = self._build_dask_graph(
                self._graph_schema.minimal_graph_schema(run_targets))
        run_graph = dict(graph)
        if inputs:
            self._add_inputs_to_graph(inputs, run_graph)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(f"Running graph with inputs: {inputs}, targets: {targets} and {self._execution_context}.")
        done: Dict[Any, Any] = {}

        def value(key: Any) -> Any:
            """What dask computes for `key`: a task (callable, *args) is called with its args that name other
            keys replaced by their values; anything else is a literal."""
            if key in done:
                return done[key]
            task = run_graph[key]
            if isinstance(task, tuple) and task and callable(task[0]):
                args = [value(a) if _is_key(a, run_graph) else a for a in task[1:]]
                result = task[0](*args)
            else:
                result = task
            done[key] = result
            return result

        try:
            return dict(value(target) for target in run_targets)
        except RuntimeError as e:
            raise GraphRunError("Error running runner.") from e

    _patch(DaskGraphRunner, "run", run)


def _is_key(arg: Any, graph: dict) -> bool:
    try:
        return arg in graph
    except TypeError:  # unhashable: a literal
        return False


_SESSIONS: Dict[tuple, Any] = {}


def _shared_http_sessions() -> None:
    import asyncio
    import weakref

    import aiohttp
    from rasa.utils.endpoints import DEFAULT_REQUEST_TIMEOUT, EndpointConfig

    new_session = original(EndpointConfig, "session")

    class Borrowed:
        """`async with endpoint.session() as s:` without closing the shared session at the end."""

        def __init__(self, session: aiohttp.ClientSession) -> None:
            self.session = session

        async def __aenter__(self) -> aiohttp.ClientSession:
            return self.session

        async def __aexit__(self, *exc: Any) -> None:
            return None

    def session(self: EndpointConfig):
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return new_session(self)
        key = (id(self), id(loop))
        kept = _SESSIONS.get(key)
        if kept is None or kept[0]() is not self or kept[1].closed:
            auth = (aiohttp.BasicAuth(self.basic_auth["username"], self.basic_auth["password"])
                    if self.basic_auth else None)
            shared = aiohttp.ClientSession(headers=self.headers, auth=auth,
                                           timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT),
                                           connector=aiohttp.TCPConnector(keepalive_timeout=2))
            kept = _SESSIONS[key] = (weakref.ref(self), shared)
        return Borrowed(kept[1])

    _patch(EndpointConfig, "session", session)
    atexit.register(_close_sessions)


def _close_sessions() -> None:
    """At exit (the event loop is gone by then): mark the kept sessions closed, so that aiohttp does not log them
    as "Unclosed client session" errors. Closing a connector is synchronous and does nothing more once its loop
    is closed."""
    for _, session in list(_SESSIONS.values()):
        connector = session.connector
        if not session.closed and connector is not None:
            # aiohttp 3.9: `close()` is `_close()` plus an awaitable that warns when not awaited.
            getattr(connector, "_close", connector.close)()
    _SESSIONS.clear()


PATCHES = {  # name -> patch, numbered as in the module docstring
    "validate": _validate_with_checked_schema,  # 1
    "event_types": _cache_event_types,  # 2
    "current_turn": _send_current_turn_only,  # 3
    "past_states": _incremental_past_states,  # 4
    "rule_window": _window_rule_policy_states,  # 5
    "copy": _replica_tracker_copy,  # 6
    "applied_events": _incremental_applied_events,  # 7
    "empty_domain": _empty_domain_once,  # 8
    "graph_in_order": _run_graph_in_order,  # 9
    "http_session": _shared_http_sessions,  # 10
    "rule_keys": _filter_rule_keys,  # 11
}
