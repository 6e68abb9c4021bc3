"""The "survey" flow: the satisfaction question at the end of a conversation (after the follow-up, or when a person
hands the conversation back: `after_handoff`), and the desk alert on a low score.
"""
from __future__ import annotations


from bot.flows.base import Flow
from bot.flows.words import RATING_RE
from bot.services.conversation import Message, Reply, Turn
from bot.services.promises import low_satisfaction
from bot.services.takeover import ANYTHING_ELSE, nothing_else
from bot.flows.handback import survey_ask

class SurveyFlow(Flow):

    def handle(self, turn: Turn, state: dict) -> Reply | None:
        text = (turn.text or "").strip()
        match = RATING_RE.search(text)
        if turn.intent in ("complain", "request_repair", "request_return", "request_exchange", "check_status",
                           "request_human", "request_installation", "reschedule_visit", "cancel_visit") and not match:
            return None
        score = int(match.group(1)) if match else None
        if score is None and state.get("step") == ANYTHING_ELSE:  # issue 16: after a hand-back, one question at a time
            if nothing_else(text, turn.intent):
                return Reply([survey_ask(self.t, turn.language)],
                             {"flow": "survey", "last_ticket": state.get("last_ticket")})
            return None
        if score is None:
            if turn.intent in ("goodbye", "deny", "stop", "thank"):
                return Reply([self.msg("survey_skipped", turn)], {"last_ticket": state.get("last_ticket")})
            return None
        with self.tools.uow() as uow:
            book = self.book(uow)
            ticket = self.owned(uow, state.get("last_ticket"), turn)
            out = [self.msg("survey_thanks_low" if score <= self.tuning.low_rating else "survey_thanks", turn)]
            if ticket is not None:
                book.record_satisfaction(ticket, score, turn.now)
                if score <= self.tuning.low_rating:  # the desk is alerted; a supervisor calls back (the outbox)
                    out.append(self.low_rating_in_chat(ticket, book, turn, uow))
                uow.commit()
        return Reply(out, {"last_ticket": state.get("last_ticket")})

    def low_rating_in_chat(self, ticket, book, turn: Turn, uow) -> Message:
        """A 1-2 at the end of a conversation: the desk is alerted and a supervisor's call-back promised."""
        due = self.desk(book).callback_time(turn.now)
        config = self.script.promise.outbox_config
        low_satisfaction(uow.session, ticket, turn.now, tz=self.settings.timezone, config=config,
                         callback_time=due, why="low rating")
        return self.msg("survey_low_call_back", turn, time=self.fmt_time(due, turn.language))
