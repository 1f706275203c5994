"""The latest-prediction store on every backend: round trip, and older never overwrites newer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from predictors.store import PredictionStore
from predictors.types import FeatureContribution, Prediction

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _prediction(*, ts: datetime, p_fail: float, mode: str = "scale_buildup") -> Prediction:
    return Prediction(device_id="rc-1", kind="rice_cooker", mode=mode, ts=ts, p_fail=p_fail,
                      horizon_h=48.0, ttf_h=120.0, ttf_low_h=80.0, ttf_high_h=200.0,
                      model_version="rice_cooker.scale_buildup.v1",
                      top_features=(FeatureContribution("time_to_boil_s__slope_per_day", 42.5, 0.61),),
                      ood=True, ood_detail="time_to_boil_s far outside training range",
                      sensor_faults=("peak_temp_c",))


def test_round_trip_keeps_every_field_and_only_the_newest(any_engine: Engine) -> None:
    store = PredictionStore(any_engine)
    first = _prediction(ts=T0, p_fail=0.2)
    store.save([first, _prediction(ts=T0, p_fail=0.1, mode="heater_degradation")])
    assert store.latest(["rc-1"])[1] == first  # ordered by mode: heater_degradation, scale_buildup

    newer = _prediction(ts=T0 + timedelta(hours=1), p_fail=0.7)
    store.save([newer])
    store.save([_prediction(ts=T0 - timedelta(hours=1), p_fail=0.01)])  # late: changes nothing
    [_, latest] = store.latest()
    assert latest == newer
    assert latest.ts.tzinfo is not None and latest.ts.utcoffset() == timedelta(0)
    assert store.latest(["nobody"]) == []
