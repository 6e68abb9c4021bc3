"""A month of synthetic service-desk activity (four ISO weeks, five tickets a day), written through the services.

The pattern of each day is fixed, so the report's figures can be worked out by hand (tests/test_desk_loops.py does);
the seeded random generator only chooses what does not move a figure: the customer's language, name and words.

    T0 complaint  telegram fridge           bot resolves it in 20 min; rated 5 on even days
    T1 repair     rest     washing_machine  visit booked: even days next day 14:00-16:00 (27 h after opening), odd
                                            days two days later 09:00-11:00 (46 h); marked done (the ticket resolves,
                                            rated 4), except days 3, 10, 17, 24: no-show (stays open); days 5, 12, 19,
                                            26 the engineer is marked 20 minutes late first
    T2 inquiry    webchat  tv               bot resolves it in 10 min; a follow-up was due the next day (resolved
                                            tickets are not omitted)
    T3 complaint  webchat  fridge           handed to a person (anger): alice takes it after 30 min on even days,
                                            bob after 3 h on odd days (a first-response breach); closed 5 h after
                                            opening; rated 1 on days 1, 5, 9, ... (d % 4 == 1), else 3
    T4 repair     telegram tv               bot resolves it in 30 min; days 0, 5, 10, 15, 20, 25: rated 2 and reopened
                                            by the customer the next day (still open)

`python -m tests.synthetic_month --database-url URL [--start 2026-10-05]` fills a database for a demo of the console.
"""
from __future__ import annotations

import argparse
import random
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.services.handoff import AgentAccounts, HandoffDesk
from bot.services.tickets import TicketBook, add_event, as_utc, iso
from bot.services.visits import record_visit_outcome
from bot.store.models import Agent, Engineer, OutboxItem, Visit

TZ = ZoneInfo("Asia/Shanghai")
START = date(2026, 10, 5)  # a Monday
DAYS = 28
SEED = 13
NAMES = ("张伟", "王芳", "李娜", "刘洋", "陈静", "Alex Chen", "Mia Wong", "Sam Lee")
WORDS = ("不制冷了", "漏水", "no picture", "makes a loud noise", "开不了机", "won't spin")


def _at(day: date, hh: int, mm: int = 0) -> datetime:
    """A desk-local moment, in UTC (SQLite keeps no offset: everything is stored in UTC)."""
    return as_utc(datetime.combine(day, time(hh, mm), tzinfo=TZ))


def _engineer(session) -> Engineer:
    engineer = session.execute(select(Engineer).where(Engineer.code == "E901")).scalar_one_or_none()
    if engineer is None:
        engineer = Engineer(code="E901", name_zh="赵师傅", name_en="Zhao Shifu", phone="13800090901",
                            city="Beijing", districts=["Chaoyang"], skills=["washing_machine"], work_start="08:00",
                            work_end="20:00", days_off=[])
        session.add(engineer)
        session.flush()
    return engineer


def _agents(session) -> dict[str, Agent]:
    accounts = AgentAccounts(session)
    out = {}
    for name in ("alice", "bob"):
        out[name] = accounts.get(name) or accounts.create(name, password=f"{name}-password", display_name=name)[0]
    return out


