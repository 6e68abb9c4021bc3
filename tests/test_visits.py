"""Engineer home visits against real databases (SQLite and PostgreSQL): roster, areas, windows, booking races."""
from __future__ import annotations

import argparse
import copy
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import func, select

from bot.cli_visits import add_visit_commands, roster_path
from bot.services.tickets import TicketBook
from bot.services.visits import (
    Area,
    VisitBook,
    VisitError,
    Window,
    check_installable,
    load_roster,
    match_area,
    parse_roster,
    sync_roster,
    visit_json,
)
from bot.settings import ROOT
from bot.store.db import UnitOfWork, session_factory
from bot.store.models import Engineer, Ticket, TicketEvent, Visit
from tests.conftest import NOW

TZ = ZoneInfo("Asia/Shanghai")
ROSTER_FILE = ROOT / "data" / "seed" / "engineers.yml"
ROSTER = load_roster(ROSTER_FILE)
CHAOYANG = "北京市朝阳区望京西路8号"
PUDONG = "上海浦东张江路88弄"
SUNDAY = date(2026, 11, 22)  # NOW is Sunday 10:30 in Shanghai
MONDAY = SUNDAY + timedelta(days=1)


@dataclass(frozen=True)
class When:
    """What bot.nlu.timeparse.parse_when returns, as far as the visit book cares."""

    start: datetime
    end: datetime
    excluded_weekdays: frozenset = frozenset()


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=TZ)


def raw_roster() -> dict:
    return yaml.safe_load(ROSTER_FILE.read_text(encoding="utf-8"))


def one_engineer_roster(**changes) -> object:
    """The demo areas with a single engineer: Beijing Chaoyang, fridges, 09:00-19:00 every day (5 slots a day)."""
    data = raw_roster()
    engineer = {"code": "E100", "name_zh": "独行侠", "name_en": "Solo Engineer", "phone": "13900000100",
                "city": "Beijing", "districts": ["Chaoyang"], "skills": ["fridge"], "work_start": "09:00",
                "work_end": "19:00", "days_off": []}
    engineer.update(changes)
    data["engineers"] = [engineer]
    return parse_roster(data, "test-roster")


def prepare(sessions, roster=ROSTER, tickets: int = 0) -> list[int]:
    """Sync the roster and open `tickets` tickets; returns their ids."""
    with UnitOfWork(sessions) as uow:
        sync_roster(uow.session, roster)
        ids = [new_ticket(uow.session, f"conv-{i}").id for i in range(tickets)]
        uow.commit()
    return ids


def new_ticket(session, conversation: str) -> Ticket:
    ticket, _ = TicketBook(session, TZ).open(conversation_id=conversation, channel="rest", kind="repair",
                                             language="zh", now=NOW)
    return ticket


def win(book: VisitBook, code: str, start: datetime, minutes: int | None = None) -> Window:
    spec = book.roster.engineer(code)
    length = timedelta(minutes=minutes) if minutes else book.roster.slot
    return Window(book.engineer_ids()[code], code, spec.name, start, start + length)


@pytest.fixture
def sessions(db_engine):
    return session_factory(db_engine)


# ---------------------------------------------------------------------------------------------- roster
def test_demo_roster_is_valid_and_covers_every_area_and_category():
    assert ROSTER.version == 1 and ROSTER.slot_minutes == 120 and ROSTER.promise_hours == 24
    assert 10 <= len(ROSTER.engineers) <= 14
    assert ROSTER.coverage_gaps() == []
    assert {c.key: {d.key for d in c.districts} for c in ROSTER.areas} == {
        "Beijing": {"Chaoyang", "Haidian", "Dongcheng"}, "Shanghai": {"Pudong", "Xuhui", "Jing'an"},
        "Guangzhou": {"Tianhe", "Yuexiu"}, "Shenzhen": {"Nanshan", "Futian"}}
    assert any(e.covers(Area("Beijing", "Chaoyang")) and {"fridge", "washing_machine"} <= e.skills
               for e in ROSTER.engineers)
    assert any(e.covers(Area("Guangzhou", "Tianhe")) and "washing_machine" in e.skills for e in ROSTER.engineers)
    for e in ROSTER.engineers:
        assert e.name_zh and e.name_en and e.phone


@pytest.mark.parametrize("change, key", [
    (lambda d: d["engineers"][0].update(work_start="9am"), "work_start"),
    (lambda d: d["engineers"][0].update(work_end="09:30"), "work_end"),
    (lambda d: d["engineers"][0]["skills"].append("toaster"), "skills"),
    (lambda d: d["engineers"][0].update(districts=["Pudong"]), "districts"),
    (lambda d: d["engineers"][0].update(city="Hangzhou"), "city"),
    (lambda d: d["engineers"][1].update(code="E001"), "code"),
    (lambda d: d["engineers"][0].update(days_off=[7]), "days_off"),
    (lambda d: d["engineers"][0].pop("name_en"), "name_en"),
    (lambda d: d.pop("slot_minutes"), "slot_minutes"),
    (lambda d: d.update(version=2), "version"),
    (lambda d: d["areas"][0]["districts"][1].update(key="Chaoyang"), "key"),
])
def test_a_broken_roster_raises_value_error_naming_the_key(change, key):
    data = copy.deepcopy(raw_roster())
    change(data)
    with pytest.raises(ValueError, match=key):
        parse_roster(data, "engineers.yml")


