"""The outbound webhook channel: signing, verification, backoff (pure) and the HTTP sender (adapter).

A delivery is a POST of a JSON body with two headers::

    X-Foresight-Timestamp: 1767225600
    X-Foresight-Signature: sha256=<hex HMAC-SHA256(secret, b"<timestamp>." + body)>

The receiver recomputes the HMAC over the timestamp and the raw body and compares in constant
time (``verify_signature``), refusing old timestamps to stop replays. Any 2xx is delivered; other
statuses and network errors are retried from the outbox with exponential backoff
(``retry_delay``) until ``max_attempts``, then the entry is ``failed``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeliveryResult",
    "HttpWebhookSender",
    "RetryConfig",
    "WebhookSender",
    "private_destination",
    "retry_delay",
    "sign",
    "signed_headers",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Foresight-Signature"
TIMESTAMP_HEADER = "X-Foresight-Timestamp"


def sign(*, secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def signed_headers(*, secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Content type, timestamp and signature headers of one delivery."""
    return {"Content-Type": "application/json", TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(secret=secret, timestamp=timestamp, body=body)}


def verify_signature(*, secret: str, timestamp: str, body: bytes, signature: str, now: datetime,
                     tolerance: timedelta = timedelta(minutes=5)) -> bool:
    """Whether ``signature`` is ours for this body and timestamp, and the timestamp is recent."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now.timestamp() - ts) > tolerance.total_seconds():
        return False
    return hmac.compare_digest(sign(secret=secret, timestamp=ts, body=body), signature)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryConfig:
    """Backoff of the outbox: ``base * 2**(attempt-1)``, capped, at most ``max_attempts`` tries."""

    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=1)
    max_attempts: int = 8
    #: A claimed entry is not picked up again for this long (a crashed sender's entries come back).
    lease: timedelta = timedelta(minutes=2)

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base <= timedelta(0) or self.cap < self.base:
            raise ValueError("need max_attempts >= 1 and 0 < base <= cap")


def retry_delay(attempts: int, config: RetryConfig) -> timedelta:
    """Wait before the next try after ``attempts`` failed tries (``attempts >= 1``)."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    return min(config.base * 2 ** min(attempts - 1, 30), config.cap)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryResult:
    """One attempt: ``ok`` for a 2xx; ``error`` says what went wrong otherwise."""

    ok: bool
    status: int | None = None
    error: str = ""


class WebhookSender(Protocol):
    """Sends one signed POST; never raises for HTTP or network failures (returns them)."""

    def send(self, *, url: str, body: bytes, headers: dict[str, str]) -> DeliveryResult: ...


class HttpWebhookSender:
    """``WebhookSender`` over the standard library's HTTP client (no redirects followed)."""

    def __init__(self, *, timeout_s: float = 10.0, allow_private: bool = False) -> None:
        self._timeout = timeout_s
        self._allow_private = allow_private
        self._opener = urllib.request.build_opener(_NoRedirect)

    def send(self, *, url: str, body: bytes, headers: dict[str, str]) -> DeliveryResult:
        """POST ``body`` to ``url``; any 2xx is success."""
        if not url.startswith(("http://", "https://")):
            return DeliveryResult(ok=False, error=f"not an http(s) URL: {url[:80]!r}")
        if not self._allow_private and (refused := private_destination(url)):
            return DeliveryResult(ok=False, error=refused)
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                status = int(response.status)
        except urllib.error.HTTPError as err:
            err.close()
            return DeliveryResult(ok=False, status=err.code, error=f"HTTP {err.code}")
        except (urllib.error.URLError, OSError, ValueError) as err:
            return DeliveryResult(ok=False, error=f"{type(err).__name__}: {err}"[:500])
        return DeliveryResult(ok=200 <= status < 300, status=status,
                              error="" if 200 <= status < 300 else f"HTTP {status}")


def private_destination(url: str) -> str:
    """Why ``url`` must not be called, or "" when every address its host resolves to is public.

    A homeowner chooses the webhook URL, so without this check anyone could make the backend POST
    to loopback, the private network or a cloud metadata address (SSRF). A host that does not
    resolve is left to the request to fail and be retried. The names are resolved again when
    connecting, so a DNS answer changing in between (rebinding) is not covered; an egress proxy or
    firewall is the complete answer (docs/people.md).
    """
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return ""
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if not address.is_global:
            return f"refused: {host} resolves to a non-public address ({address})"
    return ""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A signed delivery goes where the household said, not wherever a 3xx points.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None
