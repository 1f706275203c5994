"""Model registry: versions count up, the latest registration is live, files survive a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from predictors import FailureModeModel, NoLiveModel, PredictorsError
from tests.predictors.conftest import new_registry

NOW = datetime(2024, 5, 1, tzinfo=UTC)
FEATURES = ("a__last", "a__mean", "b__last")


def _model(seed: int) -> FailureModeModel:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] + rng.normal(0, 0.5, 300) > 1).astype(int)
    return FailureModeModel(max_iter=5, importance_repeats=1, random_state=seed).fit(X, y)


def _summary(**extra):
    return {"features": FEATURES, "horizon_h": 48.0, "rows": 300, "brier": float("nan"), **extra}


def test_latest_registration_is_live_and_reloads_in_a_fresh_registry(tmp_path):
    engine, registry = new_registry(tmp_path)
    v1 = registry.register("air_conditioner", "filter_clogging", _model(1), _summary(), now=NOW)
    v2 = registry.register("air_conditioner", "filter_clogging", _model(2), _summary(),
                           now=NOW + timedelta(hours=1))
    assert (v1, v2) == ("air_conditioner.filter_clogging.v1", "air_conditioner.filter_clogging.v2")

    listed = registry.versions()
    assert [v.version for v in listed] == [v1, v2]
    assert [v.is_live for v in listed] == [False, True]
    assert all(v.path.is_file() for v in listed)
    assert listed[0].summary["brier"] is None               # NaN is not JSON
    assert not [p for p in (tmp_path / "models").iterdir() if p.suffix == ".tmp"]

    engine.dispose()
    _, fresh = new_registry(tmp_path)
    live = fresh.live("air_conditioner", "filter_clogging")
    assert live is not None and live.version == v2
    assert live.features == FEATURES and live.horizon_h == 48.0
    X = np.zeros((1, 3))
    np.testing.assert_allclose(live.model.p_fail(X), _model(2).p_fail(X))


def test_live_is_cached_and_follows_promotion(tmp_path):
    _, registry = new_registry(tmp_path)
    v1 = registry.register("rice_cooker", "scale_buildup", _model(1), _summary(), now=NOW)
    first = registry.live("rice_cooker", "scale_buildup")
    assert registry.live("rice_cooker", "scale_buildup") is first          # cached
    v2 = registry.register("rice_cooker", "scale_buildup", _model(2), _summary(), now=NOW)
    assert registry.live("rice_cooker", "scale_buildup").version == v2     # reloaded
    registry.promote(v1)                                                   # roll back
    assert registry.live("rice_cooker", "scale_buildup").version == v1
    assert [v.version for v in registry.versions("rice_cooker") if v.is_live] == [v1]
    assert registry.versions("air_conditioner") == []


def test_not_live_registration_and_missing_models(tmp_path):
    _, registry = new_registry(tmp_path)
    v1 = registry.register("rice_cooker", "scale_buildup", _model(1), _summary(), now=NOW,
                           make_live=False, note="worse than base rate")
    assert registry.live("rice_cooker", "scale_buildup") is None
    with pytest.raises(NoLiveModel, match="rice_cooker.scale_buildup"):
        registry.require_live("rice_cooker", "scale_buildup")
    assert registry.versions()[0].note == "worse than base rate"
    with pytest.raises(PredictorsError):
        registry.promote("rice_cooker.scale_buildup.v9")
    with pytest.raises(PredictorsError, match="features"):
        registry.register("rice_cooker", "scale_buildup", _model(1),
                          {"features": FEATURES[:2], "horizon_h": 48.0}, now=NOW)
    assert [v.version for v in registry.versions()] == [v1]
