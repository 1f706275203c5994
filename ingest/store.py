"""Persistence for ingest: readings, events, presence, dead letters and the feature store.

``IngestStore.write_batch`` is the one write path: it decodes a batch of raw inbound messages
against the wire contract, stores what is valid exactly once per ``(device_id, seq)``, sends the rest
to the dead-letter table with its reason, and refreshes the touched devices' features, all in one
transaction. The caller acknowledges the messages to the broker only after it returns.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

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
from ingest.features import FeatureVector, Reading, compute_baseline, compute_features
from ingest.presence import Presence
from ingest.presence import presence as presence_of

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


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


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

    def write_batch(self, batch: Sequence[Inbound]) -> BatchResult:
        """Decode, validate and store a batch in one transaction; see the module docstring.

        Clock skew is judged against each message's arrival time, not the time of the write, so a
        backlog that waited in the queue is not refused for having waited.
        """
        now = self._clock.now()
        telemetry: list[tuple[Inbound, Telemetry]] = []
        events: list[tuple[Inbound, Event]] = []
        statuses: list[tuple[Inbound, str, str]] = []
        dead: list[tuple[Inbound, Reason, str]] = []
        limits = {"max_future": self._max_future, "max_past": self._max_past}
        for msg in batch:
            try:
                device_id, channel = parse_topic(msg.topic)
                if channel == "telemetry":
                    telemetry.append((msg, decode_telemetry(msg.payload, topic=msg.topic, now=msg.received_at,
                                                            **limits)))
                elif channel == "events":
                    events.append((msg, decode_event(msg.payload, topic=msg.topic, now=msg.received_at,
                                                     **limits)))
                else:
                    statuses.append((msg, device_id, _decode_status(msg.payload)))
            except DecodeError as exc:
                dead.append((msg, exc.reason, exc.detail))

        started = time.perf_counter()
        with Session(self._engine) as session, session.begin():
            devices = self._load_devices(session, {t.device_id for _, t in telemetry}
                                         | {e.device_id for _, e in events} | {d for _, d, _ in statuses})
            fresh: list[Telemetry] = []
            seen: set[tuple[str, int]] = set()
            for msg, t in telemetry:
                if (reason := _kind_conflict(devices.get(t.device_id), t.device_id, t.kind)) is not None:
                    dead.append((msg, Reason.KIND_MISMATCH, reason))
                elif (t.device_id, t.seq) not in seen:
                    seen.add((t.device_id, t.seq))
                    fresh.append(t)
            inserted = self._insert_readings(session, fresh, received_at=now)
            for t in inserted:  # only what was really new moves the device's state
                devices[t.device_id] = self._touch_device(session, devices.get(t.device_id), t)
            known_events = []
            for msg, e in events:
                row = devices.get(e.device_id)
                if row is None:
                    dead.append((msg, Reason.UNKNOWN_DEVICE, f"event from unregistered device {e.device_id}"))
                elif (reason := _kind_conflict(row, e.device_id, e.kind)) is not None:
                    dead.append((msg, Reason.KIND_MISMATCH, reason))
                else:
                    known_events.append(e)
            n_events = self._insert_events(session, known_events, received_at=now)
            n_status = 0
            for msg, device_id, status in statuses:
                row = devices.get(device_id)
                if row is None:
                    dead.append((msg, Reason.UNKNOWN_DEVICE, f"status for unregistered device {device_id}"))
                    continue
                # A retained status is replayed on every (re)subscribe: only a change moves status_at,
                # so a replay neither makes a silent device look freshly online nor rewinds it.
                if row.status != status:
                    row.status, row.status_at = status, msg.received_at
                n_status += 1
            for msg, reason, detail in dead:
                session.add(_dead_letter_row(msg, reason, detail))
            self._refresh_features(session, inserted, now=now)
        commit_s = time.perf_counter() - started
        committed_at = self._clock.now()
        mismatched = sum(1 for _, reason, _ in dead if reason == Reason.KIND_MISMATCH)
        return BatchResult(accepted=len(inserted), duplicates=len(telemetry) - len(inserted) - mismatched,
                           rejected=len(dead), events=n_events, status_updates=n_status,
                           touched_devices=tuple(sorted({t.device_id for t in inserted})),
                           rejected_by_reason=tuple(sorted(Counter(str(r) for _, r, _ in dead).items())),
                           commit_s=commit_s,
                           lags_s=tuple((committed_at - t.ts).total_seconds() for t in inserted))

    def dead_letter(self, msg: Inbound, *, reason: Reason, detail: str) -> None:
        """Store one message as refused, on its own (used when a message cannot be written at all)."""
        with Session(self._engine) as session, session.begin():
            session.add(_dead_letter_row(msg, reason, detail))

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

    @staticmethod
    def _load_devices(session: Session, ids: set[str]) -> dict[str, DeviceRow]:
        if not ids:
            return {}
        return {r.device_id: r for r in session.scalars(select(DeviceRow).where(DeviceRow.device_id.in_(ids)))}

    @staticmethod
    def _touch_device(session: Session, row: DeviceRow | None, t: Telemetry) -> DeviceRow:
        if row is None:
            row = DeviceRow(device_id=t.device_id, kind=t.kind, model=t.model, firmware=t.firmware,
                            status="unknown", first_seen=t.ts, last_seen=t.ts, last_seq=t.seq)
            session.add(row)
            session.flush()
            return row
        if row.first_seen is None or t.ts < row.first_seen:
            row.first_seen = t.ts
        if row.last_seen is None or t.ts >= row.last_seen:  # a late reading must not roll firmware back
            row.last_seen, row.last_seq = t.ts, t.seq
            row.model, row.firmware = t.model, t.firmware
        return row

    @staticmethod
    def _insert_readings(session: Session, fresh: Sequence[Telemetry], *, received_at: datetime) -> list[Telemetry]:
        if not fresh:
            return []
        stmt = (_insert(session, ReadingRow).on_conflict_do_nothing(index_elements=["device_id", "seq"])
                .returning(ReadingRow.device_id, ReadingRow.seq))
        params = [{"device_id": t.device_id, "seq": t.seq, "ts": t.ts, "kind": t.kind,
                   "metrics": dict(t.metrics), "received_at": received_at} for t in fresh]
        stored = {(d, s) for d, s in session.execute(stmt, params)}
        return [t for t in fresh if (t.device_id, t.seq) in stored]

    @staticmethod
    def _insert_events(session: Session, events: Sequence[Event], *, received_at: datetime) -> int:
        if not events:
            return 0
        stmt = (_insert(session, DeviceEventRow).on_conflict_do_nothing(index_elements=["device_id", "seq"])
                .returning(DeviceEventRow.id))
        params = [{"device_id": e.device_id, "seq": e.seq, "ts": e.ts, "event": e.event, "code": e.code,
                   "received_at": received_at} for e in events]
        return len(session.execute(stmt, params).all())

    def _refresh_features(self, session: Session, inserted: Sequence[Telemetry], *, now: datetime) -> None:
        """Recompute features of every device that got new readings, set-based over the batch.

        Every reading from the oldest new one onwards gets its point-in-time vector (computed from
        the readings up to its own position in (ts, seq) order) written to the offline history, so
        a late arrival also corrects the vectors after it; the online vector is recomputed from the
        device's latest window, whatever order the readings came in.

        The online row keeps the device's latest window of readings. In the usual case — readings
        newer than that window — nothing is read back from ``readings``: one query loads the
        online rows (locked on PostgreSQL, so two workers serialise per device), one upsert writes
        the history. A late reading makes that device read its timeline back from ``readings``.
        """
        by_device: dict[str, list[Telemetry]] = defaultdict(list)
        for t in inserted:
            by_device[t.device_id].append(t)
        if not by_device:
            return
        ids = list(by_device)
        profiles = {d: PROFILES[new[0].kind] for d, new in by_device.items()}
        query = select(FeatureOnlineRow).where(FeatureOnlineRow.device_id.in_(ids))
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        online = {r.device_id: r for r in session.scalars(query)}
        plans: dict[str, tuple[list[Reading], int, int]] = {}  # timeline, index of oldest new, total
        slow: list[str] = []
        for device_id, new in by_device.items():
            fresh = sorted((_as_reading(t) for t in new), key=_key)
            row = online.get(device_id)
            if row is None:  # the device's first readings ever: nothing earlier exists
                plans[device_id] = (fresh, 0, len(fresh))
                continue
            recent = _recent_readings(row, device_id)
            if recent and _key(fresh[0]) > _key(recent[-1]):
                window = profiles[device_id].window
                plans[device_id] = (recent[-(window - 1):] + fresh, len(recent[-(window - 1):]),
                                    row.n_readings + len(fresh))
            else:
                slow.append(device_id)
        if slow:
            totals = dict(session.execute(select(ReadingRow.device_id, func.count())
                                          .where(ReadingRow.device_id.in_(slow)).group_by(ReadingRow.device_id)).all())
            for device_id in slow:
                oldest = min((t.ts, t.seq) for t in by_device[device_id])
                timeline = _timeline_from(session, device_id, oldest, profiles[device_id].window)
                plans[device_id] = (timeline, sum(1 for r in timeline if _key(r) < oldest), totals[device_id])
        baselines = {d: dict(online[d].baseline) if d in online else {} for d in ids}
        incomplete = [d for d in ids if baselines[d].get("_complete") != 1.0]
        # A forming baseline needs the device's first readings: in the timeline when it holds them all.
        missing = {d: profiles[d].baseline_readings for d in incomplete if plans[d][2] > len(plans[d][0])}
        firsts = _ranked_readings(session, missing, newest_first=False) if missing else {}
        for d in incomplete:
            timeline, _, total = plans[d]
            first = firsts.get(d, []) if d in missing else timeline[: profiles[d].baseline_readings]
            baselines[d] = compute_baseline(profiles[d], first)
            if len(first) >= profiles[d].baseline_readings:
                baselines[d]["_complete"] = 1.0
        history: list[dict[str, Any]] = []
        for device_id, (timeline, start, n_total) in plans.items():
            profile = profiles[device_id]
            metric_baseline = {k: v for k, v in baselines[device_id].items() if not k.startswith("_")}
            rows = []
            for i, r in enumerate(timeline[start:], start=start):
                position = n_total - (len(timeline) - 1 - i)
                # While the baseline is still forming, a row sees only the readings before it.
                as_of = (compute_baseline(profile, timeline[: i + 1])
                         if position <= profile.baseline_readings and position == i + 1 else metric_baseline)
                rows.append({"device_id": device_id, "seq": r.seq, "ts": r.ts, "n_readings": position,
                             "values": compute_features(profile, timeline[max(0, i - profile.window + 1): i + 1],
                                                        as_of)})
            history.extend(rows)
            row = online.get(device_id)
            if row is None:
                row = FeatureOnlineRow(device_id=device_id, kind=profile.kind)
                session.add(row)
            row.ts, row.n_readings, row.values = timeline[-1].ts, n_total, rows[-1]["values"]
            row.baseline, row.updated_at = baselines[device_id], now
            row.recent = {"items": [[r.ts.isoformat(), r.seq, dict(r.metrics)] for r in timeline[-profile.window:]]}
        stmt = _insert(session, FeatureHistoryRow)
        session.execute(stmt.on_conflict_do_update(
            index_elements=["device_id", "seq"],
            set_={"values": stmt.excluded["values"], "n_readings": stmt.excluded.n_readings}), history)


def _key(r: Reading) -> tuple[datetime, int]:
    return (r.ts, r.seq)


def _as_reading(t: Telemetry) -> Reading:
    return Reading(device_id=t.device_id, kind=t.kind, seq=t.seq, ts=t.ts, metrics=t.metrics)


def _recent_readings(row: FeatureOnlineRow, device_id: str) -> list[Reading]:
    items = (row.recent or {}).get("items", [])
    return [Reading(device_id=device_id, kind=row.kind, seq=seq, ts=datetime.fromisoformat(ts), metrics=metrics)
            for ts, seq, metrics in items]


def _ranked_readings(session: Session, limits: dict[str, int], *, newest_first: bool) -> dict[str, list[Reading]]:
    """Each device's first (or newest) ``limits[device]`` readings, returned oldest first.

    One windowed query per distinct limit (usually one per batch).
    """
    by_limit: dict[int, list[str]] = defaultdict(list)
    for device_id, limit in limits.items():
        by_limit[limit].append(device_id)
    order = (ReadingRow.ts.desc(), ReadingRow.seq.desc()) if newest_first else (ReadingRow.ts, ReadingRow.seq)
    out: dict[str, list[Reading]] = defaultdict(list)
    for limit, ids in by_limit.items():
        rank = func.row_number().over(partition_by=ReadingRow.device_id, order_by=order).label("rank")
        ranked = (select(ReadingRow.device_id, ReadingRow.kind, ReadingRow.seq, ReadingRow.ts, ReadingRow.metrics, rank)
                  .where(ReadingRow.device_id.in_(ids)).subquery())
        for r in session.execute(select(ranked).where(ranked.c.rank <= limit)):
            out[r.device_id].append(Reading(device_id=r.device_id, kind=r.kind, seq=r.seq, ts=r.ts,
                                            metrics=dict(r.metrics)))
    return {d: sorted(rs, key=lambda r: (r.ts, r.seq)) for d, rs in out.items()}


def _timeline_from(session: Session, device_id: str, oldest: tuple[datetime, int], window: int) -> list[Reading]:
    """A device's readings from ``oldest`` (ts, seq) on, with the ``window - 1`` readings before it."""
    ts, seq = oldest
    at_or_after = (ReadingRow.ts > ts) | ((ReadingRow.ts == ts) & (ReadingRow.seq >= seq))
    mine = ReadingRow.device_id == device_id
    since = session.scalars(select(ReadingRow).where(mine, at_or_after).order_by(ReadingRow.ts, ReadingRow.seq)).all()
    before = session.scalars(select(ReadingRow).where(mine, ~at_or_after)
                             .order_by(ReadingRow.ts.desc(), ReadingRow.seq.desc()).limit(window - 1)).all()
    return [_reading(r) for r in reversed(before)] + [_reading(r) for r in since]


