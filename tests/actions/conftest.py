"""Fixtures for the actions tests: a database (SQLite, PostgreSQL) with ingest's and actions' tables, and a service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

import actions.db  # noqa: F401  (register the actions tables on the shared Base)
from actions import ActionService, PolicyConfig, seed_technicians
from ingest.clock import ManualClock
from tests.services import BACKENDS, fresh_engine

from .helpers import HVAC_NORTH, HVAC_SOUTH, RICE_NORTH, add_device


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """Only ingest's and actions' tables: the actions tests must not depend on other packages.

    Every test runs on SQLite and on PostgreSQL.
    """
    with fresh_engine(request, tmp_path, schema=True) as eng:
        yield eng


@pytest.fixture
def service(engine: Engine, clock: ManualClock) -> ActionService:
    """A service over a small fleet: a rice cooker (h-1) and an AC (h-2) in the north."""
    seed_technicians(engine, [HVAC_NORTH, HVAC_SOUTH, RICE_NORTH])
    add_device(engine, "rc-1", "rice_cooker", household_id="h-1")
    add_device(engine, "ac-1", "air_conditioner", household_id="h-2")
    return ActionService(engine, clock=clock, policy_config=PolicyConfig())
