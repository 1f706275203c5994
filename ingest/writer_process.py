"""The batch writer in a child process of its own, so decoding and storing do not share paho's GIL.

The parent (``ingest.subscriber.Ingester`` with ``writer="process"``) keeps the MQTT client, the
queue, the clock and the acks; the child (``python -m ingest.writer_process``, a fresh interpreter:
forking a process that runs paho's threads is unsafe) builds its own engine and ``IngestStore`` from
a ``StoreSpec`` and writes what it is sent through ``ingest.writing.write_with_retry``. They talk
over a socketpair wrapped in ``multiprocessing.connection.Connection``:

- parent → child: first ``("hello", spec, log_level, profiles)`` — the database URL travels here,
  never on the child's argv or environment — then ``("batch", n, now, rows)`` with the rows as
  ``(topic, payload, received_at)`` and ``now`` the batch's event time from the parent's clock (the
  child has no clock of its own);
- child → parent: ``("ready",)`` once its store is built, ``("done", n, BatchResult)`` in order, ``("error", n)`` after each failed attempt
  (the parent's write-error count), and ``("log", record)``: the child's log records, emitted again
  by the parent's logging, so they come out in the parent's format (JSON or text) and destination.

Up to ``batches_in_flight`` batches are sent ahead (the parent keeps receiving while the child
commits); the parent settles (acks) each batch only when the child reports it committed, in order.
A child that dies, or sends nothing for ``reply_timeout_s`` while a batch waits (hung: killed), is
started again and sent every unsettled batch again; the store's ``(device_id, seq)`` key makes the
re-sent readings duplicates, not doubles. The child exits when its connection ends (the parent
stopped or died) and ignores SIGINT and SIGTERM: stopping is the parent's business.
"""

from __future__ import annotations

import gc
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from ingest.contract import PROFILES, ApplianceProfile
from ingest.db import make_engine
from ingest.store import BatchResult, Inbound, IngestStore
from ingest.writing import write_with_retry

__all__ = ["ProcessWriter", "StoreSpec"]

log = logging.getLogger(__name__)

#: The directory holding the ``ingest`` package, put first on the child's import path so the child
#: runs the very code the parent runs (not another checkout or an installed copy).
_IMPORT_ROOT = str(Path(__file__).resolve().parents[1])


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreSpec:
    """What the writer process needs to build its own engine and ``IngestStore``. Picklable.

    ``max_future`` / ``max_past``: the store's clock-skew limits (None: ``IngestStore``'s defaults).
    The repr hides the database password.
    """

    database_url: str = field(repr=False)
    max_future: timedelta | None = None
    max_past: timedelta | None = None

    def __repr__(self) -> str:
        url = make_url(self.database_url).render_as_string(hide_password=True)
        return f"StoreSpec(database_url={url!r}, max_future={self.max_future!r}, max_past={self.max_past!r})"

    def build(self) -> tuple[Engine, IngestStore]:
        """The engine and store, in the process that will use them."""
        engine = make_engine(self.database_url)
        options = {k: v for k, v in (("max_future", self.max_future), ("max_past", self.max_past)) if v is not None}
        return engine, IngestStore(engine, clock=_NoClock(), **options)


class _NoClock:
    """The child's clock: there is none. Event time comes with each batch from the parent's clock."""

    def now(self) -> datetime:
        raise RuntimeError("the writer process has no clock: the parent sends each batch's event time")


@dataclass(slots=True)
class _Pending:
    number: int
    now: datetime
    rows: list[tuple[str, bytes, datetime]]
    token: Any


