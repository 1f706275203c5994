"""Stored feature vectors (ingest.vectors): the compact form reads back as exactly the spelled-out dict."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from ingest.contract import PROFILES, STATS, get_profile
from ingest.db import FeatureHistoryRow, create_schema, make_engine
from ingest.features import feature_matrix, features_of_windows
from ingest.vectors import encode_rows, expand

AC = get_profile("air_conditioner")
#: (kind, days, values, baseline) as ``feature_matrix`` takes them
Case = tuple[str, np.ndarray, np.ndarray, np.ndarray]


@st.composite
def windows(draw: st.DrawFn) -> Case:
    """A batch of windows of one kind, with metrics missing here and there (NaN) and whole metrics absent."""
    kind = draw(st.sampled_from(sorted(PROFILES)))
    profile = PROFILES[kind]
    r, w, m = draw(st.integers(1, 6)), draw(st.integers(1, 8)), len(profile.metrics)
    finite = st.floats(-1e6, 1e6, allow_nan=False)
    values = np.array(draw(st.lists(st.one_of(finite, st.just(float("nan"))), min_size=r * w * m,
                                    max_size=r * w * m))).reshape(r, w, m)
    days = np.sort(np.array(draw(st.lists(st.floats(0, 30), min_size=r * w, max_size=r * w))).reshape(r, w), axis=1)
    baseline = np.array(draw(st.lists(st.one_of(finite, st.just(float("nan"))), min_size=r * m,
                                      max_size=r * m))).reshape(r, m)
    return kind, days, values, baseline


@settings(max_examples=150, deadline=None)
@given(windows())
def test_compact_rows_expand_to_the_dicts_of_features_of_windows(case: Case) -> None:
    kind, days, values, baseline = case
    profile = PROFILES[kind]
    matrix, has = feature_matrix(profile, days=days, values=values, baseline=baseline)
    stored = encode_rows(profile, matrix, has)
    expected = features_of_windows(profile, days=days, values=values, baseline=baseline)
    # Through JSON as the database keeps it; a non-finite value (JSON has none) reads back as missing.
    assert [expand(json.loads(text)) for text in stored] == [
        {k: v for k, v in e.items() if np.isfinite(v)} for e in expected]


def test_a_complete_vector_is_a_third_of_the_spelled_out_size() -> None:
    days = np.arange(24, dtype=float)[None, :] / 24
    values = np.tile(np.linspace(1, 2, 24)[:, None], (1, len(AC.metrics)))[None, :, :] * 100
    matrix, has = feature_matrix(AC, days=days, values=values, baseline=np.full((1, len(AC.metrics)), 120.0))
    compact = encode_rows(AC, matrix, has)[0]
    spelled = orjson.dumps(features_of_windows(AC, days=days, values=values,
                                               baseline=np.full((1, len(AC.metrics)), 120.0))[0])
    assert json.loads(compact)["m"] == [spec.name for spec in AC.metrics]
    assert len(compact) < len(spelled) / 2


def test_the_stored_form_names_its_stats_so_a_later_stats_order_reads_it_right() -> None:
    stored = {"s": ["mean", "last"], "m": ["filter_dp_pa"], "v": [61.5, 63.0]}
    assert expand(stored) == {"filter_dp_pa__mean": 61.5, "filter_dp_pa__last": 63.0}


def test_spelled_out_rows_written_before_the_compact_form_still_read() -> None:
    assert expand({"filter_dp_pa__last": 60.0, "filter_dp_pa__mean": None}) == {"filter_dp_pa__last": 60.0}
    assert expand(None) == {} and expand({}) == {}


def test_a_compact_row_whose_values_do_not_match_its_names_is_an_error() -> None:
    with pytest.raises(ValueError, match="2 values for 7 features"):
        expand({"s": list(STATS), "m": ["filter_dp_pa"], "v": [1.0, 2.0]})


def test_the_orm_reads_either_form_as_feature_names(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'v.db'}")
    create_schema(engine)
    ts = datetime(2026, 3, 1, tzinfo=UTC)
    compact = {"s": ["last"], "m": ["filter_dp_pa", "fan_current_a"], "v": [61.0, 0.8]}
    with engine.begin() as conn:
        conn.execute(insert(FeatureHistoryRow), [
            {"device_id": "ac-1", "seq": 1, "ts": ts, "n_readings": 1, "values": {"filter_dp_pa__last": 60.0}},
            {"device_id": "ac-1", "seq": 2, "ts": ts, "n_readings": 2, "values": compact}])
    with engine.connect() as conn:
        got = conn.execute(select(FeatureHistoryRow.seq, FeatureHistoryRow.values)
                           .order_by(FeatureHistoryRow.seq)).all()
    assert [tuple(r) for r in got] == [(1, {"filter_dp_pa__last": 60.0}),
                                       (2, {"filter_dp_pa__last": 61.0, "fan_current_a__last": 0.8})]


def test_a_profile_that_gains_a_metric_keeps_reading_rows_stored_before() -> None:
    days = np.arange(5, dtype=float)[None, :]
    values = np.ones((1, 5, len(AC.metrics)))
    matrix, has = feature_matrix(AC, days=days, values=values, baseline=np.full((1, len(AC.metrics)), np.nan))
    before = json.loads(encode_rows(AC, matrix, has)[0])
    grown = replace(AC, metrics=(*AC.metrics, replace(AC.metrics[0], name="new_metric")))
    assert "new_metric__last" not in expand(before)
    assert set(expand(before)) == {f"{spec.name}__{s}" for spec in AC.metrics for s in STATS}
    after = json.loads(encode_rows(grown, *feature_matrix(grown, days=days, values=np.ones((1, 5, len(grown.metrics))),
                                                          baseline=np.full((1, len(grown.metrics)), np.nan)))[0])
    assert after["m"] == [*before["m"], "new_metric"]
    assert "new_metric__last" in expand(after)
