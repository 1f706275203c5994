"""Alembic environment: every package's tables on ``ingest.db.Base``, the URL from the caller.

``foresight.migrate`` runs this with a connection in ``config.attributes["connection"]``; the
``alembic`` command line (``alembic.ini`` at the repository root, for writing revisions) gets the
URL from ``-x url=...``, ``sqlalchemy.url`` or ``FORESIGHT_DATABASE_URL`` (the settings' default
otherwise). SQLite gets batch mode, since it cannot ALTER most things in place.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, text

import actions.db
import predictors.registry
import predictors.store  # noqa: F401  (register their tables on the shared Base)
import foresight.auth  # noqa: F401  (users, auth_tokens)
from ingest.db import Base, UTCDateTime, make_engine

target_metadata = Base.metadata

#: Serialises concurrent upgrades of one PostgreSQL database (two replicas starting at once).
_PG_LOCK_KEY = 0x666F7265  # "fore"


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Revisions must not import application code that will change under them: our
    # TypeDecorator is plain TIMESTAMP WITH TIME ZONE in the database.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def configure(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite",
                      render_item=_render_item, compare_type=True)


def _run(connection: Connection) -> None:
    configure(connection)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        context.run_migrations()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from foresight.settings import Settings

    return Settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_item=_render_item)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
