"""The one per-turn context a flow step works with: the message, the script state, the ticket, the ticket book and
the unit of work of this turn (instead of five parameters passed from step to step)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator

from bot.services.conversation import Turn


@dataclass
class TurnContext:
    turn: Turn
    state: dict  # the flow's state as kept in the `flow_state` slot (bot/flows/state.py types and versions it)
    ticket: object  # bot.store.models.Ticket
    book: object  # bot.services.tickets.TicketBook
    uow: object  # bot.store.db.UnitOfWork

    def __iter__(self) -> Iterator:
        """`turn, state, ticket, book, uow = ctx` in a step that uses all five."""
        return iter((self.turn, self.state, self.ticket, self.book, self.uow))

    def with_state(self, state: dict) -> "TurnContext":
        return replace(self, state=state)