def test_load_roster_reads_a_file_and_rejects_broken_yaml(tmp_path):
    good = tmp_path / "engineers.yml"
    good.write_text(ROSTER_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    assert load_roster(good) == ROSTER
    bad = tmp_path / "bad.yml"
    bad.write_text("version: 1\nengineers: [\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.yml"):
        load_roster(bad)


def test_sync_roster_upserts_engineers_by_code(sessions):
    with UnitOfWork(sessions) as uow:
        assert sync_roster(uow.session, ROSTER) == len(ROSTER.engineers)
        uow.commit()
    with UnitOfWork(sessions) as uow:
        assert sync_roster(uow.session, ROSTER) == 0  # nothing changed
        data = raw_roster()
        data["engineers"][0]["work_end"] = "18:00"
        assert sync_roster(uow.session, parse_roster(data)) == 1
        uow.commit()
    with UnitOfWork(sessions) as uow:
        rows = {e.code: e for e in uow.session.execute(select(Engineer)).scalars()}
        assert len(rows) == len(ROSTER.engineers)
        e001 = rows["E001"]
        assert (e001.name_zh, e001.city, e001.work_start, e001.work_end) == ("王建国", "Beijing", "09:00", "18:00")
        assert e001.districts == ["Chaoyang", "Dongcheng"] and e001.days_off == [2]


# ---------------------------------------------------------------------------------------------- areas
@pytest.mark.parametrize("address, area", [
    ("北京市朝阳区望京西路8号", Area("Beijing", "Chaoyang")),
    ("Room 1202, 18 Tiyu West Road, Tianhe District, Guangzhou", Area("Guangzhou", "Tianhe")),
    ("上海浦东张江路88弄", Area("Shanghai", "Pudong")),
    ("北京海淀中关村大街1号", Area("Beijing", "Haidian")),
    ("Dongcheng District, Beijing", Area("Beijing", "Dongcheng")),
    ("上海市徐汇区漕溪北路", Area("Shanghai", "Xuhui")),
    ("88 Nanjing West Road, Jing'an, Shanghai", Area("Shanghai", "Jing'an")),
    ("Flat 5, Jingan District, shanghai", Area("Shanghai", "Jing'an")),
    ("广东省广州市越秀区北京路168号", Area("Guangzhou", "Yuexiu")),  # Beijing Road is in Guangzhou
    ("深圳南山科技园", Area("Shenzhen", "Nanshan")),
    ("Futian District, Shenzhen", Area("Shenzhen", "Futian")),
    ("浦东新区世纪大道100号", Area("Shanghai", "Pudong")),  # no city named
    ("北京市东城区朝阳门内大街", Area("Beijing", "Dongcheng")),  # Chaoyangmen is a gate, in Dongcheng
    ("北京市", Area("Beijing", None)),
    ("Shanghai", Area("Shanghai", None)),
    ("广州市白云区机场路", Area("Guangzhou", None)),  # a district we do not serve, in a city we do
    ("杭州市西湖区文三路", None),
    ("辽宁省朝阳市双塔区", None),  # a city called Chaoyang, not the district
    ("东莞市东城区", None),
    ("12 Main Street, Chengdu", None),
    ("", None),
])
def test_match_area(address, area):
    assert match_area(address, ROSTER) == area


# ---------------------------------------------------------------------------------------------- windows
def _on_grid(spec, window) -> bool:
    local = window.start.astimezone(TZ)
    return any(s == window.start and e == window.end for s, e in spec.slots_on(local.date(), TZ, ROSTER.slot))


@pytest.mark.parametrize("category, address", [
    ("fridge", CHAOYANG), ("air_conditioner", "Haidian District, Beijing"), ("water_heater", PUDONG),
    ("washing_machine", "Room 1202, 18 Tiyu West Road, Tianhe District, Guangzhou"), ("dishwasher", "深圳市福田区"),
    ("microwave", "Shanghai"),
])
def test_proposals_respect_lead_time_working_hours_days_off_skills_and_area(sessions, category, address):
    prepare(sessions)
    area = match_area(address, ROSTER)
    with UnitOfWork(sessions) as uow:
        windows = VisitBook(uow.session, TZ, ROSTER).proposals(category=category, address=address, now=NOW, limit=40)
    assert len(windows) == 40
    assert [w.start for w in windows] == sorted(w.start for w in windows)
    for w in windows:
        spec = ROSTER.engineer(w.engineer_code)
        assert category in spec.skills and spec.covers(area)
        assert w.start >= NOW + timedelta(hours=1) and w.start < NOW + timedelta(days=14)
        assert w.start.astimezone(TZ).weekday() not in spec.days_off
        assert _on_grid(spec, w), w  # aligned to work_start, slot-long, inside working hours
        assert w.start.tzinfo is not None and w.engineer_name == {"zh": spec.name_zh, "en": spec.name_en}


def test_the_lead_time_skips_the_slot_starting_within_the_hour(sessions):
    prepare(sessions)
    with UnitOfWork(sessions) as uow:
        first = VisitBook(uow.session, TZ, ROSTER).proposals(category="fridge", address=CHAOYANG, now=NOW)[0]
    # NOW is 10:30: the 11:00 slot is too soon, 13:00 is the first.
    assert first.start == at(SUNDAY, 13)


def test_tomorrow_afternoon_gives_three_windows_inside_it(sessions):
    prepare(sessions)
    afternoon = When(at(MONDAY, 13), at(MONDAY, 18))
    with UnitOfWork(sessions) as uow:
        book = VisitBook(uow.session, TZ, ROSTER)
        fridge = book.proposals(category="fridge", address=CHAOYANG, now=NOW, when=afternoon)
        heater = book.proposals(category="water_heater", address="上海市徐汇区漕溪北路", now=NOW, when=afternoon)
    for windows, category, area in ((fridge, "fridge", Area("Beijing", "Chaoyang")),
                                    (heater, "water_heater", Area("Shanghai", "Xuhui"))):
        assert len(windows) == 3
        for w in windows:
            assert afternoon.start <= w.start < afternoon.end
            spec = ROSTER.engineer(w.engineer_code)
            assert category in spec.skills and spec.covers(area)
    # E003 is off on Mondays, so E001 serves all three; in Xuhui two engineers with different grids interleave.
    assert [(w.engineer_code, w.start.astimezone(TZ).hour) for w in fridge] == [("E001", 13), ("E001", 15), ("E001", 17)]
    assert [(w.engineer_code, w.start.astimezone(TZ).hour) for w in heater] == [("E005", 13), ("E007", 14), ("E005", 15)]


def test_distinct_start_times_are_preferred(sessions):
    prepare(sessions)
    afternoon = When(at(MONDAY, 13), at(MONDAY, 18))
    with UnitOfWork(sessions) as uow:
        book = VisitBook(uow.session, TZ, ROSTER)
        three = book.proposals(category="water_heater", address=PUDONG, now=NOW, when=afternoon)
        six = book.proposals(category="water_heater", address=PUDONG, now=NOW, when=afternoon, limit=6)
    # E004 and E005 both work 09:00-19:00 in Pudong: same grid.
    assert [w.start.astimezone(TZ).hour for w in three] == [13, 15, 17]
    assert [w.start.astimezone(TZ).hour for w in six] == [13, 13, 15, 15, 17, 17]
    assert {w.engineer_code for w in six} == {"E004", "E005"}


def test_days_off_excluded_weekdays_after_and_the_horizon(sessions):
    roster = one_engineer_roster(days_off=[6, 0])  # off on Sunday and Monday
    prepare(sessions, roster)
    with UnitOfWork(sessions) as uow:
        book = VisitBook(uow.session, TZ, roster)
        first = book.proposals(category="fridge", address=CHAOYANG, now=NOW)
        assert [w.start for w in first] == [at(MONDAY + timedelta(days=1), h) for h in (9, 11, 13)]
        week = When(at(MONDAY, 0), at(MONDAY + timedelta(days=7), 0), frozenset({1, 2}))  # not Tuesday or Wednesday
        windows = book.proposals(category="fridge", address=CHAOYANG, now=NOW, when=week, limit=100)
        assert {w.start.astimezone(TZ).weekday() for w in windows} == {3, 4, 5}  # Thu, Fri, Sat
        assert len(windows) == 15
        later = book.proposals(category="fridge", address=CHAOYANG, now=NOW, after=first[0].start)
        assert [w.start for w in later] == [w.start for w in first[1:]] + [at(MONDAY + timedelta(days=1), 15)]
        everything = book.proposals(category="fridge", address=CHAOYANG, now=NOW, limit=1000)
        assert max(w.start for w in everything) < NOW + timedelta(days=14)
        assert len(everything) == 5 * 10  # 14 days ahead, two days off a week
        far = When(NOW + timedelta(days=15), NOW + timedelta(days=20))
        assert book.proposals(category="fridge", address=CHAOYANG, now=NOW, when=far) == []


def test_outside_the_service_area_or_without_an_engineer(sessions):
    prepare(sessions, one_engineer_roster())
    with UnitOfWork(sessions) as uow:
        book = VisitBook(uow.session, TZ, one_engineer_roster())
        with pytest.raises(VisitError) as exc:
            book.proposals(category="fridge", address="杭州市西湖区文三路", now=NOW)
        assert exc.value.code == "outside_service_area"
        with pytest.raises(VisitError) as exc:
            book.proposals(category="tv", address=CHAOYANG, now=NOW)
        assert exc.value.code == "no_engineer"
        with pytest.raises(VisitError) as exc:
            book.proposals(category="fridge", address="上海市徐汇区", now=NOW)
        assert exc.value.code == "no_engineer"


def test_within_promise(sessions):
    prepare(sessions)
    with UnitOfWork(sessions) as uow:
        book = VisitBook(uow.session, TZ, ROSTER)
        soon = book.proposals(category="fridge", address=CHAOYANG, now=NOW)
        late = book.proposals(category="fridge", address=CHAOYANG, now=NOW, when=When(NOW + timedelta(days=3), NOW + timedelta(days=4)))
    assert book.within_promise(soon, NOW) and book.within_promise(soon, NOW, 24)
    assert not book.within_promise(soon, NOW, 4)  # first window ends 15:00, 4.5 hours away
    assert not book.within_promise(late, NOW, 24)
    assert not book.within_promise([], NOW, 24)


# ---------------------------------------------------------------------------------------------- booking
def test_book_stores_the_visit_with_reminders_and_logs_an_event(sessions):
    prepare(sessions)
    with UnitOfWork(sessions) as uow:
        ticket = new_ticket(uow.session, "c-book")
        book = VisitBook(uow.session, TZ, ROSTER)
        window = book.proposals(category="fridge", address=CHAOYANG, now=NOW)[0]
        visit = book.book(ticket=ticket, window=window, address=CHAOYANG, now=NOW)
        uow.commit()
        number = ticket.number
    with UnitOfWork(sessions) as uow:
        book = VisitBook(uow.session, TZ, ROSTER)
        ticket = TicketBook(uow.session, TZ).get(number)
        [visit] = book.visits_of(ticket)
        assert book.live_visit(ticket).id == visit.id
        data = visit_json(visit)
        assert data["status"] == "booked" and data["ticket"] == number and data["engineer"] == window.engineer_code
        assert data["start"] == "2026-11-22T05:00:00+00:00" and data["end"] == "2026-11-22T07:00:00+00:00"
        assert data["reminders"] == {"day_before": "2026-11-21T05:00:00+00:00", "two_hours": "2026-11-22T03:00:00+00:00"}
        events = [e for e in ticket.events if e.kind == "visit_booked"]
        assert len(events) == 1 and events[0].actor == "bot"
        assert events[0].data["engineer"] == window.engineer_code and events[0].data["start"] == data["start"]


def test_visit_json_keys(sessions):
    prepare(sessions)
    with UnitOfWork(sessions) as uow:
        book = VisitBook(uow.session, TZ, ROSTER)
        visit = book.book(ticket=new_ticket(uow.session, "c-json"), window=win(book, "E001", at(MONDAY, 9)),
                          address=CHAOYANG, now=NOW)
        data = visit_json(visit)
    assert {"ticket", "engineer", "engineer_name", "start", "end", "address", "status", "reminders"} <= set(data)
    assert data["engineer_name"] == {"zh": "王建国", "en": "Wang Jianguo"}
    assert data["start"].endswith("+00:00") and datetime.fromisoformat(data["start"]) == at(MONDAY, 9)
    assert set(data["reminders"]) == {"day_before", "two_hours"}
    json.dumps(data, ensure_ascii=False)


def test_the_same_engineer_and_start_cannot_be_booked_twice(sessions):
    prepare(sessions)
    with UnitOfWork(sessions) as uow:
        book = VisitBook(uow.session, TZ, ROSTER)
        book.book(ticket=new_ticket(uow.session, "first"), window=win(book, "E001", at(MONDAY, 13)), address=CHAOYANG,
                  now=NOW)
        uow.commit()
    with UnitOfWork(sessions) as uow:
        book = VisitBook(uow.session, TZ, ROSTER)
        second = new_ticket(uow.session, "second")
        with pytest.raises(VisitError) as exc:
            book.book(ticket=second, window=win(book, "E001", at(MONDAY, 13)), address=CHAOYANG, now=NOW)
        assert exc.value.code == "slot_taken"
        # the savepoint rolled back only the failed insert: the session goes on, the taken window is not offered
        offered = book.proposals(category="fridge", address=CHAOYANG, now=NOW, when=When(at(MONDAY, 13), at(MONDAY, 14)))
        assert offered == []
        book.book(ticket=second, window=win(book, "E001", at(MONDAY, 15)), address=CHAOYANG, now=NOW)
        uow.commit()
    with UnitOfWork(sessions) as uow:
        assert uow.session.execute(select(func.count(Visit.id)).where(Visit.status == "booked")).scalar_one() == 2
        kinds = [e.kind for e in uow.session.execute(select(TicketEvent).order_by(TicketEvent.id)).scalars()]
        assert kinds.count("visit_booked") == 2


@pytest.mark.parametrize("code, start, minutes, address, error", [
    ("E001", at(SUNDAY, 9), None, CHAOYANG, "past"),
    ("E001", at(MONDAY, 19), None, CHAOYANG, "outside_working_hours"),
    ("E001", at(MONDAY, 7), None, CHAOYANG, "outside_working_hours"),
    ("E001", at(MONDAY + timedelta(days=2), 13), None, CHAOYANG, "outside_working_hours"),  # Wednesday off
    ("E001", at(MONDAY, 13), 60, CHAOYANG, "bad_window"),
    ("E001", at(MONDAY, 14), None, CHAOYANG, "bad_window"),  # off the 09:00 grid
    ("E001", at(MONDAY, 13), None, PUDONG, "bad_window"),  # E001 does not go to Shanghai
    ("E001", at(MONDAY, 13), None, "杭州市西湖区", "outside_service_area"),
])
def test_book_checks_the_window_again(sessions, code, start, minutes, address, error):
    prepare(sessions)
    with UnitOfWork(sessions) as uow:
        book = VisitBook(uow.session, TZ, ROSTER)
        with pytest.raises(VisitError) as exc:
            book.book(ticket=new_ticket(uow.session, "c"), window=win(book, code, start, minutes), address=address,
                      now=NOW)
        assert exc.value.code == error
        stranger = Window(999, "E999", {"zh": "?", "en": "?"}, at(MONDAY, 13), at(MONDAY, 15))
        with pytest.raises(VisitError) as exc:
            book.book(ticket=new_ticket(uow.session, "c"), window=stranger, address=CHAOYANG, now=NOW)
        assert exc.value.code == "bad_window"
        assert uow.session.execute(select(func.count(Visit.id))).scalar_one() == 0


def test_cancel_frees_the_window(sessions):
    prepare(sessions)
    with UnitOfWork(sessions) as uow:
        book = VisitBook(uow.session, TZ, ROSTER)
        visit = book.book(ticket=new_ticket(uow.session, "a"), window=win(book, "E001", at(MONDAY, 13)),
                          address=CHAOYANG, now=NOW)
        uow.commit()
    with UnitOfWork(sessions) as uow:
        book = VisitBook(uow.session, TZ, ROSTER)
        visit = uow.session.get(Visit, visit.id)
        book.cancel(visit, NOW)
        assert book.cancel(visit, NOW).status == "cancelled"  # twice: no change, no second event
        uow.commit()
    with UnitOfWork(sessions) as uow:
        book = VisitBook(uow.session, TZ, ROSTER)
        other = new_ticket(uow.session, "b")
        again = book.book(ticket=other, window=win(book, "E001", at(MONDAY, 13)), address=CHAOYANG, now=NOW)
        uow.commit()
    with UnitOfWork(sessions) as uow:
        book = VisitBook(uow.session, TZ, ROSTER)
        rows = uow.session.execute(select(Visit.status).order_by(Visit.id)).scalars().all()
        assert rows == ["cancelled", "booked"]
        cancelled = uow.session.execute(select(TicketEvent).where(TicketEvent.kind == "visit_cancelled")).scalars().all()
        assert len(cancelled) == 1 and cancelled[0].actor == "customer" and cancelled[0].data["visit_id"] == visit.id
        assert book.live_visit(uow.session.get(Ticket, visit.ticket_id)) is None
        with pytest.raises(VisitError) as exc:  # a customer cannot cancel a visit that has begun
            book.cancel(uow.session.get(Visit, again.id), at(MONDAY, 13, 30))
        assert exc.value.code == "past"


def test_reschedule_moves_the_visit_and_logs_it(sessions):
    prepare(sessions)
    with UnitOfWork(sessions) as uow:
        book = VisitBook(uow.session, TZ, ROSTER)
        ticket = new_ticket(uow.session, "move")
        old = book.book(ticket=ticket, window=win(book, "E001", at(MONDAY, 13)), address=CHAOYANG, now=NOW)
        blocker = book.book(ticket=new_ticket(uow.session, "other"), window=win(book, "E001", at(MONDAY, 17)),
                            address=CHAOYANG, now=NOW)
        uow.commit()
    with UnitOfWork(sessions) as uow:
        book = VisitBook(uow.session, TZ, ROSTER)
        old = uow.session.get(Visit, old.id)
        with pytest.raises(VisitError) as exc:
            book.reschedule(old, win(book, "E001", at(MONDAY, 17)), NOW)
        assert exc.value.code == "slot_taken"
        assert old.status == "booked"  # nothing changed by the failed move
        new = book.reschedule(old, win(book, "E001", at(MONDAY, 15)), NOW)
        uow.commit()
    with UnitOfWork(sessions) as uow:
        book = VisitBook(uow.session, TZ, ROSTER)
        ticket = uow.session.get(Ticket, ticket.id)
        assert [(v.id, v.status) for v in book.visits_of(ticket)] == [(old.id, "cancelled"), (new.id, "booked")]
        live = book.live_visit(ticket)
        assert live.id == new.id and visit_json(live)["start"] == "2026-11-23T07:00:00+00:00"
        kinds = [e.kind for e in ticket.events]
        assert kinds == ["ticket_created", "visit_booked", "visit_rescheduled"]
        moved = ticket.events[-1].data
        assert moved["from"] == {"engineer": "E001", "start": "2026-11-23T05:00:00+00:00", "end": "2026-11-23T07:00:00+00:00"}
        assert moved["to"] == {"engineer": "E001", "start": "2026-11-23T07:00:00+00:00", "end": "2026-11-23T09:00:00+00:00"}
        # the old window is free again, the cancelled visit cannot be moved
        book.book(ticket=new_ticket(uow.session, "third"), window=win(book, "E001", at(MONDAY, 13)), address=CHAOYANG,
                  now=NOW)
        with pytest.raises(VisitError) as exc:
            book.reschedule(uow.session.get(Visit, old.id), win(book, "E001", at(MONDAY, 9)), NOW)
        assert exc.value.code == "visit_not_found"
        assert uow.session.get(Visit, blocker.id).status == "booked"


def test_due_reminders(sessions):
    prepare(sessions)
    with UnitOfWork(sessions) as uow:
        book = VisitBook(uow.session, TZ, ROSTER)
        tomorrow = book.book(ticket=new_ticket(uow.session, "a"), window=win(book, "E001", at(MONDAY, 13)),
                             address=CHAOYANG, now=NOW)
        # booked at 10:30 for 15:00 today: the day-before time is already past, only the two-hour one comes
        today = book.book(ticket=new_ticket(uow.session, "b"), window=win(book, "E001", at(SUNDAY, 15)),
                          address=CHAOYANG, now=NOW)
        cancelled = book.book(ticket=new_ticket(uow.session, "c"), window=win(book, "E001", at(MONDAY, 15)),
                              address=CHAOYANG, now=NOW)
        book.cancel(cancelled, NOW)
        uow.commit()

    def due(moment):
        with UnitOfWork(sessions) as uow:
            return {(v.id, kind) for v, kind in VisitBook(uow.session, TZ, ROSTER).due_reminders(moment)}

    assert due(NOW) == set()
    assert due(at(SUNDAY, 12, 59)) == set()
    assert due(at(SUNDAY, 13)) == {(tomorrow.id, "day_before"), (today.id, "two_hours")}
    assert due(at(SUNDAY, 15)) == {(tomorrow.id, "day_before")}  # today's visit has begun
    assert due(at(MONDAY, 10, 59)) == {(tomorrow.id, "day_before")}
    assert due(at(MONDAY, 11)) == {(tomorrow.id, "two_hours")}  # the day-before reminder gives way
    assert due(at(MONDAY, 13)) == set()


def test_book_first_free_and_no_window_left(sessions):
    roster = one_engineer_roster()
    prepare(sessions, roster)
    two_slots = When(at(MONDAY, 9), at(MONDAY, 12))
    with UnitOfWork(sessions) as uow:
        book = VisitBook(uow.session, TZ, roster)
        first, got_first = book.book_first_free(ticket=new_ticket(uow.session, "a"), category="fridge",
                                                address=CHAOYANG, now=NOW, when=two_slots)
        second, _ = book.book_first_free(ticket=new_ticket(uow.session, "b"), category="fridge", address=CHAOYANG,
                                         now=NOW, when=two_slots)
        assert got_first
        assert [first.start, second.start] == [at(MONDAY, 9), at(MONDAY, 11)]
        with pytest.raises(VisitError) as exc:
            book.book_first_free(ticket=new_ticket(uow.session, "c"), category="fridge", address=CHAOYANG, now=NOW,
                                 when=two_slots)
        assert exc.value.code == "slot_taken"


def test_check_installable():
    today = date(2026, 11, 22)
    check_installable(today, today)
    check_installable(today - timedelta(days=3), today)
    for delivery in (None, today + timedelta(days=1)):
        with pytest.raises(VisitError) as exc:
            check_installable(delivery, today)
        assert exc.value.code == "not_delivered"


# ---------------------------------------------------------------------------------------------- races
RACE_ROSTER = one_engineer_roster()
FIVE_SLOTS = When(at(MONDAY, 9), at(MONDAY, 19))  # one engineer, 09:00 .. 17:00: exactly 5 windows


def _no_double_booking(engine) -> int:
    with engine.connect() as conn:
        doubles = conn.execute(
            select(Visit.engineer_id, Visit.start).where(Visit.status == "booked")
            .group_by(Visit.engineer_id, Visit.start).having(func.count(Visit.id) > 1)).all()
        assert doubles == []
        return conn.execute(select(func.count(Visit.id)).where(Visit.status == "booked")).scalar_one()


def _race_for_the_first_window(engine, *, meet_after_query: bool) -> list[tuple[str, bool, int]]:
    """20 customers are offered windows at the same moment, all take the first; a loser asks again and takes the
    new first window, until none is left. Returns (outcome, got_first_choice, slot_taken count) per customer."""
    sessions = session_factory(engine)
    ticket_ids = prepare(sessions, RACE_ROSTER, tickets=20)
    barrier = threading.Barrier(20, timeout=60)

    def customer(ticket_id):
        if not meet_after_query:  # SQLite: a transaction holds the write lock, so meet before any
            barrier.wait()
        with UnitOfWork(sessions) as uow:
            book = VisitBook(uow.session, TZ, RACE_ROSTER)
            ticket = uow.session.get(Ticket, ticket_id)
            windows = book.proposals(category="fridge", address=CHAOYANG, now=NOW, when=FIVE_SLOTS)
            first = windows[0] if windows else None  # on SQLite the late ones see none left
            if meet_after_query:  # PostgreSQL: everyone has seen the same five windows
                barrier.wait()
            taken = 0
            while windows:
                try:
                    book.book(ticket=ticket, window=windows[0], address=CHAOYANG, now=NOW)
                    uow.commit()
                    return "booked", windows[0].start == first.start, taken
                except VisitError as exc:
                    assert exc.code == "slot_taken"
                    taken += 1
                    windows = book.proposals(category="fridge", address=CHAOYANG, now=NOW, when=FIVE_SLOTS)
            return "no_window", False, taken

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(customer, ticket_ids))
    assert sum(r[0] == "booked" for r in results) == 5
    assert sum(r[0] == "no_window" for r in results) == 15
    assert _no_double_booking(engine) == 5
    with engine.connect() as conn:
        assert conn.execute(select(func.count(TicketEvent.id)).where(TicketEvent.kind == "visit_booked")).scalar_one() == 5
    return results


