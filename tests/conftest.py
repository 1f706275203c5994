"""Shared fixtures: a real Mosquitto broker and PostgreSQL, a clock and a fresh database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from ingest.clock import ManualClock
from ingest.db import create_schema, make_engine
from tests.services import BACKENDS, Mosquitto, Postgres, fresh_engine

START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[Mosquitto]:
    """One real Mosquitto for the session; tests use unique client ids and device ids."""
    broker = Mosquitto.start_new()
    yield broker
    broker.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One throwaway PostgreSQL cluster for the session; tests each get their own database."""
    server = Postgres.start_new()
    yield server
    server.close()


@pytest.fixture(params=BACKENDS)
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh database with every package's tables, once on SQLite and once on PostgreSQL."""
    import actions.db
    import predictors.registry
    import predictors.store  # noqa: F401  (register their tables on the shared Base)

    with fresh_engine(request, tmp_path, schema=True) as eng:
        yield eng


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A fresh SQLite database file with every package's tables."""
    import actions.db  # noqa: F401  (register their tables on the shared Base)
    import predictors.registry  # noqa: F401
    import predictors.store  # noqa: F401

    eng = make_engine(f"sqlite:///{tmp_path / 'foresight.db'}")
    create_schema(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Models trained once per session on a simulated history (see tests/trained.py)."""
    from tests.trained import train_models

    return train_models(tmp_path_factory.mktemp("trained"))
