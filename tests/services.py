"""Real services for integration tests: a Mosquitto broker on a free loopback port.

Locally a missing service skips the test; under ``FORESIGHT_REQUIRE_SERVICES=1`` (set by .ci/run)
it fails instead, so CI cannot go green by skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REQUIRE_SERVICES = os.environ.get("FORESIGHT_REQUIRE_SERVICES") == "1"


def missing_service(what: str) -> None:
    """Skip locally, fail in CI."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required (FORESIGHT_REQUIRE_SERVICES=1) but not available")
    pytest.skip(f"{what} not available")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Mosquitto:
    """A Mosquitto process with persistence in its own temp dir."""

    port: int
    directory: Path
    exe: str
    proc: subprocess.Popen[bytes] | None = field(default=None)
    host: str = "127.0.0.1"

    @classmethod
    def start_new(cls) -> Mosquitto:
        exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
        if exe is None:
            missing_service("mosquitto")
        broker = cls(port=free_port(), directory=Path(tempfile.mkdtemp(prefix="foresight-mosquitto-")), exe=exe)
        (broker.directory / "mosquitto.conf").write_text(
            "\n".join([
                "user root" if os.geteuid() == 0 else "",
                f"listener {broker.port} 127.0.0.1",
                "allow_anonymous true",
                "persistence true",
                f"persistence_location {broker.directory}/",
                "max_inflight_messages 1000",
                "max_queued_messages 100000",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
            ]) + "\n")
        broker.start()
        return broker

    def start(self) -> None:
        self.proc = subprocess.Popen([self.exe, "-c", str(self.directory / "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not start listening within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
