"""APScheduler (3.x) jobs of the actions package, and their registration.

Jobs are module-level functions that take only a service *name*: ``register_jobs`` keeps the
``ActionService`` (and the webhook sender) in a module-level registry under that name and the
scheduler stores just the string. Passing the service itself through ``args=`` works with the
in-memory job store but not with a persistent one (APScheduler pickles job args, and a service
holding an engine and a session factory neither pickles nor would mean anything after a
restart); a name works with both. Every job has an explicit id and is added with
``replace_existing=True``, so a process that restarts on a persistent store replaces its jobs
instead of adding copies.

Exactly one place: the composition root builds one scheduler, in the process that runs the
background work (``foresight serve`` / the demo), and calls ``register_jobs`` once. The jobs are
idempotent besides (a reminded booking has ``reminded_at``, a handled event a row in
``event_actions``, an outbox entry is claimed before it is sent), so a job that runs twice, or
overlaps a restart, does nothing twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from .service import ActionService
from .webhook import HttpWebhookSender, WebhookSender

__all__ = [
    "JOBS",
    "close_recovered_cases",
    "deliver_webhooks",
    "escalate_tickets",
    "mark_due_bookings",
    "mark_overdue_bookings",
    "process_device_events",
    "register_jobs",
    "release_held_notifications",
    "send_booking_reminders",
    "unregister_jobs",
    "wake_snoozed_notifications",
]


_SERVICES: dict[str, tuple[ActionService, WebhookSender]] = {}
_LOCK = threading.Lock()


class _Scheduler(Protocol):
    def add_job(self, func: object, trigger: str, **kwargs: object) -> object: ...

    def remove_job(self, job_id: str) -> None: ...


def _service(name: str) -> ActionService:
    return _registered(name)[0]


def _registered(name: str) -> tuple[ActionService, WebhookSender]:
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


def release_held_notifications(service_name: str) -> int:
    """Job: deliver what quiet hours held, once they are over."""
    return _service(service_name).release_held_notifications()


def wake_snoozed_notifications(service_name: str) -> int:
    """Job: snoozed notifications whose time has come are shown again."""
    return _service(service_name).wake_snoozed_notifications()


def deliver_webhooks(service_name: str) -> int:
    """Job: send the due webhook deliveries from the outbox; returns how many were delivered."""
    service, sender = _registered(service_name)
    return sum(1 for entry in service.deliver_outbox(sender) if entry.status == "delivered")


def send_booking_reminders(service_name: str) -> int:
    """Job: remind households of visits coming up."""
    return _service(service_name).send_booking_reminders()


def mark_overdue_bookings(service_name: str) -> int:
    """Job: visits that ended without an outcome become overdue, each with a ticket."""
    return _service(service_name).mark_overdue_bookings()


def escalate_tickets(service_name: str) -> int:
    """Job: escalate open tickets past their SLA deadline."""
    return len(_service(service_name).escalate_tickets())


def process_device_events(service_name: str) -> int:
    """Job: act on the error codes devices reported."""
    return len(_service(service_name).process_device_events())


#: Every job, in the order they are registered.
JOBS: tuple[Callable[[str], int], ...] = (
    mark_due_bookings, close_recovered_cases, process_device_events, release_held_notifications,
    wake_snoozed_notifications, deliver_webhooks, send_booking_reminders, mark_overdue_bookings,
    escalate_tickets,
)


def _job_id(func: object, name: str) -> str:
    return f"actions.{getattr(func, '__name__')}:{name}"


def register_jobs(scheduler: _Scheduler, *, service: ActionService, interval_s: float,
                  name: str = "default", sender: WebhookSender | None = None) -> list[str]:
    """Register the actions jobs on ``scheduler`` to run every ``interval_s`` seconds; returns job ids.

    ``sender`` delivers webhooks (``HttpWebhookSender`` when not given).
    """
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    with _LOCK:
        _SERVICES[name] = (service, sender or HttpWebhookSender())
    ids = []
    for func in JOBS:
        job_id = _job_id(func, name)
        scheduler.add_job(func, "interval", seconds=interval_s, args=[name], id=job_id,
                          replace_existing=True, coalesce=True, max_instances=1)
        ids.append(job_id)
    return ids


def unregister_jobs(scheduler: _Scheduler, *, name: str = "default") -> None:
    """Remove the jobs registered under ``name`` (those still there) and forget its service."""
    for func in JOBS:
        try:
            scheduler.remove_job(_job_id(func, name))
        except LookupError:  # APScheduler's JobLookupError is a KeyError
            pass
    with _LOCK:
        _SERVICES.pop(name, None)
