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
    LargeBinary,
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
    __table_args__ = (Index("ix_ticket_events_kind_at", "kind", "at"),)  # the desk's alerts read by kind
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


class VisitStatus(str, enum.Enum):
    booked = "booked"
    cancelled = "cancelled"
    done = "done"  # the engineer came and carried out the work (resolves the ticket)
    no_show = "no_show"  # the visit did not happen (nobody at home, or the engineer did not come)


VISIT_TRANSITIONS: dict[VisitStatus, frozenset[VisitStatus]] = {
    VisitStatus.booked: frozenset({VisitStatus.cancelled, VisitStatus.done, VisitStatus.no_show}),
    VisitStatus.cancelled: frozenset(),
    VisitStatus.done: frozenset(),
    VisitStatus.no_show: frozenset(),
}


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
        # One live visit per ticket: a replayed confirmation or a race cannot book a second one.
        Index(
            "uq_visit_ticket_live",
            "ticket_id",
            unique=True,
            postgresql_where=text("status = 'booked'"),
            sqlite_where=text("status = 'booked'"),
        ),
        Index("ix_visits_engineer_start", "engineer_id", "start"),  # the engineer's day list
    )
    id = Column(Integer, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False, index=True)
    engineer_id = Column(Integer, ForeignKey("engineers.id", ondelete="RESTRICT"), nullable=False)
    start = Column(DateTime(timezone=True), nullable=False)
    end = Column(DateTime(timezone=True), nullable=False)
    status = Column(String(16), nullable=False, default="booked")  # booked, cancelled, done, no_show (VISIT_TRANSITIONS)
    address = Column(String(300), nullable=False)
    reminder_day_before_at = Column(DateTime(timezone=True))
    reminder_2h_at = Column(DateTime(timezone=True))
    # the outcome the desk recorded (done / no_show): when and by whom; "late" is a mark on a live visit, which
    # keeps its window
    outcome_at = Column(DateTime(timezone=True))
    outcome_by = Column(String(64))
    late_minutes = Column(Integer)
    late_at = Column(DateTime(timezone=True))
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
    display_name_zh = Column(String(100), nullable=True)  # issue 16: the name customers see, per language
    display_name_en = Column(String(100), nullable=True)  # (display_name when not set)
    password_hash = Column(String(255), nullable=False)  # argon2id (older: scrypt$n$r$p$salt$hash), salted
    role = Column(String(16), nullable=False, default=AgentRole.agent.value)
    languages = Column(JSON, nullable=False, default=list)  # e.g. ["zh", "en"]
    skills = Column(JSON)  # product categories the agent knows best, e.g. ["air_conditioner"]; none: all
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
    # the out-of-hours call-back made: when and by which agent (the desk's work list)
    callback_done_at = Column(DateTime(timezone=True))
    callback_done_by = Column(Integer, ForeignKey("agents.id", ondelete="SET NULL"))
    ticket = relationship("Ticket")
    agent = relationship("Agent", foreign_keys=[agent_id])
    callback_agent = relationship("Agent", foreign_keys=[callback_done_by])


# --- issue 18: who may see and change a ticket -----------------------------------------------------------------
class TicketAccess(Base):
    """A conversation that proved it may see and change a ticket it did not open (phone + order number, ...).
    The conversation that opened a ticket needs no row: `tickets.conversation_id` is its proof."""

    __tablename__ = "ticket_access"
    __table_args__ = (UniqueConstraint("conversation_id", "ticket_id", name="uq_ticket_access"),)
    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(160), nullable=False, index=True)
    ticket_id = Column(Integer, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False)
    method = Column(String(32), nullable=False)  # how it was proved: phone+order, phone+number
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)


class LookupAttempt(Base):
    """Failed look-ups of someone else's ticket, counted per scope (`ticket:<number>`, `address:<client>`,
    `conversation:<id>`) in the database, so the limits hold across server instances."""

    __tablename__ = "lookup_attempts"
    __table_args__ = (Index("ix_lookup_attempts_scope_at", "scope", "at"),)
    id = Column(Integer, primary_key=True)
    scope = Column(String(200), nullable=False)
    at = Column(DateTime(timezone=True), nullable=False, default=utcnow)


class SignInFailure(Base):
    """A failed console sign-in: counted per name and per client address over a window (bot/services/sign_in.py),
    in the database so that every server instance sees the same count."""

    __tablename__ = "sign_in_failures"
    id = Column(Integer, primary_key=True)
    name = Column(String(64), nullable=False, index=True)
    address = Column(String(64), nullable=False, index=True)
    at = Column(DateTime(timezone=True), nullable=False, default=utcnow, index=True)


# --- the outbox: every promise the bot makes, kept until it is sent (bot/services/outbox.py) ------------------
class OutboxStatus(str, enum.Enum):
    pending = "pending"  # waiting for its due time
    claimed = "claimed"  # a runner took it and is sending it (retried by another after the lease)
    sent = "sent"  # the customer has it (or, REST, it is in the conversation for the client to fetch)
    held = "held"  # kept for a customer who is not connected (web widget): shown when they come back
    failed = "failed"  # gave up after the retries, or cannot be sent at all: for the desk to see
    cancelled = "cancelled"  # no longer true (visit cancelled, ticket finished, promise kept another way)


