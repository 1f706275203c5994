"""The embedded MQTT broker (amqtt, in-process) for the demo when no real broker is configured.

amqtt's ``Broker`` needs a running event loop at construction, so it lives on its own thread with
its own loop. MQTT 3.1.1 only; production uses Mosquitto (docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

__all__ = ["EmbeddedBroker"]


class EmbeddedBroker:
    """An amqtt broker on ``host:port`` running on a background thread."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host, self.port = host, port
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._broker: Any = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._thread = threading.Thread(target=self._run, name="amqtt-broker", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s):
            raise RuntimeError("embedded MQTT broker did not start")
        if self._error is not None:
            raise RuntimeError(f"embedded MQTT broker failed to start: {self._error}") from self._error

    def _run(self) -> None:
        from amqtt.broker import Broker

        asyncio.set_event_loop(self._loop)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

        async def start() -> None:
            self._broker = Broker(config)
            await self._broker.start()

        try:
            self._loop.run_until_complete(start())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()

    def stop(self) -> None:
        if self._broker is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(10)
            except Exception:  # shutting down anyway
                logging.getLogger(__name__).debug("amqtt shutdown raised", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()
