"""The outbox: every promise the bot makes to a customer is a row, and a runner sends what is due, exactly once.

Rows are written in the same unit of work as the promise itself (`schedule`), so a promise is never said without
being kept on record. A runner (`python -m bot outbox run`, a process of its own) repeats: claim one due row
(committed: `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several runners never take the same row; on SQLite the
claim runs under BEGIN IMMEDIATE, and one runner at a time holds a file lock), send it through the Deliverer of
the row's channel, record the outcome (committed) — a send is recorded before the next claim. A runner that dies
between claim and send leaves the row `claimed`; after the lease it is claimed again and sent. Failures wait
(back-off) and after `max_attempts` end `failed`, for the desk to see. Quiet hours move due times to the morning
and keep the runner silent at night.

The runner knows nothing of Rasa: a Deliverer per channel (`register`) takes an `Outgoing` (the messages, the
question the promise opens) and says `sent` or `held`, or raises `DeliveryError(retryable)`.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.services.tickets import add_event, as_utc, iso
from bot.settings import ROOT
from bot.store.models import OutboxItem, OutboxStatus, Ticket

log = logging.getLogger(__name__)

OUTBOX_FILE = ROOT / "data" / "outbox.yml"
KINDS = ("visit_reminder_day_before", "visit_reminder_two_hours", "visit_check_back", "self_check_call_back",
         "agent_call_back_reminder", "survey", "thank_you", "supervisor_call_back")
CRASH_ENV = "BOT_OUTBOX_CRASH_AT"  # tests only: "after_claim" ends the runner between claim and send


# ---------------------------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class OutboxConfig:
    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 0)
    poll_seconds: float = 15.0
    lease_seconds: int = 300
    max_attempts: int = 5
    backoff_seconds: tuple[int, ...] = (60, 300, 900, 3600)
    overdue_grace_minutes: int = 60
    timing: dict = field(default_factory=dict)
    survey: tuple[dict, ...] = ()

    def hours(self, name: str) -> timedelta:
        return timedelta(hours=float(self.timing[f"{name}_hours"]))

    def minutes(self, name: str) -> timedelta:
        return timedelta(minutes=float(self.timing[f"{name}_minutes"]))

    def backoff(self, attempts: int) -> timedelta:
        steps = self.backoff_seconds or (60,)
        return timedelta(seconds=steps[min(max(attempts, 1), len(steps)) - 1])


TIMINGS = ("visit_reminder_day_before_hours", "visit_reminder_two_hours_hours", "visit_check_back_hours",
           "self_check_call_back_hours", "agent_call_back_grace_minutes", "survey_delay_minutes",
           "thank_you_delay_minutes", "supervisor_call_back_hours")
QUESTION_KINDS = ("rating", "yes_no", "text")


def _hhmm(value: Any, where: str) -> time:
    try:
        return time.fromisoformat(str(value))
    except ValueError as exc:
        raise ValueError(f"{where}: {value!r} is not a time (HH:MM)") from exc


def parse_outbox_config(data: dict, source: str = "<outbox>") -> OutboxConfig:
    """Validated settings; a broken file stops the runner and the servers at start-up with the reason."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: not a mapping")
    quiet = data.get("quiet_hours") or {}
    runner = data.get("runner") or {}
    timing = data.get("timing") or {}
    missing = [name for name in TIMINGS if name not in timing]
    if missing:
        raise ValueError(f"{source}: timing lacks {', '.join(missing)}")
    if any(not isinstance(timing[name], (int, float)) or timing[name] < 0 for name in TIMINGS):
        raise ValueError(f"{source}: timings must be numbers >= 0")
    questions = tuple((data.get("survey") or {}).get("questions") or ())
    seen = set()
    for q in questions:
        if not isinstance(q, dict) or not q.get("id") or q.get("kind") not in QUESTION_KINDS \
                or not q.get("zh") or not q.get("en") or q["id"] in seen:
            raise ValueError(f"{source}: each survey question needs a unique id, kind ({'/'.join(QUESTION_KINDS)}), "
                             f"zh and en: {q!r}")
        seen.add(q["id"])
    if "overall" not in seen:
        raise ValueError(f"{source}: the survey needs the question `overall` (kind rating)")
    backoff = tuple(int(s) for s in runner.get("backoff_seconds", (60, 300, 900, 3600)))
    config = OutboxConfig(
        quiet_start=_hhmm(quiet.get("start", "21:00"), f"{source}: quiet_hours.start"),
        quiet_end=_hhmm(quiet.get("end", "08:00"), f"{source}: quiet_hours.end"),
        poll_seconds=float(runner.get("poll_seconds", 15)), lease_seconds=int(runner.get("lease_seconds", 300)),
        max_attempts=int(runner.get("max_attempts", 5)), backoff_seconds=backoff,
        overdue_grace_minutes=int(runner.get("overdue_grace_minutes", 60)), timing=dict(timing), survey=questions)
    if config.poll_seconds <= 0 or config.lease_seconds <= 0 or config.max_attempts < 1 or not backoff \
            or min(backoff) < 0:
        raise ValueError(f"{source}: runner figures must be positive")
    return config