def test_race_of_20_customers_for_5_windows_on_postgres(pg_engine):
    results = _race_for_the_first_window(pg_engine, meet_after_query=True)
    booked = [r for r in results if r[0] == "booked"]
    assert sum(r[1] for r in booked) == 1  # one got the window first offered,
    assert sum(not r[1] for r in booked) == 4  # four were offered others after losing,
    assert sum(r[2] for r in results) >= 15  # and every customer left without a window lost at least once
    with pg_engine.connect() as conn:
        starts = sorted(s.astimezone(TZ) for s in conn.execute(
            select(Visit.start).where(Visit.status == "booked")).scalars())
    assert starts == [at(MONDAY, h) for h in (9, 11, 13, 15, 17)]


def test_race_of_20_customers_for_5_windows_on_sqlite(sqlite_engine):
    _race_for_the_first_window(sqlite_engine, meet_after_query=False)


def _four_per_window(engine, *, meet_after_query: bool) -> list[str]:
    sessions = session_factory(engine)
    ticket_ids = prepare(sessions, RACE_ROSTER, tickets=20)
    with UnitOfWork(sessions) as uow:
        windows = VisitBook(uow.session, TZ, RACE_ROSTER).proposals(category="fridge", address=CHAOYANG, now=NOW,
                                                                     when=FIVE_SLOTS, limit=10)
    assert len(windows) == 5
    barrier = threading.Barrier(20, timeout=60)

    def attempt(i):
        if not meet_after_query:
            barrier.wait()
        with UnitOfWork(sessions) as uow:
            ticket = uow.session.get(Ticket, ticket_ids[i])
            book = VisitBook(uow.session, TZ, RACE_ROSTER)
            book.engineer_ids()
            if meet_after_query:
                barrier.wait()
            try:
                book.book(ticket=ticket, window=windows[i % 5], address=CHAOYANG, now=NOW)
                uow.commit()
                return "booked"
            except VisitError as exc:
                return exc.code

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(attempt, range(20)))
    assert outcomes.count("booked") == 5
    assert outcomes.count("slot_taken") == 15
    assert _no_double_booking(engine) == 5
    return outcomes


