"""Hand-off to a person: the agents' queue, honest waits, call-backs out of hours, agent accounts and console sessions.

Plain Python over a SQLAlchemy session (the caller's unit of work commits); nothing here knows Rasa. The desk's
opening hours and queue figures come from data/seed/desk.yml (`load_desk`). Statuses follow
`HANDOFF_TRANSITIONS` in bot/store/models.py: waiting -> claimed -> returned | closed, waiting -> closed.
"""
from __future__ import annotations

import hashlib
import logging
import math
import re
import secrets
import statistics
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from bot.nlu import phones
from bot.services.sign_in import SignInGuard, Throttle, check_password, dummy_hash, hash_password, needs_rehash
from bot.services.tickets import TicketBook, add_event, as_utc, iso
from bot.store.models import (
    HANDOFF_TRANSITIONS,
    OPEN_HANDOFF_STATUSES,
    Agent,
    AgentRole,
    AgentSession,
    Handoff,
    HandoffStatus,
    Ticket,
    TicketStatus,
    TRANSITIONS,
    Visit,
)

log = logging.getLogger(__name__)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
MIN_PASSWORD = 8
SEEN_WRITE_SECONDS = 30  # last_seen_at is written at most this often per session


class HandoffError(Exception):
    """A domain error the console turns into an HTTP status (see `HTTP_STATUS`) and the CLI into a message."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


class SignInThrottled(HandoffError):
    """Too many failed sign-ins for this name or address: try again after `throttle.retry_after_seconds`."""

    def __init__(self, throttle: Throttle):
        super().__init__("throttled", f"too many failed sign-ins for this {throttle.by}; "
                                      f"try again in {throttle.retry_after_seconds} s")
        self.throttle = throttle


HTTP_STATUS = {"bad_credentials": 401, "throttled": 429, "forbidden": 403, "not_found": 404, "not_waiting": 409,
               "not_claimed": 409, "finished": 409, "bad_name": 400, "weak_password": 400, "name_taken": 409,
               "bad_role": 400, "empty_text": 400}


# ---------------------------------------------------------------------------------------------- the desk's rules
@dataclass(frozen=True)
class DeskConfig:
    """Opening hours (local, per weekday 0=Monday) and the queue's figures, from data/seed/desk.yml."""

    hours: dict[int, tuple[tuple[time, time], ...]] = field(default_factory=dict)
    callback_after_opening_minutes: int = 30
    default_handling_minutes: float = 8.0
    sample: int = 20
    online_minutes: int = 5
    session_idle_hours: float = 8.0

    def is_open(self, local: datetime) -> bool:
        now = local.time()
        return any(start <= now < end for start, end in self.hours.get(local.weekday(), ()))

    def next_opening(self, local: datetime) -> datetime | None:
        """The first opening time strictly after `local` (same time zone), within the next eight days."""
        for days in range(0, 9):
            day = (local + timedelta(days=days)).date()
            for start, _end in sorted(self.hours.get(day.weekday(), ())):
                candidate = datetime.combine(day, start, tzinfo=local.tzinfo)
                if candidate > local:
                    return candidate
        return None


def _hhmm(value, where: str) -> time:
    if str(value) == "24:00":  # the end of the day
        return time.max
    try:
        hours, minutes = str(value).split(":")
        return time(int(hours), int(minutes))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {value!r} is not a time like 09:00") from exc


def parse_desk(data: dict, source: str = "<desk>") -> DeskConfig:
    if not isinstance(data, dict) or not isinstance(data.get("hours"), dict):
        raise ValueError(f"{source}: needs an `hours` mapping of weekdays")
    unknown = set(data["hours"]) - set(WEEKDAYS)
    if unknown:
        raise ValueError(f"{source}: unknown weekdays {sorted(unknown)} (use {', '.join(WEEKDAYS)})")
    hours: dict[int, tuple[tuple[time, time], ...]] = {}
    for index, name in enumerate(WEEKDAYS):
        spans = []
        for span in data["hours"].get(name) or ():
            if not isinstance(span, (list, tuple)) or len(span) != 2:
                raise ValueError(f"{source}: hours.{name}: each span is [start, end]")
            start, end = _hhmm(span[0], f"{source}: hours.{name}"), _hhmm(span[1], f"{source}: hours.{name}")
            if end <= start:
                raise ValueError(f"{source}: hours.{name}: {span[0]}-{span[1]} ends before it starts")
            spans.append((start, end))
        hours[index] = tuple(spans)
    callback = data.get("callback") or {}
    queue = data.get("queue") or {}
    sessions = data.get("sessions") or {}
    config = DeskConfig(
        hours=hours,
        callback_after_opening_minutes=int(callback.get("after_opening_minutes", 30)),
        default_handling_minutes=float(queue.get("default_handling_minutes", 8)),
        sample=int(queue.get("sample", 20)),
        online_minutes=int(queue.get("online_minutes", 5)),
        session_idle_hours=float(sessions.get("idle_hours", 8)),
    )
    if config.default_handling_minutes <= 0 or config.sample < 1 or config.online_minutes < 1 \
            or config.session_idle_hours <= 0 or config.callback_after_opening_minutes < 0:
        raise ValueError(f"{source}: queue, callback and session figures must be positive")
    return config


