"""Opening a request: a complaint, a repair, return or exchange request opens the complaint script at step 1; an
installation request goes straight to the facts, then to a visit once the appliance has been delivered.
"""
from __future__ import annotations

from bot.flows.base import Flow
from bot.flows.context import TurnContext
from bot.flows.state import ComplaintStep
from bot.services.conversation import Message, Reply, Turn
from bot.services.records import Records
from bot.services.visits import VisitError, check_installable
from bot.store.models import TicketStatus

class RequestFlow(Flow):

    def start_problem(self, turn: Turn, state: dict, kind: str) -> Reply:
        now = turn.now
        with self.tools.uow() as uow:
            book = self.book(uow)
            ticket, _created = book.open(conversation_id=turn.conversation_id, channel=turn.channel, kind=kind,
                                         language=turn.language, now=now)
            if ticket.status == TicketStatus.new.value:
                book.set_status(ticket, TicketStatus.in_progress.value, now, note="conversation started")
            state = {"flow": "complaint", "ticket": ticket.number, "kind": kind, "step": ComplaintStep.vent.value,
                     "vent_turns": 0, "fails": {}, "rejections": 0, "anger_high_turns": 0, "max_anger": 0.0}
            book.stamp_step(ticket, "vent", now)
            ctx = TurnContext(turn, state, ticket, book, uow)
            out = self.script.facts.absorb(ctx)
            if (turn.text or "").startswith("/"):  # a menu button: nothing told yet, invite the story
                out.append(self.msg("vent_invite", turn))
            elif (kind == "complaint" and not state.get("safety")
                  and not self.script.complaint.vent_finished(turn, state, first=True)):
                state["vent_turns"] = 1
                out.append(Message(self.t.variants("vent_ack", turn.language)[0]))
            else:
                out.extend(self.script.complaint.apologise(ctx))
            uow.commit()
        return Reply(out, state)

    def start_installation(self, turn: Turn, state: dict) -> Reply:
        with self.tools.uow() as uow:
            book = self.book(uow)
            ticket, _ = book.open(conversation_id=turn.conversation_id, channel=turn.channel, kind="installation",
                                  language=turn.language, now=turn.now)
            if ticket.status == TicketStatus.new.value:
                book.set_status(ticket, TicketStatus.in_progress.value, turn.now, note="installation requested")
            state = {"flow": "complaint", "ticket": ticket.number, "kind": "installation",
                     "step": ComplaintStep.gather.value, "fails": {}, "skipped": [], "rejections": 0, "max_anger": 0.0}
            ctx = TurnContext(turn, state, ticket, book, uow)
            out = self.script.facts.absorb(ctx)
            book.stamp_step(ticket, "gather", turn.now)
            out += [self.msg("installation_intro", turn)] + self.script.facts.next_question(ctx)
            uow.commit()
        return Reply(out, state)

    def installation_ready(self, ctx: TurnContext) -> list[Message]:
        """All installation facts gathered: the appliance must have been delivered before a visit is booked."""
        turn, state, ticket, book, uow = ctx
        purchase = ticket.purchase
        if purchase is None and ticket.order_id:
            purchase = Records(uow.session).purchase_by_order(ticket.order_id)
        if purchase is None:
            queued = self.script.handoff.queue_for_person(ticket, book, turn, "installation_no_order")
            return ([self.msg("installation_need_order", turn)] + queued
                    + self.script.complaint.follow_up(ctx, handed_off=True))
        try:
            check_installable(purchase.delivery_date, self.local(turn.now).date())
        except VisitError:
            book.set_status(ticket, TicketStatus.awaiting_customer.value, turn.now, note="not delivered yet")
            state.clear()
            state.update({"last_ticket": ticket.number})
            return [self.msg("installation_not_delivered", turn, number=ticket.number)]
        if not ticket.product:
            book.record_facts(ticket, {"product": purchase.product.category}, turn.now)
        book.stamp_step(ticket, "propose", turn.now)
        book.propose_remedy(ticket, "installation", "INSTALL-FREE", self.t.get("clause_installation", ticket.language),
                            turn.now)
        book.accept_remedy(ticket, "installation", "INSTALL-FREE", turn.now)
        return self.script.visit.offer_windows(ctx)