def test_20_attempts_at_5_windows_on_postgres(pg_engine):
    _four_per_window(pg_engine, meet_after_query=True)


def test_20_attempts_at_5_windows_on_sqlite(sqlite_engine):
    _four_per_window(sqlite_engine, meet_after_query=False)


@pytest.mark.parametrize("engine_name", ["pg_engine", "sqlite_engine"])
def test_20_customers_book_first_free_at_once(request, engine_name):
    engine = request.getfixturevalue(engine_name)
    sessions = session_factory(engine)
    ticket_ids = prepare(sessions, RACE_ROSTER, tickets=20)
    barrier = threading.Barrier(20, timeout=60)

    def customer(ticket_id):
        barrier.wait()
        with UnitOfWork(sessions) as uow:
            try:
                visit, first = VisitBook(uow.session, TZ, RACE_ROSTER).book_first_free(
                    ticket=uow.session.get(Ticket, ticket_id), category="fridge", address=CHAOYANG, now=NOW,
                    when=FIVE_SLOTS)
                uow.commit()
                return "booked", first
            except VisitError as exc:
                return exc.code, False

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(customer, ticket_ids))
    assert [r[0] for r in results].count("booked") == 5
    assert [r[0] for r in results].count("slot_taken") == 15
    assert _no_double_booking(engine) == 5


