"""Request security at the HTTP edge: who is calling, what they may see, how much and how often.

* ``Gate.principal`` resolves the caller from ``Authorization: Bearer <token>`` or, for reads and
  the web pages, the session cookie; no credentials → 401, a wrong role → 403.
* Object-level checks (``household``, ``technician``, ``device_visible``) answer 404 when the object
  belongs to someone else, so an id reveals nothing about other households.
* ``RateLimiter``: a token bucket per signed-in user (per client address before sign-in) → 429.
* ``BodyLimit``: an ASGI middleware refusing bodies over the limit → 413, also when streamed without
  a Content-Length.
* CSRF: web forms carry ``csrf_token(session)``, an HMAC of the session token under the secret key.
  The sign-in form, which has no session yet, carries ``login_csrf_token(nonce)``: an HMAC of a
  random nonce the sign-in page sets in its own ``SameSite=Strict`` cookie (``LOGIN_COOKIE``). A
  cross-site post carries neither the cookie nor a matching token, so no other site can sign a
  visitor in to an account of its choosing (login CSRF).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request

from .auth import AuthStore, Principal, Role

__all__ = ["LOGIN_COOKIE", "SESSION_COOKIE", "BodyLimit", "Gate", "RateLimited", "RateLimiter", "csrf_token",
           "login_csrf_token", "login_nonce"]

SESSION_COOKIE = "foresight_session"
#: The sign-in page's pre-session cookie: a random nonce the sign-in form's token is bound to.
LOGIN_COOKIE = "foresight_login"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RateLimited(Exception):
    """Too many requests from one principal or address; ``retry_after_s`` says when to come back."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"rate limit exceeded; retry in {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


class RateLimiter:
    """Token buckets: ``per_minute`` requests per key, refilled continuously, bursts up to the same."""

    def __init__(self, *, per_minute: int, now: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        self._rate = per_minute / 60.0
        self._capacity = float(per_minute)
        self._now = now
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def charge(self, key: str) -> None:
        """Take one request from ``key``'s bucket, or raise ``RateLimited``."""
        with self._lock:
            now = self._now()
            tokens, at = self._buckets.get(key, (self._capacity, now))
            tokens = min(self._capacity, tokens + (now - at) * self._rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                raise RateLimited(math.ceil((1.0 - tokens) / self._rate))
            if len(self._buckets) >= self._max_keys and key not in self._buckets:
                # Bounded memory under a flood of addresses: drop the fullest (idle) buckets.
                self._buckets = {k: v for k, v in self._buckets.items() if v[0] < self._capacity - 1}
            self._buckets[key] = (tokens - 1.0, now)


def csrf_token(secret_key: str, session_token: str) -> str:
    """The CSRF token a web form of this session must carry."""
    return hmac.new(secret_key.encode(), b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()[:40]


def login_nonce(presented: str | None = None) -> str:
    """The sign-in nonce: the one the browser presented when it looks like ours, else a new one."""
    if presented and 32 <= len(presented) <= 64 and presented.isascii() and presented.replace("-", "").replace(
            "_", "").isalnum():
        return presented
    return secrets.token_urlsafe(32)


def login_csrf_token(secret_key: str, nonce: str) -> str:
    """The token the sign-in form must carry: bound to the nonce in the browser's ``LOGIN_COOKIE``."""
    return hmac.new(secret_key.encode(), b"login-csrf:" + nonce.encode(), hashlib.sha256).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class Caller:
    """A resolved principal and how it authenticated (``session`` means the cookie)."""

    principal: Principal
    token: str
    via: str  # "bearer" / "session"


class Gate:
    """Authentication, role checks and rate limiting, shared by the API and the web pages."""

    def __init__(self, auth: AuthStore, *, limiter: RateLimiter, login_limiter: RateLimiter,
                 secret_key: str) -> None:
        self.auth = auth
        self.limiter = limiter
        self.login_limiter = login_limiter
        self.secret_key = secret_key

    def caller(self, request: Request, *, cookie: bool) -> Caller | None:
        """The caller of ``request``, or None; charges the rate limit either way."""
        header = request.headers.get("authorization", "")
        token, via = "", ""
        if header[:7].lower() == "bearer ":
            token, via = header[7:].strip(), "bearer"
        elif cookie:
            token, via = request.cookies.get(SESSION_COOKIE, ""), "session"
        principal = self.auth.resolve(token) if token else None
        self.limiter.charge(f"user:{principal.user_id}" if principal else f"ip:{client_address(request)}")
        return Caller(principal, token, via) if principal else None

    def principal(self, request: Request, *roles: Role) -> Principal:
        """The API caller, who must hold one of ``roles`` (any role when none are named).

        Reads also accept the web session cookie (the pages' live stream); writes need a bearer
        token, so a cross-site form can never act with a browser's cookie.
        """
        found = self.caller(request, cookie=request.method in _SAFE_METHODS)
        if found is None:
            raise HTTPException(401, "sign in first: Authorization: Bearer <token> from POST /auth/login",
                                headers={"WWW-Authenticate": "Bearer"})
        require_role(found.principal, roles)
        return found.principal

    def check_login_rate(self, request: Request, user_id: str) -> None:
        """Password guessing is limited per address and per account."""
        self.login_limiter.charge(f"ip:{client_address(request)}")
        self.login_limiter.charge(f"user:{user_id.lower()}")


def require_role(principal: Principal, roles: Iterable[Role]) -> None:
    """403 unless ``principal`` holds one of ``roles`` (no roles: anyone signed in)."""
    allowed = tuple(roles)
    if allowed and principal.role not in allowed:
        raise HTTPException(403, f"this needs the {' or '.join(r.value for r in allowed)} role")


def own_household(principal: Principal, household_id: str, *, operator_reads: bool = False) -> None:
    """A homeowner acts only on their own household (404 otherwise; operators may read when allowed)."""
    if principal.role is Role.OPERATOR and operator_reads:
        return
    require_role(principal, (Role.HOMEOWNER,))
    if principal.household_id != household_id:
        raise HTTPException(404, f"household {household_id} not found")


def own_technician(principal: Principal, technician_id: str, *, operator_reads: bool = False) -> None:
    """A technician sees only their own jobs (404 for another technician's)."""
    if principal.role is Role.OPERATOR and operator_reads:
        return
    require_role(principal, (Role.TECHNICIAN,))
    if principal.technician_id != technician_id:
        raise HTTPException(404, f"technician {technician_id} not found")


def client_address(request: Request) -> str:
    """The client's address (the direct peer: put a proxy's real-IP handling in the proxy)."""
    return request.client.host if request.client else "unknown"


class _TooLarge(HTTPException):
    # An HTTPException, so FastAPI's body parsing passes it on as a 413 instead of wrapping it in a 400.
    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body over {max_bytes} bytes")


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: Any, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _plain(send, 400, "bad Content-Length")
                    return
                if declared > self.max_bytes:
                    await _plain(send, 413, f"request body over {self.max_bytes} bytes")
                    return
        seen = 0
        started = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _plain(send, 413, f"request body over {self.max_bytes} bytes")


async def _plain(send: Any, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
