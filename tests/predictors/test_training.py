"""train_all: registers what it can, explains what it skips."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from predictors import build_frames, train_all
from predictors.training import SensorFault, exclude_sensor_faults
from tests.predictors.conftest import FAST, SYNTH_PROFILES, new_registry
from tests.predictors.synth import make_fleet

AC = {"air_conditioner": SYNTH_PROFILES["air_conditioner"]}  # the mode synth simulates


def test_summary_recorded_with_each_version(trained):
    versions = {v.version: v for v in trained.registry.versions()}
    for report in trained.reports:
        stored = versions[report.version].summary
        for key in ("rows", "positives", "devices", "brier", "auc", "ttf_mae_h", "features",
                    "horizon_h"):
            assert key in stored
        assert stored["features"] == list(trained.registry.live(report.kind, report.mode).features)


def test_modes_without_enough_positives_or_readings_are_skipped(tmp_path):
    fleet = make_fleet(n_ac=0, n_rc=6, days=20, seed=5)
    _, registry = new_registry(tmp_path)
    reports = train_all(fleet.readings, fleet.failures, registry=registry, now=fleet.end,
                        min_positives=10_000, model_params=FAST)
    why = {(r.kind, r.mode): r.skipped for r in reports}
    assert why[("air_conditioner", "filter_clogging")] == "no training rows for this kind"
    assert "need 10000" in why[("rice_cooker", "scale_buildup")]
    assert not any(r.trained for r in reports) and registry.versions() == []


def test_rows_under_a_known_sensor_fault_are_left_out_of_the_modes_using_its_metric(tmp_path):
    fleet = make_fleet(n_ac=10, n_rc=0, days=20, seed=2)
    onset = fleet.end - timedelta(days=8)
    faults = [SensorFault("ac-001", "filter_dp_pa", onset),      # an input of filter_clogging
              SensorFault("ac-002", "supply_air_temp_c", onset)]  # an input of refrigerant_leak only
    frames = build_frames(fleet.readings, fleet.failures, profiles=AC)
    kept, excluded = exclude_sensor_faults(frames, faults, profiles=AC)
    key = ("air_conditioner", "filter_clogging")
    before, after = frames[key], kept[key]
    cut = np.datetime64(onset.replace(tzinfo=None), "us")
    faulty = (before.device_ids == "ac-001") & (before.ts >= cut)
    assert excluded[key] == int(faulty.sum()) > 0 and after.n_rows == before.n_rows - excluded[key]
    assert not ((after.device_ids == "ac-001") & (after.ts >= cut)).any()
    # The faulty device's rows before the onset, and the other device's rows, all stay.
    assert ((after.device_ids == "ac-001") & (after.ts < cut)).sum() == \
        ((before.device_ids == "ac-001") & (before.ts < cut)).sum()
    assert (after.device_ids == "ac-002").sum() == (before.device_ids == "ac-002").sum()

    _, registry = new_registry(tmp_path)
    [report] = train_all(fleet.readings, fleet.failures, registry=registry, now=fleet.end, profiles=AC,
                         model_params=FAST, sensor_faults=faults)
    assert report.summary["sensor_fault_rows_excluded"] == excluded[key]
    assert report.summary["rows"] == after.n_rows
