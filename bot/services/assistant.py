"""The conversation script: the six-step complaint handling and the self-service flows, over plain values.

`Assistant.handle(turn, state)` takes one customer message as NLU read it and the conversation's script state
(a dict the Rasa action keeps in a slot) and returns the messages to send and the new state. Every write goes
through one unit of work per turn. Nothing here knows Rasa.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Callable

from bot.nlu import clarify, phones
from bot.nlu.extract import model_code
from bot.services import problems as problem_lexicon
from bot.services.conversation import Button, Message, Reply, Turn
from bot.services.nlu_review import TEXT_MAX as TEXT_KEPT, record_choice
from bot.services.ownership import Ownership
from bot.services.promise_flow import PromiseSteps
from bot.services.records import Records, purchase_facts
from bot.services.tickets import SLA, TicketBook, as_utc
from bot.services.visit_flow import INSTALL_FACTS, NEW_REQUESTS, VISIT_KINDS, VisitSteps
from bot.services.visits import Roster
from bot.services.warranty import WarrantyCase, WarrantyPolicy, evaluate
from bot.settings import Settings
from bot.store.db import UnitOfWork
from bot.store.models import Ticket, TicketStatus
from bot.texts import Texts

log = logging.getLogger(__name__)

PROBLEM_KINDS = {"complain": "complaint", "request_repair": "repair", "request_return": "return",
                 "request_exchange": "exchange"}
ONE_SHOT = ("ask_warranty", "ask_fee", "usage_help", "ask_service_center")
LANG_SWITCH_RE = re.compile(r"(\b(in|speak|use|switch to|reply in) english\b|\benglish,? please\b|"
                            r"(说|讲|用|换成|改成)中文|中文(吧|可以吗|行吗|好吗)|\bin chinese\b)", re.IGNORECASE)
FACT_ENTITIES = {"product_model", "order_id", "phone", "address", "date_time", "ticket_number"}
DIGITS_RE = re.compile(r"\d[\d\s\-]{5,}\d")
ADDRESS_RE = re.compile(
    r"(省|市|区|县|镇|乡|村|路|街|道|巷|弄|号|栋|幢|楼|室|单元|小区|花园|大厦|"
    r"\broad\b|\brd\b|\bstreet\b|\bst\b|\bavenue\b|\bave\b|\blane\b|\bdistrict\b|\bcity\b|\bbuilding\b|\bblock\b|"
    r"\broom\b|\bapt\b|\bapartment\b|\bfloor\b|\bno\.)", re.IGNORECASE)
DONT_KNOW_RE = re.compile(r"(不知道|不清楚|不记得|忘了|找不到|看不到|没有|don'?t know|not sure|no idea|"
                          r"can'?t (find|remember|see)|forgot|dunno|idk)", re.IGNORECASE)
STOP_RE = re.compile(r"(算了|不用了|不要了|别问了|不聊了|取消|停|never ?mind|forget it|\bstop\b|\bcancel\b|quit|leave it)",
                     re.IGNORECASE)
DONE_RE = re.compile(r"(就这些|就这样|就这么多|没了|说完了|没有了|没别的|你们(打算|准备|看|说)?(该)?怎么(办|处理|解决|弄)|怎么办|怎么处理|"
                     r"给(我)?个说法|给个解决|what now|that'?s (all|it)|nothing else|what (are|will) you (going to )?do|"
                     r"how (will|are) you (going to )?(fix|sort|solve)|what can you do|so what now|i'?m done)", re.IGNORECASE)
MODEL_LEAD_RE = re.compile(r"^\s*(?:(?:产品)?型号(?:是|为)?[:：]?|(?:the )?model(?: number| no\.?| code)?(?: is)?[:：]?|"
                           r"it'?s)\s*", re.IGNORECASE)
ANYTIME_RE = re.compile(r"(随时|都可以|都行|全天|any ?time|whenever|all day)", re.IGNORECASE)
# The shop's side of things (orders, payment, invoices, coupons, delivery, accounts): an out-of-scope message about
# them gets pointed to where it is handled, not just told what this assistant does.
SHOP_RE = re.compile(r"(订单|下单|付款|支付|退款到账|发票|优惠券|券|价保|白条|物流|快递|配送|包裹|发货|出库|账号|账户|密码|会员|积分|"
                     r"\border|\bpayment|\bpay\b|invoice|receipt|coupon|discount|promo|deliver|shipping|\bship|parcel|"
                     r"package|courier|account|password|sign ?up|log ?in|newsletter|subscription|membership)", re.IGNORECASE)
RATING_RE = re.compile(r"(?<!\d)([1-5])\s*(分|星|stars?|/5)?(?!\d)")
CATEGORIES = ("air_conditioner", "fridge", "washing_machine", "water_heater", "tv", "range_hood", "dishwasher",
              "gas_hob", "microwave")
GATHER_FACTS = {
    "complaint": ("product", "symptom", "model", "purchase", "phone", "address", "contact_time"),
    "repair": ("product", "symptom", "model", "purchase", "phone", "address", "contact_time"),
    "return": ("product", "purchase", "phone", "address", "contact_time"),
    "exchange": ("product", "symptom", "purchase", "phone", "address", "contact_time"),
    "installation": INSTALL_FACTS,
}
VISIT_REMEDIES = ("free_repair", "paid_repair", "repair_at_cost", "exchange", "return", "inspection", "revisit")


@dataclass(frozen=True)
class Tools:
    """What the script works with, built once by bootstrap and passed in."""

    uow: Callable[[], UnitOfWork]
    settings: Settings
    policy: WarrantyPolicy
    texts: Texts
    selfcheck: dict
    centres: dict
    parse_when: Callable
    parse_date: Callable
    roster: Roster
    outbox: Any = None  # OutboxConfig (data/outbox.yml); None: read from the file on first use


class Assistant(VisitSteps, PromiseSteps):
    def __init__(self, tools: Tools):
        self.tools = tools
        self.t = tools.texts
        self.settings = tools.settings
        self.lexicon = problem_lexicon.load_lexicon()

    # ------------------------------------------------------------------ entry point
    def handle(self, turn: Turn, state: dict | None) -> Reply:
        state = dict(state or {})
        out: list[Message] = []
        text = (turn.text or "").strip()
        flow = state.get("flow")

        if not text and not turn.intent:
            out.append(self.msg("empty_message", turn))
            if flow:
                out.extend(self.reprompt(turn, state))
            return Reply(out, state)
        if (turn.detected == "other" and not turn.entities
                and (turn.detected_confidence >= 0.8
                     or turn.intent not in ("affirm", "deny", "greet", "goodbye", "thank"))):
            # Another language: answer in both, lose nothing (the text is kept in the tracker and on the ticket).
            out.append(Message(self.t.get("other_language", "zh") + "\n" + self.t.get("other_language", "en")))
            if flow == "complaint" and state.get("ticket"):
                with self.tools.uow() as uow:
                    book = self.book(uow)
                    ticket = self.owned(uow, state["ticket"], turn)
                    if ticket is not None:
                        book.append_account(ticket, text, turn.now)
                        uow.commit()
            return Reply(out, state)

        if LANG_SWITCH_RE.search(text) and not turn.entities and len(text) <= 80:
            # "Can we continue in English?" is not an answer to anything: switch, and ask again in that language.
            out.append(self.msg("language_switched", turn))
            if flow == "complaint" and state.get("step") == "confirm" and state.get("ticket"):
                with self.tools.uow() as uow:
                    ticket = self.owned(uow, state["ticket"], turn)
                    if ticket is not None:
                        out.append(Message(self.restatement(ticket, turn.language), self.yes_no(turn, "btn_not_quite")))
                        return Reply(out, state)
            again = self.reprompt(turn, state) if flow else []
            out.extend(again or [self.msg("how_can_i_help", turn, self.menu(turn))])
            return Reply(out, state)
        if flow == "complaint":
            return self.complaint_turn(turn, state)
        if flow == "status":
            return self.status_turn(turn, state)
        if flow == "human":
            return self.human_turn(turn, state)
        if flow == "visit_change":
            return self.visit_change_turn(turn, state)
        if flow == "promise":
            return self.promise_turn(turn, state)
        if flow == "survey":
            reply = self.survey_turn(turn, state)
            if reply is not None:
                return reply
            state = {k: v for k, v in state.items() if k != "flow"}
        return self.idle_turn(turn, state)

    # ------------------------------------------------------------------ helpers
    def msg(self, key: str, turn: Turn, buttons: list[Button] | None = None, **values) -> Message:
        return Message(self.t.get(key, turn.language, **values), buttons or [])

    def button(self, key: str, turn: Turn, payload: str) -> Button:
        return Button(self.t.get(key, turn.language), payload)

    def remedy_buttons(self, turn: Turn) -> list[Button]:
        """After a policy answer ("can I still return it?"), the three remedies it speaks of, one tap away."""
        return [self.button("btn_repair", turn, "/request_repair"), self.button("btn_return", turn, "/request_return"),
                self.button("btn_exchange", turn, "/request_exchange")]

    def book(self, uow: UnitOfWork) -> TicketBook:
        return TicketBook(uow.session, self.settings.timezone,
                          SLA(self.settings.first_response_hours, self.settings.resolution_hours))

    def local(self, moment: datetime) -> datetime:
        return as_utc(moment).astimezone(self.settings.timezone)

    def fmt_time(self, moment: datetime, lang: str) -> str:
        local = self.local(moment)
        if lang == "zh":
            return f"{local.month}月{local.day}日 {local:%H:%M}"
        return local.strftime("%d %b %H:%M").lstrip("0")

    def product_name(self, category: str | None, lang: str) -> str:
        if not category:
            return self.t.get("product_unknown", lang)
        key = f"product_{category}"
        return self.t.get(key, lang) if key in self.t else category

    def menu(self, turn: Turn) -> list[Button]:
        return [self.button("btn_complain", turn, "/complain"), self.button("btn_repair", turn, "/request_repair"),
                self.button("btn_status", turn, "/check_status"), self.button("btn_human", turn, "/request_human")]

    def yes_no(self, turn: Turn, no_key: str = "btn_no") -> list[Button]:
        return [self.button("btn_yes", turn, "/affirm"), self.button(no_key, turn, "/deny")]

    def reprompt(self, turn: Turn, state: dict) -> list[Message]:
        """Ask again whatever the open flow is waiting for."""
        flow = state.get("flow")
        if flow == "complaint":
            step = state.get("step")
            if step == "gather" and state.get("asking"):
                return [self.ask_fact(turn, state["asking"], again=True)]
            if step == "confirm":
                return [self.msg("confirm_again", turn, self.yes_no(turn, "btn_not_quite"))]
            if step == "opinion":
                return [self.msg("opinion_again", turn, self.yes_no(turn, "btn_other_option"))]
            if step == "vent":
                return [self.msg("vent_go_on", turn)]
        if flow == "status":
            return [self.msg("status_ask", turn)]
        return []

    # ------------------------------------------------------------------ idle: no flow open
    def idle_turn(self, turn: Turn, state: dict) -> Reply:
        pending = state.pop("clarify", None)
        if pending and (turn.text or "").startswith("/"):
            turn = self.clarification_answered(turn, state, pending)
            if turn.intent == clarify.SOMETHING_ELSE:
                return Reply([self.msg("clarify_something_else", turn, self.menu(turn))], state)
        intent = turn.intent or "nlu_fallback"
        reading = problem_lexicon.read_problem(turn.text, self.lexicon)
        shop_question = turn.intent == "out_of_scope" and SHOP_RE.search(turn.text or "")  # pointed to the shop
        names_ticket = bool(turn.entity("ticket_number"))  # "查询工单 SV-...": about that ticket, nothing to guess
        if (not reading.safety and not reading.symptoms and not shop_question and not names_ticket
                and not (turn.text or "").startswith("/") and clarify.should_clarify(turn.intent, turn.confidence)):
            return Reply(self.fallback(turn, state), state)  # unsure: ask, with the likeliest as buttons
        if names_ticket and intent in ("inform", "nlu_fallback", "out_of_scope"):
            intent = "check_status"
        if reading.safety and intent not in ("check_status", "request_human"):
            intent = "complain"
        elif reading.symptoms and intent in ("inform", "nlu_fallback", "out_of_scope", "affirm", "deny", "feedback"):
            # "my TV keeps flickering, bought it in March": a fault described is a fault reported, whatever the
            # classifier made of the purchase date around it.
            intent = "complain" if turn.anger >= 0.5 else "request_repair"
        if intent in PROBLEM_KINDS:
            return self.start_problem(turn, state, PROBLEM_KINDS[intent])
        if intent == "request_installation":
            return self.start_installation(turn, state)
        if intent == "check_status":
            state.update(flow="status", status_fails=0)
            return self.status_turn(turn, state, first=True)
        if intent in ("reschedule_visit", "cancel_visit"):
            return self.start_visit_change(turn, state, intent)
        if intent == "request_human":
            return self.start_handoff(turn, state, reason="customer_request")
        if intent in ONE_SHOT:
            return Reply(self.one_shot(turn, intent, state), state)
        if intent == "feedback":
            return Reply(self.feedback(turn, state), state)
        if intent == "nlu_fallback":
            return Reply(self.fallback(turn, state), state)
        if intent == "stop":
            return Reply([self.msg("stopped_idle", turn, self.menu(turn))], state)
        if intent == "out_of_scope" and SHOP_RE.search(turn.text or ""):
            return Reply([self.msg("small_out_of_scope_shop", turn, self.menu(turn))], state)
        if intent in ("greet", "goodbye", "thank", "bot_challenge", "out_of_scope"):
            return Reply([self.msg(f"small_{intent}", turn, self.menu(turn) if intent in ("greet", "out_of_scope") else None)], state)
        # affirm / deny / inform with nothing open: say what we can do.
        return Reply([self.msg("how_can_i_help", turn, self.menu(turn))], state)

    def fallback(self, turn: Turn, state: dict) -> list[Message]:
        state["fallbacks"] = state.get("fallbacks", 0) + 1
        if state["fallbacks"] >= 3:
            state["fallbacks"] = 0
            return [self.msg("fallback_human", turn, [self.button("btn_human", turn, "/request_human"),
                                                       self.button("btn_keep_trying", turn, "/greet")])]
        if turn.detected is None and not turn.entities:
            return [self.msg("no_words", turn, self.menu(turn))]
        offered = [name for name in clarify.candidates(turn.ranking) if f"intent_{name}" in self.t]
        if not offered:
            return [self.msg("how_can_i_help", turn, self.menu(turn))]
        buttons = [Button(self.t.get(f"intent_{name}", turn.language), f"/{name}") for name in offered]
        buttons.append(self.button("btn_something_else", turn, clarify.SOMETHING_ELSE_PAYLOAD))
        state["clarify"] = {"text": (turn.text or "")[:TEXT_KEPT], "offered": offered,
                            "predicted": turn.intent or "nlu_fallback", "confidence": round(turn.confidence, 4),
                            "entities": [{k: e.get(k) for k in ("entity", "value", "start", "end")}
                                         for e in turn.entities if e.get("entity") != "language"]}
        return [self.msg("fallback_suggest", turn, buttons)]

    def clarification_answered(self, turn: Turn, state: dict, pending: dict) -> Turn:
        """A button of the clarification pressed: keep it as a labelled example, and read the first message again
        as the intent chosen (so what it said is not lost), or as "something else"."""
        offered = list(pending.get("offered") or [])
        pressed_other = turn.text == clarify.SOMETHING_ELSE_PAYLOAD
        if not (pressed_other or turn.intent in offered):
            return turn  # another button (an older message's): nothing to record
        chosen = clarify.SOMETHING_ELSE if pressed_other else turn.intent
        with self.tools.uow() as uow:
            record_choice(uow.session, conversation_id=turn.conversation_id, channel=turn.channel,
                          language=turn.language, text=str(pending.get("text") or ""),
                          predicted=pending.get("predicted"), confidence=float(pending.get("confidence") or 0.0),
                          offered=offered, chosen=chosen, now=turn.now)
            uow.commit()
        state.pop("fallbacks", None)
        if pressed_other or not pending.get("text"):
            return replace(turn, intent=chosen)
        return replace(turn, text=pending["text"], intent=chosen, confidence=1.0,
                       entities=tuple(e for e in pending.get("entities") or () if isinstance(e, dict)))

    # ------------------------------------------------------------------ the complaint script
    def start_problem(self, turn: Turn, state: dict, kind: str) -> Reply:
        now = turn.now
        with self.tools.uow() as uow:
            book = self.book(uow)
            ticket, _created = book.open(conversation_id=turn.conversation_id, channel=turn.channel, kind=kind,
                                         language=turn.language, now=now)
            if ticket.status == TicketStatus.new.value:
                book.set_status(ticket, TicketStatus.in_progress.value, now, note="conversation started")
            state = {"flow": "complaint", "ticket": ticket.number, "kind": kind, "step": "vent", "vent_turns": 0,
                     "fails": {}, "rejections": 0, "anger_high_turns": 0, "max_anger": 0.0}
            book.stamp_step(ticket, "vent", now)
            out = self.absorb(turn, state, ticket, book, uow)
            if (turn.text or "").startswith("/"):  # a menu button: nothing told yet, invite the story
                out.append(self.msg("vent_invite", turn))
            elif kind == "complaint" and not state.get("safety") and not self.vent_finished(turn, state, first=True):
                state["vent_turns"] = 1
                out.append(Message(self.t.variants("vent_ack", turn.language)[0]))
            else:
                out.extend(self.apologise(turn, state, ticket, book))
            uow.commit()
        return Reply(out, state)

    def complaint_turn(self, turn: Turn, state: dict) -> Reply:
        intent = turn.intent
        with self.tools.uow() as uow:
            book = self.book(uow)
            ticket = self.owned(uow, state["ticket"], turn)
            if ticket is None:  # the record is gone (e.g. demo reset), or not this conversation's: start over
                return self.idle_turn(turn, {})
            if intent == "request_human":
                reply = self.handoff_on(ticket, book, turn, state, "customer_request")
                self.settle_holds(uow, ticket, reply.state)
                uow.commit()
                return reply
            if intent == "stop" and not STOP_RE.search(turn.text or ""):
                # "没了" / "that's it" read as stop: in the middle of a complaint it means "nothing more to add".
                intent = "affirm" if state.get("step") == "confirm" else None
                turn = replace(turn, intent=intent)
            if intent == "stop":
                book.set_status(ticket, TicketStatus.awaiting_customer.value, turn.now, actor="customer",
                                note="customer stopped the conversation")
                self.settle_holds(uow, ticket, {})
                uow.commit()
                return Reply([self.msg("stopped_flow", turn, number=ticket.number)], {"last_ticket": ticket.number})
            step = state.get("step")
            out: list[Message] = []
            if step == "vent":
                out = self.absorb(turn, state, ticket, book, uow)
                if state.get("safety") or self.vent_finished(turn, state):
                    out.extend(self.apologise(turn, state, ticket, book))
                else:
                    state["vent_turns"] = state.get("vent_turns", 0) + 1
                    variants = self.t.variants("vent_ack", turn.language)
                    out.append(Message(variants[state["vent_turns"] % len(variants)]))
            elif step == "confirm":
                out = self.confirm_turn(turn, state, ticket, book, uow)
            elif step == "gather":
                out = self.gather_turn(turn, state, ticket, book, uow)
            elif step == "opinion":
                out = self.opinion_turn(turn, state, ticket, book, uow)
            elif step == "visit_pick":
                out = self.visit_pick_turn(turn, state, ticket, book, uow)
            elif step == "visit_confirm":
                out = self.visit_confirm_turn(turn, state, ticket, book, uow)
            else:
                state = {"last_ticket": ticket.number}
                self.settle_holds(uow, ticket, state)
                uow.commit()
                return self.idle_turn(turn, state)
            self.settle_holds(uow, ticket, state)
            uow.commit()
        return Reply(out, state)

    def absorb(self, turn: Turn, state: dict, ticket: Ticket, book: TicketBook, uow: UnitOfWork,
               as_account: bool = True) -> list[Message]:
        """Keep the customer's words and every fact they carry; raise safety and anger flags."""
        out: list[Message] = []
        text = turn.text or ""
        if as_account and text and not text.startswith("/"):
            book.append_account(ticket, text, turn.now)
        reading = problem_lexicon.read_problem(text, self.lexicon)
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
            facts.update(self.model_facts(model, uow, known_product=facts.get("product") or ticket.product))
        person = turn.entity("person")
        if person:
            facts["customer_name"] = person
        phone = phones.normalize(turn.entity("phone"))
        if phone:
            facts["phone"] = phone
        order_id = turn.entity("order_id")
        if order_id:
            found = Records(uow.session).purchase_by_order(order_id)
            stated = facts.get("product") or ticket.product
            if found is not None and stated and purchase_facts(found).category != stated:
                # Someone else's order, or a typo: the order is for another kind of appliance. Say so without
                # saying what is in it, and use nothing from it.
                out.append(self.msg("order_other_product", turn))
            elif found is not None and self.order_belongs(found, ticket, facts):
                facts.update(self.facts_from_purchase(found))
                book.link_customer(ticket, found.customer, found, turn.now)
            elif found is not None and not (facts.get("phone") or ticket.phone):
                # An order number alone never links a customer: what was bought (product, model, dates) is used,
                # who bought it (name, phone, earlier tickets) only once the phone on the order is given.
                facts.update(self.facts_from_purchase(found, with_customer=False))
                book.link_customer(ticket, None, found, turn.now)
            elif found is not None:
                out.append(self.msg("order_not_yours", turn))
        elif facts.get("phone") and ticket.purchase is not None and ticket.customer is None:
            if self.order_belongs(ticket.purchase, ticket, facts):  # the phone that proves the order came later
                facts.update({"customer_name": ticket.purchase.customer.name} if ticket.purchase.customer else {})
                book.link_customer(ticket, ticket.purchase.customer, None, turn.now)
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
        if turn.anger >= 0.6:
            state["anger_high_turns"] = state.get("anger_high_turns", 0) + 1
        if reading.safety and not state.get("safety"):
            state["safety"] = True
            queued = self.queue_for_person(ticket, book, turn, "safety")
            out[:0] = [self.msg("safety_advice", turn, number=ticket.number)] + queued
        return out

    @staticmethod
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

    def order_belongs(self, purchase, ticket: Ticket, new_facts: dict) -> bool:
        """An order is this customer's when it has no customer, or when the phone given is the one on it."""
        phone = new_facts.get("phone") or ticket.phone
        return not purchase.customer or (bool(phone) and phones.same_number(purchase.customer.phone, phone))

    def facts_from_purchase(self, purchase, with_customer: bool = True) -> dict:
        p = purchase_facts(purchase)
        facts = {"order_id": p.order_id, "product": p.category, "model": p.model, "purchase_date": p.purchase_date}
        if with_customer:
            facts.update(phone=p.customer_phone,
                         customer_name=purchase.customer.name if purchase.customer else None)
        return facts

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
        if facts_given and not (reading.symptoms or reading.impacts or turn.anger >= 0.5):
            return True
        # Nothing new added to the story: the customer has said what they had to say.
        adds = reading.symptoms or reading.impacts or turn.entities or len(text) >= 8 or turn.anger >= 0.5
        return not adds

    # step 2
    def apologise(self, turn: Turn, state: dict, ticket: Ticket, book: TicketBook) -> list[Message]:
        book.stamp_step(ticket, "apologise", turn.now)
        state["step"] = "confirm"
        state.setdefault("confirm_tries", 0)
        key = "apology_angry" if state.get("max_anger", 0) >= 0.6 else "apology"
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

    def confirm_turn(self, turn: Turn, state: dict, ticket: Ticket, book: TicketBook, uow: UnitOfWork) -> list[Message]:
        implicit = turn.intent == "inform" and bool(turn.entities) and not problem_lexicon.read_problem(
            turn.text, self.lexicon).symptoms
        if implicit:  # answering with facts (an order number, a phone) takes the restatement as right
            out = self.absorb(turn, state, ticket, book, uow, as_account=False)
            state.pop("correcting", None)
            return out + [self.msg("thanks_confirmed", turn)] + self.start_gather(turn, state, ticket, book, uow)
        if turn.intent == "affirm" or DONE_RE.search(turn.text or ""):
            state.pop("correcting", None)
            return [self.msg("thanks_confirmed", turn)] + self.start_gather(turn, state, ticket, book, uow)
        state["confirm_tries"] = state.get("confirm_tries", 0) + 1
        if turn.intent == "deny" and not turn.entities and len(turn.text or "") < 12:
            state["correcting"] = True
            return [self.msg("ask_correction", turn)]
        state["correcting"] = True
        out = self.absorb(turn, state, ticket, book, uow)
        if state["confirm_tries"] >= 3:
            state.pop("correcting", None)
            return out + [self.msg("noted_correction", turn)] + self.start_gather(turn, state, ticket, book, uow)
        return out + [Message(self.t.get("restate_again", turn.language) + " " + self.restatement(ticket, turn.language),
                              self.yes_no(turn, "btn_not_quite"))]

    # step 3
    def start_gather(self, turn: Turn, state: dict, ticket: Ticket, book: TicketBook, uow: UnitOfWork) -> list[Message]:
        book.stamp_step(ticket, "gather", turn.now)
        state["step"] = "gather"
        state["skipped"] = []
        return self.next_question(turn, state, ticket, book, uow)

    def missing_facts(self, state: dict, ticket: Ticket) -> list[str]:
        skipped = set(state.get("skipped", []))
        have = {
            "product": ticket.product, "symptom": ticket.symptom, "model": ticket.model,
            "purchase": ticket.order_id or ticket.purchase_date, "phone": ticket.phone, "address": ticket.address,
            "contact_time": ticket.contact_time,
        }
        return [f for f in GATHER_FACTS[state.get("kind", "complaint")] if not have[f] and f not in skipped]

    def next_question(self, turn: Turn, state: dict, ticket: Ticket, book: TicketBook, uow: UnitOfWork) -> list[Message]:
        missing = self.missing_facts(state, ticket)
        if not missing:
            state.pop("asking", None)
            if state.get("kind") == "installation":
                return self.installation_ready(turn, state, ticket, book, uow)
            return self.propose(turn, state, ticket, book, uow)
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

    def gather_turn(self, turn: Turn, state: dict, ticket: Ticket, book: TicketBook, uow: UnitOfWork) -> list[Message]:
        asking = state.get("asking")
        if state.get("offered_human") == asking and asking:
            state.pop("offered_human")
            if turn.intent == "request_human":
                reply = self.handoff_on(ticket, book, turn, state, "failed_fact")
                state.clear()
                state.update(reply.state)  # the conversation now waits for the person
                return reply.messages
            if turn.intent in ("deny", "affirm") or "/deny" == turn.text:
                state.setdefault("skipped", []).append(asking)
                return [self.msg("skip_fact", turn)] + self.next_question(turn, state, ticket, book, uow)
        out = self.absorb(turn, state, ticket, book, uow, as_account=False)
        refused = {self.t.get(key, turn.language) for key in ("order_not_yours", "order_other_product")}
        if any(m.text in refused for m in out):
            return out + self.fact_failed(turn, state, asking, ticket, book, uow, already_said=True)
        if asking and asking in self.missing_facts(state, ticket):
            ok, message = self.take_answer(turn, state, asking, ticket, book, uow)
            if message is not None:
                out.append(message)
            if not ok:
                if turn.intent in ONE_SHOT + ("bot_challenge", "greet", "thank", "out_of_scope"):
                    # A digression: answer it, then come back to the question.
                    answer = (self.one_shot(turn, turn.intent, state) if turn.intent in ONE_SHOT
                              else [self.msg(f"small_{turn.intent}", turn)])
                    return answer + [self.ask_fact(turn, asking, again=True)]
                return out + self.fact_failed(turn, state, asking, ticket, book, uow, already_said=message is not None)
        return out + self.next_question(turn, state, ticket, book, uow)

    def fact_failed(self, turn, state, fact, ticket, book, uow, already_said=False) -> list[Message]:
        fails = state.setdefault("fails", {})
        fails[fact] = fails.get(fact, 0) + 1
        if fails[fact] >= 2:
            state["offered_human"] = fact
            return [self.msg("offer_human_after_fails", turn,
                             [self.button("btn_human", turn, "/request_human"), self.button("btn_skip", turn, "/deny")])]
        return [] if already_said else [self.ask_fact(turn, fact, again=True)]

    def take_answer(self, turn, state, fact, ticket, book, uow) -> tuple[bool, Message | None]:
        """Read the answer to the question asked; (accepted, message to show)."""
        text = (turn.text or "").strip()
        now = turn.now
        if fact == "product":
            return False, self.msg("bad_product", turn)
        if fact == "symptom":
            if turn.detected is None or len(text) < 2 or turn.intent in ONE_SHOT:
                return False, None
            book.record_facts(ticket, {"symptom": text[:200]}, now, actor="customer")
            return True, None
        if fact == "model":
            if DONT_KNOW_RE.search(text):
                state.setdefault("skipped", []).append("model")
                return True, self.msg("model_skip_ok", turn)
            code = model_code(MODEL_LEAD_RE.sub("", text).strip(" .。,，"))
            code = code or model_code(MODEL_LEAD_RE.sub("", text).strip(" .。,，").upper())
            if code:  # the whole answer is a code (also typed in lower case)
                book.record_facts(ticket, self.model_facts(code, uow, ticket.product), now, actor="customer")
                return True, None
            return False, self.msg("bad_model", turn)
        if fact == "purchase":
            if DONT_KNOW_RE.search(text):
                state.setdefault("skipped", []).append("purchase")
                return True, self.msg("purchase_skip_ok", turn)
            order_id = turn.entity("order_id")
            if order_id:
                return False, self.msg("order_not_found", turn, order_id=order_id.upper())
            try:
                bought = self.tools.parse_date(text, self.local(now))
            except ValueError as err:
                code = getattr(err, "code", "invalid_date")
                return False, self.msg("bad_date_future" if code == "future" else "bad_date", turn)
            if bought is None:
                return False, self.msg("bad_purchase", turn)
            book.record_facts(ticket, {"purchase_date": bought}, now, actor="customer")
            return True, None
        if fact == "phone":
            if DIGITS_RE.search(text) or re.search(r"\d{5,}", text):
                return False, self.msg("bad_phone", turn)
            return False, None
        if fact == "address":
            if ADDRESS_RE.search(text) and len(text) >= 5 and turn.intent not in ONE_SHOT:
                book.record_facts(ticket, {"address": text[:300]}, now, actor="customer")
                return True, None
            return False, self.msg("bad_address", turn)
        if fact == "contact_time":
            if ANYTIME_RE.search(text):
                book.record_facts(ticket, {"contact_time": text[:120]}, now, actor="customer")
                return True, None
            try:
                when = self.tools.parse_when(text, self.local(now))
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
            book.record_facts(ticket, {"contact_time": (when.text or text)[:120]}, now, actor="customer")
            return True, None
        return False, None

    # step 4
    def propose(self, turn: Turn, state: dict, ticket: Ticket, book: TicketBook, uow: UnitOfWork) -> list[Message]:
        book.stamp_step(ticket, "propose", turn.now)
        out: list[Message] = []
        # Bring in a supervisor when the customer is very angry, safety is at stake, or it is a repeat complaint.
        reason = None
        if state.get("safety"):
            reason = "safety"
        elif state.get("max_anger", 0) >= self.settings.anger_escalation or state.get("anger_high_turns", 0) >= 2:
            reason = "anger"
        elif book.earlier_complaints(ticket) > 0:
            reason = "repeat_complaint"
        if reason:
            out.append(self.msg("supervisor_joins", turn))
            if reason != "safety":  # safety was queued the moment it was said
                out += self.queue_for_person(ticket, book, turn, reason)
        proposals = self.proposals(turn, state, ticket, book)
        state["proposals"] = proposals
        state["pidx"] = 0
        state["step"] = "opinion"
        out.append(self.proposal_message(turn, proposals[0], state))
        first = proposals[0]
        book.propose_remedy(ticket, first["kind"], first["clause_id"], first["clause"].get(ticket.language or "zh", ""),
                            turn.now)
        return out

    def proposals(self, turn: Turn, state: dict, ticket: Ticket, book: TicketBook) -> list[dict]:
        """The remedies to offer, best first, each with the policy clause that grants it."""
        category = ticket.product if ticket.product in self.tools.policy.categories() else None
        purchase = ticket.purchase
        start = ticket.purchase_date
        if category is None or start is None:
            clause = {"zh": self.t.get("clause_inspection", "zh"), "en": self.t.get("clause_inspection", "en")}
            return [{"kind": "inspection", "clause_id": "INSPECTION", "clause": clause, "fee": None}]
        today = self.local(turn.now).date()
        fault = "customer_damage" if state.get("customer_damage") else "quality"
        opened = not state.get("unopened") if purchase is None else (purchase.opened and not state.get("unopened"))
        used = opened if purchase is None else (purchase.used and not state.get("unopened"))
        case = WarrantyCase(category=category, purchase_date=start, today=max(today, start),
                            delivery_date=purchase.delivery_date if purchase else None, fault=fault,
                            opened=opened, used=used, prior_repairs_same_fault=book.prior_repairs(ticket))
        decision = evaluate(self.tools.policy, case)
        state["warranty"] = {"in_warranty": decision.in_warranty, "ends": decision.warranty_ends.isoformat(),
                             "policy": decision.policy_version}
        options = [{"kind": r.kind, "clause_id": r.clause_id, "clause": dict(r.clause),
                    "fee": {k: str(v) for k, v in (r.fee or {}).items()} or None} for r in decision.eligible]
        wanted = state.get("wants") or {"return": "return", "exchange": "exchange"}.get(state.get("kind"))
        if wanted:
            options.sort(key=lambda o: 0 if o["kind"] == wanted else 1)
            if not any(o["kind"] == wanted for o in options):
                reasons = [u.reason for u in decision.unavailable if u.kind == wanted]
                if reasons:
                    state["unavailable_note"] = reasons[0]
        guide = self.guide_for(ticket.product, ticket.symptom)
        if guide and state.get("kind") == "repair" and fault == "quality" and state.get("max_anger", 0) < 0.6:
            options.insert(0, {"kind": "self_check", "clause_id": "SELF-CHECK", "fee": None,
                               "clause": {"zh": self.t.get("clause_self_check", "zh"),
                                          "en": self.t.get("clause_self_check", "en")}})
        if not options:
            options = [{"kind": "inspection", "clause_id": "INSPECTION", "fee": None,
                        "clause": {"zh": self.t.get("clause_inspection", "zh"), "en": self.t.get("clause_inspection", "en")}}]
        return options

    def guide_for(self, category: str | None, symptom: str | None) -> dict | None:
        guides = self.tools.selfcheck.get("guides", {})
        if not symptom:
            return None
        return guides.get(f"{category}.{symptom}") or guides.get(f"*.{symptom}")

    def proposal_message(self, turn: Turn, option: dict, state: dict | None = None) -> Message:
        lang = turn.language
        kind = option["kind"]
        parts = []
        if state and state.get("unavailable_note"):
            parts.append(state.pop("unavailable_note")[lang])
        parts.append(self.t.get(f"remedy_{kind}", lang))
        if option.get("fee"):
            fee = option["fee"]
            parts.append(self.t.get("fee_line", lang, call_out=fee.get("call_out", "-"), labour=fee.get("labour", "-")))
        parts.append(self.t.get("clause_line", lang, clause_id=option["clause_id"], clause=option["clause"][lang]))
        parts.append(self.t.get("ask_opinion", lang))
        return Message("\n".join(parts), self.yes_no(turn, "btn_other_option"))

    # step 5
    def opinion_turn(self, turn: Turn, state: dict, ticket: Ticket, book: TicketBook, uow: UnitOfWork) -> list[Message]:
        proposals = state.get("proposals") or []
        current = proposals[state.get("pidx", 0)]
        if turn.intent == "affirm":
            book.stamp_step(ticket, "opinion", turn.now, actor="customer")
            if current["kind"] == "self_check":
                guide = self.guide_for(ticket.product, ticket.symptom) or {}
                steps = guide.get(turn.language, [])
                state["pidx"] = state.get("pidx", 0) + 1
                state["self_check_shown"] = True
                if state["pidx"] >= len(proposals):
                    return self.escalate(turn, state, ticket, book, "no_remedy")
                nxt = proposals[state["pidx"]]
                book.propose_remedy(ticket, nxt["kind"], nxt["clause_id"], nxt["clause"].get(turn.language, ""), turn.now)
                # 咨询后 2 小时回访: the call-back is promised here, and kept by the outbox.
                resume = {k: state.get(k) for k in ("kind", "proposals", "pidx", "max_anger")}
                call_back = self.promises(uow).self_check_call_back(ticket, turn.now, resume)
                listing = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
                promise = self.t.get("self_check_call_back_promised", turn.language,
                                     time=self.fmt_time(call_back.due_at, turn.language))
                return [Message(self.t.get("self_check_steps", turn.language) + "\n" + listing + "\n" + promise),
                        self.proposal_message(turn, nxt, state)]
            book.accept_remedy(ticket, current["kind"], current["clause_id"], turn.now)
            if current["kind"] in VISIT_KINDS and ticket.address and ticket.product:
                return self.offer_windows(turn, state, ticket, book, uow)
            return self.follow_up(turn, state, ticket, book)
        if turn.intent == "deny" or turn.intent in ("complain",) and turn.anger >= 0.5:
            book.reject_remedy(ticket, current["kind"], turn.now)
            if current["kind"] != "self_check":
                state["rejections"] = state.get("rejections", 0) + 1
            if state["rejections"] >= 2:
                book.stamp_step(ticket, "opinion", turn.now, actor="customer")
                return self.escalate(turn, state, ticket, book, "rejected_twice")
            state["pidx"] = state.get("pidx", 0) + 1
            if state["pidx"] >= len(proposals):
                book.stamp_step(ticket, "opinion", turn.now, actor="customer")
                return self.escalate(turn, state, ticket, book, "no_remedy")
            nxt = proposals[state["pidx"]]
            book.propose_remedy(ticket, nxt["kind"], nxt["clause_id"], nxt["clause"].get(turn.language, ""), turn.now)
            return [self.msg("next_best", turn), self.proposal_message(turn, nxt, state)]
        if turn.intent in ONE_SHOT:
            return self.one_shot(turn, turn.intent, state) + [self.msg("opinion_again", turn, self.yes_no(turn, "btn_other_option"))]
        out = self.absorb(turn, state, ticket, book, uow)
        return out + [self.msg("opinion_again", turn, self.yes_no(turn, "btn_other_option"))]

    def escalate(self, turn: Turn, state: dict, ticket: Ticket, book: TicketBook, reason: str) -> list[Message]:
        out = [self.msg(f"escalated_{reason}", turn)] + self.queue_for_person(ticket, book, turn, reason)
        return out + self.follow_up(turn, state, ticket, book, handed_off=True)

    # step 6
    def follow_up(self, turn: Turn, state: dict, ticket: Ticket, book: TicketBook, handed_off: bool = False) -> list[Message]:
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
                          time=self.window_label(visit, lang) if visit else "",
                          engineer=visit["engineer"][lang] if visit else "")
        state.clear()
        if handed_off:
            # A person takes it from here; the satisfaction question comes when they hand the chat back.
            state.update({"flow": "human", "ticket": ticket.number, "last_ticket": ticket.number})
            return [Message(text)]
        state.update({"flow": "survey", "last_ticket": ticket.number})
        return [Message(text), self.msg("survey_ask", turn, [Button(f"{n}", f"{n}") for n in (5, 4, 3, 2, 1)])]

    def survey_turn(self, turn: Turn, state: dict) -> Reply | None:
        text = (turn.text or "").strip()
        match = RATING_RE.search(text)
        if turn.intent in ("complain", "request_repair", "request_return", "request_exchange", "check_status",
                           "request_human", "request_installation", "reschedule_visit", "cancel_visit") and not match:
            return None
        score = int(match.group(1)) if match else None
        if score is None:
            if turn.intent in ("goodbye", "deny", "stop", "thank"):
                return Reply([self.msg("survey_skipped", turn)], {"last_ticket": state.get("last_ticket")})
            return None
        with self.tools.uow() as uow:
            book = self.book(uow)
            ticket = self.owned(uow, state.get("last_ticket"), turn)
            out = [self.msg("survey_thanks_low" if score <= 2 else "survey_thanks", turn)]
            if ticket is not None:
                book.record_satisfaction(ticket, score, turn.now)
                if score <= 2:  # the desk is alerted and a supervisor calls back (a promise the outbox keeps)
                    out.append(self.low_rating_in_chat(ticket, book, turn, uow))
                uow.commit()
        return Reply(out, {"last_ticket": state.get("last_ticket")})

    # ------------------------------------------------------------------ hand-off to a person
    def start_handoff(self, turn: Turn, state: dict, reason: str) -> Reply:
        with self.tools.uow() as uow:
            book = self.book(uow)
            ticket = self.owned(uow, state.get("ticket") or state.get("last_ticket"), turn)
            if ticket is not None and ticket.status in (TicketStatus.resolved.value, TicketStatus.closed.value):
                ticket = None  # that case is finished: asking for a person now is a new inquiry
            if ticket is None:
                ticket, _ = book.open(conversation_id=turn.conversation_id, channel=turn.channel, kind="inquiry",
                                      language=turn.language, now=turn.now)
                if turn.text and not turn.text.startswith("/"):
                    book.append_account(ticket, turn.text, turn.now)
            reply = self.handoff_on(ticket, book, turn, state, reason)
            uow.commit()
        return reply

    def desk(self, book: TicketBook):
        from bot.services.handoff import HandoffDesk, load_desk

        return HandoffDesk(book.session, load_desk(self.settings.seed_dir / "desk.yml"), self.settings.timezone,
                           self.settings.first_response_hours)

    def queue_for_person(self, ticket: Ticket, book: TicketBook, turn: Turn, reason: str, *, actor: str = "bot",
                         prefix: str = "queue") -> list[Message]:
        """Record the hand-off request on the ticket with its reason, put the conversation in the agents' queue
        (once: a conversation already waiting keeps its place) and say honestly where the customer stands: their
        place in the queue and the expected wait, or, out of hours or with nobody online, when we will call back
        (the callback is recorded on the hand-off and the ticket)."""
        book.request_handoff(ticket, reason, turn.now, actor=actor)
        desk = self.desk(book)
        handoff, _ = desk.request(ticket, reason=reason, now=turn.now, conversation_id=turn.conversation_id,
                                  channel=turn.channel, language=turn.language, anger=turn.anger, actor=actor)
        status = desk.queue_status(handoff, turn.now)
        if status.staffed and status.position:
            return [self.msg(f"{prefix}_queued", turn, number=ticket.number, position=status.position,
                             minutes=status.expected_wait_minutes)]
        due = desk.offer_callback(handoff, turn.now, "nobody_online" if status.open_now else "out_of_hours")
        key = f"{prefix}_callback_nobody" if status.open_now else f"{prefix}_callback_closed"
        return [self.msg(key, turn, number=ticket.number, callback=self.fmt_time(due, turn.language))]

    def handoff_on(self, ticket: Ticket, book: TicketBook, turn: Turn, state: dict, reason: str) -> Reply:
        """The customer goes to a person now (they asked, or a fact could not be had twice): queue the
        conversation, tell them where they stand, and wait in the "human" flow."""
        actor = "customer" if reason == "customer_request" else "bot"
        messages = self.queue_for_person(ticket, book, turn, reason, actor=actor, prefix="handoff")
        if not ticket.phone:
            messages.append(self.msg("handoff_ask_phone", turn))
        new_state = {"flow": "human", "ticket": ticket.number, "last_ticket": ticket.number}
        return Reply(messages, new_state)

    def human_turn(self, turn: Turn, state: dict) -> Reply:
        """Waiting for a person: everything the customer writes is kept on the ticket (and stays in the tracker),
        and they hear where they stand. Once an agent takes over, Rasa is paused and this is not called."""
        carry_on: dict = {}
        with self.tools.uow() as uow:
            book = self.book(uow)
            ticket = self.owned(uow, state.get("ticket"), turn)
            desk = self.desk(book)
            handoff = desk.open_for(turn.conversation_id) if ticket is not None else None
            if handoff is None:
                # The ticket is gone, or the desk closed the request meanwhile: the bot carries on, once this unit
                # of work has ended (SQLite has one writer at a time).
                carry_on = {"last_ticket": ticket.number} if ticket is not None else {}
                reply = None
            elif turn.intent == "stop":
                if turn.text and not turn.text.startswith("/"):
                    book.append_account(ticket, turn.text, turn.now)
                desk.withdraw(handoff, turn.now)
                reply = Reply([self.msg("handoff_cancelled", turn)], {"last_ticket": ticket.number})
            else:
                if turn.text and not turn.text.startswith("/"):
                    book.append_account(ticket, turn.text, turn.now)
                phone = phones.normalize(turn.entity("phone"))
                if phone:
                    book.record_facts(ticket, {"phone": phone}, turn.now, actor="customer")
                    out = [self.msg("handoff_phone_noted", turn)]
                else:
                    status = desk.queue_status(handoff, turn.now)
                    if status.staffed and status.position:
                        out = [self.msg("handoff_kept_position", turn, position=status.position,
                                        minutes=status.expected_wait_minutes)]
                    else:
                        due = desk.offer_callback(handoff, turn.now,
                                                  "nobody_online" if status.open_now else "out_of_hours")
                        out = [self.msg("handoff_kept_callback", turn, callback=self.fmt_time(due, turn.language))]
                reply = Reply(out, state)
            uow.commit()
        return reply if reply is not None else self.idle_turn(turn, carry_on)

    # ------------------------------------------------------------------ status look-up
    def status_turn(self, turn: Turn, state: dict, first: bool = False) -> Reply:
        number = turn.entity("ticket_number")
        phone = phones.normalize(turn.entity("phone"))
        order_id = turn.entity("order_id")
        if number:
            state["number"] = number.upper()
        if phone:
            state["phone"] = phone
        if order_id:
            state["order_id"] = order_id.upper()
        if not (number or phone or order_id) and not first:
            if turn.intent in NEW_REQUESTS and turn.intent != "check_status":
                return self.idle_turn(turn, {"last_ticket": state["last_ticket"]} if state.get("last_ticket") else {})
            if turn.intent in ("deny", "stop"):
                return Reply([self.msg("status_stopped", turn)], {k: v for k, v in state.items() if k == "last_ticket"})
            state["status_fails"] = state.get("status_fails", 0) + 1
            if state["status_fails"] >= 2:
                keep = {"last_ticket": state.get("last_ticket")} if state.get("last_ticket") else {}
                return Reply([self.msg("status_offer_human", turn, [self.button("btn_human", turn, "/request_human")])], keep)
            return Reply([self.msg("status_ask", turn)], state)
        with self.tools.uow() as uow:
            book = self.book(uow)
            found: list[Ticket] = []
            if state.get("number") or state.get("phone"):
                found, ask = self.prove_tickets(uow, book, turn, number=state.get("number"), phone=state.get("phone"),
                                                order_id=state.get("order_id"))
                uow.commit()  # a proof, or a failed attempt, is kept whatever is answered
                if ask == "status_mismatch":
                    return self.status_mismatch(turn, state)
                if ask == "lookup_locked":
                    return Reply([self.msg(ask, turn)], {"last_ticket": state["last_ticket"]}
                                 if state.get("last_ticket") else {})
                if ask:
                    return Reply([self.msg(ask, turn)], state)
            else:
                if not first:
                    return Reply([self.msg("status_need_phone", turn)], state)
                mine = [t for t in book.of_conversation(turn.conversation_id)]
                if mine:
                    found = mine[-1:]
                else:
                    return Reply([self.msg("status_ask", turn)], state)
            out = [self.status_message(turn, t) for t in found[:3]]
            return Reply(out, {"last_ticket": found[0].number})

    def prove_tickets(self, uow: UnitOfWork, book: TicketBook, turn: Turn, *, number: str | None,
                      phone: str | None, order_id: str | None) -> tuple[list[Ticket], str | None]:
        """The tickets this conversation may see: its own by number, or another's proved with the phone plus the
        ticket or order number (the proof is recorded in the database). Otherwise what to ask or say
        (status_need_phone, status_need_second, status_mismatch, lookup_locked). Failed attempts are counted per
        ticket, client address and conversation; the caller commits."""
        own = Ownership(uow.session)
        ticket = book.get(number) if number else None
        if own.owns(ticket, turn.conversation_id):
            return [ticket], None
        scope = dict(ticket_number=number, address=turn.client, conversation_id=turn.conversation_id, now=turn.now)
        if own.blocked(**scope):
            return [], "lookup_locked"
        if number:
            if ticket is not None and not phone:
                return [], "status_need_phone"
            if ticket is not None and book.visible_to(ticket, phone=phone):
                own.grant(ticket, turn.conversation_id, "phone+number", turn.now)
                return [ticket], None
            own.failed(**scope)
            return [], "status_mismatch"
        if not phone:
            return [], None
        if not order_id:
            return [], "status_need_second"
        found = book.find_by_phone(phone, order_id=order_id)
        if not found:
            own.failed(**scope)
            return [], "status_mismatch"
        for each in found:
            own.grant(each, turn.conversation_id, "phone+order", turn.now)
        return found, None

    def owned(self, uow: UnitOfWork, number: str | None, turn: Turn) -> Ticket | None:
        """The ticket named in the script's state, if this conversation may use it (re-read on every turn)."""
        return Ownership(uow.session).owned(number, turn.conversation_id)

    def status_mismatch(self, turn: Turn, state: dict) -> Reply:
        state["status_fails"] = state.get("status_fails", 0) + 1
        for key in ("number", "phone", "order_id"):
            state.pop(key, None)
        if state["status_fails"] >= 2:
            return Reply([self.msg("status_mismatch", turn), self.msg("status_offer_human", turn,
                          [self.button("btn_human", turn, "/request_human")])], {})
        return Reply([self.msg("status_mismatch", turn)], state)

    def status_message(self, turn: Turn, ticket: Ticket) -> Message:
        lang = turn.language
        lines = [self.t.get("status_line", lang, number=ticket.number,
                            kind=self.t.get(f"kind_{ticket.kind}", lang),
                            status=self.t.get(f"status_{ticket.status}", lang),
                            product=self.product_name(ticket.product, lang))]
        if ticket.remedy_accepted:
            lines.append(self.t.get("status_remedy", lang, remedy=self.t.get(f"remedy_name_{ticket.remedy_accepted}", lang)))
        if ticket.follow_up_due:
            lines.append(self.t.get("status_follow_up", lang, when=self.fmt_time(ticket.follow_up_due, lang)))
        if ticket.handoff_requested:
            lines.append(self.t.get("status_handoff", lang))
        return Message("\n".join(lines))

    # ------------------------------------------------------------------ one-shot answers
    def one_shot(self, turn: Turn, intent: str, state: dict) -> list[Message]:
        lang = turn.language
        product = turn.entity("product")
        policy = self.tools.policy
        if intent == "ask_warranty":
            windows = policy.windows()
            general = self.t.get("warranty_general", lang, no_reason=windows["no_reason_return_days"],
                                 quality=windows["quality_return_days"])
            if product in policy.categories():
                terms = policy.category_terms(product)
                months = policy.warranty_months(product)
                parts = ", ".join(f"{self.t.get(f'part_{p}', lang) if f'part_{p}' in self.t else p} {m}"
                                  for p, m in self.part_months(terms).items())
                extra = self.t.get("warranty_product", lang, product=self.product_name(product, lang), months=months,
                                   parts=parts or "-")
            else:
                extra = self.t.get("warranty_which_product", lang)
            return [Message(general + "\n" + extra, self.remedy_buttons(turn))]
        if intent == "ask_fee":
            if product in policy.categories():
                fees = policy.fee_schedule(product)
                return [self.msg("fee_product", turn, product=self.product_name(product, lang),
                                 call_out=fees.get("call_out", "-"), labour=self.labour_text(fees))]
            return [self.msg("fee_general", turn)]
        if intent == "usage_help":
            reading = problem_lexicon.read_problem(turn.text, self.lexicon)
            for symptom in reading.symptoms:
                guide = self.guide_for(product, symptom)
                if guide:
                    listing = "\n".join(f"{i}. {s}" for i, s in enumerate(guide[lang], 1))
                    return [Message(self.t.get("self_check_steps", lang) + "\n" + listing),
                            self.msg("self_check_after", turn, [self.button("btn_repair", turn, "/request_repair")])]
            if product in CATEGORIES:
                topics = [key.split(".", 1)[1] for key in self.tools.selfcheck.get("guides", {})
                          if key.split(".", 1)[0] in (product, "*")]
                name = self.product_name(product, lang)
                buttons = [Button(problem_lexicon.symptom_label(s, lang, self.lexicon),
                                  f"{name} {problem_lexicon.symptom_label(s, lang, self.lexicon)}") for s in topics]
                if buttons:
                    return [self.msg("usage_pick_topic", turn, buttons, product=name)]
            return [self.msg("usage_need_detail", turn)]
        if intent == "ask_service_center":
            centres = self.tools.centres
            text = turn.text or ""
            chosen = [c for c in centres["centres"] if c["city"]["zh"] in text or c["city"]["en"].lower() in text.lower()]
            rows = chosen or centres["centres"]
            lines = [f"{c['name'][lang]}：{c['address'][lang]}，{c['phone']}" if lang == "zh"
                     else f"{c['name'][lang]}: {c['address'][lang]}, {c['phone']}" for c in rows]
            return [Message(self.t.get("centres_intro", lang, hotline=centres["hotline"], hours=centres["hours"][lang])
                            + "\n" + "\n".join(lines))]
        return []

    @staticmethod
    def part_months(terms) -> dict:
        parts = getattr(terms, "parts", None) or {}
        return {name: (p if isinstance(p, int) else getattr(p, "months", p)) for name, p in parts.items()}

    @staticmethod
    def labour_text(fees: dict) -> str:
        labour = fees.get("labour")
        if isinstance(labour, dict):
            values = [str(v) for v in labour.values()]
            return "-".join([min(values, key=float), max(values, key=float)]) if values else "-"
        return str(labour or "-")

    def feedback(self, turn: Turn, state: dict) -> list[Message]:
        match = RATING_RE.search(turn.text or "")
        if match and state.get("last_ticket"):
            with self.tools.uow() as uow:
                book = self.book(uow)
                ticket = self.owned(uow, state["last_ticket"], turn)
                if ticket is not None:
                    book.record_satisfaction(ticket, int(match.group(1)), turn.now)
                    uow.commit()
        return [self.msg("feedback_thanks", turn)]

