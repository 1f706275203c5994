"""Database migrations (Alembic), configured from Python so they run from any working directory.

The revisions live in ``foresight/migrations/versions`` and ship with the package. ``upgrade`` is
what start-up (``build_runtime``) and ``foresight db upgrade`` run; it is a no-op on a database
already at head. A database made by ``metadata.create_all`` before migrations existed (no
``alembic_version`` table) is adopted: stamped at head if its schema matches the code, refused
otherwise so nobody runs on a half-matching schema.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect

import actions.db
import predictors.registry
import predictors.store  # noqa: F401  (register their tables on the shared Base)
import foresight.auth  # noqa: F401  (users, auth_tokens)
from ingest.db import Base, make_engine

__all__ = ["MIGRATIONS_DIR", "SchemaMismatch", "alembic_config", "current_revision", "head_revision",
           "schema_diff", "upgrade"]

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_VERSION_TABLE = "alembic_version"


class SchemaMismatch(RuntimeError):
    """The database has Foresight tables but no migration history, and they differ from the code."""


def alembic_config(connection: Connection | None = None, *, url: str | None = None) -> Config:
    """An Alembic config for our migrations; pass a connection to run on (or a URL)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # ConfigParser interpolation
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision in the migrations folder."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None: no migration history)."""
    return MigrationContext.configure(connection).get_current_revision()


def schema_diff(connection: Connection) -> list[Any]:
    """Differences between the database and the tables in code (``[]``: they match)."""
    ctx = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(ctx, Base.metadata))


def upgrade(database: str | Engine, revision: str = "head") -> str | None:
    """Migrate the database (a SQLAlchemy URL or an engine) to ``revision``; idempotent.

    Returns the revision the database is at afterwards.
    """
    engine = make_engine(database) if isinstance(database, str) else database
    try:
        with engine.connect() as conn:
            _adopt_unversioned(conn)
            conn.commit()
            command.upgrade(alembic_config(conn), revision)
            conn.commit()
            return current_revision(conn)
    finally:
        if isinstance(database, str):
            engine.dispose()


def _adopt_unversioned(conn: Connection) -> None:
    tables = set(inspect(conn).get_table_names())
    if _VERSION_TABLE in tables or not tables & set(Base.metadata.tables):
        return
    diff = schema_diff(conn)
    if diff:
        raise SchemaMismatch(
            "the database has Foresight tables but no alembic_version, and they differ from this "
            f"version's schema ({len(diff)} differences, first: {diff[0]}); bring it in line and "
            "run `alembic stamp <revision>` by hand")
    log.info("database without migration history matches the current schema; stamping it at head")
    command.stamp(alembic_config(conn), "head")
