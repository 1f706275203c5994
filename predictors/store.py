"""The latest prediction per (device, failure mode), for the API and the operator's context."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Engine, Float, String, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from ingest.db import Base

from .types import FeatureContribution, Prediction

__all__ = ["LatestPredictionRow", "PredictionStore"]


class LatestPredictionRow(Base):
    """The most recent prediction of each (device, failure mode)."""

    __tablename__ = "predictions_latest"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    mode: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime]
    p_fail: Mapped[float] = mapped_column(Float)
    horizon_h: Mapped[float] = mapped_column(Float)
    ttf_h: Mapped[float] = mapped_column(Float)
    ttf_low_h: Mapped[float] = mapped_column(Float)
    ttf_high_h: Mapped[float] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(128))
    top_features: Mapped[dict[str, Any]]
    ood: Mapped[bool] = mapped_column(Boolean, default=False)
    ood_detail: Mapped[str] = mapped_column(String(500), default="")
    sensor_faults: Mapped[dict[str, Any]]


class PredictionStore:
    """Keeps the latest prediction per (device, mode); older predictions never overwrite newer."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def save(self, predictions: Sequence[Prediction]) -> None:
        if not predictions:
            return
        with Session(self._engine) as session, session.begin():
            dialect = session.get_bind().dialect.name
            insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(LatestPredictionRow)
            rows = [_row(p) for p in predictions]
            stmt = insert.on_conflict_do_update(
                index_elements=["device_id", "mode"],
                set_={c: insert.excluded[c] for c in rows[0] if c not in ("device_id", "mode")},
                where=LatestPredictionRow.ts <= insert.excluded.ts)
            session.execute(stmt, rows)

    def latest(self, device_ids: Iterable[str] | None = None) -> list[Prediction]:
        stmt = select(LatestPredictionRow).order_by(LatestPredictionRow.device_id, LatestPredictionRow.mode)
        if device_ids is not None:
            stmt = stmt.where(LatestPredictionRow.device_id.in_(list(device_ids)))
        with Session(self._engine) as session:
            return [_prediction(r) for r in session.scalars(stmt)]


def _row(p: Prediction) -> dict[str, Any]:
    return {"device_id": p.device_id, "mode": p.mode, "kind": p.kind, "ts": p.ts, "p_fail": p.p_fail,
            "horizon_h": p.horizon_h, "ttf_h": p.ttf_h, "ttf_low_h": p.ttf_low_h, "ttf_high_h": p.ttf_high_h,
            "model_version": p.model_version,
            "top_features": {"items": [[f.name, f.value, f.weight] for f in p.top_features]},
            "ood": p.ood, "ood_detail": p.ood_detail[:500], "sensor_faults": {"items": list(p.sensor_faults)}}


def _prediction(r: LatestPredictionRow) -> Prediction:
    return Prediction(device_id=r.device_id, kind=r.kind, mode=r.mode, ts=r.ts, p_fail=r.p_fail,
                      horizon_h=r.horizon_h, ttf_h=r.ttf_h, ttf_low_h=r.ttf_low_h, ttf_high_h=r.ttf_high_h,
                      model_version=r.model_version,
                      top_features=tuple(FeatureContribution(n, v, w) for n, v, w in r.top_features["items"]),
                      ood=r.ood, ood_detail=r.ood_detail, sensor_faults=tuple(r.sensor_faults["items"]))