@lru_cache(maxsize=4)
def load_desk(path: str | Path) -> DeskConfig:
    path = Path(path)
    return parse_desk(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


# ---------------------------------------------------------------------------------------------- plain values out
@dataclass(frozen=True)
class QueueStatus:
    """Where one conversation stands: its place among the waiting, and what can honestly be promised."""

    status: str
    position: int | None  # 1 = next to be taken; None unless waiting
    agents_online: int
    expected_wait_minutes: int | None
    open_now: bool
    callback_due: datetime | None = None

    @property
    def staffed(self) -> bool:
        """Someone can take it now: the desk is open and an agent is signed in."""
        return self.open_now and self.agents_online > 0


@dataclass(frozen=True)
class QueueEntry:
    handoff_id: int
    conversation_id: str
    ticket: str
    channel: str
    reason: str
    status: str
    language: str
    anger: float
    requested_at: str
    waiting_seconds: int
    position: int | None
    agent: str | None
    agent_display_name: str | None
    claimed_at: str | None
    callback_due: str | None
    customer_name: str | None
    product: str | None
    severity: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SignIn:
    token: str
    expires_at: datetime
    agent: Agent


def agent_json(agent: Agent) -> dict:
    from bot.services.takeover import agent_names

    return {"name": agent.name, "display_name": agent.display_name, "role": agent.role,
            "languages": list(agent.languages or []), "active": bool(agent.active),
            "display_names": agent_names(agent)}  # issue 16: the name customers see, per language


# ---------------------------------------------------------------------------------------------- authorisation
def is_supervisor(agent: Agent) -> bool:
    return agent.role == AgentRole.supervisor.value


def may_view(agent: Agent, handoff: Handoff) -> bool:
    """Agents see waiting conversations and the ones they took; supervisors see all."""
    return is_supervisor(agent) or handoff.status == HandoffStatus.waiting.value or handoff.agent_id == agent.id


def holds(agent: Agent, handoff: Handoff) -> bool:
    """The agent has the case in hand: a supervisor, or the agent who took it over (and still has it)."""
    return is_supervisor(agent) or (handoff.status == HandoffStatus.claimed.value and handoff.agent_id == agent.id)


def may_act(agent: Agent, handoff: Handoff) -> bool:
    """Agents act on waiting conversations and on the ones they hold now; supervisors on all."""
    if is_supervisor(agent):
        return True
    if handoff.status == HandoffStatus.waiting.value:
        return True
    return handoff.status == HandoffStatus.claimed.value and handoff.agent_id == agent.id


# ---------------------------------------------------------------------------------------------- the queue
class HandoffDesk:
    """Hand-off operations inside one session (the caller's unit of work commits)."""

    def __init__(self, session: Session, desk: DeskConfig | None = None, tz: ZoneInfo | None = None,
                 first_response_hours: int = 2):
        self.session = session
        self.desk = desk or DeskConfig()
        self.tz = tz or ZoneInfo("Asia/Shanghai")
        self.first_response_hours = first_response_hours

    # --- look-ups --------------------------------------------------------------------------------
    def get(self, handoff_id: int) -> Handoff | None:
        return self.session.get(Handoff, handoff_id)

    def open_for(self, conversation_id: str) -> Handoff | None:
        return self.session.execute(
            select(Handoff).where(Handoff.conversation_id == conversation_id,
                                  Handoff.status.in_(OPEN_HANDOFF_STATUSES))
        ).scalars().first()

    def latest_for(self, conversation_id: str) -> Handoff | None:
        """The open hand-off of a conversation, else its most recent one."""
        return self.open_for(conversation_id) or self.session.execute(
            select(Handoff).where(Handoff.conversation_id == conversation_id).order_by(Handoff.id.desc())
        ).scalars().first()

    def of_ticket(self, ticket: Ticket) -> list[Handoff]:
        return list(self.session.execute(
            select(Handoff).where(Handoff.ticket_id == ticket.id).order_by(Handoff.id)).scalars())

    # --- joining the queue -----------------------------------------------------------------------
    def request(self, ticket: Ticket, *, reason: str, now: datetime, conversation_id: str | None = None,
                channel: str | None = None, language: str | None = None, anger: float | None = None,
                actor: str = "bot") -> tuple[Handoff, bool]:
        """The conversation's open hand-off, created (waiting) if there is none. Returns (handoff, created)."""
        conversation_id = conversation_id or ticket.conversation_id
        anger = max(float(anger or 0.0), float(ticket.anger or 0.0))
        existing = self.open_for(conversation_id)
        if existing is not None:
            existing.anger = max(existing.anger or 0.0, anger)
            return existing, False
        handoff = Handoff(ticket=ticket, conversation_id=conversation_id, channel=channel or ticket.channel,
                          reason=reason, status=HandoffStatus.waiting.value, requested_at=now,
                          language=language or ticket.language or "zh", anger=anger)
        try:
            with self.session.begin_nested():
                self.session.add(handoff)
                self.session.flush()
        except IntegrityError:
            # The same request delivered twice at once: the partial unique index let only one in.
            existing = self.open_for(conversation_id)
            if existing is None:
                raise
            return existing, False
        add_event(self.session, ticket, "handoff_queued", actor, now, handoff_id=handoff.id, reason=reason,
                  channel=handoff.channel)
        return handoff, True

    # --- where it stands -------------------------------------------------------------------------
    def position(self, handoff: Handoff) -> int | None:
        if handoff.status != HandoffStatus.waiting.value:
            return None
        ahead = self.session.execute(
            select(func.count(Handoff.id)).where(
                Handoff.status == HandoffStatus.waiting.value,
                or_(Handoff.requested_at < handoff.requested_at,
                    (Handoff.requested_at == handoff.requested_at) & (Handoff.id < handoff.id)))
        ).scalar_one()
        return ahead + 1

    def agents_online(self, now: datetime) -> int:
        since = now - timedelta(minutes=self.desk.online_minutes)
        return self.session.execute(
            select(func.count(func.distinct(AgentSession.agent_id))).join(Agent, Agent.id == AgentSession.agent_id)
            .where(AgentSession.revoked_at.is_(None), AgentSession.expires_at > now,
                   AgentSession.last_seen_at >= since, Agent.active.is_(True))
        ).scalar_one()

    def median_handling_minutes(self) -> float:
        """Median time from take-over to hand-back or close over the last `sample` finished hand-offs."""
        rows = self.session.execute(
            select(Handoff.claimed_at, Handoff.returned_at, Handoff.closed_at)
            .where(Handoff.status.in_((HandoffStatus.returned.value, HandoffStatus.closed.value)),
                   Handoff.claimed_at.is_not(None))
            .order_by(func.coalesce(Handoff.returned_at, Handoff.closed_at).desc(), Handoff.id.desc())
            .limit(self.desk.sample)
        ).all()
        minutes = [(as_utc(end or closed) - as_utc(claimed)).total_seconds() / 60
                   for claimed, end, closed in rows if (end or closed) is not None]
        return statistics.median(minutes) if minutes else self.desk.default_handling_minutes

    def expected_wait_minutes(self, position: int, agents_online: int) -> int:
        return max(1, math.ceil(self.median_handling_minutes() * position / max(1, agents_online)))

    def is_open(self, now: datetime) -> bool:
        return self.desk.is_open(as_utc(now).astimezone(self.tz))

    def queue_status(self, handoff: Handoff, now: datetime) -> QueueStatus:
        position = self.position(handoff)
        online = self.agents_online(now)
        wait = self.expected_wait_minutes(position, online) if position else None
        return QueueStatus(status=handoff.status, position=position, agents_online=online,
                           expected_wait_minutes=wait, open_now=self.is_open(now),
                           callback_due=as_utc(handoff.callback_due))

    def status_of_ticket(self, ticket: Ticket, now: datetime) -> QueueStatus | None:
        handoff = self.open_for(ticket.conversation_id)
        return self.queue_status(handoff, now) if handoff is not None else None

    # --- call-backs ------------------------------------------------------------------------------
    def callback_time(self, now: datetime) -> datetime:
        """When someone can honestly call back: the SLA promise, moved to shortly after the desk next opens when
        it falls out of hours (so never earlier than the promise)."""
        return self.in_opening_hours(as_utc(now) + timedelta(hours=self.first_response_hours))

    def in_opening_hours(self, moment: datetime) -> datetime:
        """`moment` if the desk is open then, else shortly after it next opens (call-backs and follow-up calls);
        a desk with no hours at all leaves it as it is."""
        moment = as_utc(moment)
        local = moment.astimezone(self.tz)
        if self.desk.is_open(local):
            return moment
        opening = self.desk.next_opening(local)
        if opening is None:
            return moment
        return (opening + timedelta(minutes=self.desk.callback_after_opening_minutes)).astimezone(timezone.utc)

    def offer_callback(self, handoff: Handoff, now: datetime, why: str) -> datetime:
        """Record a call-back time on the hand-off and as a ticket event; an earlier offer still ahead stands."""
        current = as_utc(handoff.callback_due)
        if current is not None and current > as_utc(now):
            return current
        due = self.callback_time(now)
        handoff.callback_due = due
        add_event(self.session, handoff.ticket, "callback_offered", "bot", now, handoff_id=handoff.id, due=due,
                  why=why)
        # If the desk misses it, the customer hears from us (the outbox keeps that promise).
        from bot.services.promises import Promises

        Promises(self.session, self.tz).agent_call_back_reminder(handoff, due, now)
        return due

    # --- the queue as agents see it --------------------------------------------------------------
    def queue(self, now: datetime, *, viewer: Agent | None = None, order: str = "oldest") -> list[QueueEntry]:
        """Waiting and claimed hand-offs the viewer may see, oldest or newest request first."""
        if order not in ("oldest", "newest"):
            raise ValueError("order is oldest or newest")
        stmt = (select(Handoff).where(Handoff.status.in_(OPEN_HANDOFF_STATUSES))
                .options(selectinload(Handoff.ticket).selectinload(Ticket.customer), selectinload(Handoff.agent)))
        rows = list(self.session.execute(stmt).scalars())
        rows.sort(key=lambda h: (as_utc(h.requested_at), h.id), reverse=order == "newest")
        waiting = sorted((h for h in rows if h.status == HandoffStatus.waiting.value),
                         key=lambda h: (as_utc(h.requested_at), h.id))
        positions = {h.id: i for i, h in enumerate(waiting, 1)}
        now = as_utc(now)
        out = []
        for h in rows:
            if viewer is not None and not may_view(viewer, h):
                continue
            t = h.ticket
            out.append(QueueEntry(
                handoff_id=h.id, conversation_id=h.conversation_id, ticket=t.number, channel=h.channel,
                reason=h.reason, status=h.status, language=h.language, anger=round(float(h.anger or 0.0), 2),
                requested_at=iso(h.requested_at), waiting_seconds=max(0, int((now - as_utc(h.requested_at)).total_seconds())),
                position=positions.get(h.id), agent=h.agent.name if h.agent else None,
                agent_display_name=h.agent.display_name if h.agent else None, claimed_at=iso(h.claimed_at),
                callback_due=iso(h.callback_due),
                customer_name=t.customer_name or (t.customer.name if t.customer else None), product=t.product,
                severity=t.severity))
        return out

    # --- agents at work --------------------------------------------------------------------------
    def _move(self, handoff: Handoff, new: HandoffStatus) -> None:
        old = HandoffStatus(handoff.status)
        if new not in HANDOFF_TRANSITIONS[old]:
            if old in (HandoffStatus.returned, HandoffStatus.closed):
                raise HandoffError("finished", f"hand-off {handoff.id} is {old.value}")
            raise HandoffError("not_waiting" if new == HandoffStatus.claimed else "not_claimed",
                               f"hand-off {handoff.id} is {old.value}")
        handoff.status = new.value

    def claim(self, handoff: Handoff, agent: Agent, now: datetime) -> Handoff:
        """Take a waiting conversation over. Only one agent wins when two try at once."""
        if not may_act(agent, handoff):
            raise HandoffError("forbidden")
        if handoff.status != HandoffStatus.waiting.value:
            self._move(handoff, HandoffStatus.claimed)  # raises the right error
        won = self.session.execute(
            update(Handoff).where(Handoff.id == handoff.id, Handoff.status == HandoffStatus.waiting.value)
            .values(status=HandoffStatus.claimed.value, agent_id=agent.id, claimed_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        self.session.refresh(handoff)
        if won != 1:
            raise HandoffError("not_waiting", f"hand-off {handoff.id} was taken by someone else")
        ticket = handoff.ticket
        if ticket.status in (TicketStatus.new.value, TicketStatus.awaiting_customer.value, TicketStatus.reopened.value):
            TicketBook(self.session, self.tz).set_status(ticket, TicketStatus.in_progress.value, now, actor="agent",
                                                         note=f"taken over by {agent.name}")
        add_event(self.session, ticket, "handoff_claimed", "agent", now, handoff_id=handoff.id, agent=agent.name)
        return handoff

    def require_holder(self, handoff: Handoff, agent: Agent) -> None:
        """Replies and hand-backs need the conversation taken over, by this agent or watched by a supervisor."""
        if not may_view(agent, handoff) or (handoff.status == HandoffStatus.claimed.value and not may_act(agent, handoff)):
            raise HandoffError("forbidden")
        if handoff.status == HandoffStatus.waiting.value:
            raise HandoffError("not_claimed", "take the conversation over first")
        if handoff.status != HandoffStatus.claimed.value:
            raise HandoffError("finished", f"hand-off {handoff.id} is {handoff.status}")

    def record_reply(self, handoff: Handoff, agent: Agent, text: str, now: datetime) -> None:
        self.require_holder(handoff, agent)
        if not text.strip():
            raise HandoffError("empty_text")
        add_event(self.session, handoff.ticket, "agent_replied", "agent", now, handoff_id=handoff.id,
                  agent=agent.name, chars=len(text))

    def hand_back(self, handoff: Handoff, agent: Agent, now: datetime) -> Handoff:
        self.require_holder(handoff, agent)
        self._move(handoff, HandoffStatus.returned)
        handoff.returned_at = now
        add_event(self.session, handoff.ticket, "handoff_returned", "agent", now, handoff_id=handoff.id,
                  agent=agent.name)
        return handoff

    def close(self, handoff: Handoff, agent: Agent, now: datetime, note: str = "") -> Handoff:
        """The case is done: the hand-off closes and the ticket is resolved. Only by the agent who holds it, or a
        supervisor (who may close any)."""
        if not holds(agent, handoff):
            raise HandoffError("forbidden")
        self._move(handoff, HandoffStatus.closed)
        handoff.closed_at = now
        if handoff.agent_id is None:
            handoff.agent_id = agent.id
        ticket = handoff.ticket
        add_event(self.session, ticket, "handoff_closed", "agent", now, handoff_id=handoff.id, agent=agent.name)
        current = TicketStatus(ticket.status)
        if TicketStatus.resolved in TRANSITIONS[current]:
            TicketBook(self.session, self.tz).set_status(ticket, TicketStatus.resolved.value, now, actor="agent",
                                                         note=note or f"resolved by {agent.name}")
        return handoff

    def withdraw(self, handoff: Handoff, now: datetime) -> None:
        """The customer no longer wants a person (only while still waiting)."""
        if handoff.status != HandoffStatus.waiting.value:
            return
        handoff.status = HandoffStatus.closed.value
        handoff.closed_at = now
        add_event(self.session, handoff.ticket, "handoff_withdrawn", "customer", now, handoff_id=handoff.id)

    def add_note(self, handoff: Handoff, agent: Agent, text: str, now: datetime) -> None:
        """An internal note on the ticket (never shown to the customer)."""
        if not may_view(agent, handoff):
            raise HandoffError("forbidden")
        text = text.strip()
        if not text:
            raise HandoffError("empty_text")
        add_event(self.session, handoff.ticket, "note_added", "agent", now, agent=agent.name, text=text[:4000])


# ---------------------------------------------------------------------------------------------- passwords
# Hashing (argon2id; scrypt hashes of before still accepted) and throttling live in bot/services/sign_in.py.
def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------- agent accounts
class AgentAccounts:
    """Agent accounts and console sign-ins inside one session (the caller's unit of work commits)."""

    def __init__(self, session: Session, idle_hours: float = 8.0):
        self.session = session
        self.idle = timedelta(hours=idle_hours)

    def get(self, name: str) -> Agent | None:
        return self.session.execute(select(Agent).where(Agent.name == name.strip().lower())).scalar_one_or_none()

    def list(self) -> list[Agent]:
        return list(self.session.execute(select(Agent).order_by(Agent.name)).scalars())

    def create(self, name: str, *, role: str = AgentRole.agent.value, password: str | None = None,
               display_name: str | None = None, languages: Iterable[str] = ("zh", "en"),
               now: datetime | None = None) -> tuple[Agent, str]:
        """A new account; returns (agent, password) — the password is generated when none is given."""
        name = name.strip().lower()
        if not NAME_RE.match(name):
            raise HandoffError("bad_name", "2-64 characters: lower-case letters, digits, . _ -")
        if role not in (AgentRole.agent.value, AgentRole.supervisor.value):
            raise HandoffError("bad_role", role)
        if password is None:
            password = secrets.token_urlsafe(12)
        elif len(password) < MIN_PASSWORD:
            raise HandoffError("weak_password", f"at least {MIN_PASSWORD} characters")
        if self.get(name) is not None:
            raise HandoffError("name_taken", name)
        agent = Agent(name=name, display_name=(display_name or name).strip()[:100], role=role,
                      password_hash=hash_password(password), languages=list(languages), active=True,
                      created_at=now or datetime.now(timezone.utc))
        self.session.add(agent)
        self.session.flush()
        return agent, password

    def set_password(self, agent: Agent, password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise HandoffError("weak_password", f"at least {MIN_PASSWORD} characters")
        agent.password_hash = hash_password(password)
        self.revoke_all(agent, datetime.now(timezone.utc))

    def verify(self, name: str, password: str) -> Agent | None:
        """The agent when the password is right; an old (scrypt) hash is replaced by an argon2id one on the way."""
        agent = self.get(name or "")
        if agent is None or not agent.active:
            check_password(password or "", dummy_hash())  # same work either way: no user enumeration by timing
            return None
        if not check_password(password or "", agent.password_hash):
            return None
        if needs_rehash(agent.password_hash):
            agent.password_hash = hash_password(password)
        return agent

    # --- console sessions ------------------------------------------------------------------------
    def sign_in(self, name: str, password: str, now: datetime, address: str = "") -> SignIn:
        """A new console session, all in this session. Refused with `throttled` (before any hashing) once the name or
        the client address has failed `MAX_FAILURES` times in the window, even with the right password; a failure is
        recorded in the session: the caller commits it even though this raises `bad_credentials`. The console uses
        `sign_in_in_steps`, which does the same without holding a transaction while it hashes."""
        guard = SignInGuard(self.session)
        throttle = guard.throttled(name, address, now)
        if throttle is not None:
            raise SignInThrottled(throttle)
        agent = self.verify(name, password)
        if agent is None:
            guard.record_failure(name, address, now)
            raise HandoffError("bad_credentials")
        return self.open_session(agent, now)

    def open_session(self, agent: Agent, now: datetime) -> SignIn:
        token = secrets.token_urlsafe(32)
        expires = now + self.idle
        self.session.add(AgentSession(token_hash=token_digest(token), agent_id=agent.id, created_at=now,
                                      last_seen_at=now, expires_at=expires))
        self.session.flush()
        return SignIn(token=token, expires_at=expires, agent=agent)

    def authenticate(self, token: str | None, now: datetime) -> Agent | None:
        """The agent behind a live token; each use moves the idle expiry on."""
        if not token:
            return None
        row = self.session.execute(
            select(AgentSession).where(AgentSession.token_hash == token_digest(token))
            .options(selectinload(AgentSession.agent))
        ).scalar_one_or_none()
        if row is None or row.revoked_at is not None or as_utc(row.expires_at) <= as_utc(now):
            return None
        if not row.agent.active:
            return None
        if (as_utc(now) - as_utc(row.last_seen_at)).total_seconds() >= SEEN_WRITE_SECONDS:
            row.last_seen_at = now
            row.expires_at = now + self.idle
        return row.agent

    def session_of(self, token: str) -> AgentSession | None:
        return self.session.execute(
            select(AgentSession).where(AgentSession.token_hash == token_digest(token))).scalar_one_or_none()

    def revoke(self, token: str, now: datetime) -> bool:
        row = self.session_of(token)
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = now
        return True

    def revoke_all(self, agent: Agent, now: datetime) -> int:
        return self.session.execute(
            update(AgentSession).where(AgentSession.agent_id == agent.id, AgentSession.revoked_at.is_(None))
            .values(revoked_at=now).execution_options(synchronize_session=False)).rowcount


def sign_in_in_steps(uow_factory: Callable, name: str, password: str, now: datetime, *, address: str = "",
                     idle_hours: float = 8.0) -> dict:
    """`AgentAccounts.sign_in` as the console runs it, in three steps so that no transaction is open while the
    password is checked (~0.1 s of argon2id; on SQLite a transaction holds the database's write lock, which every
    conversation turn needs): the limit and the stored hash are read; the password is checked; the outcome (a
    counted failure, or the session and an upgraded hash) is written. Returns {"token", "expires_at", "agent"}."""
    with uow_factory() as uow:
        throttle = SignInGuard(uow.session).throttled(name, address, now)
        agent = AgentAccounts(uow.session).get(name or "")
        stored = agent.password_hash if agent is not None and agent.active else None
    if throttle is not None:
        raise SignInThrottled(throttle)
    right = check_password(password or "", stored or dummy_hash()) and stored is not None
    upgraded = hash_password(password) if right and needs_rehash(stored) else None
    with uow_factory() as uow:
        if not right:
            SignInGuard(uow.session).record_failure(name, address, now)
            uow.commit()
            raise HandoffError("bad_credentials")
        accounts = AgentAccounts(uow.session, idle_hours)
        agent = accounts.get(name)
        if agent is None or not agent.active or agent.password_hash != stored:  # changed meanwhile: start again
            raise HandoffError("bad_credentials")
        if upgraded:
            agent.password_hash = upgraded
        signed = accounts.open_session(agent, now)
        result = {"token": signed.token, "expires_at": signed.expires_at.isoformat(), "agent": agent_json(agent)}
        uow.commit()
    return result


# ---------------------------------------------------------------------------------------------- the case card
def case_card(session: Session, handoff: Handoff, *, policy=None, today: date | None = None,
              desk: HandoffDesk | None = None, now: datetime | None = None) -> dict:
    """What an agent needs before typing a word: who, what they bought, warranty, what the bot did so far."""
    from bot.services.customers import repeat_complaint

    ticket: Ticket = handoff.ticket
    customer = ticket.customer
    purchase = ticket.purchase
    card: dict = {
        "conversation_id": handoff.conversation_id,
        "channel": handoff.channel,
        "handoff": {"id": handoff.id, "status": handoff.status, "reason": handoff.reason,
                    "requested_at": iso(handoff.requested_at), "claimed_at": iso(handoff.claimed_at),
                    "returned_at": iso(handoff.returned_at), "closed_at": iso(handoff.closed_at),
                    "agent": handoff.agent.name if handoff.agent else None,
                    "agent_display_name": handoff.agent.display_name if handoff.agent else None,
                    "language": handoff.language, "anger": round(float(handoff.anger or 0.0), 2),
                    "callback_due": iso(handoff.callback_due)},
        "ticket": {"number": ticket.number, "kind": ticket.kind, "status": ticket.status,
                   "severity": ticket.severity, "created_at": iso(ticket.created_at),
                   "account": ticket.account or "", "anger": round(float(ticket.anger or 0.0), 2),
                   "handoff_reason": ticket.handoff_reason, "follow_up_due": iso(ticket.follow_up_due),
                   "satisfaction": ticket.satisfaction},
        "customer": {"name": ticket.customer_name or (customer.name if customer else None),
                     "phone": ticket.phone or (customer.phone if customer else None),
                     "known": customer is not None},
        "facts": {"product": ticket.product, "model": ticket.model, "symptom": ticket.symptom,
                  "purchase_date": ticket.purchase_date.isoformat() if ticket.purchase_date else None,
                  "order_id": ticket.order_id, "address": ticket.address, "contact_time": ticket.contact_time,
                  "impact": ticket.impact},
        "steps": [{"step": step, "at": iso(getattr(ticket, f"step_{step}_at"))}
                  for step in ("vent", "apologise", "gather", "propose", "opinion", "follow_up")],
        "remedy": {"proposed": ticket.remedy_proposed, "accepted": ticket.remedy_accepted,
                   "clause": ticket.remedy_clause, "clause_text": ticket.remedy_clause_text,
                   "answer": _customer_answer(ticket)},
        "purchase": None,
        "warranty": None,
        "notes": [{"at": iso(e.at), "agent": (e.data or {}).get("agent"), "text": (e.data or {}).get("text")}
                  for e in ticket.events if e.kind == "note_added"],
        "events": [{"at": iso(e.at), "actor": e.actor, "kind": e.kind, "data": e.data} for e in ticket.events][-60:],
    }
    if purchase is not None:
        card["purchase"], card["warranty"] = _purchase_and_warranty(purchase, policy, today)
    card["labels"] = _fact_labels(ticket)
    card["history"] = _history(session, ticket)
    card["repeat_complaint"] = repeat_complaint(session, ticket)  # earlier tickets of this customer (issue 16)
    if desk is not None and now is not None:
        status = desk.queue_status(handoff, now)
        card["queue"] = {"position": status.position, "agents_online": status.agents_online,
                         "expected_wait_minutes": status.expected_wait_minutes, "open_now": status.open_now}
    return card


def _purchase_and_warranty(purchase, policy, today: date | None) -> tuple[dict, dict | None]:
    """The purchase on the case card, and its warranty status under the policy (None without a policy)."""
    from bot.services.warranty import WarrantyCase, evaluate

    product = purchase.product
    shown = {"order_id": purchase.order_id, "category": product.category if product else None,
             "model": product.model if product else None,
             "name": {"zh": product.name_zh, "en": product.name_en} if product else None,
             "purchase_date": purchase.purchase_date.isoformat(),
             "delivery_date": purchase.delivery_date.isoformat() if purchase.delivery_date else None,
             "shop": purchase.shop, "price": str(purchase.price) if purchase.price is not None else None}
    if policy is None or product is None or product.category not in policy.categories():
        return shown, None
    today = today or datetime.now(timezone.utc).date()
    start = purchase.delivery_date or purchase.purchase_date
    try:
        decision = evaluate(policy, WarrantyCase(
            category=product.category, purchase_date=purchase.purchase_date, today=max(today, start),
            delivery_date=purchase.delivery_date, opened=purchase.opened, used=purchase.used))
    except ValueError as exc:  # an impossible record (dates out of order): show it, do not fail the card
        return shown, {"error": str(exc)}
    return shown, {"in_warranty": decision.in_warranty, "ends": decision.warranty_ends.isoformat(),
                   "days_since_start": decision.days_since_start, "months": decision.warranty_months,
                   "eligible": list(decision.kinds()), "policy": decision.policy_version}


def masked_card(card: dict) -> dict:
    """The case card as shown to an agent who does not hold the case: phone and addresses hidden outright, and every
    free text (the customer's account, notes, events, transcript) through `mask_text` (bot/pii.py)."""
    from bot.pii import mask_value

    phone = card["customer"].get("phone")
    card = mask_value(card)
    if phone:
        card["customer"]["phone"] = "*" * max(0, len(phone) - 2) + phone[-2:]
    if card["facts"].get("address"):
        card["facts"]["address"] = "[address]"
    for visit in (card.get("history") or {}).get("visits") or []:
        if visit.get("address"):
            visit["address"] = "[address]"
    card["masked"] = True
    return card


def _fact_labels(ticket: Ticket) -> dict:
    """The symptom and impacts as staff read them, in both languages (the ticket keeps lexicon keys)."""
    from bot.services.problems import impact_label, load_lexicon, symptom_label

    lexicon = load_lexicon()
    impacts = [k for k in (ticket.impact or "").split(",") if k]
    return {
        "symptom": ({lang: symptom_label(ticket.symptom, lang, lexicon) for lang in ("zh", "en")}
                    if ticket.symptom else None),
        "impact": ({"zh": "、".join(impact_label(k, "zh", lexicon) for k in impacts),
                    "en": ", ".join(impact_label(k, "en", lexicon) for k in impacts)} if impacts else None),
    }


def _customer_answer(ticket: Ticket) -> str | None:
    """accepted / rejected / None: what the customer said to the last remedy proposed."""
    answer = None
    for event in ticket.events:
        if event.kind == "remedy_proposed":
            answer = None
        elif event.kind == "remedy_accepted":
            answer = "accepted"
        elif event.kind == "remedy_rejected":
            answer = "rejected"
    return answer


def _history(session: Session, ticket: Ticket) -> dict:
    """Earlier tickets and visits of the same customer (by customer record or phone)."""
    conditions = []
    if ticket.customer_id is not None:
        conditions.append(Ticket.customer_id == ticket.customer_id)
    phone = ticket.phone or (ticket.customer.phone if ticket.customer else None)
    if phone:
        conditions.append(Ticket.phone.in_(phones.equivalent_forms(phone)))
    conditions.append(Ticket.conversation_id == ticket.conversation_id)
    others = list(session.execute(
        select(Ticket).where(or_(*conditions), Ticket.id != ticket.id).order_by(Ticket.id.desc()).limit(20)
    ).scalars())
    ids = [ticket.id] + [t.id for t in others]
    visits = list(session.execute(
        select(Visit).where(Visit.ticket_id.in_(ids)).options(selectinload(Visit.engineer), selectinload(Visit.ticket))
        .order_by(Visit.start.desc()).limit(20)).scalars())
    return {
        "tickets": [{"number": t.number, "kind": t.kind, "status": t.status, "product": t.product,
                     "symptom": t.symptom, "created_at": iso(t.created_at), "remedy": t.remedy_accepted,
                     "satisfaction": t.satisfaction} for t in others],
        "visits": [{"ticket": v.ticket.number, "start": iso(v.start), "end": iso(v.end), "status": v.status,
                    "engineer": ({"zh": v.engineer.name_zh, "en": v.engineer.name_en} if v.engineer else None),
                    "address": v.address} for v in visits],
    }
