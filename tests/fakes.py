"""Fakes of our own Protocols, for tests where the real part is not what is under test."""

from __future__ import annotations

import threading

from actions.webhook import DeliveryResult

__all__ = ["RecordingSender"]


class RecordingSender:
    """An ``actions.webhook.WebhookSender`` that keeps every delivery and answers 204.

    The HTTP path itself is tested against a real server (tests/actions/test_webhook.py).
    """

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []
        self._lock = threading.Lock()

    def send(self, *, url: str, body: bytes, headers: dict[str, str]) -> DeliveryResult:
        with self._lock:
            self.sent.append((url, body, headers))
        return DeliveryResult(ok=True, status=204)
