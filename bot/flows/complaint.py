"""The complaint script, the six steps of after-sales complaint handling, for complaints and for repair / return /
exchange / installation requests alike: 1 listen (vent), 2 apologise and confirm the restatement, 3 gather the facts
(bot/flows/facts.py), 4 propose a remedy (bot/flows/remedies.py), 5 take the customer's opinion, 6 follow up.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from bot.flows.base import Flow
from bot.flows.context import TurnContext
from bot.flows.handback import survey_ask
from bot.flows.state import ComplaintStep
from bot.flows.tuning import Tuning
from bot.flows.visit import may_hold
from bot.flows.words import ONE_SHOT, FACT_ENTITIES, STOP_RE, DONE_RE, VISIT_KINDS, VISIT_REMEDIES
from bot.services import problems as problem_lexicon
from bot.services.conversation import Message, Reply, Turn
from bot.store.models import Ticket, TicketStatus


# ---------------------------------------------------------------------- deciding (plain values in, outcomes out)
def supervisor_reason(state: dict, tuning: Tuning) -> str | None:
    """Why a supervisor joins before the remedy is proposed, from the script state alone: "safety" or "anger" (a
    peak, or enough hot messages); None otherwise (a repeat complaint is checked against the records by the caller)."""
    if state.get("safety"):
        return "safety"
    if (state.get("max_anger", 0) >= tuning.anger_escalate
            or state.get("anger_high_turns", 0) >= tuning.hot_turns_to_supervisor):
        return "anger"
    return None


def after_rejection(rejections: int, pidx: int, offered: int, kind: str, tuning: Tuning) -> tuple[int, int, str | None]:
    """A remedy turned down: (rejections, index of the next remedy, why a person takes over or None). A self-check
    declined is no rejection; after `rejections_before_person` the case goes to a person, as it does when no
    remedy is left."""
    if kind != "self_check":
        rejections += 1
    if rejections >= tuning.rejections_before_person:
        return rejections, pidx, "rejected_twice"
    pidx += 1
    return rejections, pidx, "no_remedy" if pidx >= offered else None


# ---------------------------------------------------------------------- the flow (saying, and the records)
class ComplaintFlow(Flow):
    def handle(self, turn: Turn, state: dict) -> Reply:
        intent = turn.intent
        with self.tools.uow() as uow:
            book = self.book(uow)
            ticket = self.owned(uow, state["ticket"], turn)
            held = may_hold(state)  # before the step changes the state
            if ticket is None:  # the record is gone (e.g. demo reset), or not this conversation's: start over
                return self.script.idle.handle(turn, {})
            if intent == "request_human":
                reply = self.script.handoff.handoff_on(ticket, book, turn, state, "customer_request")
                self.script.visit.settle_holds(uow, ticket, reply.state, held)
                uow.commit()
                return reply
            if intent == "stop" and not STOP_RE.search(turn.text or ""):
                # "没了" / "that's it" read as stop: in the middle of a complaint it means "nothing more to add".
                intent = "affirm" if state.get("step") == ComplaintStep.confirm else None
                turn = replace(turn, intent=intent)
            if intent == "stop":
                book.set_status(ticket, TicketStatus.awaiting_customer.value, turn.now, actor="customer",
                                note="customer stopped the conversation")
                self.script.visit.settle_holds(uow, ticket, {}, held)
                uow.commit()
                return Reply([self.msg("stopped_flow", turn, number=ticket.number)], {"last_ticket": ticket.number})
            step = self.steps().get(state.get("step"))
            if step is None:
                self.script.visit.settle_holds(uow, ticket, {"last_ticket": ticket.number}, held)
                uow.commit()
                return self.script.idle.handle(turn, {"last_ticket": ticket.number})
            out = step(TurnContext(turn, state, ticket, book, uow))
            self.script.visit.settle_holds(uow, ticket, state, held)
            uow.commit()
        return Reply(out, state)

    def steps(self) -> dict:
        """Which method answers the customer at each step (the transition happens inside the step)."""
        return {ComplaintStep.vent: self.vent_turn, ComplaintStep.confirm: self.confirm_turn,
                ComplaintStep.gather: self.script.facts.gather_turn, ComplaintStep.opinion: self.opinion_turn,
                ComplaintStep.visit_pick: self.script.visit.visit_pick_turn,
                ComplaintStep.visit_confirm: self.script.visit.visit_confirm_turn}

    # step 1
    def vent_turn(self, ctx: TurnContext) -> list[Message]:
        """Listening: keep what is told, and acknowledge it until the customer has said what they had to say."""
        turn, state = ctx.turn, ctx.state
        out = self.script.facts.absorb(ctx)
        if state.get("safety") or self.vent_finished(turn, state):
            out.extend(self.apologise(ctx))
        else:
            state["vent_turns"] = state.get("vent_turns", 0) + 1
            variants = self.t.variants("vent_ack", turn.language)
            out.append(Message(variants[state["vent_turns"] % len(variants)]))
        return out

    def vent_finished(self, turn: Turn, state: dict, first: bool = False) -> bool:
        text = (turn.text or "").strip()
        if DONE_RE.search(text):
            return True
        if turn.intent in ("request_repair", "request_return", "request_exchange", "ask_warranty", "ask_fee",
                           "check_status", "affirm", "deny"):
            if turn.intent in ("request_return", "request_exchange"):
                state["wants"] = turn.intent.split("_", 1)[1]
            return True
        if first:
            return False
        if text.endswith(("?", "？", "吗")):
            return True
        reading = problem_lexicon.read_problem(text, self.lexicon)
        # Giving a model, an order number, a phone, an address or a date with no more of the story: the customer has
        # moved on to the facts, and is ready for the questions.
        facts_given = {e.get("entity") for e in turn.entities} & FACT_ENTITIES
        if facts_given and not (reading.symptoms or reading.impacts or turn.anger >= self.tuning.anger_upset):
            return True
        # Nothing new added to the story: the customer has said what they had to say.
        adds = (reading.symptoms or reading.impacts or turn.entities or len(text) >= 8
                or turn.anger >= self.tuning.anger_upset)
        return not adds

    def apologise(self, ctx: TurnContext) -> list[Message]:
        turn, state, ticket, book, _ = ctx
        book.stamp_step(ticket, "apologise", turn.now)
        state["step"] = "confirm"
        state.setdefault("confirm_tries", 0)
        key = "apology_angry" if state.get("max_anger", 0) >= self.tuning.anger_hot else "apology"
        return [Message(self.t.get(key, turn.language) + " " + self.restatement(ticket, turn.language),
                        self.yes_no(turn, "btn_not_quite"))]

    def restatement(self, ticket: Ticket, lang: str) -> str:
        product = self.product_name(ticket.product, lang)
        if ticket.kind in ("return", "exchange") and not ticket.symptom:
            return self.t.get(f"restate_wants_{ticket.kind}", lang, product=product)
        if ticket.symptom:
            symptom = problem_lexicon.symptom_label(ticket.symptom, lang, self.lexicon)
        else:
            first = (ticket.account or "").split("\n")[0].strip()
            snippet = first[:40] + ("…" if len(first) > 40 else "")
            symptom = self.t.get("symptom_quoted", lang, snippet=snippet) if snippet else self.t.get("symptom_unknown", lang)
        impacts = [problem_lexicon.impact_label(k, lang, self.lexicon) for k in (ticket.impact or "").split(",") if k]
        if impacts:
            joiner = "，" if lang == "zh" else ", and "
            return self.t.get("restate_with_impact", lang, product=product, symptom=symptom,
                              impact=joiner.join(impacts))
        return self.t.get("restate", lang, product=product, symptom=symptom)

    def confirm_turn(self, ctx: TurnContext) -> list[Message]:
        turn, state, ticket, book, uow = ctx
        implicit = turn.intent == "inform" and bool(turn.entities) and not problem_lexicon.read_problem(
            turn.text, self.lexicon).symptoms
        if implicit:  # answering with facts (an order number, a phone) takes the restatement as right
            out = self.script.facts.absorb(ctx, as_account=False)
            state.pop("correcting", None)
            return out + [self.msg("thanks_confirmed", turn)] + self.script.facts.start_gather(ctx)
        if turn.intent == "affirm" or DONE_RE.search(turn.text or ""):
            state.pop("correcting", None)
            return [self.msg("thanks_confirmed", turn)] + self.script.facts.start_gather(ctx)
        state["confirm_tries"] = state.get("confirm_tries", 0) + 1
        if turn.intent == "deny" and not turn.entities and len(turn.text or "") < 12:
            state["correcting"] = True
            return [self.msg("ask_correction", turn)]
        state["correcting"] = True
        out = self.script.facts.absorb(ctx)
        if state["confirm_tries"] >= self.tuning.confirm_tries:
            state.pop("correcting", None)
            return out + [self.msg("noted_correction", turn)] + self.script.facts.start_gather(ctx)
        return out + [Message(self.t.get("restate_again", turn.language) + " " + self.restatement(ticket, turn.language),
                              self.yes_no(turn, "btn_not_quite"))]

    def propose(self, ctx: TurnContext) -> list[Message]:
        turn, state, ticket, book, uow = ctx
        book.stamp_step(ticket, "propose", turn.now)
        out: list[Message] = []
        reason = supervisor_reason(state, self.tuning) or (
            "repeat_complaint" if book.earlier_complaints(ticket) > 0 else None)
        if reason:
            out.append(self.msg("supervisor_joins", turn))
            if reason != "safety":  # safety was queued the moment it was said
                out += self.script.handoff.queue_for_person(ticket, book, turn, reason)
        proposals = self.script.remedies.proposals(ctx)
        state["proposals"] = proposals
        state["pidx"] = 0
        state["step"] = "opinion"
        out.append(self.script.remedies.proposal_message(turn, proposals[0], state))
        first = proposals[0]
        book.propose_remedy(ticket, first["kind"], first["clause_id"], first["clause"].get(ticket.language or "zh", ""),
                            turn.now)
        return out

    def opinion_turn(self, ctx: TurnContext) -> list[Message]:
        turn, state, ticket, book, uow = ctx
        proposals = state.get("proposals") or []
        current = proposals[state.get("pidx", 0)]
        if turn.intent == "affirm":
            book.stamp_step(ticket, "opinion", turn.now, actor="customer")
            if current["kind"] == "self_check":
                guide = self.script.remedies.guide_for(ticket.product, ticket.symptom) or {}
                steps = guide.get(turn.language, [])
                state["pidx"] = state.get("pidx", 0) + 1
                state["self_check_shown"] = True
                if state["pidx"] >= len(proposals):
                    return self.escalate(ctx, "no_remedy")
                nxt = proposals[state["pidx"]]
                book.propose_remedy(ticket, nxt["kind"], nxt["clause_id"], nxt["clause"].get(turn.language, ""), turn.now)
                # 咨询后 2 小时回访: the call-back is promised here, and kept by the outbox.
                resume = {k: state.get(k) for k in ("kind", "proposals", "pidx", "max_anger")}
                call_back = self.script.promise.promises(uow).self_check_call_back(ticket, turn.now, resume)
                listing = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
                promise = self.t.get("self_check_call_back_promised", turn.language,
                                     time=self.fmt_time(call_back.due_at, turn.language))
                return [Message(self.t.get("self_check_steps", turn.language) + "\n" + listing + "\n" + promise),
                        self.script.remedies.proposal_message(turn, nxt, state)]
            book.accept_remedy(ticket, current["kind"], current["clause_id"], turn.now)
            if current["kind"] in VISIT_KINDS and ticket.address and ticket.product:
                return self.script.visit.offer_windows(ctx)
            return self.follow_up(ctx)
        if turn.intent == "deny" or turn.intent in ("complain",) and turn.anger >= self.tuning.anger_upset:
            book.reject_remedy(ticket, current["kind"], turn.now)
            state["rejections"], state["pidx"], person = after_rejection(
                state.get("rejections", 0), state.get("pidx", 0), len(proposals), current["kind"], self.tuning)
            if person:
                book.stamp_step(ticket, "opinion", turn.now, actor="customer")
                return self.escalate(ctx, person)
            nxt = proposals[state["pidx"]]
            book.propose_remedy(ticket, nxt["kind"], nxt["clause_id"], nxt["clause"].get(turn.language, ""), turn.now)
            return [self.msg("next_best", turn), self.script.remedies.proposal_message(turn, nxt, state)]
        if turn.intent in ONE_SHOT:
            return (self.script.answers.one_shot(turn, turn.intent, state)
                    + [self.msg("opinion_again", turn, self.yes_no(turn, "btn_other_option"))])
        out = self.script.facts.absorb(ctx)
        return out + [self.msg("opinion_again", turn, self.yes_no(turn, "btn_other_option"))]

    def escalate(self, ctx: TurnContext, reason: str) -> list[Message]:
        turn, state, ticket, book, _ = ctx
        out = [self.msg(f"escalated_{reason}", turn)] + self.script.handoff.queue_for_person(ticket, book, turn, reason)
        return out + self.follow_up(ctx, handed_off=True)

    def follow_up(self, ctx: TurnContext, handed_off: bool = False) -> list[Message]:
        turn, state, ticket, book, _ = ctx
        now = turn.now
        desk = self.desk(book)
        # Promises a person keeps fall in the desk's opening hours: the first contact (the same time as the
        # callback the customer was just offered) and the check-back.
        contact_by = desk.callback_time(now)
        due = now + timedelta(hours=self.settings.follow_up_hours)
        visit = state.get("visit")
        if visit:  # check back once the engineer has been
            due = datetime.fromisoformat(visit["end"]) + timedelta(hours=self.settings.follow_up_hours)
        due = desk.in_opening_hours(due)
        book.set_follow_up(ticket, due, now)
        book.stamp_step(ticket, "follow_up", now)
        remedy = ticket.remedy_accepted
        lang = turn.language
        if handed_off:
            key = "follow_up_person"
        elif visit:
            key = "follow_up_visit_booked"
        elif remedy in VISIT_REMEDIES:
            key = "follow_up_visit"
        else:
            key = "follow_up_generic"
        text = self.t.get(key, lang, number=ticket.number, contact_by=self.fmt_time(contact_by, lang),
                          follow_up=self.fmt_time(due, lang), remedy=self.t.get(f"remedy_name_{remedy or 'none'}", lang),
                          contact_time=ticket.contact_time or self.t.get("any_time", lang),
                          time=self.script.visit.window_label(visit, lang) if visit else "",
                          engineer=visit["engineer"][lang] if visit else "")
        state.clear()
        if handed_off:
            # A person takes it from here; the satisfaction question comes when they hand the chat back.
            state.update({"flow": "human", "ticket": ticket.number, "last_ticket": ticket.number})
            return [Message(text)]
        state.update({"flow": "survey", "last_ticket": ticket.number})
        return [Message(text), survey_ask(self.t, turn.language)]
