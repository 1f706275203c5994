"""The throwaway broker (foresight.mosquitto) is ready only when its main loop answers, and stops on SIGTERM.

Mosquitto opens its listeners before it installs its signal handlers and sets its run flag; a
SIGTERM in that gap is lost and the broker runs on (seen in CI: a restart right after a start hung).
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from foresight.mosquitto import _answers_connect
from tests.services import Mosquitto

pytestmark = pytest.mark.mqtt


def test_a_port_that_accepts_but_speaks_no_mqtt_is_not_ready() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        accepted: list[socket.socket] = []
        threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
        assert not _answers_connect("127.0.0.1", server.getsockname()[1])
        for conn in accepted:
            conn.close()


def test_nothing_listening_is_not_ready() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert not _answers_connect("127.0.0.1", port)


def test_a_broker_that_refuses_anonymous_logins_still_counts_as_ready(tmp_path: Path) -> None:
    (tmp_path / "passwd").write_text("")
    broker = Mosquitto.start_new(password_file=tmp_path / "passwd")
    try:
        assert _answers_connect(broker.host, broker.port)  # a refusing CONNACK comes from the main loop too
    finally:
        broker.close()


def test_broker_stopped_straight_after_each_start_exits_every_time() -> None:
    broker = Mosquitto.start_new()
    try:
        for _ in range(20):
            proc = broker.proc
            assert proc is not None
            broker.restart()
            assert proc.returncode is not None  # the old process is gone, not orphaned
        assert _answers_connect(broker.host, broker.port)
    finally:
        broker.close()
    assert broker.proc is None