# ---------------------------------------------------------------------------------------------- command line
def test_visits_commands(sqlite_engine, monkeypatch, capsys):
    sessions = session_factory(sqlite_engine)
    prepare(sessions)
    with UnitOfWork(sessions) as uow:
        book = VisitBook(uow.session, TZ, ROSTER)
        ticket = new_ticket(uow.session, "cli")
        book.book(ticket=ticket, window=win(book, "E001", at(MONDAY, 13)), address=CHAOYANG, now=NOW)
        number = ticket.number
        uow.commit()
    monkeypatch.setenv("BOT_DATABASE_URL", str(sqlite_engine.url))
    monkeypatch.delenv("BOT_ROSTER_FILE", raising=False)
    parser = argparse.ArgumentParser()
    add_visit_commands(parser.add_subparsers(dest="group", required=True))

    def run(*argv):
        args = parser.parse_args(list(argv))
        assert args.func(args) == 0
        return capsys.readouterr().out

    rows = json.loads(run("visits", "list", "--json"))
    assert [(r["ticket"], r["engineer"], r["status"], r["start"]) for r in rows] == [
        (number, "E001", "booked", "2026-11-23T05:00:00+00:00")]
    assert "E001" in run("visits", "list") and number in run("visits", "list")
    due = json.loads(run("visits", "due", "--json", "--at", "2026-11-23T11:30+08:00"))
    assert [(r["ticket"], r["reminder"]) for r in due] == [(number, "two_hours")]
    assert json.loads(run("visits", "due", "--json", "--at", "2026-11-22T11:00")) == []
    assert "two_hours" in run("visits", "due", "--at", "2026-11-23T11:30")


