"""The customer's answers to the bot's promises (the "promise" flow): a visit reminder's confirm / reschedule /
cancel, the check-back and the self-check call-back ("is it fixed?"), and the satisfaction survey sent later.

The outbox gate (bot/channels/outbox_gate.py) opens the flow when it delivers a promise that asks something:
`{"flow": "promise", "promise": {"kind", "ticket", ...}, "resume": <the flow that was open>}`. A message that does
not answer the promise goes back to the flow that was open, and is handled there.
"""
from __future__ import annotations


from bot.flows.base import Flow
from bot.flows.context import TurnContext
from bot.flows.words import RATING_RE, NEW_REQUESTS, SKIP_RE
from bot.services.conversation import Button, Message, Reply, Turn
from bot.services.outbox import cancel_pending
from bot.services.promises import (
    Promises,
    close_well,
    default_config,
    low_satisfaction,
    reopen_ticket,
    resolve_ticket,
    survey_question,
)
from bot.services.tickets import add_event
from bot.store.models import OPEN_STATUSES, TicketStatus

REMINDER_KINDS = ("visit_reminder_day_before", "visit_reminder_two_hours")
CHECK_BACK_KINDS = ("visit_check_back", "self_check_call_back")
REPAIRS = ("free_repair", "paid_repair", "repair_at_cost", "inspection")

