"""The ingest benchmark's consumers, each run in its own process by ``foresight.ingest_bench``.

- ``raw``: a paho subscriber that only counts (the ceiling of this machine's broker + Python client);
- ``naive``: what a first version would do: ``json.loads``, ORM ``session.add`` and ``commit`` per
  message in ``on_message``, SQLAlchemy and SQLite defaults;
- ``foresight``: the production path, ``Ingester`` + ``IngestStore`` (validate, dedupe, one
  transaction per batch, features, ack after commit) on SQLite (WAL) or PostgreSQL, MQTT 3.1.1, or
  MQTT 5 with a shared subscription when several workers split the load; the batches stored by a
  writer process (the default) or a writer thread.

Every consumer has a persistent session with a fixed client id, so it can subscribe, go away while
the backlog is published, and come back to drain it.
"""

from __future__ import annotations

import json
import resource
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy import JSON, DateTime, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Consumer", "LatencyHistogram", "make_consumer", "peak_rss_kb", "rss_mb"]


class LatencyHistogram:
    """Publish-to-commit latencies in whole milliseconds, in bins allocated once.

    A ``Counter`` of milliseconds grows by a key for every new value, so over a soak the
    measurement itself would creep in the very process whose memory is measured; these bins
    (0 ms to ``MAX_MS``, the last one "at least that") never grow.
    """

    MAX_MS = 120_000

    def __init__(self) -> None:
        self._bins = np.zeros(self.MAX_MS + 1, np.int64)

    def add(self, lags_s: Sequence[float]) -> None:
        if lags_s:
            np.add.at(self._bins, np.clip((np.asarray(lags_s) * 1000).astype(np.int64), 0, self.MAX_MS), 1)

    def counts(self) -> dict[int, int]:
        """``{milliseconds: messages}`` of the bins that have any."""
        (nonzero,) = np.nonzero(self._bins)
        return dict(zip(nonzero.tolist(), self._bins[nonzero].tolist(), strict=True))


class Consumer(Protocol):
    processed: int
    last_at: float | None
    latency_ms: LatencyHistogram

    def prepare(self) -> None:
        """Get ready to connect (start a writer process), before the measured time."""
        ...

    def connect(self) -> None: ...

    def disconnect(self) -> None: ...

    def helper_pids(self) -> list[int]:
        """Processes of the consumer's besides this one (the writer process), for its memory."""
        ...

    def outstanding(self) -> int:
        """Messages received and not yet settled: what the consumer holds in memory now."""
        ...


def make_consumer(kind: str, *, port: int, workdir: Path, database_url: str | None, batch_size: int,
                  worker: int = 0, shared: bool = False, writer: str = "process") -> Consumer:
    """A consumer of ``kind`` (``raw``, ``naive`` or ``foresight`` with ``writer``), not yet connected."""
    if kind == "raw":
        return _RawConsumer(port=port)
    if kind == "naive":
        return _NaiveConsumer(port=port, workdir=workdir)
    return _ForesightConsumer(port=port, database_url=database_url or f"sqlite:///{workdir / 'foresight.db'}",
                              batch_size=batch_size, worker=worker, shared=shared, writer=writer)


def rss_mb(pids: Sequence[int] = ()) -> float:
    """The resident set now (VmRSS) of this process plus ``pids``, in MB."""
    return sum(_status_kb(pid, "VmRSS:") for pid in ("self", *pids)) / 1024


def peak_rss_kb(pids: Sequence[int] = ()) -> int:
    """The peak resident set (VmHWM) of this process plus those of ``pids``: a sum of each one's
    own peak, so at most what they held at once. Not ``ru_maxrss``: Linux carries that across
    fork + exec, so a child would report the (much larger) CLI parent's peak."""
    own = _status_kb("self", "VmHWM:") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return own + sum(_status_kb(pid, "VmHWM:") for pid in pids)


