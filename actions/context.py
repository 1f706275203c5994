"""The context a ticket carries, so the person who picks it up starts with the facts.

JSON-ready dicts only (timestamps as ISO 8601 strings): the context is stored in the ticket row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ingest.db import DeviceRow, FeatureOnlineRow, ReadingRow
from predictors.types import Prediction

from .db import BookingRow, LabelRow, TicketRow
from .similar import nearest

__all__ = ["device_info", "feature_snapshot", "prediction_info", "readings_summary", "similar_cases"]

#: How many labels of a kind and mode the nearest-neighbour search looks through (newest first).
_CANDIDATES = 2000


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def device_info(device: DeviceRow | None, device_id: str | None) -> dict[str, Any]:
    """Registry facts about the device (``known: False`` when it is not registered)."""
    if device is None:
        return {"device_id": device_id, "known": False}
    return {
        "device_id": device.device_id, "known": True, "kind": device.kind, "model": device.model,
        "firmware": device.firmware, "household_id": device.household_id,
        "service_area": device.service_area, "status": device.status,
        "last_seen": _iso(device.last_seen),
    }


def readings_summary(session: Session, device_id: str, *, last_n: int) -> dict[str, Any]:
    """Count and time span of the device's readings, min/mean/max/last per metric of the last ``last_n``,
    and those readings themselves as ``trend`` (``[{"ts": ..., metric: value, ...}]``, oldest first)
    for a chart."""
    total = session.scalar(select(func.count()).select_from(ReadingRow)
                           .where(ReadingRow.device_id == device_id)) or 0
    rows = list(session.scalars(select(ReadingRow).where(ReadingRow.device_id == device_id)
                                .order_by(ReadingRow.ts.desc()).limit(last_n)))
    rows.reverse()
    metrics: dict[str, dict[str, float]] = {}
    for name in sorted({m for r in rows for m in r.metrics}):
        values = [float(r.metrics[name]) for r in rows if name in r.metrics]
        metrics[name] = {"min": min(values), "mean": sum(values) / len(values),
                         "max": max(values), "last": values[-1]}
    return {
        "total": total, "count": len(rows),
        "first_ts": _iso(rows[0].ts) if rows else None,
        "last_ts": _iso(rows[-1].ts) if rows else None,
        "metrics": metrics,
        "trend": [{"ts": _iso(r.ts), **{k: v for k, v in r.metrics.items() if isinstance(v, (int, float))}}
                  for r in rows],
    }


def feature_snapshot(session: Session, device_id: str) -> dict[str, float] | None:
    """The device's current feature vector (numeric values only), or None before it has one."""
    row = session.get(FeatureOnlineRow, device_id)
    if row is None:
        return None
    return {k: float(v) for k, v in row.values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def prediction_info(prediction: Prediction) -> dict[str, Any]:
    """The prediction as the model gave it, top features included."""
    return {
        "ts": _iso(prediction.ts), "kind": prediction.kind, "mode": prediction.mode,
        "p_fail": prediction.p_fail, "horizon_h": prediction.horizon_h,
        "ttf_h": prediction.ttf_h, "ttf_low_h": prediction.ttf_low_h,
        "ttf_high_h": prediction.ttf_high_h, "model_version": prediction.model_version,
        "top_features": [{"name": f.name, "value": f.value, "weight": f.weight}
                         for f in prediction.top_features],
        "ood": prediction.ood, "ood_detail": prediction.ood_detail,
        "sensor_faults": list(prediction.sensor_faults),
    }


def similar_cases(session: Session, *, kind: str, mode: str | None,
                  features: dict[str, float] | None, limit: int = 5) -> list[dict[str, Any]]:
    """The most similar resolved cases (labels) of the same kind (and mode), with what was found.

    Nearest neighbours over the feature vectors when ``features`` is known; otherwise the most
    recent labels. Each carries its outcome, parts, note, distance and the ticket resolution or
    booking diagnosis behind it.
    """
    query = select(LabelRow).where(LabelRow.kind == kind)
    if mode is not None:
        query = query.where(LabelRow.mode == mode)
    labels = list(session.scalars(query.order_by(LabelRow.ts.desc(), LabelRow.id.desc()).limit(_CANDIDATES)))
    by_id = {label.id: label for label in labels}
    ranked: list[tuple[int, float | None]]
    with_features = [(label.id, label.features) for label in labels if label.features]
    if features and with_features:
        ranked = [(i, d) for i, d in nearest(features, with_features, k=limit)]
    else:
        ranked = [(label.id, None) for label in labels[:limit]]
    out = []
    for label_id, distance in ranked:
        label = by_id[label_id]
        resolution = (session.scalar(select(TicketRow.resolution).where(TicketRow.id == label.ticket_id))
                      if label.ticket_id else None)
        diagnosis = (session.scalar(select(BookingRow.diagnosis).where(BookingRow.id == label.booking_id))
                     if label.booking_id else None)
        out.append({
            "label_id": label.id, "device_id": label.device_id, "mode": label.mode,
            "source": label.source, "outcome": label.outcome, "parts": list(label.parts),
            "note": label.note, "ts": _iso(label.ts), "case_id": label.case_id,
            "distance": None if distance is None else round(distance, 4),
            "resolution": resolution, "diagnosis": diagnosis,
        })
    return out