def _decode_status(payload: bytes) -> str:
    text = payload.decode("utf-8", errors="replace").strip()
    if text not in (STATUS_ONLINE, STATUS_OFFLINE):
        raise DecodeError(Reason.SCHEMA, f"status must be {STATUS_ONLINE!r} or {STATUS_OFFLINE!r}, got {text[:40]!r}")
    return text


def _kind_conflict(row: DeviceRow | None, device_id: str, kind: str) -> str | None:
    if row is None or row.kind == kind:
        return None
    return f"device {device_id} is registered as {row.kind}, payload says {kind}"


def _dead_letter_row(msg: Inbound, reason: Reason, detail: str) -> DeadLetterRow:
    """Keeps at most MAX_PAYLOAD_BYTES of the payload (a 100 MB blob must not fill the database)."""
    size = len(msg.payload)
    if size > MAX_PAYLOAD_BYTES:
        detail = f"{detail} (payload truncated from {size} bytes)"
    # PostgreSQL text cannot hold NUL; a NUL in the topic must not fail the whole batch.
    return DeadLetterRow(topic=msg.topic.replace("\x00", "\ufffd")[:1024],
                         payload=msg.payload[:MAX_PAYLOAD_BYTES], reason=str(reason),
                         detail=detail.replace("\x00", "")[:2000], received_at=msg.received_at)


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