class ProcessWriter:
    """The parent's side: starts the child, sends batches, settles them in order, restarts the child.

    ``on_result(token, result)`` runs on the writer's reader thread for each batch, in the order
    submitted, once the child committed it; ``on_write_error()`` after each failed attempt of the
    child; ``on_restart()`` each time a dead or hung child is replaced.
    """

    def __init__(self, spec: StoreSpec, *, on_result: Callable[[Any, BatchResult], None],
                 on_write_error: Callable[[], None] = lambda: None, on_restart: Callable[[], None] = lambda: None,
                 batches_in_flight: int = 2, reply_timeout_s: float = 60.0) -> None:
        if batches_in_flight < 1:
            raise ValueError("batches_in_flight must be at least 1")
        if reply_timeout_s <= 0:
            raise ValueError("reply_timeout_s must be positive")
        self._spec = spec
        self._on_result, self._on_write_error, self._on_restart = on_result, on_write_error, on_restart
        self._capacity = batches_in_flight
        self._reply_timeout_s = reply_timeout_s
        #: Guards the pending batches and the current child; never held while blocked on the socket
        #: (a stopped child must not keep the reader thread from noticing it hangs).
        self._cond = threading.Condition()
        #: Orders what is written to the current child's connection: hello and re-sends first.
        self._send_lock = threading.Lock()
        self._pending: deque[_Pending] = deque()
        self._numbers = 0
        self._closing = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._conn: Connection | None = None
        #: Monotonic time the child last showed life while a batch waited on it (hang detection).
        self._heard = 0.0
        self._reader: threading.Thread | None = None
        #: Children replaced after dying or hanging.
        self.restarts = 0

    # -- the parent's API ----------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The current child's process id (None when there is none)."""
        proc = self._proc
        return None if proc is None else proc.pid

    def in_flight(self) -> int:
        """Batches sent and not yet settled."""
        with self._cond:
            return len(self._pending)

    def start(self, *, timeout_s: float = 30.0) -> None:
        """Start the child, wait until it is ready to write, and start the thread reading its replies.

        Raises ``RuntimeError`` if the child exits or says nothing within ``timeout_s``: a writer
        that cannot start (a missing driver, a malformed URL) fails the start-up, not later.
        """
        self._spawn()
        conn = self._conn
        assert conn is not None
        try:
            while conn.poll(timeout_s):
                message = conn.recv()
                if message[0] == "ready":
                    break
                if message[0] == "log":
                    _emit(message[1])
            else:
                raise RuntimeError(f"the ingest writer process did not get ready within {timeout_s:g} s")
        except (EOFError, OSError) as exc:
            self._retire(kill=True, timeout_s=5.0)
            raise RuntimeError("the ingest writer process exited while starting (see its log above)") from exc
        except RuntimeError:
            self._retire(kill=True, timeout_s=5.0)
            raise
        self._reader = threading.Thread(target=self._read_loop, name="ingest-writer-replies", daemon=True)
        self._reader.start()

    def submit(self, batch: Sequence[Inbound], *, now: datetime, token: Any) -> bool:
        """Send ``batch`` (event time ``now``), blocking while ``batches_in_flight`` batches wait on
        the child; False, and nothing sent, once the writer is closing."""
        rows = [(m.topic, m.payload, m.received_at) for m in batch]
        with self._cond:
            while len(self._pending) >= self._capacity and not self._closing:
                self._cond.wait()
            if self._closing:
                return False
            self._numbers += 1
            entry = _Pending(self._numbers, now, rows, token)
            if not self._pending:
                self._heard = time.monotonic()
            self._pending.append(entry)
            conn = self._conn
        # Sent to the child current when the batch was queued; if that child is being replaced, the
        # batch is already among those the replacement is sent.
        with self._send_lock:
            _send(conn, ("batch", entry.number, entry.now, entry.rows))
        return True

    def wait_settled(self, timeout_s: float) -> bool:
        """Block until every submitted batch is settled (True) or ``timeout_s`` passed (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending, timeout=timeout_s)

    def close(self, *, timeout_s: float = 10.0) -> None:
        """End the child's connection (it finishes what it is writing and exits) and reap it.

        Batches not settled by then stay unacknowledged: the broker redelivers them.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            sock = self._sock
        if sock is not None:
            _shutdown(sock)  # wakes the reader thread; the child reads the end of its connection
        if self._reader is not None:
            self._reader.join(timeout=timeout_s)
        self._retire(kill=False, timeout_s=timeout_s)

    # -- the reader thread ---------------------------------------------------------------------

    def _read_loop(self) -> None:
        failures = 0  # restarts since the child last committed a batch: backoff for a crash loop
        while True:
            with self._cond:
                if self._closing:
                    return
                conn = self._conn
            if conn is None:  # the last start failed
                self._restart("could not be started", kill=True, failures=failures)
                failures += 1
                continue
            try:
                if not conn.poll(min(1.0, self._reply_timeout_s)):
                    if self._hung():
                        self._restart(f"sent nothing for {self._reply_timeout_s:g} s while a batch waited",
                                      kill=True, failures=failures)
                        failures += 1
                    continue
                message = conn.recv()
            except (EOFError, OSError):
                self._restart("exited", kill=False, failures=failures)
                failures += 1
                continue
            with self._cond:
                self._heard = time.monotonic()
            kind = message[0]
            if kind == "done":
                failures = 0
                self._settle(message[1], message[2])
            elif kind == "error":
                self._on_write_error()
            elif kind == "log":
                _emit(message[1])
            # "ready" from a replacement: alive, nothing else to do

    def _settle(self, number: int, result: BatchResult) -> None:
        with self._cond:
            entry = self._pending.popleft()
            self._cond.notify_all()
        if entry.number != number:  # the protocol is in order; anything else is a bug, not a fault
            raise RuntimeError(f"writer process settled batch {number}, expected {entry.number}")
        try:
            self._on_result(entry.token, result)
        except Exception:  # a failing ack or hook must not stop the replies being read
            log.exception("settling a stored batch failed")

    def _hung(self) -> bool:
        with self._cond:
            return bool(self._pending) and time.monotonic() - self._heard > self._reply_timeout_s

    def _restart(self, why: str, *, kill: bool, failures: int) -> None:
        with self._cond:
            if self._closing:
                return
        code = self._retire(kill=kill, timeout_s=5.0)
        with self._cond:
            if self._closing:
                return
            self.restarts += 1
            log.warning("ingest writer process %s (exit status %s); starting it again (restart %d) and "
                        "re-sending %d unacknowledged batches", why, code, self.restarts, len(self._pending))
        self._on_restart()
        with self._cond:  # a child that dies at once must not be restarted in a tight loop
            self._cond.wait_for(lambda: self._closing, timeout=min(0.1 * 2 ** failures, 5.0) if failures else 0)
            if self._closing:
                return
        try:
            self._spawn(resend=True)
        except OSError:
            log.exception("could not start the ingest writer process; trying again")

    # -- the child process ---------------------------------------------------------------------

    def _spawn(self, *, resend: bool = False) -> None:
        """Start a child and send it the hello (and, replacing one, every unsettled batch)."""
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_IMPORT_ROOT, env.get("PYTHONPATH")) if p)
        with theirs:
            try:
                proc = subprocess.Popen([sys.executable, "-m", "ingest.writer_process", str(theirs.fileno())],
                                        pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=env)
            except OSError:
                ours.close()
                raise
        # A second descriptor of the same socket: shutting ``ours`` down wakes whoever waits on the
        # Connection (the reader thread, a blocked send) without closing a descriptor under them.
        conn = Connection(os.dup(ours.fileno()))
        hello = ("hello", self._spec, logging.getLogger().getEffectiveLevel(), dict(PROFILES))
        with self._send_lock:  # nothing reaches the new child before its hello and the re-sends
            with self._cond:
                self._proc, self._sock, self._conn = proc, ours, conn
                self._heard = time.monotonic()
                backlog = [("batch", e.number, e.now, e.rows) for e in self._pending] if resend else []
            for message in (hello, *backlog):
                if not _send(conn, message):
                    break

    def _retire(self, *, kill: bool, timeout_s: float) -> int | None:
        """End the current child (killed if asked, or if it does not exit) and close its connection."""
        with self._cond:
            proc, sock, conn = self._proc, self._sock, self._conn
            self._proc = self._sock = self._conn = None
        code = None
        if sock is not None:
            _shutdown(sock)
        if proc is not None:
            if kill:
                proc.kill()
            try:
                code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        with self._send_lock:  # a send under way has failed by now (shut down): close under no one
            for c in (conn, sock):
                if c is not None:
                    c.close()
        return code


