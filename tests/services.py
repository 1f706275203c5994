"""Real services for integration tests: a Mosquitto broker and a PostgreSQL cluster on free loopback ports.

Locally a missing service skips the test; under ``FORESIGHT_REQUIRE_SERVICES=1`` (set by .ci/run)
it fails instead, so CI cannot go green by skipping.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import pytest
from sqlalchemy import Engine

from foresight.mosquitto import Mosquitto as _Broker
from foresight.mosquitto import MosquittoNotInstalled
from foresight.postgres_cluster import PostgresCluster, PostgresNotInstalled

REQUIRE_SERVICES = os.environ.get("FORESIGHT_REQUIRE_SERVICES") == "1"


def missing_service(what: str) -> None:
    """Skip locally, fail in CI."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required (FORESIGHT_REQUIRE_SERVICES=1) but not available")
    pytest.skip(f"{what} not available")


class Mosquitto(_Broker):
    """The product's throwaway broker (foresight.mosquitto); a missing install skips or fails."""

    @classmethod
    def start_new(cls, **options: Any) -> Self:
        try:
            return super().start_new(**options)
        except MosquittoNotInstalled:
            missing_service("mosquitto")
            raise  # unreachable: missing_service skips or fails


@dataclass
class Postgres(PostgresCluster):
    """The product's throwaway cluster (foresight.postgres_cluster) with durability off: it lives
    for one test session. Tests each get their own database, copied from a template per schema;
    a missing install skips or fails."""

    _databases: int = 0
    #: Databases holding a set of tables, copied by ``fresh_engine(schema=True)``.
    templates: dict[frozenset[str], str] = field(default_factory=dict)

    @classmethod
    def start_new(cls, *, durable: bool = False, max_connections: int = 200) -> Self:
        try:
            return super().start_new(durable=durable, max_connections=max_connections)
        except PostgresNotInstalled:
            missing_service("postgresql")
            raise  # unreachable: missing_service skips or fails

    def create_database(self, name: str | None = None, *, template: str | None = None) -> str:  # type: ignore[override]
        """A new empty database (or a copy of ``template``); returns its SQLAlchemy URL."""
        if name is None:
            self._databases += 1
            name = f"test_{os.getpid()}_{self._databases}"
        # FILE_COPY: a checkpoint (cheap with fsync off) instead of WAL-logging template1, ~8x faster.
        self._admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
                    + " STRATEGY FILE_COPY")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever is still on it."""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: Parameters of a fixture that runs its tests on every database backend.
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@contextmanager
def fresh_engine(request: pytest.FixtureRequest, tmp_path: Path, *, schema: bool = False) -> Iterator[Engine]:
    """An engine on a new database of the backend ``request.param`` names.

    With ``schema`` it holds every table registered on ``ingest.db.Base`` (``create_schema``),
    otherwise nothing. PostgreSQL asks for the session's ``postgres`` fixture only here, so SQLite
    runs never start (or skip for want of) a cluster; its tables are copied from a template
    database made once per set of tables, which is several times faster than creating them.
    """
    from ingest.db import Base, create_schema, make_engine

    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'foresight.db'}")
        try:
            if schema:
                create_schema(engine)
            yield engine
        finally:
            engine.dispose()
        return
    server: Postgres = request.getfixturevalue("postgres")
    template = None
    if schema:
        tables = frozenset(Base.metadata.tables)
        template = server.templates.get(tables)
        if template is None:
            url = server.create_database()
            maker = make_engine(url)
            create_schema(maker)
            maker.dispose()
            template = server.templates[tables] = url.rsplit("/", 1)[1]
    url = server.create_database(template=template)
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        server.drop_database(url.rsplit("/", 1)[1])
