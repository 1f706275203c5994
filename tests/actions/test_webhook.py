"""The webhook channel against a real HTTP server on 127.0.0.1: signatures, retries, backoff, failure."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from actions import ActionService, HouseholdPrefs, RetryConfig, verify_signature
from actions.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    HttpWebhookSender,
    private_destination,
    retry_delay,
    sign,
)
from ingest.clock import ManualClock
from tests.services import missing_service

from .helpers import near

SECRET = "whsec-0123456789abcdef"


@dataclass
class Receiver:
    """A real HTTP server; answers with the queued statuses (then 204) and keeps what it got."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""
    port: int = 0


@contextmanager
def _serving(address: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    """A real HTTP(S) server on ``address`` and a free port, in a thread."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802  (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append(({k: v for k, v in self.headers.items()}, body))
            self.send_response(state.statuses.pop(0) if state.statuses else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((address, 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.port = server.server_address[1]
    state.url = f"{'https' if tls else 'http'}://{address}:{state.port}/hooks/foresight"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with _serving() as state:
        yield state


def _subscribe(service: ActionService, url: str) -> None:
    service.upsert_household(HouseholdPrefs(household_id="h-1", channels=frozenset({"in_app", "webhook"}),
                                            webhook_url=url, webhook_secret=SECRET))


def test_a_notification_is_delivered_signed(service: ActionService, clock: ManualClock, receiver: Receiver) -> None:
    _subscribe(service, receiver.url)
    [outcome] = service.handle([near(ts=clock.now())])
    [entry] = service.deliver_outbox(HttpWebhookSender(timeout_s=5, allow_private=True))
    assert (entry.status, entry.attempts, entry.delivered_at) == ("delivered", 1, clock.now())
    [(headers, body)] = receiver.received
    wall = datetime.now(UTC)  # the receiver judges the timestamp by its own clock
    assert headers["Content-Type"] == "application/json"
    assert verify_signature(secret=SECRET, timestamp=headers[TIMESTAMP_HEADER], body=body,
                            signature=headers[SIGNATURE_HEADER], now=wall)
    assert not verify_signature(secret="another-secret-123456", timestamp=headers[TIMESTAMP_HEADER], body=body,
                                signature=headers[SIGNATURE_HEADER], now=wall)
    assert not verify_signature(secret=SECRET, timestamp=headers[TIMESTAMP_HEADER], body=body + b" ",
                                signature=headers[SIGNATURE_HEADER], now=wall)
    # a replay ten minutes later is refused
    assert not verify_signature(secret=SECRET, timestamp=headers[TIMESTAMP_HEADER], body=body,
                                signature=headers[SIGNATURE_HEADER], now=wall + timedelta(minutes=10))
    payload = json.loads(body)
    assert payload["notification_id"] == outcome.notification_id and payload["event"] == "notification.created"
    assert payload["device_id"] == "rc-1" and "Descale" in payload["body"]
    assert service.deliver_outbox(HttpWebhookSender(allow_private=True)) == []  # nothing left to send


def test_failures_are_retried_with_backoff_then_delivered(engine, clock: ManualClock,  # type: ignore[no-untyped-def]
                                                          receiver: Receiver, service: ActionService) -> None:
    retry = RetryConfig(base=timedelta(seconds=30), cap=timedelta(minutes=10), max_attempts=5)
    service = ActionService(engine, clock=clock, retry_config=retry)
    _subscribe(service, receiver.url)
    receiver.statuses = [500, 503]
    service.handle([near(ts=clock.now())])
    sender = HttpWebhookSender(timeout_s=5, allow_private=True)
    [first] = service.deliver_outbox(sender)
    assert (first.status, first.attempts, first.last_error) == ("pending", 1, "HTTP 500")
    assert first.next_attempt_at == clock.now() + timedelta(seconds=30)
    clock.advance(timedelta(seconds=29))
    assert service.deliver_outbox(sender) == []  # not due yet
    clock.advance(timedelta(seconds=1))
    [second] = service.deliver_outbox(sender)
    assert (second.attempts, second.last_error) == (2, "HTTP 503")
    assert second.next_attempt_at == clock.now() + timedelta(seconds=60)
    clock.advance(timedelta(seconds=60))
    [third] = service.deliver_outbox(sender)
    assert (third.status, third.attempts) == ("delivered", 3)
    assert len(receiver.received) == 3 and len({b for _, b in receiver.received}) == 1  # same body each time
    assert service.outbox_for_household("h-1") == [third]


def test_an_unreachable_endpoint_ends_failed(engine, clock: ManualClock, service: ActionService) -> None:  # type: ignore[no-untyped-def]
    from foresight.mosquitto import free_port

    retry = RetryConfig(base=timedelta(seconds=1), cap=timedelta(seconds=4), max_attempts=3)
    service = ActionService(engine, clock=clock, retry_config=retry)
    _subscribe(service, f"http://127.0.0.1:{free_port()}/nobody-listens")
    service.handle([near(ts=clock.now())])
    sender = HttpWebhookSender(timeout_s=2, allow_private=True)
    results = []
    for _ in range(3):
        results += service.deliver_outbox(sender)
        clock.advance(timedelta(seconds=5))
    assert [r.status for r in results] == ["pending", "pending", "failed"]
    assert "ConnectionRefusedError" in (results[-1].last_error or "") or "URLError" in (results[-1].last_error or "")
    # the in-app channel still has it
    assert len(service.notifications_for_household("h-1")) == 1


@pytest.mark.parametrize(("attempts", "delay"), [(1, 30), (2, 60), (3, 120), (6, 960), (7, 1800), (40, 1800)])
def test_retry_delay_doubles_up_to_the_cap(attempts: int, delay: int) -> None:
    config = RetryConfig(base=timedelta(seconds=30), cap=timedelta(minutes=30))
    assert retry_delay(attempts, config) == timedelta(seconds=delay)


def test_the_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"k" * 16, b"1767225600.{}", hashlib.sha256).hexdigest()
    assert sign(secret="k" * 16, timestamp=1767225600, body=b"{}") == f"sha256={expected}"
    assert HttpWebhookSender().send(url="ftp://x", body=b"", headers={}).error.startswith("not an http")


def test_the_job_drives_the_outbox_on_a_running_scheduler(service: ActionService, clock: ManualClock,
                                                          receiver: Receiver) -> None:
    """``deliver_webhooks`` on a started APScheduler sends to the real server; the outcome is committed."""
    import time

    from apscheduler.schedulers.background import BackgroundScheduler

    from actions import register_jobs, unregister_jobs

    _subscribe(service, receiver.url)
    receiver.statuses = [502]  # the first try fails; the job retries after the backoff
    service.handle([near(ts=clock.now())])
    scheduler = BackgroundScheduler(timezone="UTC")
    register_jobs(scheduler, service=service, interval_s=0.05, name="webhook-job",
                  sender=HttpWebhookSender(timeout_s=5, allow_private=True))
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while len(receiver.received) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        clock.advance(timedelta(seconds=30))  # the backoff has passed
        while ([e.status for e in service.outbox_for_household("h-1")] != ["delivered"]
               and time.monotonic() < deadline):
            time.sleep(0.02)
        [entry] = service.outbox_for_household("h-1")
        assert (entry.status, entry.attempts) == ("delivered", 2) and len(receiver.received) == 2
    finally:
        unregister_jobs(scheduler, name="webhook-job")
        scheduler.shutdown(wait=True)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://localhost/hook", "http://10.1.2.3/x",
                                 "http://169.254.169.254/latest/meta-data/", "http://[::1]/x",
                                 "http://192.168.0.10/x"])
def test_a_homeowner_chosen_url_cannot_reach_inside_the_network(url: str, receiver: Receiver) -> None:
    """SSRF: loopback, private, link-local (cloud metadata) destinations are refused before connecting."""
    assert private_destination(url).startswith("refused: ")
    result = HttpWebhookSender(timeout_s=2).send(url=receiver.url, body=b"{}", headers={})
    assert not result.ok and result.error.startswith("refused: ") and receiver.received == []
    assert private_destination("http://93.184.216.34/hook") == ""  # a public address passes (no request made)


class StubResolver:
    """Our own resolver at the edge: answers from a script per call, and counts the calls."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append((host, port))
        return self.answers[min(len(self.asked), len(self.answers)) - 1]


def test_the_connection_goes_to_the_checked_address_not_a_second_answer() -> None:
    """DNS rebinding: the name is resolved once; a later, different answer is never connected to.

    The first answer is the receiver on 127.0.0.1; any later one is another real server on
    127.0.0.2 (standing for an address inside the network). Loopback servers are the only ones a
    test may run, so the public-address check is off here; the next test holds the check to the
    same single answer.
    """
    with _serving("127.0.0.1") as good, _serving("127.0.0.2") as inside:
        resolver = StubResolver(["127.0.0.1"], ["127.0.0.2"])
        sender = HttpWebhookSender(timeout_s=5, allow_private=True, resolver=resolver)
        url = f"http://hooks.example.test:{good.port}/hook?x=1"
        inside_port_url = f"http://hooks.example.test:{inside.port}/hook"
        assert sender.send(url=url, body=b"{}", headers={"Content-Type": "application/json"}).ok
        assert resolver.asked == [("hooks.example.test", good.port)]  # once, not again to connect
        [(headers, body)] = good.received
        assert headers["Host"] == f"hooks.example.test:{good.port}" and body == b"{}"  # the name, not the IP
        # A fresh delivery resolves afresh (and, here, reaches the second server): pinning is per delivery.
        assert sender.send(url=inside_port_url, body=b"{}", headers={}).ok
        assert len(inside.received) == 1 and len(good.received) == 1


def test_a_name_answering_a_private_address_is_refused_without_connecting(receiver: Receiver) -> None:
    resolver = StubResolver(["93.184.216.34", "127.0.0.1"])  # one public, one loopback: refused as a whole
    result = HttpWebhookSender(timeout_s=2, resolver=resolver).send(
        url=f"http://hooks.example.test:{receiver.port}/x", body=b"{}", headers={})
    assert not result.ok and result.error == "refused: hooks.example.test resolves to a non-public address (127.0.0.1)"
    assert receiver.received == [] and len(resolver.asked) == 1
    result = HttpWebhookSender(resolver=StubResolver([])).send(url="http://nowhere.test/", body=b"", headers={})
    assert not result.ok and result.error == "cannot resolve nowhere.test: no address"  # retried like any failure


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        missing_service("openssl (apt-get install openssl)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_https_pinned_to_the_address_still_checks_the_name(tmp_path: Path) -> None:
    """TLS to the checked address: SNI, Host and the certificate check all use the URL's name."""
    cert, key = _certificate(tmp_path, "hooks.example.test")
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    seen_sni: list[str | None] = []
    server_tls.sni_callback = lambda sock, name, ctx: seen_sni.append(name)  # type: ignore[assignment,misc,return-value]
    client_tls = ssl.create_default_context(cafile=str(cert))
    with _serving("127.0.0.1", tls=server_tls) as receiver:
        sender = HttpWebhookSender(timeout_s=5, allow_private=True, tls=client_tls,
                                   resolver=StubResolver(["127.0.0.1"]))
        result = sender.send(url=f"https://hooks.example.test:{receiver.port}/hook", body=b'{"a":1}',
                             headers={"Content-Type": "application/json"})
        assert result.ok, result.error
        assert seen_sni == ["hooks.example.test"]
        [(headers, body)] = receiver.received
        assert headers["Host"] == f"hooks.example.test:{receiver.port}" and body == b'{"a":1}'
        # The same address under a name the certificate does not carry: the check fails, nothing is posted.
        other = HttpWebhookSender(timeout_s=5, allow_private=True, tls=client_tls,
                                  resolver=StubResolver(["127.0.0.1"]))
        refused = other.send(url=f"https://other.example.test:{receiver.port}/hook", body=b"{}", headers={})
        assert not refused.ok and "CERTIFICATE_VERIFY_FAILED" in refused.error
        assert len(receiver.received) == 1
