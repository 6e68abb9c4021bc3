"""Engineer home visits: the roster and its service areas, free windows, and booking, moving and cancelling visits.
Double bookings are prevented by the database (partial unique index on engineer + start of booked visits)."""
from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, selectinload

from bot.services.tickets import TicketBook, add_event, as_utc, iso
from bot.store.models import (TRANSITIONS, VISIT_TRANSITIONS, Engineer, Ticket, TicketStatus, Visit, VisitHold,
                              VisitStatus)

log = logging.getLogger(__name__)

CATEGORIES = ("air_conditioner", "fridge", "washing_machine", "water_heater", "tv", "range_hood", "dishwasher",
              "gas_hob", "microwave")
ERROR_CODES = ("outside_service_area", "no_engineer", "past", "outside_working_hours", "slot_taken", "not_delivered",
               "visit_not_found", "bad_window", "not_started", "bad_outcome", "engineer_not_found", "visit_finished",
               "already_booked")
LEAD_TIME = timedelta(hours=1)  # no window starts sooner than this after `now`
HORIZON = timedelta(days=14)  # how far ahead windows are looked for
BOOKED, CANCELLED = "booked", "cancelled"
UNIQUE_INDEX = "uq_visit_engineer_start_live"
TICKET_LIVE_INDEX = "uq_visit_ticket_live"  # one live visit per ticket
HOLD_MINUTES = 5  # default of engineers.yml `hold_minutes`: how long an offered window is kept for the customer


