"""What the script works with, built once by bootstrap and passed in."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from bot.services.visits import Roster
from bot.services.warranty import WarrantyPolicy
from bot.settings import Settings
from bot.store.db import UnitOfWork
from bot.texts import Texts


@dataclass(frozen=True)
class Tools:
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
    tuning: Any = None  # Tuning (data/seed/script.yml, bot/flows/tuning.py); None: read from the seed directory
