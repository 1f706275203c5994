"""A throwaway Mosquitto broker on a free loopback port, for the integration tests and the benchmarks.

Started as root, Mosquitto switches to user ``mosquitto`` and then cannot read a root-owned temp
dir, so the config says ``user root`` when we are root (docs: /work/shared/ENVIRONMENT.md §3).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

__all__ = ["Mosquitto", "MosquittoNotInstalled", "TlsListener", "find_mosquitto", "free_port", "tls_listener_config"]


class MosquittoNotInstalled(FileNotFoundError):
    """No ``mosquitto`` executable on PATH or in /usr/sbin."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_mosquitto() -> str | None:
    """Path of the mosquitto executable, or None."""
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsListener:
    """PEM files of a TLS listener: the CA that signs client certificates, the server's certificate and key."""

    cafile: Path
    certfile: Path
    keyfile: Path
    #: Clients must also present a certificate signed by ``cafile`` (a password alone is not enough).
    require_certificate: bool = False


def tls_listener_config(port: int, tls: TlsListener, *, bind: str | None = None,
                        use_username_as_clientid: bool = False) -> list[str]:
    """The ``mosquitto.conf`` lines of a TLS listener (docs/deployment.md shows the same block)."""
    return [
        f"listener {port}" + (f" {bind}" if bind else ""),
        *(["use_username_as_clientid true"] if use_username_as_clientid else []),
        f"cafile {tls.cafile}",
        f"certfile {tls.certfile}",
        f"keyfile {tls.keyfile}",
        "tls_version tlsv1.2",
        f"require_certificate {'true' if tls.require_certificate else 'false'}",
    ]


@dataclass
class Mosquitto:
    """A Mosquitto process with persistence in its own temp dir."""

    port: int
    directory: Path
    exe: str
    proc: subprocess.Popen[bytes] | None = field(default=None)
    host: str = "127.0.0.1"
    #: The TLS listener's port when started with ``tls``.
    tls_port: int | None = None

    @classmethod
    def start_new(cls, *, max_inflight_messages: int = 1000, max_queued_messages: int = 100_000,
                  password_file: Path | None = None, acl_file: Path | None = None,
                  extra_config: Sequence[str] = (), tls: TlsListener | None = None,
                  use_username_as_clientid: bool = False) -> Self:
        """Write a config into a fresh temp dir and start the broker; raises ``MosquittoNotInstalled``.

        Anonymous by default; with ``password_file`` (and ``acl_file``) logins are required. The
        files are copied into the broker's own temp dir, which Mosquitto can always read.
        ``extra_config`` lines apply to the plain listener; ``tls`` adds a TLS listener on
        ``tls_port`` (the logins and ACL apply to both). ``use_username_as_clientid`` sets it on
        every listener (it is a per-listener option), so no login can take another's client id.
        """
        exe = find_mosquitto()
        if exe is None:
            raise MosquittoNotInstalled("mosquitto is not installed (apt-get install -y mosquitto)")
        broker = cls(port=free_port(), directory=Path(tempfile.mkdtemp(prefix="foresight-mosquitto-")), exe=exe,
                     tls_port=free_port() if tls is not None else None)
        auth = ["allow_anonymous true"]
        if password_file is not None:
            auth = ["allow_anonymous false", f"password_file {broker.directory / 'passwd'}"]
            shutil.copyfile(password_file, broker.directory / "passwd")
            if acl_file is not None:
                auth.append(f"acl_file {broker.directory / 'acl'}")
                shutil.copyfile(acl_file, broker.directory / "acl")
        (broker.directory / "mosquitto.conf").write_text(
            "\n".join([
                "user root" if os.geteuid() == 0 else "",
                f"listener {broker.port} 127.0.0.1",
                *(["use_username_as_clientid true"] if use_username_as_clientid else []),
                *auth,
                "persistence true",
                f"persistence_location {broker.directory}/",
                f"max_inflight_messages {max_inflight_messages}",
                f"max_queued_messages {max_queued_messages}",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                *extra_config,
                *(tls_listener_config(broker.tls_port, tls, bind="127.0.0.1",
                                      use_username_as_clientid=use_username_as_clientid)
                  if tls is not None and broker.tls_port else []),
            ]) + "\n")
        broker.start()
        return broker

    @property
    def log_path(self) -> Path:
        """Mosquitto's stderr (errors and warnings): a file, so an unread pipe can never fill and stall it."""
        return self.directory / "mosquitto.log"

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def start(self) -> None:
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen([self.exe, "-c", str(self.directory / "mosquitto.conf")],
                                         stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {self.log_tail()}")
            if _answers_connect(self.host, self.port):
                return
            time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not answer a CONNECT within 10 s: {self.log_tail()}")

    def reload(self) -> None:
        """SIGHUP: Mosquitto rereads its password and ACL files (as ``systemctl reload mosquitto``)."""
        assert self.proc is not None and self.proc.poll() is None, "broker not running"
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM, then wait: Mosquitto writes (and fsyncs) its persistence file on the way out.

        The wait is long because a kill would lose what the broker holds in memory only; a slow
        disk can hold a save for seconds. SIGTERM is sent again every 5 s (repeating it is
        harmless); a broker still there after ``timeout_s`` is killed and the error says where it
        was stuck.
        """
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        deadline = time.monotonic() + timeout_s
        while True:
            proc.terminate()
            try:
                proc.wait(timeout=min(5.0, max(0.0, deadline - time.monotonic())))
                return
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    break
        if proc.poll() is None:
            where = _where_stuck(proc.pid)
            proc.kill()
            proc.wait()
            raise RuntimeError(f"mosquitto did not exit within {timeout_s:.0f} s of SIGTERM ({where}); "
                               f"killed. Its log: {self.log_tail()}") from None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


#: MQTT 3.1.1 CONNECT: protocol "MQTT" level 4, clean session, keepalive 60 s, empty client id.
_CONNECT = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 0x02, 0, 60, 0, 0])
_CONNACK = 0x20


def _answers_connect(host: str, port: int) -> bool:
    """True once the broker answers an MQTT CONNECT with a CONNACK (accepted or refused).

    An open port is not enough: Mosquitto opens its listeners, then installs its signal handlers,
    then sets its run flag, so a SIGTERM in that gap is overwritten and the broker never stops. It
    answers a CONNECT only from its main loop, after the flag is set.
    """
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(_CONNECT)
            reply = sock.recv(4)
    except OSError:
        return False
    return len(reply) >= 1 and reply[0] == _CONNACK


def _where_stuck(pid: int) -> str:
    """The kernel's view of a process that does not exit: its state and the call it waits in."""
    parts = []
    for name in ("wchan", "stack"):
        try:
            parts.append(f"{name}: {Path(f'/proc/{pid}/{name}').read_text().strip()}")
        except OSError:
            pass
    try:
        state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("State:"))
        parts.append(state)
    except (OSError, StopIteration):
        pass
    return "; ".join(parts) or "no /proc view"
