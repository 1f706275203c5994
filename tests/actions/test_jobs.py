"""Scheduler jobs: registration on a real APScheduler, and the jobs' effects."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from actions import ActionService, jobs, register_jobs, unregister_jobs
from ingest.clock import ManualClock

from .helpers import near, prediction

H = timedelta(hours=1)
AC = dict(device_id="ac-1", kind="air_conditioner", mode="filter_clogging")


def test_register_jobs_uses_explicit_ids_and_replaces(service: ActionService) -> None:
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.start(paused=True)
    try:
        ids = register_jobs(scheduler, service=service, interval_s=60, name="t1")
        again = register_jobs(scheduler, service=service, interval_s=30, name="t1")
        assert ids == again == [f"actions.{f.__name__}:t1" for f in jobs.JOBS]
        assert "actions.deliver_webhooks:t1" in ids and "actions.escalate_tickets:t1" in ids
        assert sorted(j.id for j in scheduler.get_jobs()) == sorted(ids)
        assert all(j.args == ("t1",) for j in scheduler.get_jobs())
        assert {j.trigger.interval for j in scheduler.get_jobs()} == {timedelta(seconds=30)}
        unregister_jobs(scheduler, name="t1")
        assert scheduler.get_jobs() == []
    finally:
        scheduler.shutdown(wait=False)
    with pytest.raises(LookupError):
        jobs.mark_due_bookings("t1")
    with pytest.raises(ValueError):
        register_jobs(scheduler, service=service, interval_s=0)


def test_job_functions_act_through_the_named_service(service: ActionService, clock: ManualClock) -> None:
    scheduler = BackgroundScheduler(timezone="UTC")
    register_jobs(scheduler, service=service, interval_s=60, name="t2")
    try:
        [booked] = service.handle([near(ts=clock.now(), **AC)])
        [noted] = service.handle([near(ts=clock.now())])
        clock.advance(9 * H)  # the visit at 08:00 has begun
        for _ in range(4):
            service.handle([prediction(ts=clock.now())])
            clock.advance(8 * H)
        assert jobs.mark_due_bookings("t2") == 1
        assert jobs.close_recovered_cases("t2") == 1
        assert service.booking(booked.booking_id).status == "due"  # type: ignore[arg-type]
        assert service.device_cases("rc-1")[0].status == "closed"
    finally:
        unregister_jobs(scheduler, name="t2")


def test_jobs_run_on_a_started_scheduler(service: ActionService, clock: ManualClock) -> None:
    [booked] = service.handle([near(ts=clock.now(), **AC)])
    clock.advance(9 * H)
    scheduler = BackgroundScheduler(timezone="UTC")
    register_jobs(scheduler, service=service, interval_s=0.05, name="t3")
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while service.booking(booked.booking_id).status != "due" and time.monotonic() < deadline:  # type: ignore[arg-type]
            time.sleep(0.02)
        assert service.booking(booked.booking_id).status == "due"  # type: ignore[arg-type]
    finally:
        unregister_jobs(scheduler, name="t3")
        scheduler.shutdown(wait=True)


def test_jobs_live_in_a_persistent_store_once(service: ActionService, engine) -> None:  # type: ignore[no-untyped-def]
    """On the database's job store (table from the migrations): a restart replaces, never duplicates."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from sqlalchemy import func, select

    from actions.db import SCHEDULER_JOBS

    def scheduler() -> BackgroundScheduler:
        s = BackgroundScheduler(timezone="UTC")
        s.add_jobstore(SQLAlchemyJobStore(engine=engine, tablename="apscheduler_jobs"), "default")
        s.start(paused=True)
        return s

    first = scheduler()
    try:
        ids = register_jobs(first, service=service, interval_s=60, name="p1")
    finally:
        first.shutdown(wait=False)
    second = scheduler()  # "after a restart"
    try:
        assert sorted(j.id for j in second.get_jobs()) == sorted(ids)  # found in the database
        register_jobs(second, service=service, interval_s=30, name="p1")
        assert len(second.get_jobs()) == len(ids)
        assert {j.trigger.interval for j in second.get_jobs()} == {timedelta(seconds=30)}
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(SCHEDULER_JOBS)) == len(ids)
        unregister_jobs(second, name="p1")
        assert second.get_jobs() == []
    finally:
        second.shutdown(wait=False)