def _send(conn: Connection | None, message: tuple[Any, ...]) -> bool:
    """Send to a child; False if it is gone (the reader thread then replaces it and re-sends)."""
    if conn is None:
        return False
    try:
        conn.send(message)
    except OSError:
        return False
    return True


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _emit(fields: dict[str, Any]) -> None:
    """Log a record the child shipped, through this process's logging (its levels, format, handlers)."""
    record = logging.makeLogRecord(fields)
    logger = logging.getLogger(record.name)
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)


# -- the child -------------------------------------------------------------------------------------


class _ShippingHandler(logging.Handler):
    """Sends each record to the parent as plain fields (message formatted, traceback as text)."""

    def __init__(self, send: Callable[[tuple[Any, ...]], None]) -> None:
        super().__init__()
        self._send_to_parent = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = dict(vars(record))
            fields["msg"], fields["args"] = record.getMessage(), None
            if record.exc_info:
                fields["exc_text"] = logging.Formatter().formatException(record.exc_info)
            fields["exc_info"] = None
            fields.pop("message", None)
            for key, value in fields.items():  # an ``extra=`` value need not pickle
                if not isinstance(value, (str, int, float, bool, type(None))):
                    fields[key] = repr(value)
            self._send_to_parent(("log", fields))
        except OSError:
            pass  # the parent is gone; the child is about to notice and exit
        except Exception:
            self.handleError(record)


