"""Shared fixtures: one synthetic fleet and one trained registry per test session."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from sqlalchemy import Engine

from ingest.contract import PROFILES
from ingest.db import create_schema, make_engine
from predictors import ModelRegistry, TrainingReport, train_all
from tests.predictors.synth import Fleet, make_fleet

# Few boosting rounds keep the suite fast; the synthetic signal does not need more.
FAST = {"max_iter": 30}

#: The kinds and failure modes ``synth`` simulates (it predates the other profiles' modes).
SYNTH_MODES = {"rice_cooker": ("scale_buildup", "heating_element_wear"),
               "air_conditioner": ("filter_clogging",)}
SYNTH_PROFILES = {kind: replace(PROFILES[kind], failure_modes=tuple(
    m for m in PROFILES[kind].failure_modes if m.name in modes)) for kind, modes in SYNTH_MODES.items()}


@dataclass(frozen=True)
class Trained:
    fleet: Fleet
    registry: ModelRegistry
    engine: Engine
    model_dir: Path
    reports: list[TrainingReport]

    def report(self, kind: str, mode: str) -> TrainingReport:
        return next(r for r in self.reports if (r.kind, r.mode) == (kind, mode))


def new_registry(tmp: Path) -> tuple[Engine, ModelRegistry]:
    engine = make_engine(f"sqlite:///{tmp / 'foresight.db'}")
    create_schema(engine)
    return engine, ModelRegistry(engine, tmp / "models")


@pytest.fixture(scope="session")
def fleet() -> Fleet:
    return make_fleet(n_ac=16, n_rc=45, days=45, seed=0)


@pytest.fixture(scope="session")
def trained(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    tmp = tmp_path_factory.mktemp("trained")
    engine, registry = new_registry(tmp)
    reports = train_all(fleet.readings, fleet.failures, registry=registry, now=fleet.end,
                        model_params=FAST, profiles=SYNTH_PROFILES)
    yield Trained(fleet=fleet, registry=registry, engine=engine, model_dir=tmp / "models",
                  reports=reports)
    engine.dispose()