def generate(uow_factory, *, start: date = START, days: int = DAYS, seed: int = SEED) -> dict:
    """Write the month; returns {"since", "until", "now"} for the report (aware datetimes)."""
    rng = random.Random(seed)
    with uow_factory() as uow:
        session = uow.session
        book = TicketBook(session, TZ)
        desk = HandoffDesk(session, tz=TZ)
        engineer = _engineer(session)
        agents = _agents(session)

        def ticket(d: int, slot: int, kind: str, channel: str, product: str, at: datetime):
            t, _ = book.open(conversation_id=f"month-{start:%m%d}-{d}-{slot}", channel=channel, kind=kind,
                             language=rng.choice(("zh", "en")), now=at)
            book.record_facts(t, {"product": product, "customer_name": rng.choice(NAMES),
                                  "symptom": rng.choice(WORDS)}, at)
            return t

        for d in range(days):
            day = start + timedelta(days=d)
            # T0: a complaint the bot finishes
            t = ticket(d, 0, "complaint", "telegram", "fridge", _at(day, 10))
            book.set_status(t, "in_progress", _at(day, 10, 5))
            book.set_status(t, "resolved", _at(day, 10, 20))
            if d % 2 == 0:
                book.record_satisfaction(t, 5, _at(day, 10, 25))
            # T1: a repair with a home visit
            opened = _at(day, 11)
            t = ticket(d, 1, "repair", "rest", "washing_machine", opened)
            book.set_status(t, "in_progress", opened)
            begins = _at(day + timedelta(days=1), 14) if d % 2 == 0 else _at(day + timedelta(days=2), 9)
            visit = Visit(ticket_id=t.id, engineer_id=engineer.id, start=begins, end=begins + timedelta(hours=2),
                          status="booked", address="北京市朝阳区望京西路8号", created_at=opened,
                          reminder_day_before_at=begins - timedelta(hours=24),
                          reminder_2h_at=begins - timedelta(hours=2))
            session.add(visit)
            session.flush()
            add_event(session, t, "visit_booked", "bot", opened, visit_id=visit.id, engineer=engineer.code,
                      start=iso(visit.start), end=iso(visit.end))
            if d % 7 == 5:
                record_visit_outcome(uow, visit.id, "late", begins + timedelta(minutes=5), late_minutes=20,
                                     by="alice", tz=TZ)
            if d % 7 == 3:
                record_visit_outcome(uow, visit.id, "no_show", begins + timedelta(minutes=30), by="alice",
                                     note="nobody at home", tz=TZ)
            else:
                record_visit_outcome(uow, visit.id, "done", begins + timedelta(minutes=90), by="alice", tz=TZ)
                book.record_satisfaction(t, 4, begins + timedelta(hours=3))
            # T2: an inquiry the bot answers
            opened = _at(day, 12)
            t = ticket(d, 2, "inquiry", "webchat", "tv", opened)
            book.set_follow_up(t, opened + timedelta(hours=24), opened)
            book.set_status(t, "resolved", opened + timedelta(minutes=10))
            # T3: a complaint handed to a person
            opened = _at(day, 14)
            t = ticket(d, 3, "complaint", "webchat", "fridge", opened)
            book.request_handoff(t, "anger", opened)
            handoff, _ = desk.request(t, reason="anger", now=opened)
            agent = agents["alice"] if d % 2 == 0 else agents["bob"]
            desk.claim(handoff, agent, opened + (timedelta(minutes=30) if d % 2 == 0 else timedelta(hours=3)))
            desk.close(handoff, agent, opened + timedelta(hours=5))
            book.record_satisfaction(t, 1 if d % 4 == 1 else 3, opened + timedelta(hours=6))
            # T4: a repair the bot finishes, some reopened
            opened = _at(day, 16)
            t = ticket(d, 4, "repair", "telegram", "tv", opened)
            book.set_status(t, "resolved", opened + timedelta(minutes=30))
            if d % 5 == 0:
                book.record_satisfaction(t, 2, opened + timedelta(days=1))
                book.set_status(t, "reopened", opened + timedelta(days=1), actor="customer", note="still broken")
        # The outbox runner keeps every promise on time (the check-backs after the visits): each sent when due.
        for row in session.execute(select(OutboxItem).where(OutboxItem.status == "pending")).scalars():
            row.status, row.sent_at, row.attempts = "sent", row.due_at, 1
        uow.commit()
    since = _at(start, 0)
    return {"since": since, "until": since + timedelta(days=days), "now": since + timedelta(days=days + 7)}


def main(argv: list[str] | None = None) -> int:
    from bot.store.db import UnitOfWork, make_engine, session_factory, upgrade

    parser = argparse.ArgumentParser(prog="python -m tests.synthetic_month")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--start", default=START.isoformat(), help="the first day, a Monday (YYYY-MM-DD)")
    args = parser.parse_args(argv)
    upgrade(args.database_url)
    engine = make_engine(args.database_url)
    sessions = session_factory(engine)
    period = generate(lambda: UnitOfWork(sessions), start=date.fromisoformat(args.start))
    engine.dispose()
    print(f"a month of activity from {as_utc(period['since']).date()} written to "
          f"{args.database_url.split('@')[-1]}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
