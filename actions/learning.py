"""Learning from outcomes, on the service's database: labels to training, retrain, drift tickets.

``OUTCOME_FAILED`` says what each recorded outcome (``labels`` table, see ``actions.tickets``)
means for training: a technician's ``confirmed_fault`` or ``part_replaced``, a homeowner's "done"
(``fixed_by_homeowner``) and a ticket resolved as either are failures of that mode at that time;
``no_fault_found`` and a homeowner's "wrong alert" (``false_alarm``) are false alerts (negatives
around that time, see ``predictors.retrain``). Labels of device error codes (mode ``error:<code>``)
are not failure modes and are left out.

``retrain_from_outcomes`` reads the stored readings and labels and runs ``predictors.retrain``. The
readings come from ``stored_history``, a chunk of devices at a time (memory holds one chunk and the
frames, not the whole lookback), and every device's chunk includes its first ``baseline_readings``
readings and the ``window - 1`` before the lookback: the baseline and windows the live store used,
so each training row's features are the ones served at that reading. The lookback never reaches
past the retention window (older readings are rolled up, all but those two ends). A device is
observed up to its last reading, never after ``now``.
``watch_drift`` compares every live model's training reference with the online feature vectors
and opens one ``model_drift`` ticket per (kind, mode) while none is open, naming the drifting
features. Both are called by the scheduler jobs in ``foresight.runtime``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, or_, select
from sqlalchemy.orm import Session

from ingest.contract import PROFILES, ApplianceProfile
from ingest.db import FeatureOnlineRow, ReadingRow
from ingest.features import Reading
from predictors import ModelRegistry
from predictors.drift import DEFAULT_PSI_THRESHOLD, DriftReport, feature_drift
from predictors.retrain import OutcomeLabel, ReadingChunks, RetrainResult, Tolerance, retrain

from .db import LabelRow, TicketRow
from .tickets import open_ticket

__all__ = ["DRIFT_CATEGORY", "OUTCOME_FAILED", "DriftAlert", "outcome_labels", "retrain_from_outcomes",
           "stored_history", "stored_readings", "watch_drift"]

#: Recorded outcome -> was it a failure of the mode (True) or a false alert (False).
OUTCOME_FAILED: Mapping[str, bool] = {
    "confirmed_fault": True,
    "part_replaced": True,
    "fixed_by_homeowner": True,
    "no_fault_found": False,
    "false_alarm": False,
}

DRIFT_CATEGORY = "model_drift"


def outcome_labels(engine: Engine, *, since: datetime | None = None) -> list[OutcomeLabel]:
    """Every recorded outcome of a failure mode (since ``since``) as a training label, oldest first."""
    stmt = select(LabelRow).where(LabelRow.mode.not_like("error:%")).order_by(LabelRow.ts, LabelRow.id)
    if since is not None:
        stmt = stmt.where(LabelRow.ts >= since)
    with Session(engine) as s:
        return [OutcomeLabel(device_id=r.device_id, mode=r.mode, ts=r.ts,
                             failed=OUTCOME_FAILED[r.outcome], source=r.source)
                for r in s.scalars(stmt) if r.outcome in OUTCOME_FAILED]


def stored_readings(engine: Engine, *, kinds: set[str], since: datetime | None = None) -> list[Reading]:
    """The accepted readings of the given kinds (since ``since``), in device and time order."""
    stmt = select(ReadingRow).where(ReadingRow.kind.in_(sorted(kinds)))
    if since is not None:
        stmt = stmt.where(ReadingRow.ts >= since)
    with Session(engine) as s:
        return [Reading(r.device_id, r.kind, r.seq, r.ts, dict(r.metrics))
                for r in s.scalars(stmt.order_by(ReadingRow.device_id, ReadingRow.ts, ReadingRow.seq))]


def stored_history(engine: Engine, *, profiles: Mapping[str, ApplianceProfile], since: datetime,
                   devices_per_chunk: int = 100) -> ReadingChunks:
    """The stored readings of the given kinds from ``since``, a chunk of devices at a time.

    Each device's chunk also holds, from before ``since``, its first ``baseline_readings`` readings
    and the ``window - 1`` readings just before ``since`` (context: rows count from ``since``).
    Devices without a reading since ``since`` are left out. Chunks are read lazily, in device order.
    """
    kinds = sorted(profiles)
    head = max((p.baseline_readings for p in profiles.values()), default=0)
    tail = max((p.window for p in profiles.values()), default=1) - 1
    with Session(engine) as s:
        devices = list(s.scalars(select(ReadingRow.device_id).where(
            ReadingRow.kind.in_(kinds), ReadingRow.ts >= since).distinct().order_by(ReadingRow.device_id)))

    def chunks() -> Iterator[list[Reading]]:
        for i in range(0, len(devices), devices_per_chunk):
            yield _device_readings(engine, devices[i:i + devices_per_chunk], since=since, head=head,
                                   tail=tail)

    return ReadingChunks(chunks=chunks(), rows_from=since)


def _device_readings(engine: Engine, devices: Sequence[str], *, since: datetime, head: int,
                     tail: int) -> list[Reading]:
    before = (ReadingRow.device_id.in_(devices)) & (ReadingRow.ts < since)
    ranked = select(
        ReadingRow.id,
        func.row_number().over(partition_by=ReadingRow.device_id,
                               order_by=(ReadingRow.ts, ReadingRow.seq)).label("oldest"),
        func.row_number().over(partition_by=ReadingRow.device_id,
                               order_by=(ReadingRow.ts.desc(), ReadingRow.seq.desc())).label("newest"),
    ).where(before).subquery()
    context = select(ranked.c.id).where(or_(ranked.c.oldest <= head, ranked.c.newest <= tail))
    stmt = (select(ReadingRow).where(ReadingRow.device_id.in_(devices),
                                     or_(ReadingRow.ts >= since, ReadingRow.id.in_(context)))
            .order_by(ReadingRow.device_id, ReadingRow.ts, ReadingRow.seq))
    with Session(engine) as s:
        return [Reading(r.device_id, r.kind, r.seq, r.ts, dict(r.metrics)) for r in s.scalars(stmt)]


def retrain_from_outcomes(engine: Engine, registry: ModelRegistry, *, now: datetime,
                          lookback: timedelta = timedelta(days=180),
                          retention: timedelta | None = None,
                          profiles: Mapping[str, ApplianceProfile] | None = None,
                          tolerance: Tolerance = Tolerance(), devices_per_chunk: int = 100,
                          **options: Any) -> list[RetrainResult]:
    """Retrain every live model's (kind, mode) from the stored readings and the outcome labels.

    Only pairs with a live champion are retrained (a kind is first trained by ``foresight train``);
    rows come from the last ``lookback``, never more than ``retention`` (the readings' retention
    window); ``options`` go to ``predictors.retrain.retrain``. The failures are the outcome labels:
    the service has no other record of what failed.
    """
    profiles = dict(profiles) if profiles is not None else {**PROFILES, **registry.profiles()}
    live = {(v.kind, v.mode) for v in registry.versions() if v.is_live and v.kind in profiles}
    if not live:
        return []
    since = now - (lookback if retention is None else min(lookback, retention))
    trained = {k: p for k, p in profiles.items() if k in {k for k, _ in live}}
    history = stored_history(engine, profiles=trained, since=since, devices_per_chunk=devices_per_chunk)
    return retrain(history, [], outcome_labels(engine, since=since), registry=registry, now=now,
                   profiles=trained, tolerance=tolerance, only=live, **options)


@dataclass(frozen=True, slots=True)
class DriftAlert:
    """A drift report and the ticket it opened (``ticket_id`` None: one was already open)."""

    report: DriftReport
    ticket_id: int | None


def watch_drift(engine: Engine, registry: ModelRegistry, *, now: datetime,
                threshold: float = DEFAULT_PSI_THRESHOLD, min_live: int = 20) -> list[DriftAlert]:
    """Check every live model for feature drift; open a ticket per drifting (kind, mode) not yet open."""
    alerts: list[DriftAlert] = []
    vectors: dict[str, list[Mapping[str, float]]] = {}
    for v in registry.versions():
        reference = v.summary.get("reference") if v.is_live else None
        if not reference:
            continue  # not live, or trained before references were stored
        if v.kind not in vectors:
            with Session(engine) as s:
                vectors[v.kind] = [dict(r) for r in s.scalars(
                    select(FeatureOnlineRow.values).where(FeatureOnlineRow.kind == v.kind))]
        report = feature_drift(version=v.version, kind=v.kind, mode=v.mode, reference=reference,
                               live_vectors=vectors[v.kind], threshold=threshold, min_live=min_live)
        if report.drifting:
            alerts.append(DriftAlert(report, _open_drift_ticket(engine, report, now=now)))
    return alerts


def _open_drift_ticket(engine: Engine, report: DriftReport, *, now: datetime) -> int | None:
    with Session(engine) as s, s.begin():
        already = s.scalar(select(TicketRow.id).where(
            TicketRow.category == DRIFT_CATEGORY, TicketRow.status == "open",
            TicketRow.kind == report.kind, TicketRow.mode == report.mode).limit(1))
        if already is not None:
            return None
        names = ", ".join(f"{f.feature} (PSI {f.psi:.2f})" for f in report.drifting)
        row = open_ticket(
            s, category=DRIFT_CATEGORY, priority="normal", now=now, kind=report.kind, mode=report.mode,
            subject=f"Feature drift: {report.version} sees live data unlike its training: {names}",
            context={"version": report.version, "threshold": report.threshold,
                     "live_devices": report.live_devices,
                     "drifting": [{"feature": f.feature, "psi": f.psi, "live_n": f.live_n}
                                  for f in report.drifting],
                     "max_psi": report.max_psi})
        return row.id
