"""A trained model registry, built once per test session and copied into each test's database."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ingest.db import create_schema, make_engine

#: Small enough to train in well under a minute, large enough for every failure mode.
TRAIN_DEVICES = 240
TRAIN_DAYS = 120
TRAIN_SEED = 4242


@dataclass(frozen=True)
class TrainedModels:
    database: Path
    model_dir: Path

    def copy_to(self, directory: Path) -> Path:
        """A copy of the trained database in ``directory`` (models stay shared, read-only)."""
        target = directory / "foresight.db"
        shutil.copyfile(self.database, target)
        return target


def train_models(directory: Path) -> TrainedModels:
    import actions.db  # noqa: F401  (tables on the shared metadata)
    from foresight.training import train_on_simulation
    from ingest.clock import SystemClock
    from predictors import ModelRegistry
    import predictors.store  # noqa: F401

    database = directory / "trained.db"
    engine = make_engine(f"sqlite:///{database}")
    create_schema(engine)
    registry = ModelRegistry(engine, directory / "models")
    train_on_simulation(registry, devices=TRAIN_DEVICES, days=TRAIN_DAYS, seed=TRAIN_SEED, now=SystemClock().now())
    engine.dispose()
    return TrainedModels(database=database, model_dir=directory / "models")
