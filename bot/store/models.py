"""SQLAlchemy models of the case records: customers, catalogue, purchases, tickets and their event log."""
from __future__ import annotations

import enum
from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import declarative_base, relationship

Base = declarative_base()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class TicketKind(str, enum.Enum):
    complaint = "complaint"
    repair = "repair"
    installation = "installation"
    return_ = "return"
    exchange = "exchange"
    inquiry = "inquiry"


class TicketStatus(str, enum.Enum):
    new = "new"
    in_progress = "in_progress"
    awaiting_customer = "awaiting_customer"
    resolved = "resolved"
    closed = "closed"
    reopened = "reopened"


# The written transition table: status -> statuses it may move to.
TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    TicketStatus.new: frozenset({TicketStatus.in_progress, TicketStatus.awaiting_customer, TicketStatus.resolved, TicketStatus.closed}),
    TicketStatus.in_progress: frozenset({TicketStatus.awaiting_customer, TicketStatus.resolved, TicketStatus.closed}),
    TicketStatus.awaiting_customer: frozenset({TicketStatus.in_progress, TicketStatus.resolved, TicketStatus.closed}),
    TicketStatus.resolved: frozenset({TicketStatus.closed, TicketStatus.reopened}),
    TicketStatus.closed: frozenset({TicketStatus.reopened}),
    TicketStatus.reopened: frozenset({TicketStatus.in_progress, TicketStatus.awaiting_customer, TicketStatus.resolved, TicketStatus.closed}),
}

OPEN_STATUSES = (TicketStatus.new, TicketStatus.in_progress, TicketStatus.awaiting_customer, TicketStatus.reopened)

STEPS = ("vent", "apologise", "gather", "propose", "opinion", "follow_up")


class Customer(Base):
    __tablename__ = "customers"
    id = Column(Integer, primary_key=True)
    name = Column(String(100))
    phone = Column(String(20), unique=True)
    language = Column(String(8), nullable=False, default="zh")
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    identities = relationship("ChannelIdentity", back_populates="customer")
    purchases = relationship("Purchase", back_populates="customer")


class ChannelIdentity(Base):
    __tablename__ = "channel_identities"
    __table_args__ = (UniqueConstraint("channel", "sender_id", name="uq_identity_channel_sender"),)
    id = Column(Integer, primary_key=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)
    channel = Column(String(32), nullable=False)
    sender_id = Column(String(128), nullable=False)
    customer = relationship("Customer", back_populates="identities")


class Product(Base):
    __tablename__ = "products"
    id = Column(Integer, primary_key=True)
    category = Column(String(32), nullable=False, index=True)
    model = Column(String(48), nullable=False, unique=True)
    name_zh = Column(String(100), nullable=False)
    name_en = Column(String(100), nullable=False)


class Purchase(Base):
    __tablename__ = "purchases"
    id = Column(Integer, primary_key=True)
    order_id = Column(String(32), nullable=False, unique=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="RESTRICT"), nullable=False, index=True)
    product_id = Column(Integer, ForeignKey("products.id", ondelete="RESTRICT"), nullable=False)
    purchase_date = Column(Date, nullable=False)
    delivery_date = Column(Date)
    installation_date = Column(Date)
    shop = Column(String(100))
    price = Column(Numeric(10, 2))
    opened = Column(Boolean, nullable=False, default=True)
    used = Column(Boolean, nullable=False, default=True)
    customer = relationship("Customer", back_populates="purchases")
    product = relationship("Product")


class TicketCounter(Base):
    """Per-day sequence behind human-friendly ticket numbers (row-locked while incremented)."""

    __tablename__ = "ticket_counters"
    day = Column(String(8), primary_key=True)
    last = Column(Integer, nullable=False, default=0)


