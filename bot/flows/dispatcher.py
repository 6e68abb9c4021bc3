"""The dispatcher: reads the script state from the slot (bot/flows/state.py), lets the interruptions that apply to
any flow speak first (bot/flows/interrupts.py), then hands the turn to the flow that is open, or to the idle flow
that picks one from the intent (bot/flows/idle.py). Nothing here knows Rasa."""
from __future__ import annotations

import logging

from bot.flows.answers import AnswersFlow
from bot.flows.complaint import ComplaintFlow
from bot.flows.facts import FactsStep
from bot.flows.handoff import HandoffFlow
from bot.flows.idle import IdleFlow
from bot.flows.interrupts import Interruptions
from bot.flows.promise import PromiseFlow
from bot.flows.remedies import RemedyStep
from bot.flows.requests import RequestFlow
from bot.flows.state import FlowName, dump_state, load_state
from bot.flows.status import StatusFlow
from bot.flows.survey import SurveyFlow
from bot.flows.tools import Tools
from bot.flows.tuning import load_tuning
from bot.flows.visit import VisitChangeFlow, VisitFlow
from bot.services import problems as problem_lexicon
from bot.services.conversation import Reply, Turn

log = logging.getLogger(__name__)


class Script:
    """The whole conversation script: `handle(turn, slot)` -> the messages to send and the new slot value."""

    def __init__(self, tools: Tools):
        self.tools = tools
        self.tuning = tools.tuning or load_tuning(tools.settings.seed_dir / "script.yml")
        self.lexicon = problem_lexicon.load_lexicon()
        self.interrupts = Interruptions(self)
        self.idle = IdleFlow(self)
        self.requests = RequestFlow(self)
        self.complaint = ComplaintFlow(self)
        self.facts = FactsStep(self)
        self.remedies = RemedyStep(self)
        self.visit = VisitFlow(self)
        self.visit_change = VisitChangeFlow(self)
        self.answers = AnswersFlow(self)
        self.status = StatusFlow(self)
        self.handoff = HandoffFlow(self)
        self.survey = SurveyFlow(self)
        self.promise = PromiseFlow(self)
        self.flows = {FlowName.complaint: self.complaint, FlowName.status: self.status, FlowName.human: self.handoff,
                      FlowName.visit_change: self.visit_change, FlowName.promise: self.promise}

    def handle(self, turn: Turn, state: dict | None) -> Reply:
        loaded = load_state(state)
        if loaded.problem:
            # Written by another version of the script (a deploy mid-conversation): say so, and start again.
            log.info("script state not continued (%s): restarting the conversation's flow", loaded.problem)
            return self.interrupts.restart(turn, loaded.state)
        reply = self.dispatch(turn, loaded.state)
        return Reply(reply.messages, dump_state(reply.state))

    def dispatch(self, turn: Turn, state: dict) -> Reply:
        flow = state.get("flow")
        interrupted = self.interrupts.handle(turn, state)
        if interrupted is not None:
            return interrupted
        if flow in self.flows:
            return self.flows[FlowName(flow)].handle(turn, state)
        if flow == FlowName.survey.value:
            reply = self.survey.handle(turn, state)
            if reply is not None:
                return reply
            state = {k: v for k, v in state.items() if k != "flow"}
        return self.idle.handle(turn, state)
