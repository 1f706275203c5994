"""Trained models on the synthetic fleet: calibrated, skilful, with sensible times and flags."""

from __future__ import annotations

from datetime import UTC, timedelta

import numpy as np
import pytest

from ingest.contract import PROFILES
from ingest.features import FeatureVector, compute_baseline, compute_features
from predictors import Scorer, build_frames
from tests.predictors.synth import make_fleet, stuck_readings

AC = ("air_conditioner", "filter_clogging")


@pytest.fixture(scope="module")
def unseen():
    """Frames of devices the models never saw (another seed)."""
    fleet = make_fleet(n_ac=6, n_rc=15, days=45, seed=11)
    return build_frames(fleet.readings, fleet.failures)


def test_every_mode_trained_and_beats_the_base_rate(trained):
    for report in trained.reports:
        assert report.trained and report.live, report
        s = report.summary
        assert s["brier"] < s["brier_base_rate"]
        assert s["auc"] > 0.9
        assert s["positive_devices"] >= 3 and s["holdout_positives"] > 0


@pytest.mark.parametrize("key", [AC, ("rice_cooker", "scale_buildup"),
                                 ("rice_cooker", "heating_element_wear")])
def test_probability_is_higher_near_failure_than_far(trained, unseen, key):
    frame = unseen[key]
    model = trained.registry.live(*key).model
    p = model.p_fail(frame.X)
    near = frame.ttf_h <= 24
    far = (frame.ttf_h >= 240) | (np.isnan(frame.ttf_h) & (frame.y == 0))
    assert near.sum() > 5 and far.sum() > 50
    assert p[near].mean() > 0.5 > 0.05 > p[far].mean()
    base = frame.y.mean()
    assert np.mean((p - frame.y) ** 2) < np.mean((base - frame.y) ** 2) / 2


def test_time_to_failure_on_linear_degradation(trained, unseen):
    frame = unseen[AC]
    ttf = trained.registry.live(*AC).model.predict_ttf(frame.X)
    assert np.all(ttf[:, 0] <= ttf[:, 1]) and np.all(ttf[:, 1] <= ttf[:, 2])
    assert np.all((ttf >= 0) & (ttf <= 720))
    soon = frame.ttf_h <= 96
    error = np.abs(ttf[soon, 1] - frame.ttf_h[soon])
    assert np.median(error) < 12.0          # hours, with 4 days to go
    inside = (ttf[soon, 0] <= frame.ttf_h[soon]) & (frame.ttf_h[soon] <= ttf[soon, 2])
    assert inside.mean() > 0.5              # a 10-90 % interval, loosely


def _vector(readings):
    profile = PROFILES[readings[0].kind]
    window = readings[-profile.window:]
    return FeatureVector(readings[-1].device_id, readings[-1].kind, readings[-1].ts, len(readings),
                         compute_features(profile, window, compute_baseline(profile, readings)))


def test_a_wild_value_is_out_of_distribution_and_named(trained):
    normal = stuck_readings("ac-x", n=30, stuck_metric="none", metric_values={
        "filter_dp_pa": 90.0, "fan_current_a": 1.6, "run_hours": 100.0})
    scorer = Scorer(trained.registry)
    [calm] = scorer.score(_vector(normal), now=normal[-1].ts)
    assert not calm.ood and calm.ood_detail == ""
    wild = _vector(normal)
    values = dict(wild.values, filter_dp_pa__last=950.0)
    [pred] = scorer.score(FeatureVector(wild.device_id, wild.kind, wild.ts, wild.n_readings,
                                        values), now=wild.ts)
    assert pred.ood
    assert "filter_dp_pa__last=950 above training range" in pred.ood_detail


def test_a_stuck_sensor_is_reported(trained):
    readings = stuck_readings("ac-y", n=30, stuck_metric="filter_dp_pa", metric_values={
        "filter_dp_pa": 120.0, "fan_current_a": 1.6, "run_hours": 100.0})
    [pred] = Scorer(trained.registry).score(_vector(readings), now=readings[-1].ts)
    assert pred.sensor_faults == ("filter_dp_pa",)
    # Five readings: still warming up (the window not half full), so no prediction at all.
    assert Scorer(trained.registry).score(_vector(readings[:5]), now=readings[4].ts) == []


def test_reasons_point_at_the_degrading_metric(trained, unseen):
    frame = unseen[AC]
    row = int(np.flatnonzero(frame.ttf_h <= 6)[0])
    vector = FeatureVector(str(frame.device_ids[row]), AC[0], frame.ts[row].item().replace(tzinfo=UTC), 24,
                           dict(zip(frame.features, frame.X[row], strict=True)))
    [pred] = Scorer(trained.registry).score(vector, now=vector.ts + timedelta(minutes=1))
    assert len(pred.top_features) == 3
    top = pred.top_features[0]
    assert top.name.split("__")[0] in {"filter_dp_pa", "fan_current_a"} and top.weight > 0
    assert top.value == pytest.approx(vector.values[top.name])


def _units(n, seed):
    """Devices whose remaining time has a per-unit offset no feature shows, and a per-unit level
    boosting can memorise each training device by: over-confident on new ones."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X, ttf, y, g = [], [], [], []
    for d in range(n):
        offset = rng.normal(0, 0.5)  # unit-to-unit variation no feature shows
        x = rng.uniform(0, 1, (60, 3))
        x[:, 1] = rng.uniform(0, 1) + rng.normal(0, 0.001, 60)  # the unit's own level
        t = np.exp(1 + 4 * x[:, 0] + offset + rng.normal(0, 0.1, 60))
        X.append(x), ttf.append(t), y.append((t < 15).astype(int)), g.append(np.full(60, d))
    return np.vstack(X), np.concatenate(ttf), np.concatenate(y), np.concatenate(g)


def test_conformal_intervals_cover_new_devices_as_promised():
    import numpy as np

    from predictors import FailureModeModel

    X, ttf, y, g = _units(60, 0)
    Xn, tn, _, _ = _units(40, 1)
    cover = {}
    for conformal in (False, True):
        m = FailureModeModel(max_iter=40, ttf_cap_h=1e6, conformal_intervals=conformal,
                             random_state=0).fit(X, y, ttf, groups=g)
        q = m.predict_ttf(Xn)
        cover[conformal] = float(np.mean((q[:, 0] <= tn) & (tn <= q[:, 2])))
    assert cover[False] < 0.75 and cover[True] >= 0.8, cover  # nominal: 0.8


def test_conformal_coverage_does_not_hang_on_one_calibration_split():
    """With few devices, one held-out quarter (6 of 24) gave 53-96 % coverage depending on the
    seed; scores of every device, out of fold, keep each fleet near the nominal 80 %."""
    import numpy as np

    from predictors import FailureModeModel

    Xn, tn, _, _ = _units(200, 99)
    cover = []
    for seed in range(6):
        X, ttf, y, g = _units(24, seed)
        m = FailureModeModel(max_iter=40, ttf_cap_h=1e6, random_state=seed).fit(X, y, ttf, groups=g)
        q = m.predict_ttf(Xn)
        cover.append(float(np.mean((q[:, 0] <= tn) & (tn <= q[:, 2]))))
    assert (m.interval_correction_ > 0).any()
    assert np.mean(np.abs(np.array(cover) - 0.8)) < 0.1, cover