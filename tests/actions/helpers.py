"""Builders for the actions tests: predictions, devices, readings, technicians."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from actions import Technician
from ingest.db import DeviceEventRow, DeviceRow, FeatureOnlineRow, ReadingRow
from predictors.types import FeatureContribution, Prediction

HVAC_NORTH = Technician(technician_id="t-anna", name="Anna", skills=frozenset({"hvac"}),
                        service_areas=frozenset({"north"}))
HVAC_SOUTH = Technician(technician_id="t-bo", name="Bo", skills=frozenset({"hvac"}),
                        service_areas=frozenset({"south"}))
RICE_NORTH = Technician(technician_id="t-cy", name="Cy", skills=frozenset({"rice_cooker"}),
                        service_areas=frozenset({"north"}))


def prediction(*, device_id: str = "rc-1", kind: str = "rice_cooker", mode: str = "scale_buildup",
               ts: datetime, p_fail: float = 0.05, ttf_h: float = 500.0, ttf_low_h: float = 300.0,
               ttf_high_h: float = 800.0, **extra: Any) -> Prediction:
    """A prediction; healthy unless told otherwise."""
    fields: dict[str, Any] = dict(
        device_id=device_id, kind=kind, mode=mode, ts=ts, p_fail=p_fail, horizon_h=48.0,
        ttf_h=ttf_h, ttf_low_h=ttf_low_h, ttf_high_h=ttf_high_h, model_version="test-1",
        top_features=(FeatureContribution("time_to_boil_s__slope_per_day", 42.0, 0.61),
                      FeatureContribution("peak_temp_c__delta", 7.5, 0.22)))
    fields.update(extra)
    return Prediction(**fields)


def near(**kw: Any) -> Prediction:
    """A near-failure prediction (earliest likely failure in 60 h)."""
    return prediction(**{"p_fail": 0.8, "ttf_h": 80.0, "ttf_low_h": 60.0, "ttf_high_h": 110.0, **kw})


def add_device(engine: Engine, device_id: str, kind: str, *, household_id: str | None = "h-1",
               service_area: str | None = "north", model: str = "X-1") -> None:
    with sessionmaker(engine).begin() as s:
        s.add(DeviceRow(device_id=device_id, kind=kind, model=model, firmware="1.0",
                        household_id=household_id, service_area=service_area, status="online"))


def add_readings(engine: Engine, device_id: str, kind: str, *, start: datetime, n: int,
                 step: timedelta, metrics: Any) -> None:
    """``n`` readings; ``metrics(i)`` gives the i-th reading's metrics."""
    with sessionmaker(engine).begin() as s:
        for i in range(n):
            ts = start + i * step
            s.add(ReadingRow(device_id=device_id, seq=i, ts=ts, kind=kind, metrics=metrics(i),
                             received_at=ts))


def add_event(engine: Engine, device_id: str, code: str | None, *, ts: datetime, seq: int,
              event: str = "error") -> None:
    """A device event as ingest stores it."""
    with sessionmaker(engine).begin() as s:
        s.add(DeviceEventRow(device_id=device_id, seq=seq, ts=ts, event=event, code=code, received_at=ts))


def set_features(engine: Engine, device_id: str, kind: str, values: dict[str, float], *, ts: datetime) -> None:
    """The device's online feature vector."""
    with sessionmaker(engine).begin() as s:
        row = s.get(FeatureOnlineRow, device_id) or FeatureOnlineRow(device_id=device_id)
        row.kind, row.ts, row.n_readings, row.values, row.baseline, row.updated_at = kind, ts, 20, values, {}, ts
        row.recent = {"items": []}
        s.add(row)
