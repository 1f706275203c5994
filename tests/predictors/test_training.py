"""train_all: registers what it can, explains what it skips."""

from __future__ import annotations

from predictors import train_all
from tests.predictors.conftest import FAST, new_registry
from tests.predictors.synth import make_fleet


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
