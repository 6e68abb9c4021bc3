"""What the WeChat channel keeps in the database: the Official Account's access token (one for every server
instance), the keys of messages already taken (WeChat retries a push it thinks unanswered), each follower's last
message (the 48-hour customer-service window) and menu, and proactive messages held until the customer writes.

Plain functions over a unit of work; the caller commits. The channel (bot/channels/wechat.py) does the HTTP.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from bot.services.conversation import sender_of
from bot.store.db import UnitOfWork
from bot.store.models import WeChatHeld, WeChatInbound, WeChatToken, WeChatUser

WINDOW = timedelta(hours=48)  # customer-service messages are allowed this long after the customer's last message
TOKEN_MARGIN = timedelta(minutes=5)  # refresh this long before WeChat says the token expires
KEEP_INBOUND = timedelta(days=1)  # WeChat retries within seconds; keys older than this are forgotten


def openid_of(conversation_id: str) -> str:
    """The follower's openid behind a conversation id (`wechat:<openid>`, or the openid)."""
    return sender_of("wechat", conversation_id)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes; everything here is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


# ---------------------------------------------------------------------------------------------- access token
def cached_token(uow: UnitOfWork, app_id: str, now: datetime) -> str | None:
    """The stored token if it is good for at least five more minutes."""
    row = uow.session.get(WeChatToken, app_id)
    if row is None or _aware(row.expires_at) - TOKEN_MARGIN <= now:
        return None
    return row.access_token


def store_token(uow: UnitOfWork, app_id: str, token: str, expires_in: int, now: datetime) -> None:
    row = uow.session.get(WeChatToken, app_id)
    if row is None:
        row = WeChatToken(app_id=app_id)
        uow.session.add(row)
    row.access_token, row.expires_at, row.fetched_at = token, now + timedelta(seconds=int(expires_in)), now
    uow.session.flush()


def drop_token(uow: UnitOfWork, app_id: str, token: str) -> None:
    """Forget `token` after WeChat refused it (40001/42001); a newer one another instance stored is kept."""
    uow.session.execute(delete(WeChatToken).where(WeChatToken.app_id == app_id, WeChatToken.access_token == token))


# ---------------------------------------------------------------------------------------------- inbound
def message_key(message: dict) -> str:
    """MsgId for messages; FromUserName + CreateTime + Event for events (which have no MsgId)."""
    if message.get("MsgId"):
        return f"msg:{message['MsgId']}"[:160]
    return f"evt:{message.get('FromUserName')}:{message.get('CreateTime')}:{message.get('Event')}"[:160]


def _follower(uow: UnitOfWork, openid: str, now: datetime) -> WeChatUser:
    user = uow.session.get(WeChatUser, openid)
    if user is None:
        try:
            with uow.session.begin_nested():
                user = WeChatUser(openid=openid, menu={}, created_at=now)
                uow.session.add(user)
        except IntegrityError:  # another instance added them just now
            user = uow.session.get(WeChatUser, openid)
    return user


def take_inbound(uow: UnitOfWork, key: str, openid: str, now: datetime) -> bool:
    """Record a pushed message: True the first time its key is seen (the customer's window opens again), False for
    a retried delivery, which must not be processed."""
    try:
        with uow.session.begin_nested():
            uow.session.add(WeChatInbound(msg_key=key, openid=openid, received_at=now))
    except IntegrityError:
        return False
    _follower(uow, openid, now).last_inbound_at = now
    uow.session.execute(delete(WeChatInbound).where(WeChatInbound.received_at < now - KEEP_INBOUND))
    uow.session.flush()
    return True


def last_inbound(uow: UnitOfWork, openid: str) -> datetime | None:
    user = uow.session.get(WeChatUser, openid)
    return _aware(user.last_inbound_at) if user is not None else None


def in_window(uow: UnitOfWork, openid: str, now: datetime) -> bool:
    """May the customer-service API reach them now (their last message less than 48 hours ago)?"""
    last = last_inbound(uow, openid)
    return last is not None and now - last < WINDOW


# ---------------------------------------------------------------------------------------------- menus
def remember_menu(uow: UnitOfWork, openid: str, payloads: dict[str, str], now: datetime) -> None:
    """The payloads behind the ids of the menu just sent; a click on an older menu's item is read as its text."""
    _follower(uow, openid, now).menu = dict(payloads)
    uow.session.flush()


def menu_payload(uow: UnitOfWork, openid: str, menu_id: str) -> str | None:
    user = uow.session.get(WeChatUser, openid)
    return (user.menu or {}).get(str(menu_id)) if user is not None else None


# ---------------------------------------------------------------------------------------------- held messages
@dataclass(frozen=True)
class HeldMessage:
    id: int
    openid: str
    kind: str
    language: str
    messages: list[dict]
    created_at: datetime


def hold(uow: UnitOfWork, openid: str, kind: str, language: str, messages: list[dict], now: datetime) -> int:
    row = WeChatHeld(openid=openid, kind=kind, language=language, messages=list(messages), created_at=now)
    uow.session.add(row)
    uow.session.flush()
    return row.id


def held_for(uow: UnitOfWork, openid: str) -> list[HeldMessage]:
    """Messages waiting for the customer to write, oldest first."""
    rows = uow.session.execute(select(WeChatHeld).where(WeChatHeld.openid == openid, WeChatHeld.sent_at.is_(None))
                               .order_by(WeChatHeld.id)).scalars()
    return [HeldMessage(r.id, r.openid, r.kind, r.language, list(r.messages), _aware(r.created_at)) for r in rows]


def mark_sent(uow: UnitOfWork, held_id: int, now: datetime) -> None:
    row = uow.session.get(WeChatHeld, held_id)
    if row is not None and row.sent_at is None:
        row.sent_at = now
        uow.session.flush()


# ---------------------------------------------------------------------------------------------- templates
def template_ids(env: dict | None = None) -> dict[str, str]:
    """Template message ids per proactive kind, from WECHAT_TEMPLATE_<KIND> (e.g. WECHAT_TEMPLATE_VISIT_REMINDER_DAY_BEFORE);
    kinds are lower-cased. A kind without one is held outside the 48-hour window."""
    env = os.environ if env is None else env
    prefix = "WECHAT_TEMPLATE_"
    return {name[len(prefix):].lower(): value.strip() for name, value in env.items()
            if name.startswith(prefix) and value and value.strip()}
