"""Real services for integration tests: a Mosquitto broker and a PostgreSQL cluster on free loopback ports.

Locally a missing service skips the test; under ``FORESIGHT_REQUIRE_SERVICES=1`` (set by .ci/run)
it fails instead, so CI cannot go green by skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine

REQUIRE_SERVICES = os.environ.get("FORESIGHT_REQUIRE_SERVICES") == "1"


def missing_service(what: str) -> None:
    """Skip locally, fail in CI."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required (FORESIGHT_REQUIRE_SERVICES=1) but not available")
    pytest.skip(f"{what} not available")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Mosquitto:
    """A Mosquitto process with persistence in its own temp dir."""

    port: int
    directory: Path
    exe: str
    proc: subprocess.Popen[bytes] | None = field(default=None)
    host: str = "127.0.0.1"

    @classmethod
    def start_new(cls, *, password_file: Path | None = None, acl_file: Path | None = None) -> Mosquitto:
        """Anonymous by default; with ``password_file`` (and ``acl_file``) logins are required.

        The files are copied into the broker's own temp dir, which Mosquitto can always read.
        """
        exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
        if exe is None:
            missing_service("mosquitto")
        broker = cls(port=free_port(), directory=Path(tempfile.mkdtemp(prefix="foresight-mosquitto-")), exe=exe)
        auth = ["allow_anonymous true"]
        if password_file is not None:
            auth = ["allow_anonymous false", f"password_file {broker.directory / 'passwd'}"]
            shutil.copyfile(password_file, broker.directory / "passwd")
            if acl_file is not None:
                auth.append(f"acl_file {broker.directory / 'acl'}")
                shutil.copyfile(acl_file, broker.directory / "acl")
        (broker.directory / "mosquitto.conf").write_text(
            "\n".join([
                "user root" if os.geteuid() == 0 else "",
                f"listener {broker.port} 127.0.0.1",
                *auth,
                "persistence true",
                f"persistence_location {broker.directory}/",
                "max_inflight_messages 1000",
                "max_queued_messages 100000",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
            ]) + "\n")
        broker.start()
        return broker

    def start(self) -> None:
        self.proc = subprocess.Popen([self.exe, "-c", str(self.directory / "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not start listening within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


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
