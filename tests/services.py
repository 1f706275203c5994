"""Real services for integration tests: a Mosquitto broker and a PostgreSQL cluster on free loopback ports.

Locally a missing service skips the test; under ``FORESIGHT_REQUIRE_SERVICES=1`` (set by .ci/run)
it fails instead, so CI cannot go green by skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import pytest
from sqlalchemy import Engine

from foresight.mosquitto import Mosquitto as _Broker
from foresight.mosquitto import MosquittoNotInstalled, free_port

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


PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass
class Postgres:
    """A throwaway PostgreSQL 15 cluster in its own temp dir, on a free loopback port.

    Durability is off (``fsync``, ``synchronous_commit``, ``full_page_writes``): the cluster
    lives for one test session. As root, initdb and pg_ctl run as the ``postgres`` user.
    """

    port: int
    directory: Path
    bindir: Path
    host: str = "127.0.0.1"
    running: bool = False
    _databases: int = 0
    #: Databases holding a set of tables, copied by ``fresh_engine(schema=True)``.
    templates: dict[frozenset[str], str] = field(default_factory=dict)

    @classmethod
    def start_new(cls) -> Postgres:
        bindir = PG_BIN if (PG_BIN / "initdb").exists() else None
        if bindir is None and shutil.which("pg_ctl") and shutil.which("initdb"):
            bindir = Path(shutil.which("pg_ctl")).parent  # type: ignore[arg-type]
        if bindir is None:
            missing_service("postgresql")
        directory = Path(tempfile.mkdtemp(prefix="foresight-postgres-"))
        server = cls(port=free_port(), directory=directory, bindir=bindir)  # type: ignore[arg-type]
        try:
            if os.geteuid() == 0:  # initdb refuses root; the dir must belong to postgres
                import pwd

                pw = pwd.getpwnam("postgres")
                os.chown(directory, pw.pw_uid, pw.pw_gid)
            server._run("initdb", "-D", str(directory / "data"), "-U", "postgres", "-A", "trust",
                        "-E", "UTF8", "--no-locale", "--no-sync")
            server.start()
        except BaseException:
            server.close()
            raise
        return server

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bindir / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr or done.stdout}")

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{name}"

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.directory / "data"), "-l", str(self.directory / "postgres.log"),
                  "-w", "-t", "30", "-o",
                  f"-p {self.port} -k {self.directory} -c listen_addresses={self.host} -c fsync=off "
                  "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                  "start")
        self.running = True

    def stop(self) -> None:
        if self.running:
            self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")
            self.running = False

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, name: str | None = None, *, template: str | None = None) -> str:
        """A new empty database (or a copy of ``template``); returns its SQLAlchemy URL."""
        if name is None:
            self._databases += 1
            name = f"test_{os.getpid()}_{self._databases}"
        # FILE_COPY: a checkpoint (cheap with fsync off) instead of WAL-logging template1, ~8x faster.
        self._admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
                    + " STRATEGY FILE_COPY")
        return self.database_url(name)

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