def _child_main(fd: int) -> None:
    # The parent handles shutdown: a Ctrl-C or a supervisor's SIGTERM to the whole group must not
    # kill the child under a batch the parent is about to settle. The end of the connection stops it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Connection(fd)
    try:
        _, spec, level, profiles = conn.recv()
    except (EOFError, OSError):
        return
    lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with lock:
            conn.send(message)

    logging.basicConfig(level=level, handlers=[_ShippingHandler(send)], force=True)
    logging.captureWarnings(True)
    _install_profiles(profiles)
    try:
        engine, store = spec.build()
    except Exception:
        log.exception("ingest writer process cannot build its store from %r", spec)
        raise
    _quiet_gc()
    send(("ready",))
    stop = threading.Event()
    inbox: queue.Queue[tuple[Any, ...] | None] = queue.Queue()

    def receive() -> None:
        try:
            while True:
                inbox.put(conn.recv())
        except (EOFError, OSError):
            stop.set()
            inbox.put(None)

    threading.Thread(target=receive, name="writer-inbox", daemon=True).start()
    try:
        while (message := inbox.get()) is not None:
            _, number, now, rows = message
            batch = [Inbound(topic=t, payload=p, received_at=r) for t, p, r in rows]
            result = write_with_retry(store, batch, now=now, stop=stop,
                                      on_error=lambda number=number: send(("error", number)))
            if result is None:  # the parent went away while the database was failing
                break
            send(("done", number, result))
    except OSError:
        pass  # the parent is gone: what was committed and not acked is redelivered and deduplicated
    except Exception:
        log.exception("ingest writer process failed; the parent starts a new one")
        raise
    finally:
        engine.dispose()


def _quiet_gc() -> None:
    """Fewer and shorter cyclic-garbage passes in the writer, which allocates a few thousand
    objects per batch and frees nearly all of them by reference counting: what the start-up built
    (modules, profiles, the engine) is frozen out of the collector's scans, and the youngest
    generation is collected after 20,000 net allocations instead of 700. Measured in the writer
    during a drain: the default collector took ~4 % of its CPU, its full passes up to ~50 ms, a
    pause every batch behind it waits out (README, Benchmarks)."""
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(20_000, second, third)


def _install_profiles(profiles: Mapping[str, ApplianceProfile]) -> None:
    """The parent's kinds, onboarded ones included (``foresight.kinds``); code-declared kinds stay."""
    for kind, profile in profiles.items():
        PROFILES.setdefault(kind, profile)


if __name__ == "__main__":
    # Through the module's importable name, not ``__main__``: the StoreSpec the parent sends unpickles
    # from ``ingest.writer_process``, and the child's log records carry that logger name.
    from ingest.writer_process import _child_main as main

    main(int(sys.argv[1]))
