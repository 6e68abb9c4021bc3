"""Who may see and change a ticket (issue 18, "customers kept apart").

A ticket belongs to the conversation that opened it (`tickets.conversation_id`). Another conversation may see and
change it only after proving it with the ticket's phone plus a second fact (the order number or the ticket
number); the proof is kept in `ticket_access`, so it is read from the database on every turn, never from the
script's state. Failed attempts are counted in `lookup_attempts` per ticket and per client address (and per
conversation) over a sliding window; once a scope has too many, look-ups in it are refused until the window has
passed. Counted in the database, the limits hold across server instances and cannot be reset by a new sender.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bot.store.models import LookupAttempt, Ticket, TicketAccess


@dataclass(frozen=True)
class LookupLimits:
    per_ticket: int = 5  # failed attempts on one ticket within the window
    per_address: int = 10  # failed attempts from one client address
    per_conversation: int = 10
    window: timedelta = timedelta(hours=1)


def scopes(*, ticket_number: str | None, address: str | None, conversation_id: str) -> list[tuple[str, int]]:
    return [(f"ticket:{ticket_number.upper()}", 0) if ticket_number else None,
            (f"address:{address}", 1) if address else None,
            (f"conversation:{conversation_id}", 2)]


class Ownership:
    def __init__(self, session: Session, limits: LookupLimits = LookupLimits()):
        self.session = session
        self.limits = limits

    def _limit(self, kind: int) -> int:
        return (self.limits.per_ticket, self.limits.per_address, self.limits.per_conversation)[kind]

    def owns(self, ticket: Ticket | None, conversation_id: str) -> bool:
        """Whether `conversation_id` may see and change `ticket`: it opened it, or proved it earlier."""
        if ticket is None:
            return False
        if ticket.conversation_id == conversation_id:
            return True
        return self.session.execute(
            select(TicketAccess.id).where(TicketAccess.ticket_id == ticket.id,
                                          TicketAccess.conversation_id == conversation_id)).first() is not None

    def owned(self, number: str | None, conversation_id: str) -> Ticket | None:
        """The ticket `number` if this conversation may use it, else None (a number from the script's state is
        never trusted on its own)."""
        if not number:
            return None
        ticket = self.session.execute(select(Ticket).where(Ticket.number == str(number).upper())).scalar_one_or_none()
        return ticket if self.owns(ticket, conversation_id) else None

    def grant(self, ticket: Ticket, conversation_id: str, method: str, now: datetime) -> None:
        if self.owns(ticket, conversation_id):
            return
        self.session.add(TicketAccess(conversation_id=conversation_id, ticket_id=ticket.id, method=method,
                                      created_at=now))
        self.session.flush()

    def blocked(self, *, ticket_number: str | None, address: str | None, conversation_id: str,
                now: datetime) -> bool:
        """True when any of the scopes has used up its failed attempts within the window."""
        since = now - self.limits.window
        for scope in scopes(ticket_number=ticket_number, address=address, conversation_id=conversation_id):
            if scope is None:
                continue
            name, kind = scope
            count = self.session.execute(select(func.count(LookupAttempt.id)).where(
                LookupAttempt.scope == name, LookupAttempt.at > since)).scalar_one()
            if count >= self._limit(kind):
                return True
        return False

    def failed(self, *, ticket_number: str | None, address: str | None, conversation_id: str,
               now: datetime) -> None:
        """Count a failed attempt in every scope (the caller commits, whatever else it does)."""
        for scope in scopes(ticket_number=ticket_number, address=address, conversation_id=conversation_id):
            if scope is not None:
                self.session.add(LookupAttempt(scope=scope[0], at=now))
        # Old attempts say nothing any more.
        self.session.execute(delete(LookupAttempt).where(LookupAttempt.at < now - 2 * self.limits.window))
        self.session.flush()