class Ticket(Base):
    __tablename__ = "tickets"
    id = Column(Integer, primary_key=True)
    number = Column(String(20), nullable=False, unique=True)
    # Set while the ticket is open: one open ticket per conversation and kind, so retries find it.
    dedupe_key = Column(String(300), unique=True)
    kind = Column(String(16), nullable=False)
    status = Column(String(20), nullable=False, default=TicketStatus.new.value)
    severity = Column(String(12), nullable=False, default="normal")
    language = Column(String(8), nullable=False, default="zh")
    channel = Column(String(32), nullable=False, default="rest")
    conversation_id = Column(String(128), nullable=False, index=True)
    customer_id = Column(Integer, ForeignKey("customers.id", ondelete="SET NULL"), index=True)
    purchase_id = Column(Integer, ForeignKey("purchases.id", ondelete="SET NULL"))
    # facts gathered
    customer_name = Column(String(100))
    phone = Column(String(20))
    product = Column(String(32))
    model = Column(String(48))
    symptom = Column(String(200))
    purchase_date = Column(Date)
    order_id = Column(String(32))
    address = Column(String(300))
    contact_time = Column(String(120))
    account = Column(Text, nullable=False, default="")
    impact = Column(String(200))
    anger = Column(Float, nullable=False, default=0.0)
    # remedy
    remedy_proposed = Column(String(32))
    remedy_accepted = Column(String(32))
    remedy_clause = Column(String(48))
    remedy_clause_text = Column(Text)
    # the six de-escalation steps
    step_vent_at = Column(DateTime(timezone=True))
    step_apologise_at = Column(DateTime(timezone=True))
    step_gather_at = Column(DateTime(timezone=True))
    step_propose_at = Column(DateTime(timezone=True))
    step_opinion_at = Column(DateTime(timezone=True))
    step_follow_up_at = Column(DateTime(timezone=True))
    # deadlines and outcomes
    first_response_due = Column(DateTime(timezone=True))
    resolution_due = Column(DateTime(timezone=True))
    follow_up_due = Column(DateTime(timezone=True))
    handoff_requested = Column(Boolean, nullable=False, default=False)
    handoff_reason = Column(String(64))
    satisfaction = Column(Integer)
    recorded_by = Column(String(32), nullable=False, default="bot")
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = Column(DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)
    customer = relationship("Customer")
    purchase = relationship("Purchase")
    events = relationship("TicketEvent", back_populates="ticket", order_by="TicketEvent.id")
    attachments = relationship("Attachment", back_populates="ticket", order_by="Attachment.id")


class TicketEvent(Base):
    """Append-only log: what changed on a ticket, who did it and when."""

    __tablename__ = "ticket_events"
    id = Column(Integer, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False, index=True)
    at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    actor = Column(String(16), nullable=False)  # bot, agent, system, customer
    kind = Column(String(48), nullable=False)  # past tense: ticket_created, fact_recorded, ...
    data = Column(JSON, nullable=False, default=dict)
    ticket = relationship("Ticket", back_populates="events")


class Attachment(Base):
    __tablename__ = "attachments"
    id = Column(Integer, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False, index=True)
    path = Column(String(400), nullable=False)
    mime_type = Column(String(100), nullable=False)
    size = Column(Integer, nullable=False)
    channel = Column(String(32), nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    ticket = relationship("Ticket", back_populates="attachments")


class Engineer(Base):
    __tablename__ = "engineers"
    id = Column(Integer, primary_key=True)
    code = Column(String(16), nullable=False, unique=True)
    name_zh = Column(String(50), nullable=False)
    name_en = Column(String(50), nullable=False)
    phone = Column(String(20))
    city = Column(String(50), nullable=False)
    districts = Column(JSON, nullable=False, default=list)
    skills = Column(JSON, nullable=False, default=list)
    work_start = Column(String(5), nullable=False, default="09:00")
    work_end = Column(String(5), nullable=False, default="18:00")
    days_off = Column(JSON, nullable=False, default=list)  # weekday numbers, 0=Monday


class Visit(Base):
    __tablename__ = "visits"
    __table_args__ = (
        # Never double-booked: one live visit per engineer and window start.
        Index(
            "uq_visit_engineer_start_live",
            "engineer_id",
            "start",
            unique=True,
            postgresql_where=text("status = 'booked'"),
            sqlite_where=text("status = 'booked'"),
        ),
    )
    id = Column(Integer, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False, index=True)
    engineer_id = Column(Integer, ForeignKey("engineers.id", ondelete="RESTRICT"), nullable=False)
    start = Column(DateTime(timezone=True), nullable=False)
    end = Column(DateTime(timezone=True), nullable=False)
    status = Column(String(16), nullable=False, default="booked")  # booked, cancelled, done
    address = Column(String(300), nullable=False)
    reminder_day_before_at = Column(DateTime(timezone=True))
    reminder_2h_at = Column(DateTime(timezone=True))
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    ticket = relationship("Ticket")
    engineer = relationship("Engineer")


# --- the service desk: agents, their sign-in sessions, and hand-offs to a person --------------------------------
class AgentRole(str, enum.Enum):
    agent = "agent"
    supervisor = "supervisor"


class HandoffStatus(str, enum.Enum):
    waiting = "waiting"  # in the queue, the bot still answers
    claimed = "claimed"  # an agent has taken over; the bot is paused for this conversation
    returned = "returned"  # handed back to the bot
    closed = "closed"  # the case is done (or the customer withdrew the request)


HANDOFF_TRANSITIONS: dict[HandoffStatus, frozenset[HandoffStatus]] = {
    HandoffStatus.waiting: frozenset({HandoffStatus.claimed, HandoffStatus.closed}),
    HandoffStatus.claimed: frozenset({HandoffStatus.returned, HandoffStatus.closed}),
    HandoffStatus.returned: frozenset(),
    HandoffStatus.closed: frozenset(),
}

OPEN_HANDOFF_STATUSES = (HandoffStatus.waiting.value, HandoffStatus.claimed.value)


class Agent(Base):
    """A member of the service desk who signs in to the agent console."""

    __tablename__ = "agents"
    id = Column(Integer, primary_key=True)
    name = Column(String(64), nullable=False, unique=True)
    display_name = Column(String(100), nullable=False)
    password_hash = Column(String(255), nullable=False)  # scrypt$n$r$p$salt$hash, per-user salt
    role = Column(String(16), nullable=False, default=AgentRole.agent.value)
    languages = Column(JSON, nullable=False, default=list)  # e.g. ["zh", "en"]
    active = Column(Boolean, nullable=False, default=True)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)


