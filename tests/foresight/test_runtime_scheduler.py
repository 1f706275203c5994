"""The runtime's scheduler keeps its jobs in the database: one copy each, found again after a restart."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from actions.db import SCHEDULER_JOBS
from actions.jobs import JOBS
from foresight.runtime import build_runtime
from foresight.settings import Settings
from ingest.clock import ManualClock
from tests.conftest import START


def test_jobs_persist_in_the_database_once(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'f.db'}", model_dir=tmp_path / "models",
                        score_interval_s=60)
    expected = {"foresight.score_pending", "foresight.roll_up_readings", "foresight.retrain", "foresight.drift",
                "foresight.jobs_lease",
                *(f"actions.{f.__name__}:default" for f in JOBS)}
    for _ in range(2):  # start, stop, start again: a restart
        rt = build_runtime(settings, clock=ManualClock(START))
        try:
            scheduler = rt.start_scheduler()
            assert {j.id for j in scheduler.get_jobs()} == expected
            with rt.engine.connect() as conn:
                assert conn.scalar(select(func.count()).select_from(SCHEDULER_JOBS)) == len(expected)
        finally:
            rt.stop()
            rt.engine.dispose()
