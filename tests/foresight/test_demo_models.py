"""The demo trains once: a mode that was trained but did not beat the base rate is not retrained."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import update

import foresight.demo as demo
from foresight.settings import Settings
from ingest.db import make_engine
from predictors.registry import ModelVersionRow
from tests.trained import TrainedModels


def _settings(tmp_path: Path, trained_models: TrainedModels) -> Settings:
    database = trained_models.copy_to(tmp_path)
    return Settings(database_url=f"sqlite:///{database}", model_dir=trained_models.model_dir)


def _refuse_training(*args: object, **kwargs: object) -> None:
    raise AssertionError("the demo retrained models it already had")


def test_a_trained_but_unskilled_mode_is_not_retrained(tmp_path: Path, trained_models: TrainedModels,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path, trained_models)
    engine = make_engine(settings.database_url)
    with engine.begin() as conn:  # as when pump_wear's model was no better than the base rate
        conn.execute(update(ModelVersionRow).where(ModelVersionRow.kind == "water_purifier",
                                                   ModelVersionRow.mode == "pump_wear").values(is_live=False))
    engine.dispose()
    monkeypatch.setattr(demo, "train_on_simulation", _refuse_training)
    console = Console(record=True, width=200)
    demo._ensure_models(settings, demo.DemoOptions(), console)
    out = console.export_text()
    assert "trained but not live" in out and "water_purifier.pump_wear" in out


def test_a_mode_never_trained_is_trained(tmp_path: Path, trained_models: TrainedModels,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path, trained_models)
    engine = make_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(ModelVersionRow.__table__.delete().where(ModelVersionRow.kind == "water_purifier",
                                                              ModelVersionRow.mode == "pump_wear"))
    engine.dispose()
    called: list[dict[str, object]] = []
    timing = {"readings": 0, "failures": 0, "simulate_s": 0.0, "train_s": 0.0}
    monkeypatch.setattr(demo, "train_on_simulation", lambda *a, **k: called.append(k) or ([], timing))
    console = Console(record=True, width=200)
    demo._ensure_models(settings, demo.DemoOptions(), console)
    assert len(called) == 1 and called[0]["devices"] == demo.DemoOptions().train_devices
    assert "not trained yet: water_purifier.pump_wear" in console.export_text()