class VisitError(Exception):
    """A domain error the caller turns into a message for the customer or operator (`.code`, one of ERROR_CODES)."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Area:
    city: str  # canonical English key, e.g. "Beijing"
    district: str | None  # e.g. "Chaoyang"; None when only the city is known


@dataclass(frozen=True)
class Window:
    engineer_id: int
    engineer_code: str
    engineer_name: dict  # {"zh", "en"}
    start: datetime  # tz-aware
    end: datetime  # tz-aware, exclusive


# ---------------------------------------------------------------------------------------------- the roster
@dataclass(frozen=True)
class DistrictArea:
    key: str
    zh: str
    en: str
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class CityArea:
    key: str
    zh: str
    en: str
    aliases: tuple[str, ...]
    districts: tuple[DistrictArea, ...]

    def district(self, key: str) -> DistrictArea | None:
        return next((d for d in self.districts if d.key == key), None)


@dataclass(frozen=True)
class EngineerSpec:
    code: str
    name_zh: str
    name_en: str
    phone: str | None
    city: str
    districts: tuple[str, ...]
    skills: frozenset[str]
    work_start: time
    work_end: time
    days_off: frozenset[int]

    @property
    def name(self) -> dict:
        return {"zh": self.name_zh, "en": self.name_en}

    def covers(self, area: Area) -> bool:
        """District match, or a city match when the district is not known."""
        return self.city == area.city and (area.district is None or area.district in self.districts)

    def slots_on(self, day: date, tz: ZoneInfo, slot: timedelta) -> list[tuple[datetime, datetime]]:
        """The slot grid of one day: aligned to work_start, each slot fully inside working hours; none on days off."""
        if day.weekday() in self.days_off:
            return []
        start = datetime.combine(day, self.work_start, tzinfo=tz)
        close = datetime.combine(day, self.work_end, tzinfo=tz)
        out = []
        while start + slot <= close:
            out.append((start, start + slot))
            start += slot
        return out


@dataclass(frozen=True)
class Roster:
    version: int
    slot_minutes: int
    promise_hours: int
    areas: tuple[CityArea, ...]
    engineers: tuple[EngineerSpec, ...]
    hold_minutes: int = 5  # how long a window offered to a customer stays theirs (HOLD_MINUTES)

    @property
    def slot(self) -> timedelta:
        return timedelta(minutes=self.slot_minutes)

    @property
    def hold(self) -> timedelta:
        return timedelta(minutes=self.hold_minutes)

    def city(self, key: str) -> CityArea | None:
        return next((c for c in self.areas if c.key == key), None)

    def engineer(self, code: str) -> EngineerSpec | None:
        return next((e for e in self.engineers if e.code == code), None)

    def coverage_gaps(self, categories: Iterable[str] = CATEGORIES) -> list[tuple[Area, str]]:
        """(district area, category) pairs no engineer serves."""
        gaps = []
        for city in self.areas:
            for district in city.districts:
                area = Area(city.key, district.key)
                for category in categories:
                    if not any(e.covers(area) and category in e.skills for e in self.engineers):
                        gaps.append((area, category))
        return gaps


_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_CODE = re.compile(r"^[A-Z][A-Z0-9_-]{0,15}$")


def _need(mapping: Any, key: str, where: str, kind: type | tuple = str) -> Any:
    if not isinstance(mapping, dict):
        raise ValueError(f"{where}: expected a mapping")
    if key not in mapping or mapping[key] in (None, ""):
        raise ValueError(f"{where}.{key}: missing")
    value = mapping[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ValueError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _str_list(mapping: dict, key: str, where: str, *, required: bool = True) -> tuple[str, ...]:
    value = mapping.get(key)
    if value is None and not required:
        return ()
    if not isinstance(value, list) or (required and not value) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{where}.{key}: expected a {'non-empty ' if required else ''}list of names, got {value!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"{where}.{key}: repeated entries in {value!r}")
    return tuple(value)


def _hhmm(mapping: dict, key: str, where: str) -> time:
    value = mapping.get(key)
    if not isinstance(value, str) or not _HHMM.match(value):
        raise ValueError(f"{where}.{key}: expected a time as \"HH:MM\", got {value!r}")
    return time(int(value[:2]), int(value[3:]))


def _parse_areas(data: dict, source: str) -> tuple[CityArea, ...]:
    raw_areas = data.get("areas")
    if not isinstance(raw_areas, list) or not raw_areas:
        raise ValueError(f"{source}.areas: expected a non-empty list of cities")
    areas: list[CityArea] = []
    for i, raw in enumerate(raw_areas):
        where = f"{source}.areas[{i}]"
        key = _need(raw, "city", where)
        if any(c.key == key for c in areas):
            raise ValueError(f"{where}.city: {key!r} is listed twice")
        raw_districts = raw.get("districts")
        if not isinstance(raw_districts, list) or not raw_districts:
            raise ValueError(f"{where}.districts: expected a non-empty list")
        districts: list[DistrictArea] = []
        for j, d in enumerate(raw_districts):
            dwhere = f"{where}.districts[{j}]"
            dkey = _need(d, "key", dwhere)
            if any(x.key == dkey for x in districts):
                raise ValueError(f"{dwhere}.key: {dkey!r} is listed twice in {key}")
            districts.append(DistrictArea(dkey, _need(d, "zh", dwhere), _need(d, "en", dwhere),
                                          _str_list(d, "aliases", dwhere, required=False)))
        areas.append(CityArea(key, _need(raw, "zh", where), _need(raw, "en", where),
                              _str_list(raw, "aliases", where, required=False), tuple(districts)))
    return tuple(areas)


def _parse_engineer(raw: Any, where: str, areas: tuple[CityArea, ...], slot_minutes: int) -> EngineerSpec:
    code = _need(raw, "code", where)
    if not _CODE.match(code):
        raise ValueError(f"{where}.code: expected an upper-case code like E001, got {code!r}")
    where = f"{where} ({code})"
    city_key = _need(raw, "city", where)
    city = next((c for c in areas if c.key == city_key), None)
    if city is None:
        raise ValueError(f"{where}.city: {city_key!r} is not one of the areas ({', '.join(c.key for c in areas)})")
    districts = _str_list(raw, "districts", where)
    for d in districts:
        if city.district(d) is None:
            raise ValueError(f"{where}.districts: {d!r} is not a district of {city_key}")
    skills = _str_list(raw, "skills", where)
    for s in skills:
        if s not in CATEGORIES:
            raise ValueError(f"{where}.skills: unknown category {s!r}; expected some of {', '.join(CATEGORIES)}")
    work_start = _hhmm(raw, "work_start", where)
    work_end = _hhmm(raw, "work_end", where)
    if (datetime.combine(date.min, work_end) - datetime.combine(date.min, work_start)) < timedelta(minutes=slot_minutes):
        raise ValueError(f"{where}.work_end: working hours {work_start:%H:%M}-{work_end:%H:%M} "
                         f"hold no {slot_minutes}-minute slot")
    days_off = raw.get("days_off", [])
    if (not isinstance(days_off, list) or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6
                                                  for d in days_off) or len(set(days_off)) != len(days_off)):
        raise ValueError(f"{where}.days_off: expected distinct weekday numbers 0 (Monday) .. 6, got {days_off!r}")
    if len(days_off) == 7:
        raise ValueError(f"{where}.days_off: every day is a day off")
    phone = raw.get("phone")
    if phone is not None and not isinstance(phone, str):
        raise ValueError(f"{where}.phone: expected a string (quote it in YAML), got {phone!r}")
    return EngineerSpec(
        code=code, name_zh=_need(raw, "name_zh", where), name_en=_need(raw, "name_en", where), phone=phone,
        city=city_key, districts=districts, skills=frozenset(skills), work_start=work_start, work_end=work_end,
        days_off=frozenset(days_off))


def _bounded_int(data: dict, key: str, source: str, lo: int, hi: int, what: str, default: int | None = None) -> int:
    if default is not None and key not in data:
        return default
    value = _need(data, key, source, int)
    if not lo <= value <= hi:
        raise ValueError(f"{source}.{key}: expected {what} {lo}..{hi}, got {value}")
    return value


def parse_roster(data: Any, source: str = "roster") -> Roster:
    """Validate a roster given as plain data (the parsed YAML). Errors raise ValueError naming the key."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping at the top")
    version = _need(data, "version", source, int)
    if version != 1:
        raise ValueError(f"{source}.version: only version 1 is known, got {version!r}")
    slot_minutes = _need(data, "slot_minutes", source, int)
    if not 15 <= slot_minutes <= 24 * 60:
        raise ValueError(f"{source}.slot_minutes: expected 15..1440 minutes, got {slot_minutes}")
    promise_hours = _need(data, "promise_hours", source, int)
    if promise_hours <= 0:
        raise ValueError(f"{source}.promise_hours: expected a positive number of hours, got {promise_hours}")
    hold_minutes = _bounded_int(data, "hold_minutes", source, 1, 60, "minutes", default=HOLD_MINUTES)
    areas = _parse_areas(data, source)
    raw_engineers = data.get("engineers")
    if not isinstance(raw_engineers, list) or not raw_engineers:
        raise ValueError(f"{source}.engineers: expected a non-empty list")
    engineers: list[EngineerSpec] = []
    for i, raw in enumerate(raw_engineers):
        spec = _parse_engineer(raw, f"{source}.engineers[{i}]", areas, slot_minutes)
        if any(e.code == spec.code for e in engineers):
            raise ValueError(f"{source}.engineers[{i}].code: {spec.code!r} is listed twice")
        engineers.append(spec)
    return Roster(version=version, slot_minutes=slot_minutes, promise_hours=promise_hours, areas=areas,
                  engineers=tuple(engineers), hold_minutes=hold_minutes)


