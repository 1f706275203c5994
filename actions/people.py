"""Households, the in-app feed, what homeowners do with a notification, and the webhook outbox.

A mixin of ``ActionService`` (see ``core.ServiceCore`` for the state it uses).

Actions on a notification (``notification_action``):

* ``acknowledge`` — seen; ``snooze`` — back in the feed at ``snooze_until`` (at most ``SNOOZE_MAX``);
* ``done`` — "I fixed it": a ``fixed_by_homeowner`` label; a device-reported error's case closes
  (a predicted one closes when the predictions show the device recovered);
* ``book`` — a technician visit for that device, or a ticket when nobody can come;
* ``wrong`` — "this is wrong": a ``false_alarm`` label and the case closes;
* ``talk_to_person`` — always a ticket for a person at once (``human_only``: no automation
  answers or closes it), whatever the notification's state. Tapping twice returns the same ticket.
"""

from __future__ import annotations

import time

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from ingest.db import DeviceRow

from .context import device_info, readings_summary
from .core import ServiceCore, case_json, get_row
from .db import BookingRow, CaseRow, FeedRow, NotificationRow, OutboxRow, TicketRow
from .errors import InvalidState, NotFound
from .households import HouseholdPrefs, prefs_of, save_prefs
from .notify import SNOOZE_MAX, feed_event, release_held, wake_snoozed
from .records import Booking, FeedItem, Notification, NotificationActionResult, OutboxEntry, Ticket
from .scheduling import ACTIVE_BOOKING
from .tickets import open_ticket, record_label
from .webhook import WebhookSender, retry_delay, signed_headers

__all__ = ["NOTIFICATION_ACTIONS", "NotificationsMixin"]

NOTIFICATION_ACTIONS = frozenset({"acknowledge", "snooze", "done", "book", "wrong", "talk_to_person"})
_FINAL = frozenset({"done", "wrong", "dismissed"})
_LEGACY_STATUS = {"acknowledged": "acknowledge", "done": "done"}


