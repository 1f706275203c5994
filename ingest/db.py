"""Tables owned by ingest, the declarative ``Base`` every package's tables share, and engine set-up.

SQLite is the embedded default, PostgreSQL the production database; the same code runs on both.
Engines are built by the composition root and passed in, never at import time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Float,
    Engine,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ingest.vectors import expand

__all__ = [
    "Base",
    "DeadLetterRow",
    "DeviceEventRow",
    "DeviceRevocationRow",
    "DeviceRow",
    "FeatureHistoryRow",
    "FeatureOnlineRow",
    "FeatureValues",
    "ReadingDailyRow",
    "ReadingRow",
    "UTCDateTime",
    "create_schema",
    "make_engine",
]


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text and drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime reached the database; use timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class FeatureValues(TypeDecorator[dict[str, float]]):
    """A stored feature vector, read back as ``{feature name: value}`` whichever way it was written
    (the write path's compact JSON, ``ingest.vectors``, or an object of feature names)."""

    impl = JSON
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> dict[str, float] | None:
        return None if value is None else expand(value)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class DeviceRow(Base):
    """An appliance known to the backend: registered from a fleet manifest or first seen on the wire."""

    __tablename__ = "devices"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    model: Mapped[str] = mapped_column(String(64), default="")
    firmware: Mapped[str] = mapped_column(String(64), default="")
    household_id: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    service_area: Mapped[str | None] = mapped_column(String(32), default=None)
    status: Mapped[str] = mapped_column(String(16), default="unknown")  # online / offline / unknown
    status_at: Mapped[datetime | None] = mapped_column(default=None)
    first_seen: Mapped[datetime | None] = mapped_column(default=None)
    last_seen: Mapped[datetime | None] = mapped_column(default=None)
    last_seq: Mapped[int | None] = mapped_column(BigInteger, default=None)


class DeviceRevocationRow(Base):
    """A device whose credentials were revoked (``foresight devices revoke``): whatever still arrives
    from it is dead-lettered. Its own table, not a column of ``devices``: an id never seen on the
    wire can be revoked too, and a revoked id is not created as a device by its queued readings."""

    __tablename__ = "device_revocations"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    revoked_at: Mapped[datetime]


class ReadingRow(Base):
    """One accepted telemetry message. ``(device_id, seq)`` is unique: redelivery changes nothing."""

    __tablename__ = "readings"
    __table_args__ = (UniqueConstraint("device_id", "seq", name="uq_readings_device_seq"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    ts: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(32))
    metrics: Mapped[dict[str, Any]]
    received_at: Mapped[datetime]


class DeviceEventRow(Base):
    """A device-reported event (error code, cycle finished)."""

    __tablename__ = "device_events"
    __table_args__ = (UniqueConstraint("device_id", "seq", name="uq_events_device_seq"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    ts: Mapped[datetime]
    event: Mapped[str] = mapped_column(String(32))
    code: Mapped[str | None] = mapped_column(String(32), default=None)
    received_at: Mapped[datetime]


class DeadLetterRow(Base):
    """A message the ingester could not accept, kept whole with the reason it was refused."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    topic: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]


class FeatureOnlineRow(Base):
    """The latest feature vector of each device (online store: one row per device)."""

    __tablename__ = "features_online"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime]
    n_readings: Mapped[int] = mapped_column(Integer)
    values: Mapped[dict[str, float]] = mapped_column(FeatureValues)
    #: The device's latest ``window`` readings in (ts, seq) order and its baseline, packed as
    #: columns (``ingest.window.OnlineState``), so an in-order reading refreshes its features
    #: without reading history back. NULL: not known (the next reading reads the timeline back).
    state: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    updated_at: Mapped[datetime]
    #: ``n_readings`` of the vector last scored; behind ``n_readings`` means a scoring is due.
    scored_n_readings: Mapped[int | None] = mapped_column(Integer, default=None)


class FeatureHistoryRow(Base):
    """Every feature vector as it was at each reading (offline store, point-in-time correct)."""

    __tablename__ = "features_history"
    __table_args__ = (UniqueConstraint("device_id", "seq", name="uq_features_history_device_seq"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    #: The reading this vector was computed at (two readings may share a timestamp).
    seq: Mapped[int] = mapped_column(BigInteger)
    ts: Mapped[datetime]
    n_readings: Mapped[int] = mapped_column(Integer)
    values: Mapped[dict[str, float]] = mapped_column(FeatureValues)


class ReadingDailyRow(Base):
    """Readings past the retention window, rolled up per device, UTC day and metric (``ingest.retention``)."""

    __tablename__ = "readings_daily"
    __table_args__ = (UniqueConstraint("device_id", "day", "metric", name="uq_readings_daily_device_day_metric"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)
    metric: Mapped[str] = mapped_column(String(64))
    n: Mapped[int] = mapped_column(Integer)
    min: Mapped[float] = mapped_column(Float)
    max: Mapped[float] = mapped_column(Float)
    #: Sum of the values (mean = total / n; sums merge exactly when a late reading is rolled up later).
    total: Mapped[float] = mapped_column(Float)


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys.

    SQLite commits with ``synchronous=FULL``: the WAL is fsynced at every commit, so a batch the
    ingester acknowledges survives a power loss too, not only a crash of the process (``NORMAL``
    would lose the last commits on an OS crash, after the broker has dropped them). One fsync per
    batch, not per message: no measurable cost in ``benchmarks/ingest_store.py``.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True)


def create_schema(engine: Engine) -> None:
    """Create every table registered on ``Base`` (ingest's, and those of packages already imported)."""
    Base.metadata.create_all(engine)
