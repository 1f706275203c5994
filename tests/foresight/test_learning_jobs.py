"""The runtime's retrain and drift jobs run against its database and registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from actions.learning import DRIFT_CATEGORY
from foresight.cli import app
from foresight.runtime import build_runtime
from foresight.settings import Settings
from ingest.clock import ManualClock
from ingest.contract import PROFILES
from predictors import FailureModeModel
from predictors.drift import feature_reference
from tests.actions.helpers import add_device, set_features
from tests.conftest import START

FEATURES = PROFILES["air_conditioner"].mode("filter_clogging").features


def test_the_drift_job_opens_one_ticket_and_the_retrain_job_keeps_a_model_without_data(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'f.db'}", model_dir=tmp_path / "models",
                        score_interval_s=3600)
    rt = build_runtime(settings, clock=ManualClock(START))
    try:
        rng = np.random.default_rng(2)
        X = rng.normal(0, 1, size=(500, len(FEATURES)))
        model = FailureModeModel(max_iter=5).fit(X, (X[:, 0] > 1.0).astype(int))
        version = rt.registry.register("air_conditioner", "filter_clogging", model,
                                       {"features": list(FEATURES), "horizon_h": 96.0,
                                        "reference": feature_reference(X, FEATURES)}, now=START)
        for i in range(80):
            add_device(rt.engine, f"ac-{i}", "air_conditioner")
            values = dict(zip(FEATURES, rng.normal(0, 1, len(FEATURES)), strict=True))
            values["fan_current_a__last"] += 2.5
            set_features(rt.engine, f"ac-{i}", "air_conditioner", values, ts=START)
        scheduler = rt.start_scheduler(persistent=False)
        for job_id in ("foresight.drift", "foresight.drift", "foresight.retrain"):
            job = scheduler.get_job(job_id)
            job.func(*job.args)  # the scheduled function with its stored arguments
        [ticket] = [t for t in rt.actions.open_tickets() if t.category == DRIFT_CATEGORY]
        assert "fan_current_a__last" in ticket.subject and ticket.context["version"] == version
        # No readings stored: nothing to train on, the live model stays and nothing is added.
        assert [(v.version, v.is_live) for v in rt.registry.versions()] == [(version, True)]
    finally:
        rt.stop()
        rt.engine.dispose()


def test_models_list_shows_the_live_version_and_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORESIGHT_DATABASE_URL", f"sqlite:///{tmp_path / 'f.db'}")
    monkeypatch.setenv("FORESIGHT_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("COLUMNS", "250")
    rt = build_runtime(Settings(), clock=ManualClock(START))
    rng = np.random.default_rng(3)
    X = rng.normal(0, 1, size=(300, len(FEATURES)))
    model = FailureModeModel(max_iter=5).fit(X, (X[:, 0] > 1.0).astype(int))
    summary = {"features": list(FEATURES), "horizon_h": 96.0, "brier": 0.019}
    rt.registry.register("air_conditioner", "filter_clogging", model, summary, now=START)
    rt.registry.register("air_conditioner", "filter_clogging", model, summary, now=START, make_live=False,
                         note="refused: auc regressed 0.97 → 0.93")
    rt.engine.dispose()
    result = CliRunner().invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    v1, v2 = [line for line in result.output.splitlines() if "filter_clogging.v" in line]
    assert "live" in v1 and "live" not in v2 and "refused: auc regressed 0.97 → 0.93" in v2
    result = CliRunner().invoke(app, ["models", "drift"])
    assert result.exit_code == 0 and "no live model drifts" in result.output  # no reference stored