class PromiseFlow(Flow):

    def handle(self, turn: Turn, state: dict) -> Reply:
        promise = state.get("promise") or {}
        kind = promise.get("kind")
        reply = None
        if kind in REMINDER_KINDS:
            reply = self.reminder_answer(turn, state, promise)
        elif kind in CHECK_BACK_KINDS:
            reply = self.check_back_answer(turn, state, promise)
        elif kind == "survey":
            reply = self.survey_answer(turn, state, promise)
        if reply is not None:
            return reply
        resume = dict(state.get("resume") or {})
        if not resume.get("last_ticket") and promise.get("ticket"):
            resume["last_ticket"] = promise["ticket"]
        return self.script.handle(turn, resume)

    def after_promise(self, state: dict, promise: dict) -> dict:
        """The state once the promise is answered: the flow that was open before, if any."""
        resume = dict(state.get("resume") or {})
        resume.setdefault("last_ticket", promise.get("ticket"))
        return resume

    def reminder_answer(self, turn: Turn, state: dict, promise: dict) -> Reply | None:
        if turn.intent in ("reschedule_visit", "cancel_visit"):
            return self.script.visit_change.start(turn, {"last_ticket": promise.get("ticket")}, turn.intent)
        if turn.intent != "affirm":
            return None
        with self.tools.uow() as uow:
            ticket = self.book(uow).get(promise.get("ticket", ""))
            if ticket is not None:
                add_event(uow.session, ticket, "visit_confirmed", "customer", turn.now, visit_id=promise.get("visit_id"),
                          promise=promise.get("kind"))
                uow.commit()
        return Reply([self.msg("promise_visit_confirmed", turn)], self.after_promise(state, promise))

    def check_back_answer(self, turn: Turn, state: dict, promise: dict) -> Reply | None:
        if turn.intent not in ("affirm", "deny"):
            return None
        fixed = turn.intent == "affirm"
        tz = self.settings.timezone
        with self.tools.uow() as uow:
            book = self.book(uow)
            ticket = book.get(promise.get("ticket", ""))
            if ticket is None:
                return None
            add_event(uow.session, ticket, "check_back_answered", "customer", turn.now, promise=promise.get("kind"),
                      answer="fixed" if fixed else "not_fixed", outbox_id=promise.get("outbox_id"))
            if fixed:
                if ticket.status in (s.value for s in OPEN_STATUSES):
                    resolve_ticket(uow.session, ticket, turn.now, tz=tz, actor="customer",
                                   note=f"{promise.get('kind')}: customer says it is fixed", config=self.outbox_config)
                elif ticket.status == TicketStatus.resolved.value:  # the desk resolved it: now the survey
                    self.promises(uow).survey_once(ticket, turn.now)
                uow.commit()
                return Reply([self.msg("check_back_fixed", turn, number=ticket.number)], {"last_ticket": ticket.number})
            reopen_ticket(uow.session, ticket, turn.now, tz=tz, actor="customer",
                          note=f"{promise.get('kind')}: customer says it is not fixed")
            reply = self.next_remedy(turn, promise, ticket, book, uow)
            uow.commit()
        return reply

    def next_remedy(self, turn: Turn, promise: dict, ticket, book, uow) -> Reply:
        """Not fixed: the next remedy the policy allows (not the one carried out, not a self-check again), or a
        person when none is left."""
        resume = promise.get("resume") or {}
        flow_state = {"flow": "complaint", "ticket": ticket.number, "kind": resume.get("kind") or ticket.kind,
                      "step": "opinion", "fails": {}, "rejections": 0, "anger_high_turns": 0,
                      "max_anger": max(float(resume.get("max_anger") or 0.0), turn.anger)}
        if resume.get("proposals"):  # the self-check did not help: the remedies that came after it
            options = list(resume["proposals"])[int(resume.get("pidx") or 0):]
        else:
            options = self.script.remedies.proposals(TurnContext(turn, flow_state, ticket, book, uow))
        done = {ticket.remedy_accepted, "self_check"}
        options = [o for o in options if o["kind"] not in done]
        if ticket.remedy_accepted in REPAIRS:  # a repair that did not hold: the engineer comes back, free (返修)
            options.append({"kind": "revisit", "clause_id": "REVISIT", "fee": None,
                            "clause": {"zh": self.t.get("clause_revisit", "zh"), "en": self.t.get("clause_revisit", "en")}})
        if not options:
            messages = [self.msg("check_back_to_person", turn, number=ticket.number)]
            messages += self.script.handoff.queue_for_person(ticket, book, turn, "not_fixed")
            return Reply(messages, {"flow": "human", "ticket": ticket.number, "last_ticket": ticket.number})
        if ticket.status == TicketStatus.reopened.value:
            book.set_status(ticket, TicketStatus.in_progress.value, turn.now, note="next remedy offered")
        flow_state.update(proposals=options, pidx=0)
        first = options[0]
        book.propose_remedy(ticket, first["kind"], first["clause_id"], first["clause"].get(turn.language, ""),
                            turn.now)
        return Reply([self.msg("check_back_not_fixed", turn, number=ticket.number),
                      self.script.remedies.proposal_message(turn, first, flow_state)], flow_state)

    def survey_answer(self, turn: Turn, state: dict, promise: dict) -> Reply | None:
        config = self.outbox_config
        ids = list(promise.get("questions") or [])
        index = int(promise.get("q") or 0)
        if index >= len(ids):
            return None
        question = next((q for q in config.survey if q["id"] == ids[index]), None)
        if question is None:
            return None
        text = (turn.text or "").strip()
        if question["kind"] == "rating":
            match = RATING_RE.search(text)
            if match is None:
                return None
            answer: object = int(match.group(1))
        elif question["kind"] == "yes_no":
            if turn.intent not in ("affirm", "deny"):
                return None
            answer = turn.intent == "affirm"
        elif turn.intent in NEW_REQUESTS and turn.intent != "complain" and not SKIP_RE.match(text):
            return None  # not a comment: a new request, served as such
        else:
            answer = None if (text.startswith("/") or SKIP_RE.match(text)) else text[:1000]
        out: list[Message] = []
        tz = self.settings.timezone
        promise = dict(promise)
        with self.tools.uow() as uow:
            book = self.book(uow)
            ticket = book.get(promise.get("ticket", ""))
            if ticket is None:
                return None
            if question["id"] == "overall":
                book.record_satisfaction(ticket, int(answer), turn.now)
            add_event(uow.session, ticket, "survey_answered", "customer", turn.now, question=question["id"],
                      answer=answer if question["kind"] != "text" else (None if answer is None else len(answer)),
                      outbox_id=promise.get("outbox_id"))
            if question["kind"] == "text" and answer:
                book.append_account(ticket, f"[survey] {answer}", turn.now)
            low = ((question["id"] == "overall" and int(answer) <= self.tuning.low_rating)
                   or (question["id"] == "solved" and answer is False))
            if low and not promise.get("alerted"):
                promise["alerted"] = True
                due = self.desk(book).callback_time(turn.now)
                low_satisfaction(uow.session, ticket, turn.now, tz=tz, config=config, callback_time=due,
                                 why="low rating" if question["id"] == "overall" else "not solved")
                out.append(self.msg("survey_low_alert", turn, time=self.fmt_time(due, turn.language)))
            index += 1
            if index < len(ids):
                promise["q"] = index
                uow.commit()
                asked = survey_question(self.t, config, ids[index], turn.language)
                out.append(Message(asked["text"], [Button(b["title"], b["payload"]) for b in asked["buttons"]]))
                return Reply(out, dict(state, promise=promise))
            if promise.get("alerted"):
                out.append(self.msg("survey_done_low", turn))
            else:
                close_well(uow.session, ticket, turn.now, tz=tz, config=config)
                out.append(self.msg("survey_done_thanks", turn))
            uow.commit()
        return Reply(out, self.after_promise(state, promise))

    def cancel_visit_promises(self, uow, visit, now, why: str) -> None:
        cancel_pending(uow.session, now=now, why=why, visit_id=visit.id)

    def promises(self, uow) -> Promises:
        return Promises(uow.session, self.settings.timezone, self.outbox_config)

    @property
    def outbox_config(self):
        return getattr(self.tools, "outbox", None) or default_config()