def load_outbox_config(path: str | Path | None = None) -> OutboxConfig:
    path = Path(path or os.environ.get("BOT_OUTBOX_FILE") or OUTBOX_FILE)
    return parse_outbox_config(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


# ---------------------------------------------------------------------------------------------- quiet hours
def in_quiet_hours(moment: datetime, tz: ZoneInfo, config: OutboxConfig) -> bool:
    start, end = config.quiet_start, config.quiet_end
    if start == end:
        return False
    local = as_utc(moment).astimezone(tz).time()
    if start < end:
        return start <= local < end
    return local >= start or local < end


def out_of_quiet_hours(moment: datetime, tz: ZoneInfo, config: OutboxConfig) -> datetime:
    """`moment`, or the end of the quiet hours it falls in (the morning), in UTC."""
    moment = as_utc(moment)
    if not in_quiet_hours(moment, tz, config):
        return moment
    local = moment.astimezone(tz)
    morning = datetime.combine(local.date(), config.quiet_end, tzinfo=tz)
    if morning <= local:
        morning = datetime.combine(local.date() + timedelta(days=1), config.quiet_end, tzinfo=tz)
    return morning.astimezone(timezone.utc)


# ---------------------------------------------------------------------------------------------- scheduling
def schedule(session: Session, *, kind: str, channel: str, conversation_id: str, due_at: datetime, language: str,
             now: datetime, tz: ZoneInfo, config: OutboxConfig, ticket: Ticket | None = None,
             visit_id: int | None = None, payload: dict | None = None, dedupe_key: str | None = None,
             actor: str = "bot") -> OutboxItem:
    """Write a promise (in the caller's unit of work) and a `promise_scheduled` event on its ticket. A promise with
    the same dedupe_key already on record is returned as it is (a retried turn promises nothing twice)."""
    if dedupe_key:
        existing = session.execute(select(OutboxItem).where(OutboxItem.dedupe_key == dedupe_key)).scalar_one_or_none()
        if existing is not None:
            return existing
    due = out_of_quiet_hours(due_at, tz, config)
    item = OutboxItem(kind=kind, ticket_id=ticket.id if ticket is not None else None, visit_id=visit_id,
                      channel=channel, conversation_id=conversation_id, due_at=due,
                      language=language if language in ("zh", "en") else "zh", payload=dict(payload or {}),
                      status=OutboxStatus.pending.value, attempts=0, created_at=now, dedupe_key=dedupe_key)
    try:
        with session.begin_nested():
            session.add(item)
            session.flush()
    except IntegrityError:
        existing = session.execute(select(OutboxItem).where(OutboxItem.dedupe_key == dedupe_key)).scalar_one_or_none()
        if existing is None:
            raise
        return existing
    if ticket is not None:
        add_event(session, ticket, "promise_scheduled", actor, now, outbox_id=item.id, promise=kind, due=due,
                  channel=channel)
    return item


def cancel_pending(session: Session, *, now: datetime, why: str, ticket_id: int | None = None,
                   visit_id: int | None = None, kinds: Iterable[str] | None = None) -> int:
    """Promises that no longer hold (the visit moved, the ticket was reopened) are cancelled, not sent."""
    stmt = select(OutboxItem).where(OutboxItem.status == OutboxStatus.pending.value)
    if ticket_id is not None:
        stmt = stmt.where(OutboxItem.ticket_id == ticket_id)
    if visit_id is not None:
        stmt = stmt.where(OutboxItem.visit_id == visit_id)
    if kinds is not None:
        stmt = stmt.where(OutboxItem.kind.in_(tuple(kinds)))
    rows = list(session.execute(stmt).scalars())
    for row in rows:
        row.status = OutboxStatus.cancelled.value
        row.last_error = why[:300]
    return len(rows)


def mark_held_delivered(session: Session, conversation_id: str, now: datetime) -> int:
    """The customer came back (the widget loaded the conversation): what was held for them has been shown."""
    rows = list(session.execute(select(OutboxItem).where(OutboxItem.conversation_id == conversation_id,
                                                         OutboxItem.status == OutboxStatus.held.value)).scalars())
    for row in rows:
        row.status = OutboxStatus.sent.value
        row.sent_at = now
        if row.ticket is not None:
            add_event(session, row.ticket, "promise_sent", "system", now, outbox_id=row.id, promise=row.kind,
                      channel=row.channel, on_return=True)
    return len(rows)


# ---------------------------------------------------------------------------------------------- delivery
@dataclass(frozen=True)
class Outgoing:
    """What a Deliverer sends: the messages ({"text", "buttons"}) and, for a promise that asks something, the
    question it opens (the script's state for the answer)."""

    outbox_id: int
    kind: str
    channel: str
    conversation_id: str
    language: str
    messages: list[dict]
    question: dict | None = None

    def as_dict(self) -> dict:
        return {"outbox_id": self.outbox_id, "kind": self.kind, "channel": self.channel,
                "conversation_id": self.conversation_id, "language": self.language, "messages": self.messages,
                "question": self.question}


class DeliveryResult:
    sent = "sent"
    held = "held"


class DeliveryError(Exception):
    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


class Deliverer(Protocol):
    channel: str

    def deliver(self, item: Outgoing) -> str:  # DeliveryResult.sent or .held; raises DeliveryError
        ...


class Deliverers:
    """The registry: one Deliverer per channel name. A channel added later registers its own."""

    def __init__(self, deliverers: Iterable[Deliverer] = ()):
        self._by_channel: dict[str, Deliverer] = {}
        for deliverer in deliverers:
            self.register(deliverer)

    def register(self, deliverer: Deliverer) -> None:
        self._by_channel[deliverer.channel] = deliverer

    def get(self, channel: str) -> Deliverer | None:
        return self._by_channel.get(channel)

    def channels(self) -> list[str]:
        return sorted(self._by_channel)


# ---------------------------------------------------------------------------------------------- the runner
@dataclass
class RunResult:
    sent: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    quiet: bool = False

    def summary(self) -> str:
        if self.quiet:
            return "quiet hours: nothing sent"
        return (f"sent {len(self.sent)}, held {len(self.held)}, retried later {len(self.retried)}, "
                f"failed {len(self.failed)}, cancelled {len(self.cancelled)}")


# render(session, item, now) -> Outgoing, or a string: why the promise no longer holds (the row is cancelled).
Renderer = Callable[[Session, OutboxItem, datetime], "Outgoing | str"]


class OutboxRunner:
    def __init__(self, sessions: Callable[[], Session], deliverers: Deliverers, render: Renderer, *,
                 tz: ZoneInfo, config: OutboxConfig):
        self.sessions = sessions
        self.deliverers = deliverers
        self.render = render
        self.tz = tz
        self.config = config

    def claim(self, now: datetime) -> int | None:
        """Take the next due row (or one whose runner died, after the lease) and commit the claim. Its id."""
        now = as_utc(now)
        lease_ended = now - timedelta(seconds=self.config.lease_seconds)
        with self.sessions() as session:
            while True:
                stmt = (select(OutboxItem)
                        .where(or_(and_(OutboxItem.status == OutboxStatus.pending.value, OutboxItem.due_at <= now),
                                   and_(OutboxItem.status == OutboxStatus.claimed.value,
                                        OutboxItem.claimed_at <= lease_ended)))
                        .order_by(OutboxItem.due_at, OutboxItem.id).limit(1))
                if session.get_bind().dialect.name == "postgresql":
                    stmt = stmt.with_for_update(skip_locked=True)
                item = session.execute(stmt).scalar_one_or_none()
                if item is None:
                    session.rollback()
                    return None
                if item.attempts >= self.config.max_attempts:  # claimed, and its runner died, too often
                    self._fail(session, item, now, "gave up: claimed and not sent too many times")
                    session.commit()
                    continue
                item.status = OutboxStatus.claimed.value
                item.claimed_at = now
                item.attempts += 1
                session.commit()
                return item.id

    def _fail(self, session: Session, item: OutboxItem, now: datetime, why: str) -> None:
        item.status = OutboxStatus.failed.value
        item.last_error = why[:300]
        if item.ticket is not None:
            add_event(session, item.ticket, "promise_failed", "system", now, outbox_id=item.id, promise=item.kind,
                      why=why[:300], attempts=item.attempts)

    def process(self, item_id: int, now: datetime, result: RunResult) -> None:
        """Send one claimed row and record what happened (one commit)."""
        now = as_utc(now)
        with self.sessions() as session:
            item = session.get(OutboxItem, item_id)
            if item is None or item.status != OutboxStatus.claimed.value:
                return
            outgoing = self.render(session, item, now)
            if isinstance(outgoing, str):
                item.status = OutboxStatus.cancelled.value
                item.last_error = outgoing[:300]
                session.commit()
                result.cancelled.append(item.id)
                return
            # No transaction stays open while the channel is called: on SQLite the open read would keep the Rasa
            # server from committing what the channel writes (WeChat's token, its held messages) until the call
            # timed out; on PostgreSQL it would hold a connection's snapshot across network I/O.
            session.commit()
            deliverer = self.deliverers.get(item.channel)
            try:
                if deliverer is None:
                    raise DeliveryError(f"no deliverer for channel {item.channel}", retryable=False)
                status = deliverer.deliver(outgoing)
            except DeliveryError as exc:
                log.warning("outbox %s (%s over %s): attempt %s failed: %s", item.id, item.kind, item.channel,
                            item.attempts, exc)
                if exc.retryable and item.attempts < self.config.max_attempts:
                    item.status = OutboxStatus.pending.value
                    item.due_at = out_of_quiet_hours(now + self.config.backoff(item.attempts), self.tz, self.config)
                    item.last_error = str(exc)[:300]
                    result.retried.append(item.id)
                else:
                    self._fail(session, item, now, str(exc))
                    result.failed.append(item.id)
                session.commit()
                return
            item.status = OutboxStatus.held.value if status == DeliveryResult.held else OutboxStatus.sent.value
            item.last_error = None
            if item.status == OutboxStatus.sent.value:
                item.sent_at = now
                result.sent.append(item.id)
            else:
                result.held.append(item.id)
            if item.ticket is not None:
                add_event(session, item.ticket, "promise_sent" if status != DeliveryResult.held else "promise_held",
                          "system", now, outbox_id=item.id, promise=item.kind, channel=item.channel)
            session.commit()

    def run_once(self, now: datetime, *, limit: int = 10_000) -> RunResult:
        """Send everything due at `now`, one row at a time; a row that fails is retried later, not now."""
        result = RunResult()
        if in_quiet_hours(now, self.tz, self.config):
            result.quiet = True
            return result
        for _ in range(limit):
            item_id = self.claim(now)
            if item_id is None:
                break
            if os.environ.get(CRASH_ENV) == "after_claim":
                log.error("outbox: %s=after_claim, ending between claim and send of %s", CRASH_ENV, item_id)
                os._exit(75)
            self.process(item_id, now, result)
        return result


# ---------------------------------------------------------------------------------------------- listing
def outbox_json(item: OutboxItem) -> dict:
    """The keys other tools read (`python -m bot outbox list --json`)."""
    return {"id": item.id, "kind": item.kind, "ticket": item.ticket.number if item.ticket else None,
            "channel": item.channel, "due": iso(item.due_at), "status": item.status, "sent_at": iso(item.sent_at)}


def list_items(session: Session, *, limit: int = 200, status: str | None = None) -> list[OutboxItem]:
    stmt = select(OutboxItem).order_by(OutboxItem.due_at.desc(), OutboxItem.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(OutboxItem.status == status)
    return list(session.execute(stmt).scalars())
