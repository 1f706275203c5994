"""Persistence for ingest: readings, events, presence, dead letters and the feature store.

``IngestStore.write_batch`` is the one write path: it decodes a batch of raw inbound messages
against the wire contract, stores what is valid exactly once per ``(device_id, seq)``, sends the rest
to the dead-letter table with its reason, and refreshes the touched devices' features, all in one
transaction. The caller acknowledges the messages to the broker only after it returns.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from ingest.bulk import codec_for, insert_new_readings, select_in, upsert_devices
from ingest.clock import Clock
from ingest.contract import (
    MAX_PAYLOAD_BYTES,
    PROFILES,
    STATUS_OFFLINE,
    STATUS_ONLINE,
    DecodeError,
    Event,
    Reason,
    Telemetry,
    decode_event,
    decode_telemetry,
    parse_topic,
)
from ingest.db import (
    DeadLetterRow,
    DeviceEventRow,
    DeviceRow,
    FeatureHistoryRow,
    FeatureOnlineRow,
    ReadingRow,
)
from ingest.features import FeatureVector, Reading
from ingest.online import refresh_features, upsert
from ingest.retention import DailyAggregate, RollupResult, daily_aggregates, roll_up
from ingest.presence import Presence
from ingest.presence import presence as presence_of
from ingest.window import to_us

__all__ = ["BatchResult", "DeadLetter", "DeviceInfo", "Inbound", "IngestStore"]


@dataclass(frozen=True, slots=True)
class Inbound:
    """A raw MQTT message as received, before any validation."""

    topic: str
    payload: bytes
    received_at: datetime


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one ``write_batch`` did."""

    accepted: int
    duplicates: int
    rejected: int
    events: int
    status_updates: int
    touched_devices: tuple[str, ...]
    #: ``(reason, count)`` of the rejected messages, for per-reason monitoring.
    rejected_by_reason: tuple[tuple[str, int], ...] = ()
    #: Seconds the transaction took, from opening the session to the end of the commit.
    commit_s: float = 0.0
    #: Per accepted reading: seconds from its event timestamp to the commit (end-to-end lag).
    lags_s: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceInfo:
    """A device as the backend knows it."""

    device_id: str
    kind: str
    model: str = ""
    firmware: str = ""
    household_id: str | None = None
    service_area: str | None = None
    status: str = "unknown"
    status_at: datetime | None = None
    last_seen: datetime | None = None
    #: Computed when read (``ingest.presence``); ignored by ``register_devices``.
    presence: Presence = "unknown"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A refused message with its reason."""

    id: int
    topic: str
    payload: bytes
    reason: str
    detail: str
    received_at: datetime


class IngestStore:
    """The ingest side of the database. Thread-safe: every call opens its own session."""

    def __init__(self, engine: Engine, *, clock: Clock,
                 max_future: timedelta = timedelta(minutes=5),
                 max_past: timedelta = timedelta(days=30)) -> None:
        self._engine = engine
        self._clock = clock
        self._max_future = max_future
        self._max_past = max_past

    # -- writes -------------------------------------------------------------------------------

    def register_devices(self, devices: Iterable[DeviceInfo]) -> int:
        """Insert or update devices from a fleet manifest (household and service area)."""
        n = 0
        with Session(self._engine) as session, session.begin():
            for d in devices:
                row = session.get(DeviceRow, d.device_id)
                if row is None:
                    row = DeviceRow(device_id=d.device_id, kind=d.kind, status="unknown")
                    session.add(row)
                row.kind, row.model, row.firmware = d.kind, d.model or row.model or "", d.firmware or row.firmware or ""
                row.household_id, row.service_area = d.household_id, d.service_area
                n += 1
        return n

    def write_batch(self, batch: Sequence[Inbound], *, now: datetime | None = None) -> BatchResult:
        """Decode, validate and store a batch in one transaction; see the module docstring.

        Clock skew is judged against each message's arrival time, not the time of the write, so a
        backlog that waited in the queue is not refused for having waited. ``now`` is the batch's
        event time (default: the store's clock), for a writer that runs apart from the clock.
        """
        clocked = now is None
        now = self._clock.now() if now is None else now
        telemetry: list[tuple[Inbound, Telemetry]] = []
        events: list[tuple[Inbound, Event]] = []
        statuses: list[tuple[Inbound, str, str]] = []
        dead: list[tuple[Inbound, Reason, str]] = []
        limits = {"max_future": self._max_future, "max_past": self._max_past}
        for msg in batch:
            try:
                # Routed by the last level alone: each decoder parses and checks the whole topic once.
                channel = msg.topic.rpartition("/")[2]
                if channel == "telemetry":
                    telemetry.append((msg, decode_telemetry(msg.payload, topic=msg.topic, now=msg.received_at,
                                                            **limits)))
                elif channel == "events":
                    events.append((msg, decode_event(msg.payload, topic=msg.topic, now=msg.received_at,
                                                     **limits)))
                else:  # a status, or a topic parse_topic refuses
                    device_id, _ = parse_topic(msg.topic)
                    statuses.append((msg, device_id, _decode_status(msg.payload)))
            except DecodeError as exc:
                dead.append((msg, exc.reason, exc.detail))

        started = time.perf_counter()
        with self._engine.begin() as conn:
            ids = {t.device_id for _, t in telemetry} | {e.device_id for _, e in events} | {d for _, d, _ in statuses}
            devices, revoked = _load_devices(conn, ids)
            fresh: list[Telemetry] = []
            seen: set[tuple[str, int]] = set()
            refused = 0  # telemetry dead-lettered here: neither stored nor a duplicate
            for msg, t in telemetry:
                if t.device_id in revoked:
                    dead.append((msg, Reason.REVOKED_DEVICE, _REVOKED.format(t.device_id)))
                    refused += 1
                elif (reason := _kind_conflict(devices.get(t.device_id), t.device_id, t.kind)) is not None:
                    dead.append((msg, Reason.KIND_MISMATCH, reason))
                    refused += 1
                elif (t.device_id, t.seq) not in seen:
                    seen.add((t.device_id, t.seq))
                    fresh.append(t)
            inserted, inserted_ts = _insert_readings(conn, fresh, received_at=now)
            _touch_devices(conn, inserted, inserted_ts)  # only what was really new moves the device's state
            for t in inserted:
                devices.setdefault(t.device_id, (t.kind, "unknown"))
            known_events = []
            for msg, e in events:
                known = devices.get(e.device_id)
                if e.device_id in revoked:
                    dead.append((msg, Reason.REVOKED_DEVICE, _REVOKED.format(e.device_id)))
                elif known is None:
                    dead.append((msg, Reason.UNKNOWN_DEVICE, f"event from unregistered device {e.device_id}"))
                elif (reason := _kind_conflict(known, e.device_id, e.kind)) is not None:
                    dead.append((msg, Reason.KIND_MISMATCH, reason))
                else:
                    known_events.append(e)
            n_events = _insert_events(conn, known_events, received_at=now)
            n_status = 0
            changed: dict[str, tuple[str, datetime]] = {}
            for msg, device_id, status in statuses:
                known = devices.get(device_id)
                if device_id in revoked:
                    dead.append((msg, Reason.REVOKED_DEVICE, _REVOKED.format(device_id)))
                    continue
                if known is None:
                    dead.append((msg, Reason.UNKNOWN_DEVICE, f"status for unregistered device {device_id}"))
                    continue
                # A retained status is replayed on every (re)subscribe: only a change moves status_at,
                # so a replay neither makes a silent device look freshly online nor rewinds it.
                if known[1] != status:
                    devices[device_id] = (known[0], status)
                    changed[device_id] = (status, msg.received_at)
                n_status += 1
            if changed:
                conn.execute(update(DeviceRow).where(DeviceRow.device_id == bindparam("b_device_id"))
                             .values(status=bindparam("status"), status_at=bindparam("status_at")),
                             [{"b_device_id": d, "status": st, "status_at": at} for d, (st, at) in changed.items()])
            if dead:
                conn.execute(insert(DeadLetterRow), [_dead_letter(msg, reason, detail) for msg, reason, detail in dead])
            refresh_features(conn, inserted, now=now)
        commit_s = time.perf_counter() - started
        committed_at = self._clock.now() if clocked else now + timedelta(seconds=commit_s)
        return BatchResult(accepted=len(inserted), duplicates=len(telemetry) - len(inserted) - refused,
                           rejected=len(dead), events=n_events, status_updates=n_status,
                           touched_devices=tuple(sorted({t.device_id for t in inserted})),
                           rejected_by_reason=tuple(sorted(Counter(str(r) for _, r, _ in dead).items())),
                           commit_s=commit_s,
                           lags_s=tuple((committed_at - t.ts).total_seconds() for t in inserted))

    def dead_letter(self, msg: Inbound, *, reason: Reason, detail: str) -> None:
        """Store one message as refused, on its own (used when a message cannot be written at all)."""
        with self._engine.begin() as conn:
            conn.execute(insert(DeadLetterRow), [_dead_letter(msg, reason, detail)])

    def roll_up(self, *, retention: timedelta, now: datetime | None = None) -> RollupResult:
        """Roll readings older than ``retention`` (as of ``now``, default the clock) into daily aggregates.

        ``retention`` must be at least the ``max_past`` this store accepts, so a reading that was
        rolled up can never come back as new (``ingest.retention``).
        """
        if retention < self._max_past:
            raise ValueError(f"retention {retention} is shorter than the {self._max_past} of past timestamps "
                             "the ingester accepts: a redelivered old reading would be counted twice")
        return roll_up(self._engine, now=now or self._clock.now(), retention=retention)

    def daily_aggregates(self, device_id: str, *, since: date | None = None) -> list[DailyAggregate]:
        """A device's readings past retention: per UTC day and metric count, min, mean and max."""
        return daily_aggregates(self._engine, device_id, since=since)

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with self._engine.connect() as conn:
            conn.execute(select(1))

    def mark_scored(self, vectors: Iterable[FeatureVector]) -> None:
        """Record that these vectors have been scored (a newer vector stays pending)."""
        with Session(self._engine) as session, session.begin():
            for v in vectors:
                session.execute(update(FeatureOnlineRow).where(FeatureOnlineRow.device_id == v.device_id)
                                .values(scored_n_readings=v.n_readings))

    # -- reads --------------------------------------------------------------------------------

    def pending_vectors(self, limit: int = 5000) -> list[FeatureVector]:
        """Feature vectors updated since they were last scored."""
        with Session(self._engine) as session:
            rows = session.scalars(
                select(FeatureOnlineRow)
                .where(FeatureOnlineRow.scored_n_readings.is_(None)
                       | (FeatureOnlineRow.scored_n_readings < FeatureOnlineRow.n_readings))
                .order_by(FeatureOnlineRow.updated_at).limit(limit)).all()
            return [_vector(r) for r in rows]

    def latest_features(self, device_ids: Iterable[str] | None = None) -> list[FeatureVector]:
        """The online feature vector of each device (all devices when ``device_ids`` is None)."""
        stmt = select(FeatureOnlineRow)
        if device_ids is not None:
            stmt = stmt.where(FeatureOnlineRow.device_id.in_(list(device_ids)))
        with Session(self._engine) as session:
            return [_vector(r) for r in session.scalars(stmt.order_by(FeatureOnlineRow.device_id))]

    def feature_history(self, device_id: str, limit: int = 500) -> list[FeatureVector]:
        """A device's offline feature history, oldest first."""
        with Session(self._engine) as session:
            kind = session.scalar(select(DeviceRow.kind).where(DeviceRow.device_id == device_id)) or ""
            rows = session.scalars(select(FeatureHistoryRow).where(FeatureHistoryRow.device_id == device_id)
                                   .order_by(FeatureHistoryRow.ts.desc(), FeatureHistoryRow.seq.desc())
                                   .limit(limit)).all()
            return [FeatureVector(device_id=r.device_id, kind=kind, ts=r.ts, n_readings=r.n_readings,
                                  values=dict(r.values)) for r in reversed(rows)]

    def recent_readings(self, device_id: str, limit: int = 50) -> list[Reading]:
        """A device's most recent readings, oldest first."""
        with Session(self._engine) as session:
            rows = session.scalars(select(ReadingRow).where(ReadingRow.device_id == device_id)
                                   .order_by(ReadingRow.ts.desc(), ReadingRow.seq.desc()).limit(limit)).all()
            return [_reading(r) for r in reversed(rows)]

    def device(self, device_id: str, *, now: datetime | None = None) -> DeviceInfo | None:
        """One device, its presence as of ``now`` (default: the store's clock)."""
        with Session(self._engine) as session:
            row = session.get(DeviceRow, device_id)
            return None if row is None else _device(row, now=now or self._clock.now())

    def devices(self, *, household_id: str | None = None, presence: Presence | None = None,
                now: datetime | None = None) -> list[DeviceInfo]:
        """Devices by id, optionally of one household and/or one presence as of ``now`` (default: the clock)."""
        stmt = select(DeviceRow).order_by(DeviceRow.device_id)
        if household_id is not None:
            stmt = stmt.where(DeviceRow.household_id == household_id)
        now = now or self._clock.now()
        with Session(self._engine) as session:
            found = [_device(r, now=now) for r in session.scalars(stmt)]
        return found if presence is None else [d for d in found if d.presence == presence]

    def dead_letters(self, *, limit: int = 100, reason: str | None = None) -> list[DeadLetter]:
        stmt = select(DeadLetterRow).order_by(DeadLetterRow.id.desc()).limit(limit)
        if reason is not None:
            stmt = stmt.where(DeadLetterRow.reason == reason)
        with Session(self._engine) as session:
            return [DeadLetter(r.id, r.topic, r.payload, r.reason, r.detail, r.received_at)
                    for r in session.scalars(stmt)]

    def counts(self) -> dict[str, int]:
        """Row counts for the summary and health endpoints."""
        with Session(self._engine) as session:
            return {
                "readings": session.scalar(select(func.count()).select_from(ReadingRow)) or 0,
                "rejected": session.scalar(select(func.count()).select_from(DeadLetterRow)) or 0,
                "devices": session.scalar(select(func.count()).select_from(DeviceRow)) or 0,
                "events": session.scalar(select(func.count()).select_from(DeviceEventRow)) or 0,
            }

    def rejected_by_reason(self) -> dict[str, int]:
        with Session(self._engine) as session:
            rows = session.execute(select(DeadLetterRow.reason, func.count()).group_by(DeadLetterRow.reason))
            return {reason: n for reason, n in rows}

    # -- internals ----------------------------------------------------------------------------


def _load_devices(conn: Connection, ids: set[str]) -> tuple[dict[str, tuple[str, str]], set[str]]:
    """``device_id -> (kind, status)`` of the known devices among ``ids``, and the revoked ones
    (``ingest.revocations``), in one statement."""
    if not ids:
        return {}, set()
    rows = select_in(conn, "SELECT device_id, kind, status, 0 FROM devices WHERE device_id IN ?* UNION ALL "
                           "SELECT device_id, NULL, NULL, 1 FROM device_revocations WHERE device_id IN ?*", list(ids))
    return ({d: (kind, status) for d, kind, status, revoked in rows if not revoked},
            {d for d, _, _, revoked in rows if revoked})


def _insert_readings(conn: Connection, fresh: Sequence[Telemetry], *,
                     received_at: datetime) -> tuple[list[Telemetry], list[Any]]:
    """Insert what is new; returns the readings really stored (not already there) and their
    timestamps as the database takes them (formatted once, for ``_touch_devices`` too)."""
    if not fresh:
        return [], []
    codec = codec_for(conn)
    at = codec.ts(received_at)
    ts = codec.ts_of_us(np.fromiter((to_us(t.ts) for t in fresh), np.int64, len(fresh)))
    stored = insert_new_readings(conn, [(t.device_id, t.seq, text, t.kind, codec.json(t.metrics), at)
                                        for t, text in zip(fresh, ts, strict=True)])
    kept = [i for i, t in enumerate(fresh) if (t.device_id, t.seq) in stored]
    return [fresh[i] for i in kept], [ts[i] for i in kept]


def _touch_devices(conn: Connection, inserted: Sequence[Telemetry], ts: Sequence[Any]) -> None:
    """Create unknown devices and move first/last seen, in one upsert per batch (``ts``: the
    readings' timestamps as ``_insert_readings`` encoded them).

    The newest reading (a tie goes to the later one in the batch) sets ``last_seen``, ``last_seq``,
    model and firmware, and only if it is not older than what is stored: a late reading must not
    roll the firmware back.
    """
    if not inserted:
        return
    first: dict[str, int] = {}
    latest: dict[str, int] = {}
    for i, t in enumerate(inserted):
        d = t.device_id
        if d not in first or t.ts < inserted[first[d]].ts:
            first[d] = i
        if d not in latest or t.ts >= inserted[latest[d]].ts:
            latest[d] = i
    rows = []
    for d, i in sorted(latest.items()):  # one lock order for every worker
        t = inserted[i]
        rows.append((d, t.kind, t.model, t.firmware, "unknown", ts[first[d]], ts[i], t.seq))
    upsert_devices(conn, rows)


def _insert_events(conn: Connection, events: Sequence[Event], *, received_at: datetime) -> int:
    if not events:
        return 0
    stmt = (upsert(conn, DeviceEventRow).on_conflict_do_nothing(index_elements=["device_id", "seq"])
            .returning(DeviceEventRow.id))
    params = [{"device_id": e.device_id, "seq": e.seq, "ts": e.ts, "event": e.event, "code": e.code,
               "received_at": received_at} for e in events]
    return len(conn.execute(stmt, params).all())


def _decode_status(payload: bytes) -> str:
    text = payload.decode("utf-8", errors="replace").strip()
    if text not in (STATUS_ONLINE, STATUS_OFFLINE):
        raise DecodeError(Reason.SCHEMA, f"status must be {STATUS_ONLINE!r} or {STATUS_OFFLINE!r}, got {text[:40]!r}")
    return text


_REVOKED = "device {} is revoked (foresight devices revoke); nothing from it is accepted"


def _kind_conflict(known: tuple[str, str] | None, device_id: str, kind: str) -> str | None:
    if known is None or known[0] == kind:
        return None
    return f"device {device_id} is registered as {known[0]}, payload says {kind}"


def _dead_letter(msg: Inbound, reason: Reason, detail: str) -> dict[str, Any]:
    """Keeps at most MAX_PAYLOAD_BYTES of the payload (a 100 MB blob must not fill the database)."""
    size = len(msg.payload)
    if size > MAX_PAYLOAD_BYTES:
        detail = f"{detail} (payload truncated from {size} bytes)"
    # PostgreSQL text cannot hold NUL; a NUL in the topic must not fail the whole batch.
    return {"topic": msg.topic.replace("\x00", "\ufffd")[:1024], "payload": msg.payload[:MAX_PAYLOAD_BYTES],
            "reason": str(reason), "detail": detail.replace("\x00", "")[:2000], "received_at": msg.received_at}


def _reading(r: ReadingRow) -> Reading:
    return Reading(device_id=r.device_id, kind=r.kind, seq=r.seq, ts=r.ts, metrics=dict(r.metrics))


def _vector(r: FeatureOnlineRow) -> FeatureVector:
    return FeatureVector(device_id=r.device_id, kind=r.kind, ts=r.ts, n_readings=r.n_readings, values=dict(r.values))


def _device(r: DeviceRow, *, now: datetime) -> DeviceInfo:
    return DeviceInfo(device_id=r.device_id, kind=r.kind, model=r.model, firmware=r.firmware,
                      household_id=r.household_id, service_area=r.service_area, status=r.status,
                      status_at=r.status_at, last_seen=r.last_seen, presence=_presence(r, now=now))


def _presence(r: DeviceRow, *, now: datetime) -> Presence:
    profile = PROFILES.get(r.kind)
    signs = [t for t in (r.last_seen, r.status_at if r.status == STATUS_ONLINE else None) if t is not None]
    if profile is None:  # registered from a manifest with a kind this build does not know
        return presence_of(r.status, max(signs, default=None), now=now, reading_interval_h=float("inf"))
    return presence_of(r.status, max(signs, default=None), now=now, reading_interval_h=profile.reading_interval_h,
                    grace_factor=profile.silence_grace)
