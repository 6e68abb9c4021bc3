"""What the script answers whatever flow is open: an empty message, a message in another language, "can we
continue in English?", and the polite restart when the slot holds a state this version cannot continue."""
from __future__ import annotations

import re

from bot.flows.base import Flow
from bot.services.conversation import Message, Reply, Turn

LANG_SWITCH_RE = re.compile(r"(\b(in|speak|use|switch to|reply in) english\b|\benglish,? please\b|"
                            r"(说|讲|用|换成|改成)中文|中文(吧|可以吗|行吗|好吗)|\bin chinese\b)", re.IGNORECASE)


class Interruptions(Flow):
    def handle(self, turn: Turn, state: dict) -> Reply | None:
        """A reply when the message interrupts the flow; None to let the flow (or the idle flow) have it."""
        text = (turn.text or "").strip()
        if not text and not turn.intent:
            return self.empty(turn, state)
        if (turn.detected == "other" and not turn.entities
                and (turn.detected_confidence >= 0.8
                     or turn.intent not in ("affirm", "deny", "greet", "goodbye", "thank"))):
            return self.other_language(turn, state, text)
        if LANG_SWITCH_RE.search(text) and not turn.entities and len(text) <= 80:
            return self.language_switched(turn, state)
        return None

    def empty(self, turn: Turn, state: dict) -> Reply:
        out = [self.msg("empty_message", turn)]
        if state.get("flow"):
            out.extend(self.reprompt(turn, state))
        return Reply(out, state)

    def other_language(self, turn: Turn, state: dict, text: str) -> Reply:
        """Another language: answer in both, lose nothing (the text is kept in the tracker and on the ticket)."""
        out = [Message(self.t.get("other_language", "zh") + "\n" + self.t.get("other_language", "en"))]
        if state.get("flow") == "complaint" and state.get("ticket"):
            with self.tools.uow() as uow:
                book = self.book(uow)
                ticket = self.owned(uow, state["ticket"], turn)
                if ticket is not None:
                    book.append_account(ticket, text, turn.now)
                    uow.commit()
        return Reply(out, state)

    def language_switched(self, turn: Turn, state: dict) -> Reply:
        """"Can we continue in English?" is not an answer to anything: switch, and ask again in that language."""
        flow = state.get("flow")
        out = [self.msg("language_switched", turn)]
        if flow == "complaint" and state.get("step") == "confirm" and state.get("ticket"):
            with self.tools.uow() as uow:
                ticket = self.owned(uow, state["ticket"], turn)
                if ticket is not None:
                    out.append(Message(self.script.complaint.restatement(ticket, turn.language),
                                       self.yes_no(turn, "btn_not_quite")))
                    return Reply(out, state)
        again = self.reprompt(turn, state) if flow else []
        out.extend(again or [self.msg("how_can_i_help", turn, self.menu(turn))])
        return Reply(out, state)

    def reprompt(self, turn: Turn, state: dict) -> list[Message]:
        """Ask again whatever the open flow is waiting for."""
        flow = state.get("flow")
        if flow == "complaint":
            step = state.get("step")
            if step == "gather" and state.get("asking"):
                return [self.script.facts.ask_fact(turn, state["asking"], again=True)]
            if step == "confirm":
                return [self.msg("confirm_again", turn, self.yes_no(turn, "btn_not_quite"))]
            if step == "opinion":
                return [self.msg("opinion_again", turn, self.yes_no(turn, "btn_other_option"))]
            if step == "vent":
                return [self.msg("vent_go_on", turn)]
        if flow == "status":
            return [self.msg("status_ask", turn)]
        return []

    def restart(self, turn: Turn, keep: dict) -> Reply:
        """The state cannot be continued: apologise, and offer the menu (the last ticket is kept for a look-up)."""
        return Reply([self.msg("flow_restarted", turn, self.menu(turn))], dict(keep))
