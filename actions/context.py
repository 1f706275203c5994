"""The context a ticket carries, so the person who picks it up starts with the facts.

JSON-ready dicts only (timestamps as ISO 8601 strings): the context is stored in the ticket row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ingest.db import DeviceRow, ReadingRow
from predictors.types import Prediction

from .db import BookingRow, CaseRow, TicketRow

__all__ = ["device_info", "prediction_info", "readings_summary", "similar_cases"]


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
    """Count and time span of the device's readings, and min/mean/max/last per metric of the last ``last_n``."""
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
    }


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


def similar_cases(session: Session, *, kind: str, mode: str, limit: int = 5) -> list[dict[str, Any]]:
    """The most recently closed cases of the same kind and failure mode, with what was found."""
    cases = session.scalars(
        select(CaseRow).where(CaseRow.kind == kind, CaseRow.mode == mode, CaseRow.status == "closed")
        .order_by(CaseRow.closed_at.desc(), CaseRow.id.desc()).limit(limit))
    out = []
    for case in cases:
        resolutions = [t for t in session.scalars(
            select(TicketRow.resolution).where(TicketRow.case_id == case.id,
                                               TicketRow.resolution.is_not(None)))]
        diagnoses = [d for d in session.scalars(
            select(BookingRow.diagnosis).where(BookingRow.case_id == case.id,
                                               BookingRow.diagnosis.is_not(None)))]
        out.append({
            "case_id": case.id, "device_id": case.device_id, "action": case.action,
            "reason": case.reason, "opened_at": _iso(case.opened_at),
            "closed_at": _iso(case.closed_at), "close_reason": case.close_reason,
            "resolutions": resolutions, "diagnoses": diagnoses,
        })
    return out
