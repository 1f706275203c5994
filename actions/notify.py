"""Making, holding, publishing and delivering homeowner notifications (inside the caller's transaction).

``create_notification`` renders a template in the household's language, asks the pure delivery
policy (``delivery.plan_delivery``) and either drops it (cooldown, storm cap), holds it (quiet
hours: status ``held``, ``deliver_at``) or publishes it. Publishing appends to the in-app feed and,
for households with the webhook channel, queues a signed delivery in the ``outbox``.
``release_held`` publishes what quiet hours held; ``deliver_outbox`` (in the service, outside any
transaction while the HTTP request is in flight) drains the outbox.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .db import FeedRow, NotificationRow, OutboxRow
from .delivery import DeliveryConfig, DeliveryPlan, PastAlert, Urgency, plan_delivery
from .households import HouseholdPrefs, prefs_of
from .templates import format_when, render

__all__ = ["SNOOZE_MAX", "NewNotification", "create_notification", "feed_event", "publish", "release_held",
           "wake_snoozed", "webhook_body"]

#: The longest a homeowner may snooze a notification.
SNOOZE_MAX = timedelta(days=14)

_ALERT_SEVERITIES = ("warning", "safety")
#: "By when" for an alert without a deadline.
_SOON = {"en": "as soon as you can", "zh": "尽快"}


@dataclass(frozen=True, slots=True, kw_only=True)
class NewNotification:
    """What to tell a household; ``values`` fill the template.

    Datetime values are formatted in the household's time zone and language; a mapping
    ``{"en": ..., "zh": ...}`` gives a text per language.
    """

    household_id: str
    device_id: str
    kind: str
    mode: str
    template: str
    urgency: Urgency
    values: dict[str, Any]
    case_id: int | None = None
    due_by: datetime | None = None
    code: str | None = None
    booking_id: int | None = None
    ticket_id: int | None = None
    #: Of no use after this time (a visit's start): quiet hours hold it at most until shortly before.
    act_by: datetime | None = None


def create_notification(s: Session, note: NewNotification, *, config: DeliveryConfig,
                        now: datetime) -> tuple[NotificationRow | None, DeliveryPlan]:
    """Render, plan and store one notification; ``(None, plan)`` when the policy suppressed it."""
    prefs = prefs_of(s, note.household_id)
    since = now - max(config.cooldown, config.storm_window)
    past = [PastAlert(device_id=d, mode=m, at=t) for d, m, t in s.execute(
        select(NotificationRow.device_id, NotificationRow.mode, NotificationRow.created_at)
        .where(NotificationRow.household_id == note.household_id,
               NotificationRow.severity.in_(_ALERT_SEVERITIES), NotificationRow.created_at > since))]
    plan = plan_delivery(device_id=note.device_id, mode=note.mode, urgency=note.urgency,
                         prefs=prefs.delivery, past=past, config=config, now=now, act_by=note.act_by)
    if not plan.send:
        return None, plan
    values = {k: _localise(v, prefs) for k, v in note.values.items()}
    if note.due_by is not None:
        values.setdefault("by_when", format_when(note.due_by, timezone=prefs.timezone, language=prefs.language))
    values.setdefault("by_when", _SOON.get(prefs.language, _SOON["en"]))
    title, body = render(note.template, prefs.language, kind=note.kind, mode=note.mode, **values)
    severity = {Urgency.SAFETY: "safety", Urgency.ALERT: "warning", Urgency.INFO: "info"}[note.urgency]
    row = NotificationRow(
        household_id=note.household_id, device_id=note.device_id, mode=note.mode, title=title, body=body,
        created_at=now, status="held" if plan.held else "new", case_id=note.case_id,
        template=note.template, language=prefs.language, severity=severity, code=note.code,
        due_by=note.due_by, deliver_at=plan.deliver_at if plan.held else None,
        booking_id=note.booking_id, ticket_id=note.ticket_id)
    s.add(row)
    s.flush()
    if not plan.held:
        publish(s, row, prefs, now=now)
    return row, plan


def _localise(value: Any, prefs: HouseholdPrefs) -> Any:
    # Times in the household's zone and language; {"en": ..., "zh": ...} texts in its language.
    if isinstance(value, datetime):
        return format_when(value, timezone=prefs.timezone, language=prefs.language)
    if isinstance(value, Mapping):
        return value.get(prefs.language) or value.get("en", "")
    return value


def publish(s: Session, row: NotificationRow, prefs: HouseholdPrefs, *, now: datetime) -> None:
    """Deliver in-app (feed) and queue the webhook delivery when the household has that channel."""
    row.delivered_at = now
    if row.status == "held":
        row.status = "new"
    feed_event(s, row, "created", now=now)
    if "webhook" in prefs.channels and prefs.webhook_url:
        s.add(OutboxRow(notification_id=row.id, household_id=row.household_id, channel="webhook",
                        url=prefs.webhook_url, body=webhook_body(row), status="pending", attempts=0,
                        next_attempt_at=now, created_at=now))


def feed_event(s: Session, row: NotificationRow, event: str, *, now: datetime) -> None:
    """Append to the household's feed (``created`` when delivered, ``updated`` on a change)."""
    s.add(FeedRow(household_id=row.household_id, notification_id=row.id, event=event, at=now))


def release_held(s: Session, *, now: datetime, limit: int = 1000) -> int:
    """Publish the notifications whose quiet-hours hold has ended; returns how many."""
    rows = list(s.scalars(select(NotificationRow).where(NotificationRow.status == "held",
                                                        NotificationRow.deliver_at <= now)
                          .order_by(NotificationRow.id).limit(limit)))
    prefs: dict[str, HouseholdPrefs] = {}
    released = 0
    for row in rows:
        # Conditional: a run that overlaps this one cannot publish the same notification twice.
        if not _claim(s, row.id, "held", {"status": "new"}):
            continue
        if row.household_id not in prefs:
            prefs[row.household_id] = prefs_of(s, row.household_id)
        publish(s, row, prefs[row.household_id], now=now)
        released += 1
    return released


def wake_snoozed(s: Session, *, now: datetime) -> int:
    """Snoozed notifications whose time has come are new again (and show in the feed); returns how many."""
    rows = list(s.scalars(select(NotificationRow).where(NotificationRow.status == "snoozed",
                                                        NotificationRow.snoozed_until <= now)))
    woken = 0
    for row in rows:
        if _claim(s, row.id, "snoozed", {"status": "new", "status_at": now, "snoozed_until": None}):
            feed_event(s, row, "updated", now=now)
            woken += 1
    return woken


def _claim(s: Session, notification_id: int, status: str, values: dict[str, Any]) -> bool:
    """Move one notification out of ``status`` unless someone else already did; True if we did."""
    result = s.execute(update(NotificationRow).where(NotificationRow.id == notification_id,
                                                     NotificationRow.status == status).values(values))
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def webhook_body(row: NotificationRow) -> str:
    """The JSON a webhook receives for one notification (compact, keys sorted: stable to sign)."""
    return json.dumps({
        "event": "notification.created", "notification_id": row.id, "household_id": row.household_id,
        "device_id": row.device_id, "mode": row.mode, "code": row.code, "severity": row.severity,
        "template": row.template, "language": row.language, "title": row.title, "body": row.body,
        "created_at": row.created_at.isoformat(),
        "due_by": row.due_by.isoformat() if row.due_by else None,
    }, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
