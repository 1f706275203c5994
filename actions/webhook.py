"""The outbound webhook channel: signing, verification, backoff (pure) and the HTTP sender (adapter).

A delivery is a POST of a JSON body with two headers::

    X-Foresight-Timestamp: 1767225600
    X-Foresight-Signature: sha256=<hex HMAC-SHA256(secret, b"<timestamp>." + body)>

The receiver recomputes the HMAC over the timestamp and the raw body and compares in constant
time (``verify_signature``), refusing old timestamps to stop replays. Any 2xx is delivered; other
statuses and network errors are retried from the outbox with exponential backoff
(``retry_delay``) until ``max_attempts``, then the entry is ``failed``. The sender connects only to
addresses it checked are public (SSRF, DNS rebinding): see ``HttpWebhookSender``.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import socket
import ssl
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeliveryResult",
    "HttpWebhookSender",
    "Resolver",
    "RetryConfig",
    "WebhookSender",
    "private_destination",
    "refused_addresses",
    "retry_delay",
    "sign",
    "signed_headers",
    "system_resolver",
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


#: Resolves a host name and port to the addresses to connect to (``socket.getaddrinfo`` by default).
Resolver = Callable[[str, int], Sequence[str]]


def system_resolver(host: str, port: int) -> list[str]:
    """The host's TCP addresses from the system resolver, in its order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class HttpWebhookSender:
    """``WebhookSender`` over the standard library's HTTP client, pinned to the checked addresses.

    The host is resolved **once** per delivery (``resolver``); every address must be public unless
    ``allow_private``; the connection then goes to those addresses and no others, while the
    ``Host`` header, TLS SNI and certificate check still use the name. A DNS answer that changes
    between the check and the connection (rebinding) therefore cannot send the request inside the
    network. No redirects are followed and no proxy from the environment is used.
    """

    def __init__(self, *, timeout_s: float = 10.0, allow_private: bool = False,
                 resolver: Resolver = system_resolver, tls: ssl.SSLContext | None = None) -> None:
        self._timeout = timeout_s
        self._allow_private = allow_private
        self._resolver = resolver
        self._tls = tls or ssl.create_default_context()

    def send(self, *, url: str, body: bytes, headers: dict[str, str]) -> DeliveryResult:
        """POST ``body`` to ``url``; any 2xx is success."""
        if not url.startswith(("http://", "https://")):
            return DeliveryResult(ok=False, error=f"not an http(s) URL: {url[:80]!r}")
        try:
            parts = urllib.parse.urlsplit(url)
            host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as err:
            return DeliveryResult(ok=False, error=f"bad URL: {err}"[:500])
        try:
            addresses = list(self._resolver(host, port))
        except (OSError, UnicodeError) as err:
            return DeliveryResult(ok=False, error=f"cannot resolve {host[:80]}: {err}"[:500])
        if not addresses:
            return DeliveryResult(ok=False, error=f"cannot resolve {host[:80]}: no address")
        if not self._allow_private and (refused := refused_addresses(host, addresses)):
            return DeliveryResult(ok=False, error=refused)
        target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = _PinnedHTTPS(host, port, addresses=addresses, timeout=self._timeout, tls=self._tls)
        else:
            connection = _PinnedHTTP(host, port, addresses=addresses, timeout=self._timeout)
        try:
            connection.request("POST", target, body=body, headers=headers)
            with connection.getresponse() as response:
                status = int(response.status)
                response.read(64 * 1024)  # a bounded drain; the body is not used
        except (OSError, http.client.HTTPException, ValueError) as err:
            return DeliveryResult(ok=False, error=f"{type(err).__name__}: {err}"[:500])
        finally:
            connection.close()
        return DeliveryResult(ok=200 <= status < 300, status=status,
                              error="" if 200 <= status < 300 else f"HTTP {status}")


def refused_addresses(host: str, addresses: Sequence[str]) -> str:
    """Why these addresses of ``host`` must not be called, or "" when every one is public (pure)."""
    for raw in addresses:
        address = ipaddress.ip_address(raw.split("%", 1)[0])
        if not address.is_global:
            return f"refused: {host} resolves to a non-public address ({address})"
    return ""


def private_destination(url: str, *, resolver: Resolver = system_resolver) -> str:
    """Why ``url`` must not be called, or "" when every address its host resolves to is public.

    A homeowner chooses the webhook URL, so without this check anyone could make the backend POST
    to loopback, the private network or a cloud metadata address (SSRF). A host that does not
    resolve passes here (the delivery then fails and is retried). ``HttpWebhookSender`` does the
    same check on the very addresses it then connects to, so DNS rebinding is covered there.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname or "", parts.port or 443
        addresses = resolver(host, port)
    except (OSError, UnicodeError, ValueError):
        return ""
    return refused_addresses(host, addresses)


def _connect(addresses: Sequence[str], port: int, timeout: float | None) -> socket.socket:
    """A TCP connection to the first of ``addresses`` that answers (never a fresh DNS lookup)."""
    error: OSError = OSError("no address to connect to")
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout=timeout)
        except OSError as err:
            error = err
    raise error


class _PinnedHTTP(http.client.HTTPConnection):
    # http.client would resolve self.host again in connect(); connect to the checked addresses instead.
    def __init__(self, host: str, port: int, *, addresses: Sequence[str], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addresses = tuple(addresses)

    def connect(self) -> None:
        self.sock = _connect(self._addresses, self.port, self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    # The TCP connection goes to a checked address; SNI and the certificate check use the name.
    def __init__(self, host: str, port: int, *, addresses: Sequence[str], timeout: float,
                 tls: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=tls)
        self._addresses = tuple(addresses)
        self._tls_context = tls

    def connect(self) -> None:
        sock = _connect(self._addresses, self.port, self.timeout)
        self.sock = self._tls_context.wrap_socket(sock, server_hostname=self.host)