def test_roster_path_resolution():
    assert roster_path(env={}) == ROOT / "data" / "seed" / "engineers.yml"
    assert roster_path(env={"BOT_ROSTER_FILE": "tests/data/roster.yml"}) == ROOT / "tests" / "data" / "roster.yml"
    assert roster_path(env={"BOT_ROSTER_FILE": "/etc/roster.yml"}).as_posix() == "/etc/roster.yml"


@pytest.mark.parametrize("text, expected", [
    ("1", 0), ("2", 1), ("3", 2), ("二", 1), ("option 3", 2), ("#2", 1), ("one", 0), ("two.", 1),
    ("the second one", 1), ("the first one please", 0), ("third", 2), ("2nd", 1), ("第二个", 1), ("第一个吧", 0),
    ("选第三个", 2), ("第 2 个", 1),
    ("11:00", None), ("11:00-13:00", None), ("二号上午", None), ("1点", None), ("one o'clock", None),
    ("the first or the second", None), ("no", None), ("", None), ("第12个", None),
])
def test_picking_an_offered_window_by_its_place(text, expected):
    from bot.flows.visit import ordinal_choice

    assert ordinal_choice(text, 3) == expected


def test_only_offered_places_can_be_picked():
    from bot.flows.visit import ordinal_choice

    assert ordinal_choice("the third one", 2) is None and ordinal_choice("2", 2) == 1


def test_weekday_mornings_or_evenings_keep_to_that_part_of_each_day(sessions):
    """"weekday mornings" is every weekday's 09:00-12:00, not the first free time of the next two weeks."""
    from bot.nlu.timeparse import parse_when

    prepare(sessions)
    with UnitOfWork(sessions) as uow:
        book = VisitBook(uow.session, TZ, ROSTER)
        mornings = book.proposals(category="fridge", address=CHAOYANG, now=NOW,
                                  when=parse_when("weekday mornings", NOW.astimezone(TZ)))
        evenings = book.proposals(category="fridge", address=CHAOYANG, now=NOW,
                                  when=parse_when("工作日晚上", NOW.astimezone(TZ)))
    assert len(mornings) == 3
    for w in mornings:
        local = w.start.astimezone(TZ)
        assert local.weekday() < 5 and 9 <= local.hour < 12, local
    # The Chaoyang engineers' last window starts at 17:00: no evening visit, and the script then offers the earliest.
    assert evenings == []
