"""`foresight train --telemetry/--failures` and `foresight predict`, and a served process that knows the kind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foresight.cli import app
from foresight.runtime import build_runtime, score_pending
from foresight.settings import Settings
from ingest.clock import ManualClock
from ingest.contract import PROFILES, Telemetry, encode_telemetry, telemetry_topic
from ingest.db import make_engine
from ingest.store import Inbound
from predictors import ModelRegistry
from tests.predictors.history_files import HistoryFiles, write_history


@pytest.fixture
def profiles_restored() -> Iterator[None]:
    """Installing onboarded kinds changes the process's kinds: put them back for other tests."""
    before = dict(PROFILES)
    yield
    PROFILES.clear()
    PROFILES.update(before)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, profiles_restored: None) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    monkeypatch.setenv("FORESIGHT_DATABASE_URL", url)
    monkeypatch.setenv("FORESIGHT_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("COLUMNS", "200")
    return {"url": url, "models": str(tmp_path / "models")}


@pytest.fixture
def files(tmp_path: Path) -> HistoryFiles:
    return write_history(tmp_path / "history", devices=25, days=20, seed=2)


def test_train_from_files_then_predict_then_serve_knows_the_kind(env, files, tmp_path):
    result = CliRunner().invoke(app, ["train", "--telemetry", str(files.telemetry),
                                      "--failures", str(files.failures)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "water_pump — profile inferred from" in out
    assert "bearing_vibration_mm_s" in out and "rated_kw" in out and "constant" in out
    assert "censored" in out
    assert "water_pump.bearing_wear.v1" in out

    result = CliRunner().invoke(app, ["predict", "--telemetry", str(files.telemetry),
                                      "--json", str(tmp_path / "out" / "p.json")])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "out" / "p.json").read_text())
    assert doc["summary"]["devices"] == 25
    by_id = {d["device_id"]: d for d in doc["devices"]}
    # A pump that failed is scored at its last reading, just before the failure: it looks bad.
    failing = min(files.failed, key=lambda d: files.failed[d])
    (mode,) = by_id[failing]["modes"]
    assert mode["mode"] == "bearing_wear" and mode["model_version"] == "water_pump.bearing_wear.v1"
    assert mode["p_fail"] > 0.5
    rem = mode["remaining_h"]
    assert rem["low"] <= rem["median"] <= rem["high"] and rem["median"] < 48
    assert mode["reasons"] and mode["reasons"][0]["feature"].startswith("bearing_vibration_mm_s")
    assert mode["decision"]["action"] == "open_ticket" and mode["decision"]["rule"] == "near_failure"
    assert mode["escalate_to_human"] is False  # the mode's own action, not an escalation
    assert {"ood", "ood_detail", "sensor_faults"} <= mode.keys()
    healthy = next(d for d in by_id if d not in files.failed and d not in files.left_early)
    assert by_id[healthy]["modes"][0]["p_fail"] < 0.5
    assert by_id[healthy]["modes"][0]["decision"]["action"] == "none"

    # A later process on the same database knows the onboarded kind: readings are accepted,
    # features computed and scored with the onboarded model.
    PROFILES.pop("water_pump")
    clock = ManualClock(files.end)
    rt = build_runtime(Settings(database_url=env["url"], model_dir=Path(env["models"])), clock=clock)
    try:
        assert "water_pump" in PROFILES
        batch = [Inbound(telemetry_topic("wp-new"), encode_telemetry(Telemetry(
            device_id="wp-new", kind="water_pump", model="WP-1", firmware="1.0", seq=i,
            ts=files.end + timedelta(hours=i - 30),
            metrics={"bearing_vibration_mm_s": 2.0 + 0.01 * i, "motor_current_a": 6.0 + 0.001 * i,
                     "flow_l_min": 120.0 + (i % 3), "rated_kw": 7.5})), clock.now())
            for i in range(30)]
        result = rt.store.write_batch(batch)
        assert result.accepted == 30, result
        score_pending(rt)
        (pred,) = rt.predictions.latest(["wp-new"])
        assert pred.kind == "water_pump" and pred.model_version == "water_pump.bearing_wear.v1"
        assert pred.p_fail < 0.5 and not pred.sensor_faults
    finally:
        rt.stop()
        rt.engine.dispose()


def test_bad_history_exits_with_file_row_column_and_registers_nothing(env, files):
    lines = files.telemetry.read_text().splitlines()
    lines[7] = lines[7].replace("Z,water_pump", ",water_pump")
    files.telemetry.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["train", "--telemetry", str(files.telemetry),
                                      "--failures", str(files.failures)])
    assert result.exit_code == 2, result.output
    assert f"{files.telemetry}, row 8, column 'ts'" in result.output.replace("\n", "")
    assert "nothing was trained or registered" in result.output
    engine = make_engine(env["url"])
    try:
        registry = ModelRegistry(engine, Path(env["models"]))
        assert registry.versions() == [] and registry.profiles() == {}
    finally:
        engine.dispose()


def test_predict_refuses_a_kind_never_onboarded(env, files, tmp_path):
    result = CliRunner().invoke(app, ["predict", "--telemetry", str(files.telemetry),
                                      "--json", str(tmp_path / "p.json")])
    assert result.exit_code == 2
    assert "'water_pump' has no profile" in result.output.replace("\n", "")
    assert not (tmp_path / "p.json").exists()


def test_train_needs_both_files(env, files):
    result = CliRunner().invoke(app, ["train", "--telemetry", str(files.telemetry)])
    assert result.exit_code != 0
    assert "--failures" in result.output


def test_check_writes_the_inferred_profile_and_trains_nothing(env, files, tmp_path):
    result = CliRunner().invoke(app, ["train", "--telemetry", str(files.telemetry),
                                      "--failures", str(files.failures), "--check",
                                      "--write-profiles", str(tmp_path / "profiles")])
    assert result.exit_code == 0, result.output
    assert "nothing was trained (--check)" in result.output
    written = tmp_path / "profiles" / "water_pump.toml"
    text = written.read_text()
    assert 'kind = "water_pump"' in text and "[failure_modes.bearing_wear]" in text
    engine = make_engine(env["url"])
    try:
        assert ModelRegistry(engine, Path(env["models"])).versions() == []
    finally:
        engine.dispose()
    # Edited and passed back, the profile is what training uses.
    written.write_text(text.replace('action = "open_ticket"', 'action = "book_technician"\nskill = "pumps"'))
    result = CliRunner().invoke(app, ["train", "--telemetry", str(files.telemetry),
                                      "--failures", str(files.failures), "--profile", str(written)])
    assert result.exit_code == 0, result.output
    assert "book_technician" in result.output and "water_pump.bearing_wear.v1" in result.output
