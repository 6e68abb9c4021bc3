"""The "human" flow: hand the conversation to a person (queue or call-back), and keep what the customer writes
while they wait. Once an agent takes over, Rasa is paused and this flow is not called.
"""
from __future__ import annotations


from bot.flows.base import Flow
from bot.nlu import phones
from bot.services.conversation import Message, Reply, Turn
from bot.services.tickets import TicketBook
from bot.store.models import Ticket, TicketStatus

class HandoffFlow(Flow):

    def start(self, turn: Turn, state: dict, reason: str) -> Reply:
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

    def handoff_on(self, ticket: Ticket, book: TicketBook, turn: Turn, state: dict, reason: str) -> Reply:
        """The customer goes to a person now (they asked, or a fact could not be had twice): queue the
        conversation, tell them where they stand, and wait in the "human" flow."""
        actor = "customer" if reason == "customer_request" else "bot"
        messages = self.queue_for_person(ticket, book, turn, reason, actor=actor, prefix="handoff")
        if not ticket.phone:
            messages.append(self.msg("handoff_ask_phone", turn))
        new_state = {"flow": "human", "ticket": ticket.number, "last_ticket": ticket.number}
        return Reply(messages, new_state)

    def handle(self, turn: Turn, state: dict) -> Reply:
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
        return reply if reply is not None else self.script.idle.handle(turn, carry_on)

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
