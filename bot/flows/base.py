"""What every flow shares: the tools, the texts, and the few ways of saying things (a message, a button, the
menu, a time) and of reaching the records (the ticket book, the hand-off desk, the tickets this conversation may
use). A flow reaches the other flows through `self.script` (bot/flows/dispatcher.py)."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from bot.services.conversation import Button, Message, Turn
from bot.services.ownership import Ownership
from bot.services.tickets import SLA, TicketBook, as_utc
from bot.store.db import UnitOfWork
from bot.store.models import Ticket

if TYPE_CHECKING:
    from bot.flows.dispatcher import Script


class Flow:
    def __init__(self, script: "Script"):
        self.script = script
        self.tools = script.tools
        self.t = script.tools.texts
        self.settings = script.tools.settings
        self.tuning = script.tuning
        self.lexicon = script.lexicon

    # ------------------------------------------------------------------ saying
    def msg(self, key: str, turn: Turn, buttons: list[Button] | None = None, **values) -> Message:
        return Message(self.t.get(key, turn.language, **values), buttons or [])

    def button(self, key: str, turn: Turn, payload: str) -> Button:
        return Button(self.t.get(key, turn.language), payload)

    def yes_no(self, turn: Turn, no_key: str = "btn_no") -> list[Button]:
        return [self.button("btn_yes", turn, "/affirm"), self.button(no_key, turn, "/deny")]

    def menu(self, turn: Turn) -> list[Button]:
        return [self.button("btn_complain", turn, "/complain"), self.button("btn_repair", turn, "/request_repair"),
                self.button("btn_status", turn, "/check_status"), self.button("btn_human", turn, "/request_human")]

    def product_name(self, category: str | None, lang: str) -> str:
        if not category:
            return self.t.get("product_unknown", lang)
        key = f"product_{category}"
        return self.t.get(key, lang) if key in self.t else category

    def local(self, moment: datetime) -> datetime:
        return as_utc(moment).astimezone(self.settings.timezone)

    def fmt_time(self, moment: datetime, lang: str) -> str:
        local = self.local(moment)
        if lang == "zh":
            return f"{local.month}月{local.day}日 {local:%H:%M}"
        return local.strftime("%d %b %H:%M").lstrip("0")

    # ------------------------------------------------------------------ records
    def book(self, uow: UnitOfWork) -> TicketBook:
        return TicketBook(uow.session, self.settings.timezone,
                          SLA(self.settings.first_response_hours, self.settings.resolution_hours))

    def desk(self, book: TicketBook):
        from bot.services.handoff import HandoffDesk, load_desk

        return HandoffDesk(book.session, load_desk(self.settings.seed_dir / "desk.yml"), self.settings.timezone,
                           self.settings.first_response_hours)

    def owned(self, uow: UnitOfWork, number: str | None, turn: Turn) -> Ticket | None:
        """The ticket named in the script's state, if this conversation may use it (re-read on every turn)."""
        return Ownership(uow.session).owned(number, turn.conversation_id)
