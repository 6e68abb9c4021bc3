"""The script's state as kept in the `flow_state` slot: one typed state per flow, an enum of each flow's steps, and a
version. `load_state` reads whatever the slot holds: the current version, the previous format (the same dict without
a version, written before flows were typed), or something it cannot use (an unknown version, a step that no longer
exists), which the dispatcher answers with a polite restart instead of an error."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum

VERSION = 2  # 1: the untyped dict of bot/services/assistant.py (no "v" key); 2: typed flows (this module)
COMMON = ("last_ticket", "pending", "clarify", "fallbacks")  # kept whatever the flow (hardening.py adds "pending")


class FlowName(str, Enum):
    complaint = "complaint"  # also repair / return / exchange / installation requests, with their visit booking
    status = "status"
    human = "human"
    visit_change = "visit_change"
    promise = "promise"
    survey = "survey"


class ComplaintStep(str, Enum):
    """The six steps: 1 vent (listen), 2 apologise + confirm, 3 gather, 4-5 propose + opinion, (visit), 6 follow up."""
    vent = "vent"
    confirm = "confirm"
    gather = "gather"
    opinion = "opinion"
    visit_pick = "visit_pick"
    visit_confirm = "visit_confirm"


class VisitChangeStep(str, Enum):
    cancel_confirm = "cancel_confirm"
    reschedule_when = "reschedule_when"


class StateError(ValueError):
    """The slot holds a state this version of the script cannot continue."""


@dataclass
class ComplaintState:
    ticket: str
    kind: str
    step: ComplaintStep
    vent_turns: int = 0
    fails: dict = field(default_factory=dict)
    rejections: int = 0
    anger_high_turns: int = 0
    max_anger: float = 0.0
    skipped: list = field(default_factory=list)
    proposals: list = field(default_factory=list)
    pidx: int = 0
    windows: list = field(default_factory=list)


@dataclass
class StatusState:
    status_fails: int = 0


@dataclass
class HumanState:
    ticket: str


@dataclass
class VisitChangeState:
    action: str
    step: VisitChangeStep | None = None
    visit_id: int | None = None
    fails: int = 0


@dataclass
class PromiseState:
    promise: dict
    resume: dict = field(default_factory=dict)


@dataclass
class SurveyState:
    last_ticket: str | None = None
    step: str | None = None  # "anything_else": after a hand-back the rating question waits for that answer (issue 16)


STATES = {FlowName.complaint: ComplaintState, FlowName.status: StatusState, FlowName.human: HumanState,
          FlowName.visit_change: VisitChangeState, FlowName.promise: PromiseState, FlowName.survey: SurveyState}
KINDS = ("complaint", "repair", "return", "exchange", "installation")
ACTIONS = ("reschedule_visit", "cancel_visit")


def _typed(cls, slot: dict):
    """The flow's dataclass from the slot, each declared field checked (and a number given as text converted)."""
    values = {}
    for f in fields(cls):
        if f.name not in slot or slot[f.name] is None:
            continue
        value = slot[f.name]
        kind = str(f.type)
        try:
            if kind.startswith("ComplaintStep"):
                value = ComplaintStep(value)
            elif kind.startswith("VisitChangeStep"):
                value = VisitChangeStep(value)
            elif kind.startswith("int"):
                value = int(value)
            elif kind == "float":
                value = float(value)
        except (TypeError, ValueError) as exc:
            raise StateError(f"{cls.__name__}.{f.name}: {value!r}") from exc
        if kind in ("str", "str | None") and not isinstance(value, str):
            raise StateError(f"{cls.__name__}.{f.name}: {value!r}")
        if kind in ("dict", "list") and not isinstance(value, eval(kind)):  # noqa: S307 - one of two builtin names
            raise StateError(f"{cls.__name__}.{f.name}: {value!r}")
        values[f.name] = value
    try:
        return cls(**values)
    except TypeError as exc:  # a required field missing
        raise StateError(f"{cls.__name__}: {exc}") from exc


def _check(typed) -> None:
    if isinstance(typed, ComplaintState) and typed.kind not in KINDS:
        raise StateError(f"complaint kind {typed.kind!r}")
    if isinstance(typed, VisitChangeState) and typed.action not in ACTIONS:
        raise StateError(f"visit change action {typed.action!r}")


@dataclass
class Loaded:
    state: dict  # the working state the flows continue from (no version key)
    flow: FlowName | None = None
    typed: object = None  # the flow's dataclass, checked
    upgraded: bool = False  # read from the previous format
    problem: str | None = None  # why it cannot be continued (then `state` holds only what is safe to keep)


def load_state(slot) -> Loaded:
    """Read the slot. Never raises: a state that cannot be continued comes back with `problem` set."""
    if not slot:
        return Loaded({})
    if not isinstance(slot, dict):
        return Loaded({}, problem=f"not a mapping: {type(slot).__name__}")
    state = {k: v for k, v in slot.items() if k != "v"}
    version = slot.get("v", 1)
    last = state.get("last_ticket") or state.get("ticket")  # the ticket stays reachable by a status look-up
    keep = {"last_ticket": last} if isinstance(last, str) else {}
    if version not in (1, VERSION):
        return Loaded(keep, problem=f"unknown version {version!r}")
    if not state.get("flow"):
        return Loaded(state, upgraded=version == 1)
    try:
        flow = FlowName(state["flow"])
        typed = _typed(STATES[flow], state)
        _check(typed)
    except (ValueError, StateError) as exc:
        return Loaded(keep, problem=str(exc))
    return Loaded(state, flow=flow, typed=typed, upgraded=version == 1)


def keep_last_ticket(state: dict) -> dict:
    """What a flow that ends leaves behind: the last ticket, if there is one."""
    return {"last_ticket": state["last_ticket"]} if state.get("last_ticket") else {}


def dump_state(state: dict | None) -> dict:
    """The slot value for a working state: the same keys, stamped with the version (an empty state stays empty)."""
    if not state:
        return dict(state or {})
    return {**state, "v": VERSION}
