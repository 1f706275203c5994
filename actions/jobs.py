"""APScheduler (3.x) jobs of the actions package, and their registration.

Jobs are module-level functions that take only a service *name*: ``register_jobs`` keeps the
``ActionService`` in a module-level registry under that name and the scheduler stores just the
string. Passing the service itself through ``args=`` works with the in-memory job store but not
with a persistent one (APScheduler pickles job args, and a service holding an engine and a
session factory neither pickles nor would mean anything after a restart); a name works with both.
The composition root builds the scheduler and calls ``register_jobs`` once per process.
"""

from __future__ import annotations

import threading
from typing import Protocol

from .service import ActionService

__all__ = ["close_recovered_cases", "mark_due_bookings", "register_jobs", "unregister_jobs"]

_SERVICES: dict[str, ActionService] = {}
_LOCK = threading.Lock()


class _Scheduler(Protocol):
    def add_job(self, func: object, trigger: str, **kwargs: object) -> object: ...

    def remove_job(self, job_id: str) -> None: ...


def _service(name: str) -> ActionService:
    with _LOCK:
        try:
            return _SERVICES[name]
        except KeyError:
            raise LookupError(f"no ActionService registered as {name!r}; call register_jobs") from None


def mark_due_bookings(service_name: str) -> int:
    """Job: scheduled bookings whose start has come become due."""
    return _service(service_name).mark_due_bookings()


def close_recovered_cases(service_name: str) -> int:
    """Job: close the open cases of devices that have recovered."""
    return len(_service(service_name).close_recovered_cases())


_JOBS = (mark_due_bookings, close_recovered_cases)


def _job_id(func: object, name: str) -> str:
    return f"actions.{getattr(func, '__name__')}:{name}"


def register_jobs(scheduler: _Scheduler, *, service: ActionService, interval_s: float,
                  name: str = "default") -> list[str]:
    """Register the actions jobs on ``scheduler`` to run every ``interval_s`` seconds; returns job ids."""
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    with _LOCK:
        _SERVICES[name] = service
    ids = []
    for func in _JOBS:
        job_id = _job_id(func, name)
        scheduler.add_job(func, "interval", seconds=interval_s, args=[name], id=job_id,
                          replace_existing=True, coalesce=True, max_instances=1)
        ids.append(job_id)
    return ids


def unregister_jobs(scheduler: _Scheduler, *, name: str = "default") -> None:
    """Remove the jobs registered under ``name`` (those still there) and forget its service."""
    for func in _JOBS:
        try:
            scheduler.remove_job(_job_id(func, name))
        except LookupError:  # APScheduler's JobLookupError is a KeyError
            pass
    with _LOCK:
        _SERVICES.pop(name, None)
