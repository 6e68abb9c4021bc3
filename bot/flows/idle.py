"""The idle flow: no flow is open, so the intent (or what the message says about a fault) picks one; small
talk, unsure readings (a clarifying question with the likeliest intents as buttons) and ratings given unasked.
"""
from __future__ import annotations

from dataclasses import replace

from bot.flows.base import Flow
from bot.flows.words import PROBLEM_KINDS, ONE_SHOT, SHOP_RE, RATING_RE
from bot.nlu import clarify
from bot.services import problems as problem_lexicon
from bot.services.conversation import Button, Message, Reply, Turn
from bot.services.nlu_review import TEXT_MAX as TEXT_KEPT, record_choice
from bot.services.problem_kind import decide_kind

class IdleFlow(Flow):

    def handle(self, turn: Turn, state: dict) -> Reply:
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
            intent = "complain" if turn.anger >= self.tuning.anger_upset else "request_repair"
        if intent in PROBLEM_KINDS:
            # issue 16: complaint or repair from what the customer says (harm, feelings), not the intent alone
            kind = decide_kind(turn.text, intent, anger=turn.anger, entities=turn.entities, reading=reading).kind
            return self.script.requests.start_problem(turn, state, kind)
        if intent == "request_installation":
            return self.script.requests.start_installation(turn, state)
        if intent == "check_status":
            state.update(flow="status", status_fails=0)
            return self.script.status.handle(turn, state, first=True)
        if intent in ("reschedule_visit", "cancel_visit"):
            return self.script.visit_change.start(turn, state, intent)
        if intent == "request_human":
            return self.script.handoff.start(turn, state, reason="customer_request")
        if intent in ONE_SHOT:
            return Reply(self.script.answers.one_shot(turn, intent, state), state)
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
        if state["fallbacks"] >= self.tuning.fallbacks_before_person:
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
