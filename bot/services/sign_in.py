"""Console passwords and sign-in throttling.

Passwords are argon2id hashes (argon2-cffi, RFC 9106's low-memory profile: 64 MiB, 3 passes). The scrypt hashes
written before (`scrypt$n$r$p$salt$hash`) are still verified, and replaced by an argon2id hash on the next good
sign-in (`needs_rehash`). Failed sign-ins are rows in `sign_in_failures`, so the limit (at most `MAX_FAILURES` per
name and per client address in `WINDOW`) holds across every server instance sharing the database.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bot.services.tickets import as_utc
from bot.store.models import SignInFailure

HASHER = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)
MAX_FAILURES = 5
WINDOW = timedelta(minutes=15)


# ---------------------------------------------------------------------------------------------- hashing
def hash_password(password: str) -> str:
    """argon2id with a random salt per hash: `$argon2id$v=19$m=65536,t=3,p=4$salt$hash`."""
    return HASHER.hash(password)


def check_password(password: str, stored: str) -> bool:
    """True when `password` matches `stored`, an argon2id hash or a legacy scrypt one; False for anything else."""
    if stored.startswith("scrypt$"):
        return _check_scrypt(password, stored)
    try:
        return HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError, ValueError):
        return False


def needs_rehash(stored: str) -> bool:
    """A hash written by an older scheme or with weaker parameters than today's."""
    return not stored.startswith("$argon2id$") or HASHER.check_needs_rehash(stored)


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_scrypt(password: str, stored: str) -> bool:
    try:
        _scheme, n, r, p, salt, digest = stored.split("$")
        expected = _unb64(digest)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                                dklen=len(expected), maxmem=64 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


_DUMMY_HASH: str | None = None


def dummy_hash() -> str:
    """A hash to check unknown names against: the same work either way, so timing does not tell which names exist."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_urlsafe(12))
    return _DUMMY_HASH


# ---------------------------------------------------------------------------------------------- throttling
@dataclass(frozen=True)
class Throttle:
    """Why sign-in is refused for now, and for how long."""

    by: str  # "name" or "address"
    retry_after_seconds: int


class SignInGuard:
    """Counts failed sign-ins per name and per client address in the caller's session (the caller commits)."""

    def __init__(self, session: Session, max_failures: int = MAX_FAILURES, window: timedelta = WINDOW):
        self.session = session
        self.max_failures = max_failures
        self.window = window

    @staticmethod
    def _name(name: str) -> str:
        return (name or "").strip().lower()[:64]

    def throttled(self, name: str, address: str, now: datetime) -> Throttle | None:
        """A `Throttle` when the name or the address has used up its failures in the window, else None."""
        since = now - self.window
        for by, column, value in (("name", SignInFailure.name, self._name(name)),
                                  ("address", SignInFailure.address, (address or "")[:64])):
            if by == "address" and not value:
                continue
            count, oldest = self.session.execute(
                select(func.count(SignInFailure.id), func.min(SignInFailure.at))
                .where(column == value, SignInFailure.at > since)).one()
            if count >= self.max_failures:
                wait = (as_utc(oldest) + self.window - as_utc(now)).total_seconds()
                return Throttle(by=by, retry_after_seconds=max(1, int(wait) + 1))
        return None

    def record_failure(self, name: str, address: str, now: datetime) -> None:
        # Rows older than the window count for nothing: drop them as new ones come (indexed on `at`).
        self.session.execute(delete(SignInFailure).where(SignInFailure.at <= now - self.window)
                             .execution_options(synchronize_session=False))
        self.session.add(SignInFailure(name=self._name(name), address=(address or "")[:64], at=now))
        self.session.flush()
