"""Migrations: on every backend, ``upgrade`` builds exactly the schema the code declares, once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text
from typer.testing import CliRunner

from foresight.cli import app
from foresight.migrate import SchemaMismatch, current_revision, head_revision, schema_diff, upgrade
from ingest.db import Base, create_schema, make_engine
from tests.services import BACKENDS, fresh_engine


@pytest.fixture(params=BACKENDS)
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A new database with no tables at all."""
    with fresh_engine(request, tmp_path) as eng:
        yield eng


def _snapshot(engine: Engine) -> str:
    """Tables, columns, indexes and the version row, as text (type objects do not compare with ==)."""
    insp = inspect(engine)
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    return repr(({t: ([(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t)],
                       sorted((i["name"], i["column_names"], i["unique"]) for i in insp.get_indexes(t)))
                  for t in insp.get_table_names()}, versions))


def test_upgrade_builds_the_declared_schema_and_is_idempotent(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    with empty_engine.connect() as conn:
        assert schema_diff(conn) == []
        assert current_revision(conn) == head_revision()
    assert set(Base.metadata.tables) <= set(inspect(empty_engine).get_table_names())
    before = _snapshot(empty_engine)
    upgrade(empty_engine)  # no-op at head
    assert _snapshot(empty_engine) == before
    with empty_engine.connect() as conn:
        assert current_revision(conn) == head_revision()


def test_create_all_and_migrations_agree_so_old_databases_are_adopted(empty_engine: Engine) -> None:
    create_schema(empty_engine)  # a database from before migrations existed
    upgrade(empty_engine)
    with empty_engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        assert schema_diff(conn) == []


def test_an_unversioned_database_unlike_the_code_is_refused(empty_engine: Engine) -> None:
    create_schema(empty_engine)
    with empty_engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_readings_ts"))
    with pytest.raises(SchemaMismatch):
        upgrade(empty_engine)


def test_db_upgrade_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FORESIGHT_DATABASE_URL", url)
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert head_revision() in result.output
    engine = make_engine(url)
    try:
        assert "readings" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