def load_roster(path: str | Path) -> Roster:
    """Read and validate engineers.yml; a broken file raises ValueError naming the key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path.name}: not valid YAML: {exc}") from exc
    return parse_roster(data, path.name)


def sync_roster(session: Session, roster: Roster) -> int:
    """Insert or update Engineer rows by code (rows not in the roster are left alone). Returns rows written."""
    existing = {e.code: e for e in session.execute(
        select(Engineer).where(Engineer.code.in_([e.code for e in roster.engineers]))).scalars()}
    written = 0
    for spec in roster.engineers:
        values = {
            "name_zh": spec.name_zh, "name_en": spec.name_en, "phone": spec.phone, "city": spec.city,
            "districts": list(spec.districts), "skills": sorted(spec.skills),
            "work_start": spec.work_start.strftime("%H:%M"), "work_end": spec.work_end.strftime("%H:%M"),
            "days_off": sorted(spec.days_off),
        }
        row = existing.get(spec.code)
        if row is None:
            session.add(Engineer(code=spec.code, **values))
            written += 1
        elif any(getattr(row, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(row, k, v)
            written += 1
    session.flush()
    return written


# ---------------------------------------------------------------------------------------------- addresses
_CJK = re.compile(r"[\u4e00-\u9fff]")
# A place name followed by one of these is a road, gate or bridge named after it ("北京路" is in Guangzhou).
_ROAD_ZH = ("路", "街", "大街", "大道", "道", "门", "桥", "巷", "胡同")
_ROAD_EN = re.compile(r"^[\s,]*(?:(?:west|east|north|south|middle|inner|outer)\s+)?"
                      r"(?:road|rd|street|st|avenue|ave|lu|jie|dajie|gate|men|bridge|lane)\b")
# "朝阳市" (Liaoning) or "Chaoyang City" is a city named like one of our districts.
_CITY_AFTER_ZH = ("市",)
_CITY_AFTER_EN = re.compile(r"^\s*city\b")
# Some other city named in Chinese ("东莞市"); the words excluded are 超市, 门市, 城市, 夜市, 菜市, 股市, 街市.
_OTHER_CITY_ZH = re.compile(r"([\u4e00-\u9fff]{2})市(?![场区民政])")
_NOT_A_CITY = set("超门城夜菜股街")


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text or "")
    text = re.sub("[\u2018\u2019\u02bc`\u00b4]", "'", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def _alias_pattern(alias: str) -> re.Pattern:
    alias = _norm(alias)
    if _CJK.search(alias):
        return re.compile(re.escape(alias))
    parts = [re.escape(p) for p in re.split(r"['\s-]+", alias) if p]
    return re.compile(r"(?<![a-z0-9])" + r"['\s-]?".join(parts) + r"(?![a-z0-9])")


def _hits(text: str, names: Iterable[str], full: Iterable[str], *, district: bool) -> list[tuple[int, int]]:
    """(strength, position) of each usable mention; strength 2 for a full name ("朝阳区", "Chaoyang District")."""
    full_norm = {_norm(f) for f in full}
    out = []
    for name in dict.fromkeys(names):
        pattern = _alias_pattern(name)
        cjk = bool(_CJK.search(name))
        for m in pattern.finditer(text):
            rest = text[m.end():]
            if cjk:
                if rest.startswith(_ROAD_ZH) or (district and rest.startswith(_CITY_AFTER_ZH)):
                    continue
            elif _ROAD_EN.match(rest) or (district and _CITY_AFTER_EN.match(rest)):
                continue
            out.append((2 if _norm(name) in full_norm else 1, m.start()))
    return out


def match_area(address: str, roster: Roster) -> Area | None:
    """The service area of a free-text address (Chinese or English), or None when it is outside every area.

    City and district are found by name or alias; a district counts inside the city named (or, with no city named,
    on its own). Roads and gates named after a place ("北京路", "朝阳门", "Beijing Road") and provinces other than
    Guangdong do not count.
    """
    text = _norm(address)
    if not text:
        return None
    if ("省" in text and "广东" not in text) or "自治区" in text or ("province" in text and "guangdong" not in text):
        return None  # Beijing and Shanghai have no province; Guangzhou and Shenzhen are in Guangdong
    cities: dict[str, int] = {}
    districts: list[tuple[int, int, str, str]] = []  # (-strength, position, city, district)
    for city in roster.areas:
        hits = _hits(text, (city.zh, city.en, city.key, *city.aliases), (city.zh, city.en), district=False)
        if hits:
            cities[city.key] = min(pos for _s, pos in hits)
        for d in city.districts:
            for strength, pos in _hits(text, (d.zh, d.en, d.key, *d.aliases), (d.zh, d.en), district=True):
                districts.append((-strength, pos, city.key, d.key))
    if cities:
        inside = sorted(d for d in districts if d[2] in cities)
        if inside:
            return Area(inside[0][2], inside[0][3])
        return Area(min(cities, key=cities.get), None)
    if not districts:
        return None
    for m in _OTHER_CITY_ZH.finditer(text):
        if m.group(1)[-1] not in _NOT_A_CITY:
            return None  # a district name, but in some other city ("东莞市东城区")
    best = sorted(districts)[0]
    return Area(best[2], best[3])


# ---------------------------------------------------------------------------------------------- rules
def check_installable(purchase_delivery_date: date | None, today: date) -> None:
    """An installation visit needs the product delivered: raises VisitError("not_delivered") otherwise."""
    if purchase_delivery_date is None:
        raise VisitError("not_delivered", "no delivery date on the purchase")
    if purchase_delivery_date > today:
        raise VisitError("not_delivered", f"delivery expected {purchase_delivery_date.isoformat()}")


def _aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise VisitError("bad_window", f"{name} must be a time-zone aware datetime, got {value!r}")
    return value


def _violates(exc: IntegrityError, index: str, sqlite_columns: str) -> bool:
    """Whether `exc` is a violation of the unique index `index` (on PostgreSQL by name; SQLite names the columns)."""
    orig = getattr(exc, "orig", None)
    diag = getattr(orig, "diag", None)
    if diag is not None and getattr(diag, "constraint_name", None):
        return diag.constraint_name == index
    message = str(orig or exc)
    return index in message or f"UNIQUE constraint failed: {sqlite_columns}" in message


def _is_slot_taken(exc: IntegrityError) -> bool:
    return _violates(exc, UNIQUE_INDEX, "visits.engineer_id, visits.start")


def _is_second_live_visit(exc: IntegrityError) -> bool:
    return _violates(exc, TICKET_LIVE_INDEX, "visits.ticket_id")


# ---------------------------------------------------------------------------------------------- the book
class VisitBook:
    """Visit operations inside one session (the caller's unit of work commits)."""

    def __init__(self, session: Session, tz: ZoneInfo, roster: Roster):
        self.session = session
        self.tz = tz
        self.roster = roster
        self._ids: dict[str, int] | None = None

    # --- engineers ------------------------------------------------------------------------------
    def engineer_ids(self) -> dict[str, int]:
        """Database ids of the roster's engineers (by code); engineers not synced yet are left out."""
        if self._ids is None:
            codes = [e.code for e in self.roster.engineers]
            self._ids = dict(self.session.execute(
                select(Engineer.code, Engineer.id).where(Engineer.code.in_(codes))).all())
            missing = sorted(set(codes) - set(self._ids))
            if missing:
                log.warning("engineers in the roster but not in the database (run sync_roster): %s", ", ".join(missing))
        return self._ids

    def _candidates(self, category: str, address: str) -> list[tuple[EngineerSpec, int]]:
        area = match_area(address, self.roster)
        if area is None:
            raise VisitError("outside_service_area", address)
        ids = self.engineer_ids()
        found = [(e, ids[e.code]) for e in self.roster.engineers
                 if e.covers(area) and category in e.skills and e.code in ids]
        if not found:
            raise VisitError("no_engineer", f"{category} in {area.city}/{area.district or '*'}")
        return found

    # --- windows --------------------------------------------------------------------------------
    def proposals(self, *, category: str, address: str, now: datetime, when=None, limit: int = 3,
                  after: datetime | None = None) -> list[Window]:
        """The `limit` earliest free windows for this product category at this address, sorted by start.

        A window is one slot of an engineer who covers the area and has the skill: on the grid from work_start,
        inside working hours, not on a day off, starting no sooner than now + LEAD_TIME and before now + HORIZON.
        With `when` (start, end, excluded_weekdays, optional daily (from, to) local times) a window must START inside
        [when.start, when.end) and, with `daily`, inside that part of its day — it may end
        after when.end, so "afternoon" (13:00-18:00) offers a 17:00-19:00 window — and not on an excluded weekday.
        With `after`, only windows starting later than it. Distinct start times come first: the same time with a
        second engineer is offered only when there are not `limit` different times.
        """
        return self._pick(self._free_windows(self._candidates(category, address), now, when, after), limit)

    # --- holds (issue 17: fair booking under load) -------------------------------------------------
    def offer(self, *, ticket: Ticket, category: str, address: str, now: datetime, when=None,
              limit: int = 3) -> list[Window]:
        """The windows `proposals` would give, each now held for the ticket until now + roster.hold_minutes.

        Windows other customers hold are skipped, and a window another customer claims at the same moment (on any
        instance: the claim is a row under a unique constraint) is passed over for the next one, so customers
        booking at the same time are offered different windows. The ticket's other holds are released."""
        free = self._free_windows(self._candidates(category, address), now, when, holder=ticket.id)
        distinct: dict[datetime, Window] = {}
        for w in free:
            distinct.setdefault(w.start, w)
        rest = [w for w in free if distinct[w.start] is not w]
        got: list[Window] = []
        for window in list(distinct.values()) + rest:  # distinct start times first, as `proposals` offers them
            if len(got) == limit:
                break
            if self._claim(window, ticket.id, now):
                got.append(window)
        self.release_holds(ticket.id, keep=got)
        return sorted(got, key=lambda w: (w.start, w.engineer_code))

    def keep_hold(self, ticket: Ticket, window: Window, now: datetime) -> bool:
        """The customer picked `window`: hold it afresh and release the other windows offered. False when it can no
        longer be had (the hold lapsed and another customer has it, or it was booked meanwhile)."""
        booked = self.session.execute(select(Visit.id).where(
            Visit.status == BOOKED, Visit.engineer_id == window.engineer_id,
            Visit.start == as_utc(_aware(window.start, "window.start")), Visit.ticket_id != ticket.id)).first()
        if booked is not None or not self._claim(window, ticket.id, now):
            return False
        self.release_holds(ticket.id, keep=[window])
        return True

    def release_holds(self, ticket_id: int, keep: Iterable[Window | Visit] = ()) -> int:
        """Release the ticket's holds except those on the windows (or visits) in `keep`. Returns how many."""
        kept = {(w.engineer_id, as_utc(w.start)) for w in keep}
        gone = [h.id for h in self.session.execute(select(VisitHold).where(VisitHold.ticket_id == ticket_id)).scalars()
                if (h.engineer_id, as_utc(h.start)) not in kept]
        if gone:
            self.session.execute(delete(VisitHold).where(VisitHold.id.in_(gone))
                                 .execution_options(synchronize_session=False))
        return len(gone)

    def _claim(self, window: Window, ticket_id: int, now: datetime) -> bool:
        """Hold the window for the ticket until now + hold: it must be unheld, held by this ticket, or its hold
        lapsed. A compare-and-set UPDATE, else an INSERT the unique constraint refuses when another got there."""
        now = _aware(now, "now")
        start, end, until = as_utc(window.start), as_utc(window.end), as_utc(now + self.roster.hold)
        try:
            with self.session.begin_nested():
                taken = self.session.execute(
                    update(VisitHold).where(VisitHold.engineer_id == window.engineer_id, VisitHold.start == start,
                                            or_(VisitHold.ticket_id == ticket_id, VisitHold.expires_at <= as_utc(now)))
                    .values(ticket_id=ticket_id, end=end, expires_at=until, created_at=now)
                    .execution_options(synchronize_session=False)).rowcount
                if not taken:
                    self.session.add(VisitHold(engineer_id=window.engineer_id, start=start, end=end,
                                               ticket_id=ticket_id, expires_at=until, created_at=now))
                    self.session.flush()
            return True
        except IntegrityError:
            return False  # another customer holds it
        except OperationalError as exc:
            if getattr(getattr(exc, "orig", None), "pgcode", None) == "40P01":
                return False  # two claims crossed (PostgreSQL gave up one side): this one passes it over
            raise

    def _held(self, ids: list[int], now: datetime, lo: datetime, hi: datetime,
              holder: int | None) -> frozenset[tuple[int, datetime]]:
        """(engineer id, start) of the live holds on these engineers' windows in [lo, hi), other than `holder`'s."""
        query = select(VisitHold.engineer_id, VisitHold.start).where(
            VisitHold.engineer_id.in_(ids), VisitHold.expires_at > as_utc(now),
            VisitHold.start >= as_utc(lo), VisitHold.start < as_utc(hi))
        if holder is not None:
            query = query.where(VisitHold.ticket_id != holder)
        return frozenset((eid, as_utc(start)) for eid, start in self.session.execute(query))

    def _free_windows(self, candidates: list[tuple[EngineerSpec, int]], now: datetime, when=None,
                      after: datetime | None = None, skip: frozenset = frozenset(),
                      holder: int | None = None) -> list[Window]:
        now = _aware(now, "now")
        lo, hi = now + LEAD_TIME, now + HORIZON
        excluded: frozenset[int] = frozenset()
        if when is not None:
            lo = max(lo, _aware(when.start, "when.start"))
            hi = min(hi, _aware(when.end, "when.end"))
            excluded = frozenset(getattr(when, "excluded_weekdays", None) or ())
            daily = getattr(when, "daily", None)  # "weekday evenings": each day's 18:00-21:00 only
        else:
            daily = None
        if after is not None:
            lo = max(lo, _aware(after, "after") + timedelta(microseconds=1))
        if lo >= hi:
            return []
        slot = self.roster.slot
        ids = [eid for _spec, eid in candidates]
        booked: dict[int, list[tuple[datetime, datetime]]] = {eid: [] for eid in ids}
        for eid, start, end in self.session.execute(
                select(Visit.engineer_id, Visit.start, Visit.end).where(
                    Visit.status == BOOKED, Visit.engineer_id.in_(ids),
                    Visit.start < as_utc(hi + slot), Visit.end > as_utc(lo - slot))):
            booked[eid].append((as_utc(start), as_utc(end)))
        skip = skip | self._held(ids, now, lo - slot, hi + slot, holder)  # offered to other customers just now
        windows = []
        first_day, last_day = lo.astimezone(self.tz).date(), hi.astimezone(self.tz).date()
        for spec, eid in candidates:
            day = first_day
            while day <= last_day:
                if day.weekday() not in excluded:
                    for start, end in spec.slots_on(day, self.tz, slot):
                        if not lo <= start < hi or (eid, start) in skip:
                            continue
                        if daily and not daily[0] <= start.astimezone(self.tz).time() < daily[1]:
                            continue
                        if any(s < end and start < e for s, e in booked[eid]):
                            continue
                        windows.append((start, len(booked[eid]), spec.code,
                                        Window(eid, spec.code, spec.name, start, end)))
                day += timedelta(days=1)
        windows.sort(key=lambda w: w[:3])  # earliest first; the least busy engineer first at the same time
        return [w[3] for w in windows]

    @staticmethod
    def _pick(windows: list[Window], limit: int) -> list[Window]:
        chosen, seen, rest = [], set(), []
        for w in windows:
            if w.start in seen:
                rest.append(w)
            elif len(chosen) < limit:
                chosen.append(w)
                seen.add(w.start)
        chosen.extend(rest[:max(0, limit - len(chosen))])
        return sorted(chosen, key=lambda w: (w.start, w.engineer_code))

    def within_promise(self, windows: Iterable[Window], now: datetime, promise_hours: int | None = None) -> bool:
        """Whether the earliest window ENDS by now + promise_hours (the engineer is surely there in time)."""
        hours = self.roster.promise_hours if promise_hours is None else promise_hours
        ends = [w.end for w in windows]
        return bool(ends) and min(ends) <= now + timedelta(hours=hours)

    # --- booking --------------------------------------------------------------------------------
    def _check(self, window: Window, address: str, now: datetime) -> EngineerSpec:
        start, end, now = _aware(window.start, "window.start"), _aware(window.end, "window.end"), _aware(now, "now")
        spec = self.roster.engineer(window.engineer_code)
        if spec is None or self.engineer_ids().get(spec.code) != window.engineer_id:
            raise VisitError("bad_window", f"unknown engineer {window.engineer_code}/{window.engineer_id}")
        if end - start != self.roster.slot:
            raise VisitError("bad_window", f"a window is {self.roster.slot_minutes} minutes")
        if start <= now:
            raise VisitError("past", start.isoformat())
        local = start.astimezone(self.tz)
        if local.weekday() in spec.days_off:
            raise VisitError("outside_working_hours", f"{spec.code} is off on {local:%A}")
        grid = spec.slots_on(local.date(), self.tz, self.roster.slot)
        if not any(s == start for s, _e in grid):
            opens = datetime.combine(local.date(), spec.work_start, tzinfo=self.tz)
            closes = datetime.combine(local.date(), spec.work_end, tzinfo=self.tz)
            if start < opens or end > closes:
                raise VisitError("outside_working_hours",
                                 f"{spec.code} works {spec.work_start:%H:%M}-{spec.work_end:%H:%M}")
            raise VisitError("bad_window", f"{local:%H:%M} is not on {spec.code}'s slot grid")
        area = match_area(address, self.roster)
        if area is None:
            raise VisitError("outside_service_area", address)
        if not spec.covers(area):
            raise VisitError("bad_window", f"{spec.code} does not cover {area.city}/{area.district or '*'}")
        return spec

    def _insert(self, ticket: Ticket, window: Window, address: str, now: datetime) -> Visit:
        self._check(window, address, now)
        start, end = as_utc(window.start), as_utc(window.end)
        # Held for this ticket (or a hold that lapsed and nobody took): the hold carries on a while after booking,
        # so a claim racing with this booking's commit cannot offer the window again.
        if not self._claim(window, ticket.id, now):
            raise VisitError("slot_taken", f"{window.engineer_code} {start.isoformat()} is held for another customer")
        visit = Visit(ticket_id=ticket.id, engineer_id=window.engineer_id, start=start, end=end, status=BOOKED,
                      address=address, reminder_day_before_at=start - timedelta(hours=24),
                      reminder_2h_at=start - timedelta(hours=2), created_at=now)
        try:
            with self.session.begin_nested():
                self.session.add(visit)
                self.session.flush()
        except IntegrityError as exc:
            if _is_second_live_visit(exc):
                raise VisitError("already_booked", f"ticket {ticket.number} has a booked visit") from exc
            if not _is_slot_taken(exc):
                raise
            raise VisitError("slot_taken", f"{window.engineer_code} {start.isoformat()}") from exc
        self.release_holds(ticket.id, keep=[window])
        return visit

    def book(self, *, ticket: Ticket, window: Window, address: str, now: datetime, actor: str = "bot") -> Visit:
        """Book the window for the ticket (in a savepoint; the caller commits). VisitError("slot_taken") when
        someone else has that engineer and start; "past", "outside_working_hours", "bad_window",
        "outside_service_area" when the window no longer fits."""
        visit = self._insert(ticket, window, address, now)
        ticket.updated_at = now
        add_event(self.session, ticket, "visit_booked", actor, now, visit_id=visit.id, engineer=window.engineer_code,
                  start=iso(visit.start), end=iso(visit.end), address=address)
        return visit

    def book_first_free(self, *, ticket: Ticket, category: str, address: str, now: datetime, when=None,
                        limit: int = 3) -> tuple[Visit, bool]:
        """Book the earliest free window, trying the proposals in order and asking again when all were taken.

        Returns (visit, got_first_choice): False when someone else took the window first offered. Raises
        VisitError("slot_taken") when no window is left (and the errors of `proposals`).
        """
        candidates = self._candidates(category, address)
        tried: set[tuple[int, datetime]] = set()
        first: tuple[int, datetime] | None = None
        while True:
            windows = self._pick(self._free_windows(candidates, now, when, skip=frozenset(tried), holder=ticket.id),
                                 limit)
            if not windows:
                raise VisitError("slot_taken", "no free window left")
            if first is None:
                first = (windows[0].engineer_id, windows[0].start)
            for window in windows:
                key = (window.engineer_id, window.start)
                try:
                    visit = self.book(ticket=ticket, window=window, address=address, now=now)
                except VisitError as exc:
                    if exc.code != "slot_taken":
                        raise
                    tried.add(key)
                    continue
                return visit, key == first

    def _locked(self, visit: Visit) -> Visit:
        """The visit re-read under a row lock (PostgreSQL), so two changes of one visit queue up."""
        return self.session.execute(
            select(Visit).where(Visit.id == visit.id).with_for_update()
            .execution_options(populate_existing=True)).scalar_one()

    def reschedule(self, visit: Visit, window: Window, now: datetime, actor: str = "customer") -> Visit:
        """Book the new window first, then cancel the old visit, in the caller's transaction. Returns the new visit."""
        visit = self._locked(visit)
        if visit.status != BOOKED:
            raise VisitError("visit_not_found", f"visit {visit.id} is {visit.status}")
        if window.engineer_id == visit.engineer_id and as_utc(window.start) == as_utc(visit.start):
            return visit  # already there
        # The old visit stops being live first (one live visit per ticket), and is live again if the new window
        # cannot be had.
        visit.status = CANCELLED
        self.session.flush()
        try:
            new = self._insert(visit.ticket, window, visit.address, now)
        except VisitError:
            visit.status = BOOKED
            self.session.flush()
            raise
        visit.ticket.updated_at = now
        add_event(self.session, visit.ticket, "visit_rescheduled", actor, now, visit_id=new.id, previous_visit_id=visit.id,
                  **{"from": {"engineer": visit.engineer.code, "start": iso(visit.start), "end": iso(visit.end)},
                     "to": {"engineer": window.engineer_code, "start": iso(new.start), "end": iso(new.end)}})
        return new

    def cancel(self, visit: Visit, now: datetime, actor: str = "customer") -> Visit:
        """Cancel a booked visit, which frees its window (the unique index covers booked visits only).
        Cancelling a cancelled visit changes nothing; a customer cannot cancel a visit that has begun."""
        visit = self._locked(visit)
        if visit.status == CANCELLED:
            return visit
        if visit.status != BOOKED:
            raise VisitError("visit_not_found", f"visit {visit.id} is {visit.status}")
        if actor == "customer" and as_utc(visit.start) <= now:
            raise VisitError("past", f"visit {visit.id} began at {iso(visit.start)}")
        visit.status = CANCELLED
        self.session.flush()
        self.release_holds(visit.ticket_id)  # the window is free for others at once
        visit.ticket.updated_at = now
        add_event(self.session, visit.ticket, "visit_cancelled", actor, now, visit_id=visit.id,
                  engineer=visit.engineer.code, start=iso(visit.start), end=iso(visit.end))
        return visit

    # --- queries --------------------------------------------------------------------------------
    def _select(self):
        return select(Visit).options(selectinload(Visit.ticket), selectinload(Visit.engineer))

    def visits_of(self, ticket: Ticket) -> list[Visit]:
        return list(self.session.execute(
            self._select().where(Visit.ticket_id == ticket.id).order_by(Visit.start, Visit.id)).scalars())

    def live_visit(self, ticket: Ticket) -> Visit | None:
        """The ticket's booked visit (the latest, should there be several)."""
        return self.session.execute(
            self._select().where(Visit.ticket_id == ticket.id, Visit.status == BOOKED)
            .order_by(Visit.start.desc(), Visit.id.desc()).limit(1)).scalars().first()

    def list(self, limit: int = 100) -> list[Visit]:
        """Latest visits first (by start)."""
        return list(self.session.execute(
            self._select().order_by(Visit.start.desc(), Visit.id.desc()).limit(limit)).scalars())

    def due_reminders(self, now: datetime) -> list[tuple[Visit, str]]:
        """Reminders whose time has come for booked visits that have not begun: (visit, "day_before"|"two_hours").

        A reminder whose time was already past when the visit was booked is not due (the booking confirmation
        said it), and the day-before reminder gives way once the two-hour one is due. Nothing records that a
        reminder was sent: the sender must not send the same (visit, kind) twice.
        """
        at = as_utc(_aware(now, "now"))
        rows = self.session.execute(
            self._select().where(Visit.status == BOOKED, Visit.start > at,
                                 or_(Visit.reminder_day_before_at <= at, Visit.reminder_2h_at <= at))
            .order_by(Visit.start, Visit.id)).scalars()
        due = []
        for visit in rows:
            booked_at = as_utc(visit.created_at)
            day_before, two_hours = as_utc(visit.reminder_day_before_at), as_utc(visit.reminder_2h_at)
            if two_hours is not None and two_hours <= at:
                if two_hours >= booked_at:
                    due.append((two_hours, visit, "two_hours"))
            elif day_before is not None and booked_at <= day_before <= at:
                due.append((day_before, visit, "day_before"))
        due.sort(key=lambda d: (d[0], d[1].id))
        return [(visit, kind) for _at, visit, kind in due]


# ---------------------------------------------------------------------------------------------- outcomes
OUTCOMES = ("done", "no_show", "late")
MAX_LATE_MINUTES = 24 * 60



def _promise_check_back(uow, visit: Visit, now: datetime) -> None:
    from bot.services.promises import schedule_check_back  # promises build on visits, not the other way round

    schedule_check_back(uow, visit, now)


# Called as hook(uow, visit, now) inside the unit of work that marks a visit done, before it commits (the visit's
# ticket is resolved by then); a hook that raises rolls the whole change back.
ON_VISIT_DONE: list[Callable[[Any, Visit, datetime], None]] = [_promise_check_back]


def record_visit_outcome(uow, visit_id: int, outcome: str, now: datetime, *, actor: str = "agent",
                         by: str | None = None, late_minutes: int | None = None, note: str = "",
                         tz: ZoneInfo | None = None) -> Visit:
    """The desk records what became of a visit, in the caller's unit of work (the caller commits):

    - "done": the engineer came and did the work. The visit ends, the ticket is resolved (through
      `TicketBook.set_status`, when its state allows), and every ON_VISIT_DONE hook runs (by default: the
      check-back after the visit is promised, "is it working now?");
    - "no_show": the visit did not happen (`note` says why, e.g. nobody at home). The visit ends; the ticket stays
      open for the desk to book again;
    - "late": the engineer is or was `late_minutes` late. A mark on a live (booked) visit, which keeps its window;
      marking it again replaces the minutes.

    Each is an event on the ticket: visit_done, visit_no_show, visit_late. Done and no-show cannot be recorded for a
    visit whose window has not begun ("not_started"), nor twice ("visit_finished": it is no longer booked).
    """
    if outcome not in OUTCOMES:
        raise VisitError("bad_outcome", f"{outcome!r} is not one of {', '.join(OUTCOMES)}")
    session = uow.session
    visit = session.execute(select(Visit).where(Visit.id == visit_id).with_for_update()
                            .options(selectinload(Visit.ticket), selectinload(Visit.engineer))
                            .execution_options(populate_existing=True)).scalar_one_or_none()
    if visit is None:
        raise VisitError("visit_not_found", f"visit {visit_id}")
    note = (note or "").strip()[:500]
    common = {"visit_id": visit.id, "engineer": visit.engineer.code if visit.engineer else None,
              "start": iso(visit.start), "by": by or actor}
    if note:
        common["note"] = note
    ticket = visit.ticket
    if outcome == "late":
        if visit.status != VisitStatus.booked.value:
            raise VisitError("visit_finished", f"visit {visit.id} is {visit.status}")
        if not isinstance(late_minutes, int) or isinstance(late_minutes, bool) or \
                not 1 <= late_minutes <= MAX_LATE_MINUTES:
            raise VisitError("bad_outcome", f"late needs minutes 1..{MAX_LATE_MINUTES}")
        visit.late_minutes = late_minutes
        visit.late_at = now
        ticket.updated_at = now
        add_event(session, ticket, "visit_late", actor, now, minutes=late_minutes, **common)
        return visit
    new = VisitStatus(outcome)
    if new not in VISIT_TRANSITIONS[VisitStatus(visit.status)]:
        raise VisitError("visit_finished", f"visit {visit.id} is {visit.status}")
    if as_utc(visit.start) > now:
        raise VisitError("not_started", f"visit {visit.id} begins at {iso(visit.start)}")
    visit.status = new.value
    visit.outcome_at = now
    visit.outcome_by = (by or actor)[:64]
    ticket.updated_at = now
    add_event(session, ticket, f"visit_{outcome}", actor, now, **common)
    session.flush()
    if new == VisitStatus.done:
        if TicketStatus.resolved in TRANSITIONS[TicketStatus(ticket.status)]:
            TicketBook(session, tz or ZoneInfo("UTC")).set_status(
                ticket, TicketStatus.resolved.value, now, actor=actor, note=f"visit {visit.id} done")
        for hook in list(ON_VISIT_DONE):
            hook(uow, visit, now)
    return visit


def release_ticket_holds(session: Session, ticket_id: int) -> int:
    """Release every window held for the ticket (the conversation left the visit steps, went to a person, or the
    ticket was closed). Returns how many were released."""
    return VisitBook(session, ZoneInfo("UTC"), None).release_holds(ticket_id)  # type: ignore[arg-type]


def find_engineer(session: Session, name: str) -> Engineer:
    """An engineer by code ("E001") or by name in either language (case and spaces ignored)."""
    wanted = _norm(name).replace(" ", "")
    if not wanted:
        raise VisitError("engineer_not_found", "no name given")
    engineers = list(session.execute(select(Engineer).order_by(Engineer.code)).scalars())
    for engineer in engineers:
        if wanted in (_norm(engineer.code), _norm(engineer.name_zh).replace(" ", ""),
                      _norm(engineer.name_en).replace(" ", "")):
            return engineer
    raise VisitError("engineer_not_found", name)


def day_list(session: Session, engineer: Engineer, day: date, tz: ZoneInfo) -> list[Visit]:
    """The engineer's visits starting on `day` (desk time zone), in order, cancelled ones left out."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = start + timedelta(days=1)
    return list(session.execute(
        select(Visit).options(selectinload(Visit.ticket), selectinload(Visit.engineer))
        .where(Visit.engineer_id == engineer.id, Visit.start >= as_utc(start), Visit.start < as_utc(end),
               Visit.status != CANCELLED)
        .order_by(Visit.start, Visit.id)).scalars())


def day_list_json(engineer: Engineer, day: date, visits: Iterable[Visit], tz: ZoneInfo) -> dict:
    """The JSON shape of `python -m bot visits day --json` and the console's GET api/visits/day."""
    items = []
    for v in visits:
        t = v.ticket
        items.append({
            "id": v.id, "ticket": t.number if t else None, "start": iso(v.start), "end": iso(v.end),
            "local_window": f"{as_utc(v.start).astimezone(tz):%H:%M}-{as_utc(v.end).astimezone(tz):%H:%M}",
            "status": v.status, "late_minutes": v.late_minutes, "outcome_at": iso(v.outcome_at),
            "outcome_by": v.outcome_by, "address": v.address,
            "customer": (t.customer_name if t else None), "phone": (t.phone if t else None),
            "product": t.product if t else None, "model": t.model if t else None,
            "symptom": t.symptom if t else None, "ticket_status": t.status if t else None,
        })
    return {"engineer": {"code": engineer.code, "name": {"zh": engineer.name_zh, "en": engineer.name_en},
                         "phone": engineer.phone},
            "date": day.isoformat(), "timezone": str(tz), "count": len(items), "visits": items}


def visit_json(visit: Visit) -> dict:
    """The JSON shape other tools read (`python -m bot visits list --json`); times in UTC with offset."""
    engineer = visit.engineer
    return {
        "id": visit.id,
        "ticket": visit.ticket.number if visit.ticket else None,
        "engineer": engineer.code if engineer else None,
        "engineer_name": {"zh": engineer.name_zh, "en": engineer.name_en} if engineer else None,
        "engineer_phone": engineer.phone if engineer else None,
        "start": iso(visit.start),
        "end": iso(visit.end),
        "address": visit.address,
        "status": visit.status,
        "reminders": {"day_before": iso(visit.reminder_day_before_at), "two_hours": iso(visit.reminder_2h_at)},
        "created_at": iso(visit.created_at),
        "late_minutes": visit.late_minutes,
        "outcome_at": iso(visit.outcome_at),
        "outcome_by": visit.outcome_by,
    }
