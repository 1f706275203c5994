"""Scoring: batched and one-by-one give the same predictions, one per live failure mode."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from ingest.contract import PROFILES
from ingest.features import FeatureVector, compute_baseline, compute_features
from predictors import Scorer
from tests.predictors.conftest import SYNTH_PROFILES, new_registry


def _vectors(fleet, per_device=3):
    by_device = {}
    for r in fleet.readings:
        by_device.setdefault(r.device_id, []).append(r)
    out = []
    for readings in by_device.values():
        readings.sort(key=lambda r: r.ts)
        profile = PROFILES[readings[0].kind]
        for k in range(profile.window, len(readings), len(readings) // per_device):
            past = readings[:k + 1]
            out.append(FeatureVector(
                past[-1].device_id, past[-1].kind, past[-1].ts, len(past),
                compute_features(profile, past[-profile.window:], compute_baseline(profile, past))))
    random.Random(4).shuffle(out)
    return out


def test_score_many_equals_score_per_vector(trained):
    vectors = _vectors(trained.fleet)
    now = trained.fleet.end + timedelta(minutes=5)
    scorer = Scorer(trained.registry)
    batched = scorer.score_many(vectors, now=now)
    single = [p for v in vectors for p in scorer.score(v, now=now)]
    assert len(batched) == len(single) == sum(len(SYNTH_PROFILES[v.kind].failure_modes) for v in vectors)
    for b, s in zip(batched, single, strict=True):
        assert (b.device_id, b.mode, b.ts, b.model_version) == (s.device_id, s.mode, s.ts,
                                                                 s.model_version)
        assert b.p_fail == pytest.approx(s.p_fail, abs=1e-12)
        assert (b.ttf_low_h, b.ttf_h, b.ttf_high_h) == pytest.approx(
            (s.ttf_low_h, s.ttf_h, s.ttf_high_h), abs=1e-9)
        assert [f.name for f in b.top_features] == [f.name for f in s.top_features]
        assert (b.ood, b.ood_detail, b.sensor_faults) == (s.ood, s.ood_detail, s.sensor_faults)


def test_prediction_fields(trained):
    vector = _vectors(trained.fleet)[0]
    preds = Scorer(trained.registry).score(vector, now=vector.ts)
    modes = [m.name for m in PROFILES[vector.kind].failure_modes]
    assert [p.mode for p in preds] == modes
    for p in preds:
        assert 0.0 <= p.p_fail <= 1.0 and p.horizon_h == 48.0 and p.ts == vector.ts
        assert p.model_version == f"{vector.kind}.{p.mode}.v1"


def test_nothing_to_score_without_a_live_model_or_profile(tmp_path, trained):
    _, empty = new_registry(tmp_path)
    vector = _vectors(trained.fleet)[0]
    assert Scorer(empty).score(vector, now=vector.ts) == []
    toaster = FeatureVector("t1", "toaster", vector.ts, 10, {"crumbs__last": 3.0})
    assert Scorer(trained.registry).score_many([toaster], now=vector.ts) == []
    assert Scorer(trained.registry).score_many([], now=vector.ts) == []


def test_live_versions_are_cached_for_live_cache_s_and_a_missing_model_is_not(trained, tmp_path):
    _, registry = new_registry(tmp_path)
    live = trained.registry.live("air_conditioner", "filter_clogging")
    vector = next(v for v in _vectors(trained.fleet) if v.kind == "air_conditioner")
    cached, fresh = Scorer(registry, live_cache_s=3600.0), Scorer(registry, live_cache_s=0.0)
    assert cached.score(vector, now=vector.ts) == []  # no model yet: nothing cached
    registry.register("air_conditioner", "filter_clogging", live.model, dict(live.summary), now=vector.ts)
    [first] = cached.score(vector, now=vector.ts)
    assert first.model_version == "air_conditioner.filter_clogging.v1"
    registry.register("air_conditioner", "filter_clogging", live.model, dict(live.summary), now=vector.ts)
    assert cached.score(vector, now=vector.ts)[0].model_version.endswith(".v1")  # within the TTL
    assert fresh.score(vector, now=vector.ts)[0].model_version.endswith(".v2")