class AgentSession(Base):
    """A console sign-in; only the SHA-256 of the bearer token is stored."""

    __tablename__ = "agent_sessions"
    id = Column(Integer, primary_key=True)
    token_hash = Column(String(64), nullable=False, unique=True)
    agent_id = Column(Integer, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False, index=True)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    last_seen_at = Column(DateTime(timezone=True), nullable=False, default=utcnow, index=True)
    expires_at = Column(DateTime(timezone=True), nullable=False)
    revoked_at = Column(DateTime(timezone=True))
    agent = relationship("Agent")


class Handoff(Base):
    """One request for a person in one conversation: queued, taken over by an agent, handed back or closed."""

    __tablename__ = "handoffs"
    __table_args__ = (
        # At most one open (waiting or claimed) hand-off per conversation: a repeated request finds it.
        Index(
            "uq_handoff_conversation_open",
            "conversation_id",
            unique=True,
            postgresql_where=text("status IN ('waiting', 'claimed')"),
            sqlite_where=text("status IN ('waiting', 'claimed')"),
        ),
        Index("ix_handoffs_status_requested", "status", "requested_at"),
    )
    id = Column(Integer, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False, index=True)
    conversation_id = Column(String(128), nullable=False, index=True)
    channel = Column(String(32), nullable=False)
    reason = Column(String(64), nullable=False)
    status = Column(String(16), nullable=False, default=HandoffStatus.waiting.value)
    agent_id = Column(Integer, ForeignKey("agents.id", ondelete="SET NULL"), index=True)
    requested_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    claimed_at = Column(DateTime(timezone=True))
    returned_at = Column(DateTime(timezone=True))
    closed_at = Column(DateTime(timezone=True))
    language = Column(String(8), nullable=False, default="zh")
    anger = Column(Float, nullable=False, default=0.0)
    callback_due = Column(DateTime(timezone=True))
    ticket = relationship("Ticket")
    agent = relationship("Agent")


class NluChoice(Base):
    """A clarification the customer answered (issue 15): the message the classifier was unsure of, the buttons
    offered and the one pressed. A labelled example for the desk to review (`python -m bot nlu review`)."""

    __tablename__ = "nlu_choices"
    id = Column(Integer, primary_key=True)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow, index=True)
    conversation_id = Column(String(128), nullable=False, index=True)
    channel = Column(String(32), nullable=False)
    language = Column(String(8), nullable=False)
    text = Column(Text, nullable=False)
    predicted = Column(String(64))  # the classifier's top intent (nlu_fallback when none)
    confidence = Column(Float, nullable=False, default=0.0)
    offered = Column(JSON, nullable=False)  # the intents offered as buttons, likeliest first
    chosen = Column(String(64), nullable=False)  # an intent name, or "something_else"
