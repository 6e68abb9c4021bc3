"""The "status" flow: look up a ticket, this conversation's own or another proved with the phone plus the ticket
or order number; failed proofs are counted and locked out (bot/services/ownership.py).
"""
from __future__ import annotations

from bot.flows.base import Flow
from bot.flows.state import keep_last_ticket
from bot.flows.words import NEW_REQUESTS
from bot.nlu import phones
from bot.services.conversation import Message, Reply, Turn
from bot.services.ownership import Ownership
from bot.services.tickets import TicketBook
from bot.store.db import UnitOfWork
from bot.store.models import Ticket

class StatusFlow(Flow):

    def handle(self, turn: Turn, state: dict, first: bool = False) -> Reply:
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
                return self.script.idle.handle(turn, keep_last_ticket(state))
            if turn.intent in ("deny", "stop"):
                return Reply([self.msg("status_stopped", turn)], {k: v for k, v in state.items() if k == "last_ticket"})
            state["status_fails"] = state.get("status_fails", 0) + 1
            if state["status_fails"] >= self.tuning.status_failures_before_person:
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

    def status_mismatch(self, turn: Turn, state: dict) -> Reply:
        state["status_fails"] = state.get("status_fails", 0) + 1
        for key in ("number", "phone", "order_id"):
            state.pop(key, None)
        if state["status_fails"] >= self.tuning.status_failures_before_person:
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
