"""`foresight simulate` + `foresight evaluate` on a held-out fleet with the session's trained models."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from actions.policy import PolicyConfig
from actions.replay import replay
from foresight.cli import app
from foresight.evaluate import HEADLINE, evaluate_history, load_history
from ingest.contract import PROFILES
from ingest.db import make_engine
from ingest.features import Reading
from predictors import ModelRegistry, Scorer
from tests.trained import TRAIN_SEED, TrainedModels

HELD_OUT_SEED = TRAIN_SEED + 1


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("history")
    result = CliRunner().invoke(app, ["simulate", "--devices", "60", "--days", "40", "--seed",
                                      str(HELD_OUT_SEED), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture()
def registry(tmp_path: Path, trained_models: TrainedModels, monkeypatch: pytest.MonkeyPatch) -> ModelRegistry:
    database = trained_models.copy_to(tmp_path)
    monkeypatch.setenv("FORESIGHT_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("FORESIGHT_MODEL_DIR", str(trained_models.model_dir))
    return ModelRegistry(make_engine(f"sqlite:///{database}"), trained_models.model_dir)


def test_evaluate_writes_json_plots_and_html(history: Path, registry: ModelRegistry, tmp_path: Path) -> None:
    out = tmp_path / "report" / "eval.json"
    result = CliRunner().invoke(app, ["evaluate", "--history", str(history), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "eval.html" in result.output
    report = json.loads(out.read_text())
    assert set(HEADLINE) <= set(report["overall"])
    assert set(report["by_kind"]) == set(PROFILES)
    assert set(report["by_mode"]) == {f"{p.kind}.{m.name}" for p in PROFILES.values() for m in p.failure_modes}
    for slice_ in (report["overall"], *report["by_kind"].values(), *report["by_mode"].values()):
        assert set(HEADLINE) <= set(slice_)
    overall = report["overall"]
    assert overall["failures"] > 10 and overall["alerts"] > 0 and overall["recall_48h"] > 0.5
    for png in ("eval-lead.png", "eval-calibration.png"):
        assert (out.parent / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png in (out.parent / "eval.html").read_text()


def test_calibrated_on_held_out_devices_and_sensor_faults_escalated(history: Path, registry: ModelRegistry) -> None:
    report = evaluate_history(load_history(history), scorer=Scorer(registry), config=PolicyConfig())
    bins = report["calibration"]
    n = sum(b["n"] for b in bins)
    rate = sum(b["observed"] * b["n"] for b in bins) / n
    assert report["overall"]["brier"] < rate * (1 - rate)  # better than knowing only the base rate
    for b in bins:
        if b["n"] >= 300:
            assert abs(b["p_mean"] - b["observed"]) < 0.15, b
    faults = report["sensor_faults"]
    assert sum(f["faults"] for f in faults.values()) >= 3
    assert sum(f["escalated"] for f in faults.values()) >= 0.6 * sum(f["faults"] for f in faults.values())


def test_a_device_unlike_any_trained_on_is_escalated(history: Path, registry: ModelRegistry) -> None:
    readings = [r for r in load_history(history).readings if r.kind == "air_conditioner"][:2000]
    start = max(r.ts for r in readings)
    odd = [Reading(device_id="ac-odd", kind="air_conditioner", seq=i, ts=start + timedelta(hours=i),
                   metrics={"filter_dp_pa": 700.0 + (i % 5), "fan_current_a": 9.0 + 0.01 * (i % 7),
                            "supply_air_temp_c": 45.0 + 0.1 * (i % 3), "return_air_temp_c": 50.0 - 0.1 * (i % 4),
                            "power_w": 6000.0 + i % 11, "run_hours": float(i)})
           for i in range(40)]
    result = replay(readings + odd, scorer=Scorer(registry), config=PolicyConfig())
    mine = [c for c in result.cases if c.device_id == "ac-odd"]
    assert mine and all(c.escalated_to_human and c.rule == "ood" and c.proactive_at is None for c in mine)


@pytest.mark.parametrize(("file", "content", "message"), [
    ("telemetry.csv", "device_id,ts,kind,filter_dp_pa\nac-1,yesterday,air_conditioner,60\n",
     "telemetry.csv: row 2, column ts"),
    ("telemetry.csv", "device_id,ts,kind,filter_dp_pa\nac-1,2026-01-01T00:00:00Z,air_conditioner,nan\n",
     "telemetry.csv: row 2, column filter_dp_pa"),
    ("telemetry.csv", "device_id,kind\nac-1,air_conditioner\n", "telemetry.csv: row 1: missing column(s) ts"),
    ("failures.csv", "device_id,failed_at,mode\nac-404,2026-01-02T00:00:00Z,filter_clogging\n",
     "failures.csv: row 2, column device_id"),
    ("failures.csv", "device_id,failed_at,mode\nac-1,2026-01-02T00:00:00Z,melted\n", "failures.csv: row 2, column mode"),
])
def test_bad_history_is_refused_naming_file_row_and_column(tmp_path: Path, registry: ModelRegistry,
                                                           file: str, content: str, message: str) -> None:
    (tmp_path / "telemetry.csv").write_text("device_id,ts,kind,filter_dp_pa\nac-1,2026-01-01T00:00:00Z,air_conditioner,60\n")
    (tmp_path / "failures.csv").write_text("device_id,failed_at,mode\n")
    (tmp_path / file).write_text(content)
    result = CliRunner().invoke(app, ["evaluate", "--history", str(tmp_path), "--json", str(tmp_path / "r.json")])
    assert result.exit_code != 0
    assert _squash(message) in _squash(result.output), result.output
    assert not (tmp_path / "r.json").exists()


def test_missing_history_file(tmp_path: Path, registry: ModelRegistry) -> None:
    result = CliRunner().invoke(app, ["evaluate", "--history", str(tmp_path), "--json", str(tmp_path / "r.json")])
    assert result.exit_code != 0 and _squash("telemetry.csv: no such file") in _squash(result.output)


def _squash(text: str) -> str:
    """Without whitespace and box borders: typer wraps error messages inside a panel."""
    return "".join(c for c in text if not c.isspace() and c not in "│╭╮╰╯─")
