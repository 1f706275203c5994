"""Who is asking: users with a role, scrypt password hashes, opaque bearer/session tokens stored hashed.

Three roles: a **homeowner** belongs to one household, a **technician** is one technician id, an
**operator** works the ticket queue and sees the fleet. A login issues an opaque random token; the
database keeps only its SHA-256 (the token has 256 bits of entropy, so a fast hash is enough) and
its expiry, so a leaked database leaks no usable token. Passwords are hashed with ``hashlib.scrypt``
(salted, memory-hard) and compared in constant time.
"""

from __future__ import annotations

import base64
import enum
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Boolean, ForeignKey, String, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from ingest.clock import Clock
from ingest.db import Base

__all__ = ["AuthStore", "InvalidCredentials", "Principal", "Role", "TokenRow", "UserRow",
           "hash_password", "verify_password"]


class Role(enum.StrEnum):
    HOMEOWNER = "homeowner"
    TECHNICIAN = "technician"
    OPERATOR = "operator"


class UserRow(Base):
    """A person who can log in; a homeowner names a household, a technician a technician id."""

    __tablename__ = "users"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    display_name: Mapped[str] = mapped_column(String(128))
    password_hash: Mapped[str] = mapped_column(String(256))
    household_id: Mapped[str | None] = mapped_column(String(64), default=None)
    technician_id: Mapped[str | None] = mapped_column(String(64), default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class TokenRow(Base):
    """An issued token, by its SHA-256; ``kind`` is ``bearer`` (API) or ``session`` (web cookie)."""

    __tablename__ = "auth_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """The authenticated caller of one request."""

    user_id: str
    role: Role
    display_name: str
    household_id: str | None = None
    technician_id: str | None = None


class InvalidCredentials(Exception):
    """Unknown user, wrong password, or an inactive account (deliberately not told apart)."""


# scrypt cost: n=2**14, r=8 → 16 MiB and ~50 ms per hash; the parameters are stored with the hash.
_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` (base64) of a password."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "$".join(["scrypt", str(_N), str(_R), str(_P), _b64(salt), _b64(digest)])


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a ``hash_password`` result (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so a login takes as long either way."""
    return hash_password(secrets.token_urlsafe(16))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthStore:
    """Users and tokens on the shared database."""

    def __init__(self, engine, *, clock: Clock, token_ttl: timedelta = timedelta(hours=12)) -> None:  # type: ignore[no-untyped-def]
        self._engine = engine
        self._clock = clock
        self._ttl = token_ttl

    def add_user(self, *, user_id: str, role: Role, password: str, display_name: str,
                 household_id: str | None = None, technician_id: str | None = None) -> Principal:
        """Create (or replace the password and links of) a user."""
        if role is Role.HOMEOWNER and not household_id:
            raise ValueError("a homeowner belongs to a household")
        if role is Role.TECHNICIAN and not technician_id:
            raise ValueError("a technician user names a technician id")
        with Session(self._engine) as s, s.begin():
            row = s.get(UserRow, user_id) or UserRow(user_id=user_id, created_at=self._clock.now())
            row.role, row.display_name, row.password_hash = role.value, display_name, hash_password(password)
            row.household_id = household_id if role is Role.HOMEOWNER else None
            row.technician_id = technician_id if role is Role.TECHNICIAN else None
            row.active = True
            s.add(row)
            # A new password ends every session of the old one (a reset after a leak must lock out).
            s.execute(update(TokenRow).where(TokenRow.user_id == user_id, TokenRow.revoked_at.is_(None))
                      .values(revoked_at=self._clock.now()))
            return _principal(row)

    def login(self, user_id: str, password: str, *, kind: str = "bearer") -> tuple[str, datetime, Principal]:
        """Check the password and issue a token: (token, expires_at, principal)."""
        with Session(self._engine) as s, s.begin():
            row = s.get(UserRow, user_id)
            ok = verify_password(password, row.password_hash if row is not None else _dummy_hash())
            if row is None or not ok or not row.active:
                raise InvalidCredentials("unknown user or wrong password")
            token = secrets.token_urlsafe(32)
            now = self._clock.now()
            expires = now + self._ttl
            # The user's dead tokens go at each login, so the table holds only live ones (and recent logouts).
            s.execute(delete(TokenRow).where(TokenRow.user_id == user_id, TokenRow.expires_at <= now))
            s.add(TokenRow(token_hash=_token_hash(token), user_id=user_id, kind=kind, created_at=now,
                           expires_at=expires))
            return token, expires, _principal(row)

    def resolve(self, token: str) -> Principal | None:
        """The principal a live token belongs to, or None (unknown, expired, revoked, inactive user)."""
        if not token or len(token) > 128:
            return None
        with Session(self._engine) as s:
            found = s.execute(select(TokenRow, UserRow).join(UserRow, UserRow.user_id == TokenRow.user_id)
                              .where(TokenRow.token_hash == _token_hash(token))).first()
            if found is None:
                return None
            tok, user = found
            if tok.revoked_at is not None or tok.expires_at <= self._clock.now() or not user.active:
                return None
            return _principal(user)

    def revoke(self, token: str) -> None:
        """Log out: the token stops working at once."""
        with Session(self._engine) as s, s.begin():
            s.execute(update(TokenRow).where(TokenRow.token_hash == _token_hash(token),
                                             TokenRow.revoked_at.is_(None))
                      .values(revoked_at=self._clock.now()))

    def users(self) -> list[Principal]:
        """Every user, by id."""
        with Session(self._engine) as s:
            return [_principal(r) for r in s.scalars(select(UserRow).order_by(UserRow.user_id))]


def _principal(row: UserRow) -> Principal:
    return Principal(user_id=row.user_id, role=Role(row.role), display_name=row.display_name,
                     household_id=row.household_id, technician_id=row.technician_id)
