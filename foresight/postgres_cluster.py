"""A throwaway PostgreSQL cluster: initdb in a temp dir, a free loopback port, removed after.

As root, ``initdb`` and ``pg_ctl`` refuse to run, so they run as the ``postgres`` user, who must own
the temp dir. By default durability is left at PostgreSQL's defaults (``fsync`` and
``synchronous_commit`` on) so a benchmark measures durable commits; ``durable=False`` turns them off
for a cluster that lives for one test session (the tests' fixture, ``tests/services.py``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from .mosquitto import free_port
from .procstat import TICKS_PER_S, stat

__all__ = ["PostgresCluster", "PostgresNotInstalled"]

#: Server settings of a cluster nobody needs after a crash: no fsync, no full-page writes.
_NOT_DURABLE = ("-c fsync=off -c synchronous_commit=off -c full_page_writes=off",)

_BINDIRS = (Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin"), Path("/usr/lib/postgresql/17/bin"))


class PostgresNotInstalled(FileNotFoundError):
    """No ``initdb``/``pg_ctl`` on this machine."""


@dataclass
class PostgresCluster:
    """A PostgreSQL server on ``127.0.0.1:port`` with its data in ``directory``."""

    port: int
    directory: Path
    bindir: Path
    running: bool = False
    #: Extra ``postgres`` command-line options (``-c name=value ...``).
    server_options: tuple[str, ...] = ()
    host: str = "127.0.0.1"

    @classmethod
    def start_new(cls, *, durable: bool = True, max_connections: int = 100) -> Self:
        """initdb + start; raises ``PostgresNotInstalled`` when the server binaries are missing."""
        bindir = next((d for d in _BINDIRS if (d / "initdb").exists()), None)
        if bindir is None and shutil.which("initdb") and shutil.which("pg_ctl"):
            bindir = Path(shutil.which("pg_ctl") or "").parent
        if bindir is None:
            raise PostgresNotInstalled("PostgreSQL server binaries not found (apt-get install -y postgresql)")
        options = (*(() if durable else _NOT_DURABLE), f"-c max_connections={max_connections}")
        cluster = cls(port=free_port(), directory=Path(tempfile.mkdtemp(prefix="foresight-pg-")), bindir=bindir,
                      server_options=options)
        try:
            if os.geteuid() == 0:
                import pwd

                pw = pwd.getpwnam("postgres")
                os.chown(cluster.directory, pw.pw_uid, pw.pw_gid)
            cluster._run("initdb", "-D", str(cluster.directory / "data"), "-U", "postgres", "-A", "trust",
                         "-E", "UTF8", "--no-locale", *(() if durable else ("--no-sync",)))
            cluster.start()
        except BaseException:
            cluster.close()
            raise
        return cluster

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bindir / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr or done.stdout}")

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of one database."""
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, name: str) -> str:
        """Create an empty database; returns its URL."""
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.directory / "data"), "-l", str(self.directory / "postgres.log"),
                  "-w", "-t", "30", "-o",
                  " ".join((f"-p {self.port} -k {self.directory} -c listen_addresses={self.host}",
                            *self.server_options)),
                  "start")
        self.running = True

    def postmaster_pid(self) -> int:
        """The running server's postmaster process id (the first line of ``postmaster.pid``)."""
        return int((self.directory / "data" / "postmaster.pid").read_text().split()[0])

    def cpu_ticks(self) -> dict[int, int]:
        """CPU clock ticks (user + system, ``/proc``) used so far by the server's postmaster and each
        of its processes, by pid: a benchmark's server CPU is the growth of this between two calls
        (``cpu_s_since``). Only this cluster's processes, not another server's on the machine."""
        postmaster = self.postmaster_pid()
        ticks = {}
        for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
            found = stat(pid)
            if found is not None and postmaster in (pid, found[0]):
                ticks[pid] = found[1]
        return ticks

    def cpu_s_since(self, before: dict[int, int]) -> float:
        """Server CPU seconds since ``before`` (``cpu_ticks``) of the processes still there: one that
        ended meanwhile (an autovacuum worker, a closed connection's backend) is left out."""
        now = self.cpu_ticks()
        return sum(t - before.get(pid, 0) for pid, t in now.items()) / TICKS_PER_S

    def stop(self) -> None:
        if self.running:
            self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")
            self.running = False

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