def _status_kb(pid: int | str, field: str) -> int:
    """One ``kB`` field of ``/proc/PID/status`` (0 when the process or field is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        if line.startswith(field):
            return int(line.split()[1])
    return 0


class _NaiveBase(DeclarativeBase):
    """The naive consumer's own metadata, so Foresight's shared ``Base`` stays untouched."""


class _NaiveReading(_NaiveBase):
    __tablename__ = "readings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(32))
    metrics: Mapped[dict[str, float]] = mapped_column(JSON)


class _PahoConsumer:
    """A QoS 1 subscriber with paho's automatic acks (after ``on_message`` returns), persistent session."""

    def __init__(self, *, port: int) -> None:
        self.port = port
        self.processed = 0
        self.last_at: float | None = None
        self.latency_ms = LatencyHistogram()
        self._client: Any = None

    def connect(self) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        subscribed = threading.Event()
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"bench-{type(self).__name__}",
                             clean_session=False, protocol=mqtt.MQTTv311)

        def on_connect(c: Any, userdata: object, flags: Any, *_: object) -> None:
            # Back for the backlog, the session (and its subscription) is there: the backlog comes
            # first and a naive consumer would take longer than any SUBACK wait to get through it.
            if flags.session_present:
                subscribed.set()
            else:
                c.subscribe("appliances/+/telemetry", qos=1)

        client.on_connect = on_connect
        client.on_subscribe = lambda *_: subscribed.set()
        client.on_message = lambda c, u, msg: self.handle(msg.payload)
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError("benchmark subscriber could not subscribe")
        self._client = client

    def disconnect(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def prepare(self) -> None:
        pass

    def helper_pids(self) -> list[int]:
        return []

    def outstanding(self) -> int:
        return 0  # handled in the callback, one at a time

    def handle(self, payload: bytes) -> None:
        raise NotImplementedError


class _RawConsumer(_PahoConsumer):
    def handle(self, payload: bytes) -> None:
        self.processed += 1
        self.last_at = time.time()


class _NaiveConsumer(_PahoConsumer):
    """ORM ``add`` + ``commit`` per message, in the callback, with every default."""

    def __init__(self, *, port: int, workdir: Path) -> None:
        super().__init__(port=port)
        from sqlalchemy import create_engine
        from sqlalchemy.orm import Session

        engine = create_engine(f"sqlite:///{workdir / 'naive.db'}")
        _NaiveBase.metadata.create_all(engine)
        self._session = Session(engine)

    def handle(self, payload: bytes) -> None:
        body = json.loads(payload)
        ts = datetime.fromisoformat(body["ts"])
        self._session.add(_NaiveReading(device_id=body["device_id"], seq=body["seq"], ts=ts, kind=body["kind"],
                                        metrics=body["metrics"]))
        self._session.commit()
        now = time.time()
        self.latency_ms.add((now - ts.timestamp(),))
        self.processed += 1
        self.last_at = now


class _ForesightConsumer:
    """The production path: ``Ingester`` + ``IngestStore``, acks after commit."""

    def __init__(self, *, port: int, database_url: str, batch_size: int, worker: int, shared: bool,
                 writer: str) -> None:
        from ingest.clock import SystemClock
        from ingest.db import create_schema, make_engine
        from ingest.store import IngestStore

        self.processed = 0
        self.last_at: float | None = None
        self.latency_ms = LatencyHistogram()
        self._engine = make_engine(database_url)
        create_schema(self._engine)
        self._clock = SystemClock()
        self._store = IngestStore(self._engine, clock=self._clock)
        self._port, self._batch_size, self._worker, self._shared = port, batch_size, worker, shared
        self._writer, self._database_url = writer, database_url
        self._ingester: Any = None

    def _on_batch(self, result: Any) -> None:
        self.latency_ms.add(result.lags_s)
        self.processed += result.accepted + result.duplicates + result.rejected
        self.last_at = time.time()

    def prepare(self) -> None:
        """A new Ingester each time, same client id: the broker kept the session and its backlog. Its
        writer process (a new interpreter, ~0.5 s to import and start) is ready before the drain."""
        from ingest.subscriber import Ingester
        from ingest.writer_process import StoreSpec

        self._ingester = Ingester(store=self._store, writer=self._writer,
                                  store_spec=StoreSpec(database_url=self._database_url), clock=self._clock,
                                  host="127.0.0.1", port=self._port,
                                  client_id=f"bench-foresight-{self._worker}", batch_size=self._batch_size,
                                  mqtt_version=5 if self._shared else 3,
                                  shared_group="foresight" if self._shared else None, on_batch=self._on_batch)
        self._ingester.start_writer()

    def connect(self) -> None:
        if self._ingester is None:
            self.prepare()
        self._ingester.start()

    def disconnect(self) -> None:
        self._ingester.stop(drain_s=0)
        self._ingester = None

    def helper_pids(self) -> list[int]:
        pid = self._ingester.writer_pid if self._ingester is not None else None
        return [] if pid is None else [pid]

    def outstanding(self) -> int:
        """Queued, in a batch being written, or written and not yet acked."""
        if self._ingester is None:
            return 0
        stats = self._ingester.stats
        return stats.received - stats.acked
