"""The webhook channel against a real HTTP server on 127.0.0.1: signatures, retries, backoff, failure."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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

from .helpers import near

SECRET = "whsec-0123456789abcdef"


@dataclass
class Receiver:
    """A real HTTP server; answers with the queued statuses (then 204) and keeps what it got."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
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

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/foresight"
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


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
