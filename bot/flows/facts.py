"""Step 3 of the complaint script: take every fact a message carries (product, model, order, phone, address, time)
and ask for the next one that is missing; after two unusable answers a person (or skipping) is offered.
"""
from __future__ import annotations

import re

from bot.flows.base import Flow
from bot.flows.context import TurnContext
from bot.flows.words import (
    ADDRESS_RE,
    ANYTIME_RE,
    CATEGORIES,
    DIGITS_RE,
    DONT_KNOW_RE,
    GATHER_FACTS,
    MODEL_LEAD_RE,
    ONE_SHOT,
)
from bot.nlu import phones
from bot.nlu.extract import model_code
from bot.services import problems as problem_lexicon
from bot.services.conversation import Button, Message, Turn
from bot.services.records import Records, purchase_facts
from bot.store.db import UnitOfWork
from bot.store.models import Ticket

def model_facts(code: str, uow: UnitOfWork, known_product: str | None = None) -> dict:
    """A model code checked against the catalogue: a known one in the catalogue's spelling (and its product,
    when none is known yet); an unknown but plausible one as the customer wrote it."""
    product = Records(uow.session).product_by_model(code)
    if product is None:
        return {"model": code.upper() if code.islower() else code}
    facts = {"model": product.model}
    if not known_product and product.category in CATEGORIES:
        facts["product"] = product.category
    return facts


def order_belongs(purchase, ticket: Ticket, new_facts: dict) -> bool:
    """An order is this customer's when it has no customer, or when the phone given is the one on it."""
    phone = new_facts.get("phone") or ticket.phone
    return not purchase.customer or (bool(phone) and phones.same_number(purchase.customer.phone, phone))


def facts_from_purchase(purchase, with_customer: bool = True) -> dict:
    p = purchase_facts(purchase)
    facts = {"order_id": p.order_id, "product": p.category, "model": p.model, "purchase_date": p.purchase_date}
    if with_customer:
        facts.update(phone=p.customer_phone,
                     customer_name=purchase.customer.name if purchase.customer else None)
    return facts


def told_facts(turn: Turn, ticket: Ticket, state: dict, reading, uow: UnitOfWork) -> dict:
    """The facts a message states outright (entities and the problem read from it), before any order is looked up."""
    facts: dict = {}
    product = turn.entity("product")
    if product in CATEGORIES:
        facts["product"] = product
    if reading.symptoms and not ticket.symptom:
        facts["symptom"] = reading.symptoms[0]
    elif reading.symptoms and state.get("correcting"):
        facts["symptom"] = reading.symptoms[0]
    if reading.impacts:
        known = set(filter(None, (ticket.impact or "").split(",")))
        facts["impact"] = ",".join(sorted(known | set(reading.impacts)))
    model = turn.entity("product_model")
    if model:
        facts.update(model_facts(model, uow, known_product=facts.get("product") or ticket.product))
    person = turn.entity("person")
    if person:
        facts["customer_name"] = person
    phone = phones.normalize(turn.entity("phone"))
    if phone:
        facts["phone"] = phone
    return facts


