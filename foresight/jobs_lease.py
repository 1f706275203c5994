"""Exactly one process per database runs the background jobs.

APScheduler 3 has no coordination between schedulers sharing a job store: two processes with the
same ``apscheduler_jobs`` table would both run every job. So the process that starts the scheduler
first takes a lease that whatever holds it cannot leave behind when it dies:

* **PostgreSQL**: a session-level advisory lock (``pg_try_advisory_lock``) on one dedicated
  connection, released by the server when the connection closes — a killed process frees it.
* **SQLite**: an exclusive ``flock`` on a file beside the database, released by the kernel when the
  holder exits. SQLite is the embedded, single-host default, so a host-local lock is the right scope.

A process that does not get the lease stays on standby and tries again (``Runtime.start_scheduler``),
so the jobs move to another process when the holder stops. The holder checks every retry interval
that the lease is still its own (``still_held``) and, if not, stops its jobs and stands by.
"""

from __future__ import annotations

import fcntl
import os
from typing import IO

from sqlalchemy import Connection, Engine, text

__all__ = ["JobsLease"]

#: Advisory-lock key: a fixed 64-bit number that is Foresight's job runner (b"FSjobs" as an int).
_PG_KEY = int.from_bytes(b"FSjobs", "big")


class JobsLease:
    """A non-blocking, crash-safe lease on running the background jobs for one database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None
        self._file: IO[bytes] | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None or self._file is not None

    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; True when this process holds it now."""
        if self.held:
            return True
        if self._engine.dialect.name == "postgresql":
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _PG_KEY}).scalar())
            except BaseException:
                conn.close()
                raise
            if got:
                self._conn = conn
            else:
                conn.close()
            return got
        database = self._engine.url.database
        if not database or database == ":memory:":
            return True  # a private in-memory database: no other process can share it
        handle = open(f"{os.path.abspath(database)}.jobs.lock", "ab")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        return True

    def still_held(self) -> bool:
        """Whether the lease is still ours: the PostgreSQL session holding the lock may have been
        cut (server restart, network, idle timeout), which frees the lock without telling us."""
        if self._conn is not None:
            try:
                return bool(self._conn.execute(text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid = pg_backend_pid() AND classid = :hi AND objid = :lo AND objsubid = 1"),
                    {"hi": _PG_KEY >> 32, "lo": _PG_KEY & 0xFFFFFFFF}).scalar())
            except Exception:
                return False
        return self._file is not None or self._engine.dialect.name != "postgresql"

    def release(self) -> None:
        """Give the lease up (idempotent)."""
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_KEY})
            except Exception:  # the session is gone already, and the lock with it
                pass
            finally:
                self._conn.close()
                self._conn = None
        if self._file is not None:
            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            finally:
                self._file.close()
                self._file = None