class OutboxItem(Base):
    """One promise to a customer: what (kind), to whom (channel, conversation), when (due_at, UTC) and with what."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_due", "status", "due_at"),
    )
    id = Column(Integer, primary_key=True)
    kind = Column(String(48), nullable=False)
    ticket_id = Column(Integer, ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    visit_id = Column(Integer, ForeignKey("visits.id", ondelete="SET NULL"), index=True)
    channel = Column(String(32), nullable=False)
    conversation_id = Column(String(128), nullable=False, index=True)
    due_at = Column(DateTime(timezone=True), nullable=False)
    language = Column(String(8), nullable=False, default="zh")
    payload = Column(JSON, nullable=False, default=dict)
    status = Column(String(16), nullable=False, default=OutboxStatus.pending.value)
    attempts = Column(Integer, nullable=False, default=0)
    last_error = Column(String(300))
    claimed_at = Column(DateTime(timezone=True))
    sent_at = Column(DateTime(timezone=True))
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    # A promise made twice (a retried action, a message delivered twice) is one row: e.g. "visit:12:two_hours".
    dedupe_key = Column(String(160), unique=True)
    ticket = relationship("Ticket")
    visit = relationship("Visit")


# ---------------------------------------------------------------------------------------------- WeChat (issue 14)
class WeChatToken(Base):
    """The Official Account's access token, shared by every server instance (WeChat hands out one at a time: a new
    one replaces the old after five minutes, so instances must not each fetch their own)."""

    __tablename__ = "wechat_tokens"
    app_id = Column(String(64), primary_key=True)
    access_token = Column(String(512), nullable=False)
    expires_at = Column(DateTime(timezone=True), nullable=False)
    fetched_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)


class WeChatInbound(Base):
    """One row per message WeChat pushed, keyed by MsgId (events: FromUserName + CreateTime + Event), so a
    retried delivery is recognised and processed once."""

    __tablename__ = "wechat_inbound"
    id = Column(Integer, primary_key=True)
    msg_key = Column(String(160), nullable=False, unique=True)
    openid = Column(String(64), nullable=False, index=True)
    received_at = Column(DateTime(timezone=True), nullable=False, default=utcnow, index=True)


class WeChatUser(Base):
    """A follower of the Official Account: when they last wrote (WeChat's 48-hour customer-service window opens
    with each message) and the payloads of the last menu the bot sent them (a menu click comes back as an id)."""

    __tablename__ = "wechat_users"
    openid = Column(String(64), primary_key=True)
    last_inbound_at = Column(DateTime(timezone=True))
    menu = Column(JSON, nullable=False, default=dict)  # {"<menu id>": "<payload>"}
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)


class WeChatHeld(Base):
    """A proactive message that could not go out (outside the 48-hour window, no template for its kind): it waits
    and is sent first when the customer writes again."""

    __tablename__ = "wechat_held"
    __table_args__ = (Index("ix_wechat_held_openid_pending", "openid", "sent_at"),)
    id = Column(Integer, primary_key=True)
    openid = Column(String(64), nullable=False)
    kind = Column(String(48), nullable=False)
    language = Column(String(8), nullable=False, default="zh")
    messages = Column(JSON, nullable=False)  # [{"text": ..., "buttons": [...]}]
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    sent_at = Column(DateTime(timezone=True))


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


# --- issue 17: attachments in shared storage ------------------------------------------------------------------
class AttachmentBlob(Base):
    """The bytes of an attachment kept in the database (the cluster profile: every instance reads every file;
    bot/services/attachments.py). Its Attachment's path is `db:<key>`; deleting the attachment deletes the bytes."""

    __tablename__ = "attachment_blobs"
    key = Column(String(120), primary_key=True)
    attachment_id = Column(Integer, ForeignKey("attachments.id", ondelete="CASCADE"), nullable=False, index=True)
    data = Column(LargeBinary, nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)


class VisitHold(Base):
    """A window offered to a customer, held for their ticket until `expires_at` (issue 17): other customers are not
    offered it, and no one else can book it meanwhile. One row per engineer and window start (the unique constraint
    is what makes two instances agree); an expired row is taken over by the next claimant."""

    __tablename__ = "visit_holds"
    __table_args__ = (UniqueConstraint("engineer_id", "start", name="uq_visit_hold_engineer_start"),)
    id = Column(Integer, primary_key=True)
    engineer_id = Column(Integer, ForeignKey("engineers.id", ondelete="CASCADE"), nullable=False)
    start = Column(DateTime(timezone=True), nullable=False)
    end = Column(DateTime(timezone=True), nullable=False)
    ticket_id = Column(Integer, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False, index=True)
    expires_at = Column(DateTime(timezone=True), nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