class FactsStep(Flow):
    def absorb(self, ctx: TurnContext, as_account: bool = True) -> list[Message]:
        """Keep the customer's words and every fact they carry; raise safety and anger flags."""
        turn, state, ticket, book, uow = ctx
        text = turn.text or ""
        if as_account and text and not text.startswith("/"):
            book.append_account(ticket, text, turn.now)
        reading = problem_lexicon.read_problem(text, self.lexicon)
        facts = told_facts(turn, ticket, state, reading, uow)
        out = self.order_facts(ctx, facts)
        if turn.entity("address") and ADDRESS_RE.search(turn.entity("address") or ""):
            facts["address"] = turn.entity("address")
        book.record_facts(ticket, facts, turn.now, actor="customer")
        if reading.unopened:
            state["unopened"] = True
        if reading.customer_damage:
            state["customer_damage"] = True
        # Anger: the script keeps the peak and how many messages ran hot.
        ticket.anger = max(ticket.anger or 0.0, turn.anger)
        state["max_anger"] = max(state.get("max_anger", 0.0), turn.anger)
        if turn.anger >= self.tuning.anger_hot:
            state["anger_high_turns"] = state.get("anger_high_turns", 0) + 1
        if reading.safety and not state.get("safety"):
            state["safety"] = True
            queued = self.script.handoff.queue_for_person(ticket, book, turn, "safety")
            out[:0] = [self.msg("safety_advice", turn, number=ticket.number)] + queued
        return out

    def order_facts(self, ctx: TurnContext, facts: dict) -> list[Message]:
        """An order number given: what it proves is added to `facts` (and the customer linked); what must be said
        about it (someone else's order, another product's) is returned."""
        turn, _, ticket, book, uow = ctx
        order_id = turn.entity("order_id")
        if order_id:
            found = Records(uow.session).purchase_by_order(order_id)
            stated = facts.get("product") or ticket.product
            if found is not None and stated and purchase_facts(found).category != stated:
                # Someone else's order, or a typo: the order is for another kind of appliance. Say so without
                # saying what is in it, and use nothing from it.
                return [self.msg("order_other_product", turn)]
            if found is not None and order_belongs(found, ticket, facts):
                facts.update(facts_from_purchase(found))
                book.link_customer(ticket, found.customer, found, turn.now)
            elif found is not None and not (facts.get("phone") or ticket.phone):
                # An order number alone never links a customer: what was bought (product, model, dates) is used,
                # who bought it (name, phone, earlier tickets) only once the phone on the order is given.
                facts.update(facts_from_purchase(found, with_customer=False))
                book.link_customer(ticket, None, found, turn.now)
            elif found is not None:
                return [self.msg("order_not_yours", turn)]
        elif facts.get("phone") and ticket.purchase is not None and ticket.customer is None:
            if order_belongs(ticket.purchase, ticket, facts):  # the phone that proves the order came later
                facts.update({"customer_name": ticket.purchase.customer.name} if ticket.purchase.customer else {})
                book.link_customer(ticket, ticket.purchase.customer, None, turn.now)
        return []

    def start_gather(self, ctx: TurnContext) -> list[Message]:
        turn, state, ticket, book, uow = ctx
        book.stamp_step(ticket, "gather", turn.now)
        state["step"] = "gather"
        state["skipped"] = []
        return self.next_question(ctx)

    def missing_facts(self, state: dict, ticket: Ticket) -> list[str]:
        skipped = set(state.get("skipped", []))
        have = {
            "product": ticket.product, "symptom": ticket.symptom, "model": ticket.model,
            "purchase": ticket.order_id or ticket.purchase_date, "phone": ticket.phone, "address": ticket.address,
            "contact_time": ticket.contact_time,
        }
        return [f for f in GATHER_FACTS[state.get("kind", "complaint")] if not have[f] and f not in skipped]

    def next_question(self, ctx: TurnContext) -> list[Message]:
        turn, state, ticket, book, uow = ctx
        missing = self.missing_facts(state, ticket)
        if not missing:
            state.pop("asking", None)
            if state.get("kind") == "installation":
                return self.script.requests.installation_ready(ctx)
            return self.script.complaint.propose(ctx)
        state["asking"] = missing[0]
        return [self.ask_fact(turn, missing[0])]

    def ask_fact(self, turn: Turn, fact: str, again: bool = False) -> Message:
        buttons = None
        if fact == "product":
            buttons = [Button(self.product_name(c, turn.language), self.t.get(f"product_{c}", turn.language))
                       for c in CATEGORIES[:6]]
        elif fact in ("model", "purchase"):
            buttons = [self.button("btn_dont_know", turn, self.t.get("dont_know_payload", turn.language))]
        return self.msg(f"ask_{fact}", turn, buttons)

    def gather_turn(self, ctx: TurnContext) -> list[Message]:
        turn, state, ticket, book, uow = ctx
        asking = state.get("asking")
        if state.get("offered_human") == asking and asking:
            state.pop("offered_human")
            if turn.intent == "request_human":
                reply = self.script.handoff.handoff_on(ticket, book, turn, state, "failed_fact")
                state.clear()
                state.update(reply.state)  # the conversation now waits for the person
                return reply.messages
            if turn.intent in ("deny", "affirm") or "/deny" == turn.text:
                state.setdefault("skipped", []).append(asking)
                return [self.msg("skip_fact", turn)] + self.next_question(ctx)
        out = self.absorb(ctx, as_account=False)
        refused = {self.t.get(key, turn.language) for key in ("order_not_yours", "order_other_product")}
        if any(m.text in refused for m in out):
            return out + self.fact_failed(ctx, asking, already_said=True)
        if asking and asking in self.missing_facts(state, ticket):
            ok, message = self.take_answer(ctx, asking)
            if message is not None:
                out.append(message)
            if not ok:
                if turn.intent in ONE_SHOT + ("bot_challenge", "greet", "thank", "out_of_scope"):
                    # A digression: answer it, then come back to the question.
                    answer = (self.script.answers.one_shot(turn, turn.intent, state) if turn.intent in ONE_SHOT
                              else [self.msg(f"small_{turn.intent}", turn)])
                    return answer + [self.ask_fact(turn, asking, again=True)]
                return out + self.fact_failed(ctx, asking, already_said=message is not None)
        return out + self.next_question(ctx)

    def fact_failed(self, ctx: TurnContext, fact: str, already_said: bool = False) -> list[Message]:
        turn, state = ctx.turn, ctx.state
        fails = state.setdefault("fails", {})
        fails[fact] = fails.get(fact, 0) + 1
        if fails[fact] >= self.tuning.failed_attempts_per_fact:
            state["offered_human"] = fact
            return [self.msg("offer_human_after_fails", turn,
                             [self.button("btn_human", turn, "/request_human"), self.button("btn_skip", turn, "/deny")])]
        return [] if already_said else [self.ask_fact(turn, fact, again=True)]

    def take_answer(self, ctx: TurnContext, fact: str) -> tuple[bool, Message | None]:
        """Read the answer to the question asked; (accepted, message to show)."""
        turn, _, ticket, book, _ = ctx
        text = (turn.text or "").strip()
        if fact == "product":
            return False, self.msg("bad_product", turn)
        if fact == "symptom":
            if turn.detected is None or len(text) < 2 or turn.intent in ONE_SHOT:
                return False, None
            book.record_facts(ticket, {"symptom": text[:200]}, turn.now, actor="customer")
            return True, None
        if fact == "phone":
            if DIGITS_RE.search(text) or re.search(r"\d{5,}", text):
                return False, self.msg("bad_phone", turn)
            return False, None
        if fact == "address":
            if ADDRESS_RE.search(text) and len(text) >= 5 and turn.intent not in ONE_SHOT:
                book.record_facts(ticket, {"address": text[:300]}, turn.now, actor="customer")
                return True, None
            return False, self.msg("bad_address", turn)
        readers = {"model": self.take_model, "purchase": self.take_purchase, "contact_time": self.take_contact_time}
        return readers[fact](ctx, text) if fact in readers else (False, None)

    def take_model(self, ctx: TurnContext, text: str) -> tuple[bool, Message | None]:
        turn, state, ticket, book, uow = ctx
        if DONT_KNOW_RE.search(text):
            state.setdefault("skipped", []).append("model")
            return True, self.msg("model_skip_ok", turn)
        code = model_code(MODEL_LEAD_RE.sub("", text).strip(" .。,，"))
        code = code or model_code(MODEL_LEAD_RE.sub("", text).strip(" .。,，").upper())
        if code:  # the whole answer is a code (also typed in lower case)
            book.record_facts(ticket, model_facts(code, uow, ticket.product), turn.now, actor="customer")
            return True, None
        return False, self.msg("bad_model", turn)

    def take_purchase(self, ctx: TurnContext, text: str) -> tuple[bool, Message | None]:
        turn, state, ticket, book, _ = ctx
        if DONT_KNOW_RE.search(text):
            state.setdefault("skipped", []).append("purchase")
            return True, self.msg("purchase_skip_ok", turn)
        order_id = turn.entity("order_id")
        if order_id:
            return False, self.msg("order_not_found", turn, order_id=order_id.upper())
        try:
            bought = self.tools.parse_date(text, self.local(turn.now))
        except ValueError as err:
            code = getattr(err, "code", "invalid_date")
            return False, self.msg("bad_date_future" if code == "future" else "bad_date", turn)
        if bought is None:
            return False, self.msg("bad_purchase", turn)
        book.record_facts(ticket, {"purchase_date": bought}, turn.now, actor="customer")
        return True, None

    def take_contact_time(self, ctx: TurnContext, text: str) -> tuple[bool, Message | None]:
        turn, state, ticket, book, _ = ctx
        if ANYTIME_RE.search(text):
            book.record_facts(ticket, {"contact_time": text[:120]}, turn.now, actor="customer")
            return True, None
        try:
            when = self.tools.parse_when(text, self.local(turn.now))
        except ValueError as err:
            code = getattr(err, "code", "unrecognised")
            key = {"past": "bad_time_past", "invalid_time": "bad_time_invalid",
                   "invalid_date": "bad_date"}.get(code, "bad_time")
            return False, self.msg(key, turn)
        if when is None:
            return False, self.msg("bad_time", turn)
        state["contact_window"] = [when.start.isoformat(), when.end.isoformat()]
        state["contact_excluded"] = sorted(getattr(when, "excluded_weekdays", ()) or ())
        daily = getattr(when, "daily", None)
        state["contact_daily"] = [daily[0].isoformat(), daily[1].isoformat()] if daily else None
        book.record_facts(ticket, {"contact_time": (when.text or text)[:120]}, turn.now, actor="customer")
        return True, None
