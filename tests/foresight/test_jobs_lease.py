"""Background jobs run in exactly one process per database; a standby takes over when it stops."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from foresight.jobs_lease import JobsLease
from foresight.runtime import build_runtime
from foresight.settings import Settings
from ingest.clock import ManualClock
from ingest.db import make_engine
from tests.conftest import START
from tests.services import BACKENDS, Postgres, fresh_engine


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with fresh_engine(request, tmp_path) as eng:
        yield eng


def test_one_holder_at_a_time_and_the_lease_comes_back(engine: Engine) -> None:
    other = make_engine(engine.url.render_as_string(hide_password=False))  # another process's pool
    try:
        first, second = JobsLease(engine), JobsLease(other)
        assert first.try_acquire()
        assert first.try_acquire()  # holding it already: still ours
        assert not second.try_acquire()
        first.release()
        assert second.try_acquire()
        assert not first.try_acquire()
        second.release()
        second.release()  # idempotent
    finally:
        other.dispose()


def test_a_second_process_stands_by_and_takes_over(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'f.db'}", model_dir=tmp_path / "models",
                        score_interval_s=60, scheduler_standby_retry_s=0.05)
    leader = build_runtime(settings, clock=ManualClock(START))
    standby = build_runtime(settings, clock=ManualClock(START))
    try:
        assert leader.start_scheduler() is not None
        assert standby.start_scheduler() is None  # the jobs already run in the leader
        assert standby.scheduler is None
        leader.stop()
        took_over = threading.Event()
        for _ in range(200):  # bounded: up to 10 s
            if standby.scheduler is not None:
                took_over.set()
                break
            took_over.wait(0.05)
        assert took_over.is_set()
        assert "foresight.score_pending" in {j.id for j in standby.scheduler.get_jobs()}  # type: ignore[union-attr]
    finally:
        standby.stop()
        leader.stop()
        leader.engine.dispose()
        standby.engine.dispose()


@pytest.mark.postgres
def test_a_holder_whose_database_session_is_cut_stops_its_jobs_and_takes_the_lease_again(
        postgres: Postgres, tmp_path: Path) -> None:
    """PostgreSQL frees an advisory lock with its session; the holder must notice, not run on blind."""
    settings = Settings(database_url=postgres.create_database(), model_dir=tmp_path / "models",
                        score_interval_s=60, scheduler_standby_retry_s=0.05)
    rt = build_runtime(settings, clock=ManualClock(START))
    try:
        first = rt.start_scheduler()
        assert first is not None
        with rt.engine.connect() as conn:  # an operator (or a failover) kills the lease's session
            cut = conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_locks "
                                    "WHERE locktype = 'advisory' AND granted")).scalars().all()
        assert cut == [True]
        waited = threading.Event()
        for _ in range(200):  # bounded: up to 10 s
            if rt.scheduler is not None and rt.scheduler is not first:
                break
            waited.wait(0.05)
        assert rt.scheduler is not None and rt.scheduler is not first  # stopped, stood by, took it again
        assert not first.running
    finally:
        rt.stop()
        rt.engine.dispose()