class NotificationsMixin(ServiceCore):
    """Households, feed, notification actions and webhook delivery."""

    # -- households ---------------------------------------------------------------------------

    def upsert_household(self, prefs: HouseholdPrefs) -> HouseholdPrefs:
        """Create or replace a household's preferences (validated by ``HouseholdPrefs``)."""
        with self._sessions.begin() as s:
            return save_prefs(s, prefs, now=self._clock.now())

    def household(self, household_id: str) -> HouseholdPrefs:
        """A household's preferences (defaults when none were saved)."""
        with self._sessions() as s:
            return prefs_of(s, household_id)

    # -- feed -------------------------------------------------------------------------------

    def notifications_for_household(self, household_id: str) -> list[Notification]:
        """A household's delivered notifications, newest first (held ones are not shown yet)."""
        with self._sessions() as s:
            return [Notification._from_row(r) for r in s.scalars(
                select(NotificationRow).where(NotificationRow.household_id == household_id,
                                              NotificationRow.status != "held")
                .order_by(NotificationRow.created_at.desc(), NotificationRow.id.desc()))]

    def notification(self, notification_id: int, *, household_id: str | None = None) -> Notification:
        """One notification; NotFound when it does not exist or is not ``household_id``'s."""
        with self._sessions() as s:
            return Notification._from_row(self._own(s, notification_id, household_id))

    def feed_after(self, household_id: str, after_id: int = 0, *, limit: int = 100) -> list[FeedItem]:
        """Feed entries of the household after ``after_id``, oldest first (for SSE: ``id: feed_id``)."""
        if limit < 1:
            raise ValueError("limit must be positive")
        with self._sessions() as s:
            return [FeedItem._from_rows(feed, row) for feed, row in s.execute(
                select(FeedRow, NotificationRow).join(NotificationRow, NotificationRow.id == FeedRow.notification_id)
                .where(FeedRow.household_id == household_id, FeedRow.id > after_id)
                .order_by(FeedRow.id).limit(limit))]

    # -- what the homeowner does --------------------------------------------------------------

    def notification_action(self, notification_id: int, action: str, *, household_id: str | None = None,
                            snooze_until: datetime | None = None, message: str = "") -> NotificationActionResult:
        """Apply one homeowner action to a notification (see the module docstring)."""
        if action not in NOTIFICATION_ACTIONS:
            raise ValueError(f"unknown action {action!r}; known: {sorted(NOTIFICATION_ACTIONS)}")
        now = self._clock.now()
        if action == "snooze":
            if snooze_until is None or snooze_until.tzinfo is None:
                raise ValueError("snooze needs a timezone-aware snooze_until")
            if not now < snooze_until <= now + SNOOZE_MAX:
                raise ValueError(f"snooze_until must be in the future and at most {SNOOZE_MAX.days} days ahead")

        def work(s: Any) -> NotificationActionResult:
            # Write first: locks the row (SQLite: the database) so two taps run one after the other.
            s.execute(update(NotificationRow).where(NotificationRow.id == notification_id)
                      .values(status_at=NotificationRow.status_at))
            row = self._own(s, notification_id, household_id)
            if row.status == "held":
                raise InvalidState(f"notification {notification_id} has not been delivered yet")
            if action != "talk_to_person" and row.status in _FINAL:
                raise InvalidState(f"notification {notification_id} is {row.status}")
            offered = Notification._from_row(row).actions
            if action not in offered:
                raise InvalidState(f"notification {notification_id} offers {', '.join(offered)}, not {action}")
            ticket = booking = None
            if action == "acknowledge":
                row.status = "acknowledged"
            elif action == "snooze":
                row.status, row.snoozed_until = "snoozed", snooze_until
            elif action == "done":
                row.status = "done"
                self._homeowner_verdict(s, row, outcome="fixed_by_homeowner", note=message, now=now,
                                        close=row.code is not None)
            elif action == "wrong":
                row.status = "wrong"
                self._homeowner_verdict(s, row, outcome="false_alarm", note=message, now=now, close=True)
            elif action == "book":
                booking, ticket = self._book_for_notification(s, row, now=now)
                row.status = "booked"
                if booking is not None:
                    row.booking_id = booking.id
            else:
                ticket = self._talk_to_person(s, row, message=message, now=now)
                row.status, row.ticket_id = "talked", ticket.id
            row.status_at = now
            feed_event(s, row, "updated", now=now)
            s.flush()
            return NotificationActionResult(
                notification=Notification._from_row(row),
                ticket=Ticket._from_row(ticket) if ticket is not None else None,
                booking=Booking._from_row(booking) if booking is not None else None)

        return self._retrying(work)

    def set_notification_status(self, notification_id: int, status: str) -> Notification:
        """Older form of ``notification_action``: ``acknowledged``, ``done`` or ``dismissed``."""
        if status == "dismissed":
            with self._sessions.begin() as s:
                row = get_row(s, NotificationRow, notification_id, "notification")
                row.status, row.status_at = "dismissed", self._clock.now()
                feed_event(s, row, "updated", now=row.status_at)
                return Notification._from_row(row)
        if status not in _LEGACY_STATUS:
            raise ValueError(f"unknown notification status {status!r}")
        return self.notification_action(notification_id, _LEGACY_STATUS[status]).notification

    @staticmethod
    def _own(s: Any, notification_id: int, household_id: str | None) -> NotificationRow:
        row = s.get(NotificationRow, notification_id)
        if row is None or (household_id is not None and row.household_id != household_id):
            raise NotFound(f"notification {notification_id}")
        return row

    def _homeowner_verdict(self, s: Any, row: NotificationRow, *, outcome: str, note: str,
                           now: datetime, close: bool) -> None:
        device = s.get(DeviceRow, row.device_id)
        case = s.get(CaseRow, row.case_id) if row.case_id is not None else None
        record_label(s, device_id=row.device_id, kind=device.kind if device else (case.kind if case else ""),
                     mode=row.mode, source="homeowner", outcome=outcome, note=note[:2000], now=now,
                     case_id=row.case_id)
        if close and case is not None and case.status == "open":
            case.status, case.closed_at = "closed", now
            case.close_reason = f"homeowner: {outcome.replace('_', ' ')} (notification {row.id})"

    def _book_for_notification(self, s: Any, row: NotificationRow, *,
                               now: datetime) -> tuple[BookingRow | None, TicketRow | None]:
        existing = s.scalar(select(BookingRow).where(BookingRow.device_id == row.device_id,
                                                     BookingRow.mode == row.mode,
                                                     BookingRow.status.in_(ACTIVE_BOOKING)).limit(1))
        if existing is not None:
            return existing, None
        device = s.get(DeviceRow, row.device_id)
        case = s.get(CaseRow, row.case_id) if row.case_id is not None else None
        kind = device.kind if device else (case.kind if case else "")
        booking = self._book(s, device=device, kind=kind, mode=row.mode, deadline=row.due_by,
                             reason=f"homeowner asked for a visit: {row.title}", case_id=row.case_id, now=now)
        if booking is not None:
            self._notify_visit(s, booking, kind=kind, template="booking_booked", case_id=row.case_id, now=now)
            return booking, None
        ticket = open_ticket(
            s, category="failed_booking", priority="high", device_id=row.device_id,
            household_id=row.household_id, kind=kind, mode=row.mode, code=row.code, case_id=row.case_id,
            subject=f"Failed booking: no technician for {kind} {row.device_id} ({row.mode})", now=now,
            features=case.features if case else None, notification_id=row.id,
            context={"reason": "the homeowner asked for a visit and no qualified technician has a free slot",
                     "notification": _note_json(row), "device": device_info(device, row.device_id),
                     "readings": readings_summary(s, row.device_id, last_n=self._readings_in_context)})
        return None, ticket

    def _talk_to_person(self, s: Any, row: NotificationRow, *, message: str, now: datetime) -> TicketRow:
        if row.ticket_id is not None:
            existing = s.get(TicketRow, row.ticket_id)
            if existing is not None and existing.status == "open" and existing.human_only:
                if message.strip():  # a second tap adds what they said; nothing is lost
                    existing.context = {**existing.context, "messages": [
                        *existing.context.get("messages", []), {"at": now.isoformat(), "text": message[:2000]}]}
                return existing
        device = s.get(DeviceRow, row.device_id)
        case = s.get(CaseRow, row.case_id) if row.case_id is not None else None
        priority = "urgent" if row.severity == "safety" else "high"
        return open_ticket(
            s, category="customer_request", priority=priority, device_id=row.device_id,
            household_id=row.household_id, kind=device.kind if device else None, mode=row.mode,
            code=row.code, case_id=None, human_only=True, notification_id=row.id,
            features=case.features if case else None, now=now,
            subject=f"Customer asks for a person: {row.title}"[:200],
            context={"message": message[:2000],
                     "messages": [{"at": now.isoformat(), "text": message[:2000]}] if message.strip() else [],
                     "notification": _note_json(row),
                     "device": device_info(device, row.device_id),
                     "readings": readings_summary(s, row.device_id, last_n=self._readings_in_context),
                     "open_cases": [case_json(c) for c in s.scalars(select(CaseRow).where(
                         CaseRow.device_id == row.device_id, CaseRow.status == "open"))],
                     "reason": "the homeowner asked to talk to a person"})

    # -- housekeeping -------------------------------------------------------------------------

    def release_held_notifications(self) -> int:
        """Deliver the notifications quiet hours held, now that they are over; returns how many."""
        with self._sessions.begin() as s:
            return release_held(s, now=self._clock.now())

    def wake_snoozed_notifications(self) -> int:
        """Bring snoozed notifications back whose time has come; returns how many."""
        with self._sessions.begin() as s:
            return wake_snoozed(s, now=self._clock.now())

    def deliver_outbox(self, sender: WebhookSender, *, limit: int = 50) -> list[OutboxEntry]:
        """Send the webhook deliveries that are due, each signed; returns them as they ended up.

        Entries are claimed first (their next attempt pushed out by the lease) so that the HTTP
        requests run outside any transaction and a second runner would not send them twice.
        """
        now = self._clock.now()
        claimed: list[tuple[int, str, str, str | None]] = []
        with self._sessions.begin() as s:
            for row in s.scalars(select(OutboxRow).where(OutboxRow.status == "pending",
                                                         OutboxRow.next_attempt_at <= now)
                                 .order_by(OutboxRow.next_attempt_at, OutboxRow.id).limit(limit)):
                won = s.execute(update(OutboxRow).where(OutboxRow.id == row.id, OutboxRow.status == "pending",
                                                        OutboxRow.next_attempt_at <= now)
                                .values(next_attempt_at=now + self._retry.lease))
                if won.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append((row.id, row.url, row.body, prefs_of(s, row.household_id).webhook_secret))
        done = []
        for outbox_id, url, body, secret in claimed:
            if not secret:
                ok, error = False, "the household has no webhook secret any more"
            else:
                # Signed with the wall clock at the moment of sending: the receiver checks the
                # timestamp against its own clock, not our (possibly simulated) event time, and a
                # batch of slow sends must not carry a stamp minutes old.
                result = sender.send(url=url, body=body.encode(),
                                     headers=signed_headers(secret=secret, timestamp=int(time.time()),
                                                            body=body.encode()))
                ok, error = result.ok, result.error
            with self._sessions.begin() as s:
                row = get_row(s, OutboxRow, outbox_id, "outbox entry")
                row.attempts += 1
                if ok:
                    row.status, row.delivered_at, row.last_error = "delivered", now, None
                elif row.attempts >= self._retry.max_attempts or not secret:
                    row.status, row.last_error = "failed", error
                else:
                    row.last_error, row.next_attempt_at = error, now + retry_delay(row.attempts, self._retry)
                done.append(OutboxEntry._from_row(row))
        return done

    def outbox_for_household(self, household_id: str) -> list[OutboxEntry]:
        """A household's webhook deliveries, newest first."""
        with self._sessions() as s:
            return [OutboxEntry._from_row(r) for r in s.scalars(
                select(OutboxRow).where(OutboxRow.household_id == household_id)
                .order_by(OutboxRow.id.desc()))]


def _note_json(row: NotificationRow) -> dict[str, Any]:
    return {"notification_id": row.id, "title": row.title, "body": row.body, "severity": row.severity,
            "code": row.code, "mode": row.mode, "created_at": row.created_at.isoformat(),
            "status": row.status}
