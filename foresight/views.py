"""Read models shared by the API and the web pages: device health, device detail, fleet overview.

Each is computed from the runtime's stores in a bounded number of queries and returned as frozen
dataclasses, so the JSON API and the HTML pages show the same numbers.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from actions import Booking, Case
from actions.db import BookingRow, FeedRow, NotificationRow, TicketRow
from ingest.store import DeviceInfo
from predictors.types import Prediction

from .runtime import Runtime

__all__ = ["HEALTH_LABELS", "DeviceDetail", "DeviceHealth", "FleetOverview", "device_detail",
           "device_health", "feed_cursor", "fleet_overview", "household_visits"]

#: From best to worst; ``unknown`` means no prediction yet.
HEALTH_LABELS = ("ok", "watch", "at_risk", "needs_attention", "unknown")


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    """A device at a glance: presence and the worst of its failure-mode outlooks."""

    device_id: str
    kind: str
    model: str
    household_id: str | None
    service_area: str | None
    status: str
    #: online / offline / stale (silent past its kind's interval; not a failure prediction) / unknown
    presence: str
    last_seen: datetime | None
    health: str  # ok / watch / at_risk / needs_attention / unknown
    worst_mode: str | None
    p_fail: float | None
    ttf_low_h: float | None
    open_cases: int


@dataclass(frozen=True, slots=True)
class DeviceDetail:
    health: DeviceHealth
    features: dict[str, float]
    features_ts: datetime | None
    predictions: list[Prediction]
    cases: list[Case]
    recent_readings: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class FleetOverview:
    """The operator's fleet page: health by kind, alerts per day, and each live model's quality."""

    #: kind → health label → number of devices
    health_by_kind: dict[str, dict[str, int]]
    #: one row per day (oldest first): {"day", "notifications", "bookings", "tickets"}
    alerts_by_day: list[dict[str, Any]]
    #: live model versions with their held-out figures
    models: list[dict[str, Any]]
    open_tickets: int
    devices: int


def device_health(rt: Runtime, devices: list[DeviceInfo]) -> list[DeviceHealth]:
    """Health rows for ``devices`` (one prediction query and one case-count query in all)."""
    ids = [d.device_id for d in devices]
    preds: dict[str, list[Prediction]] = {}
    for p in rt.predictions.latest(ids):
        preds.setdefault(p.device_id, []).append(p)
    open_counts = rt.actions.open_case_counts(ids)
    out = []
    for d in devices:
        open_cases = open_counts.get(d.device_id, 0)
        mine = preds.get(d.device_id, [])
        worst = max(mine, key=lambda p: p.p_fail, default=None)
        out.append(DeviceHealth(
            device_id=d.device_id, kind=d.kind, model=d.model, household_id=d.household_id,
            service_area=d.service_area, status=d.status, presence=d.presence, last_seen=d.last_seen,
            health=_health_label(mine, open_cases, rt), worst_mode=worst.mode if worst else None,
            p_fail=worst.p_fail if worst else None,
            ttf_low_h=min((p.ttf_low_h for p in mine), default=None), open_cases=open_cases))
    return out


def device_detail(rt: Runtime, device: DeviceInfo, *, readings: int = 24) -> DeviceDetail:
    """One device: health, latest features, predictions per failure mode, cases, recent readings."""
    vectors = rt.store.latest_features([device.device_id])
    return DeviceDetail(
        health=device_health(rt, [device])[0], features=dict(vectors[0].values) if vectors else {},
        features_ts=vectors[0].ts if vectors else None,
        predictions=rt.predictions.latest([device.device_id]), cases=rt.actions.device_cases(device.device_id),
        recent_readings=[{"seq": r.seq, "ts": r.ts, "metrics": dict(r.metrics)}
                         for r in rt.store.recent_readings(device.device_id, limit=readings)])


def fleet_overview(rt: Runtime, *, days: int = 14) -> FleetOverview:
    """Health by kind over every device, alerts per day over the last ``days`` (event time), models."""
    now = rt.clock.now()
    devices = rt.store.devices(now=now)
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for h in device_health(rt, devices):
        by_kind[h.kind][h.health] += 1
    since = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    per_day: dict[str, dict[str, int]] = {
        (since + timedelta(days=i)).date().isoformat(): {"notifications": 0, "bookings": 0, "tickets": 0}
        for i in range(days)}
    with Session(rt.engine) as s:
        for name, ts in (("notifications", NotificationRow.created_at), ("bookings", BookingRow.created_at),
                         ("tickets", TicketRow.created_at)):
            for (at,) in s.execute(select(ts).where(ts >= since)):
                day = at.date().isoformat()
                if day in per_day:
                    per_day[day][name] += 1
        open_tickets = s.scalar(select(func.count()).select_from(TicketRow).where(TicketRow.status == "open")) or 0
    models = [{"version": v.version, "kind": v.kind, "mode": v.mode, "created_at": v.created_at,
               **{k: v.summary.get(k) for k in ("auc", "brier", "brier_base_rate", "ttf_mae_h")}}
              for v in rt.registry.versions() if v.is_live]
    return FleetOverview(
        health_by_kind={k: {label: c.get(label, 0) for label in HEALTH_LABELS} for k, c in sorted(by_kind.items())},
        alerts_by_day=[{"day": d, **counts} for d, counts in per_day.items()],
        models=models, open_tickets=open_tickets, devices=len(devices))


def _health_label(preds: list[Prediction], open_cases: int, rt: Runtime) -> str:
    if not preds:
        return "unknown"
    if any(p.sensor_faults or p.ood for p in preds):
        return "needs_attention"
    config = rt.actions.policy_config
    worst = max(p.p_fail for p in preds)
    if open_cases or worst >= config.p_act:
        return "at_risk"
    if worst >= config.uncertain_low:
        return "watch"
    return "ok"


def household_visits(rt: Runtime, household_id: str) -> list[Booking]:
    """The household's coming (scheduled, due or overdue) technician visits, soonest first."""
    with Session(rt.engine) as s:
        ids = list(s.scalars(select(BookingRow.id).where(
            BookingRow.household_id == household_id, BookingRow.status.in_(("scheduled", "due", "overdue")))
            .order_by(BookingRow.start_at, BookingRow.id)))
    return [rt.actions.booking(i) for i in ids]


def feed_cursor(rt: Runtime, household_id: str) -> int:
    """The household's newest feed position (0 when empty): where a page's live stream starts."""
    with Session(rt.engine) as s:
        return s.scalar(select(func.max(FeedRow.id)).where(FeedRow.household_id == household_id)) or 0
