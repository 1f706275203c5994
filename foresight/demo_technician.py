"""The demo's simulated technicians: they complete each visit when it ends, finding what really happened.

Without them every demo booking ends as an ``overdue_booking`` ticket and no outcome ever becomes
a label. A simulated technician works through the same two calls the technician's app makes
(``GET /technicians/{id}/schedule`` → ``ActionService.technician_jobs``, ``POST …/complete`` →
``ActionService.complete_booking``), so the outcome is a ``labels`` row that ``actions.learning``
turns into a training label, like a real technician's.

What an inspection finds is the simulator's ground truth (``inspect``, pure): the mode already
failed (``part_replaced``), its wear is there and would make it fail soon (``confirmed_fault``),
or nothing (``no_fault_found``). Wear is hidden state the backend never sees; the simulator
reveals it only as the time the device fails, so the technicians consult a *shadow* of the demo's
fleet — built from the same seed, hence the same devices and the same failures — run ahead of
the demo clock by ``lookahead``. (The simulated appliance is not repaired: the simulator has no
such input, so a device can still fail after its visit.)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from actions import ActionsError, Booking
from devices_sim import Fleet, GroundTruth
from ingest.contract import get_profile

from .runtime import Runtime

__all__ = ["LOOKAHEAD", "LOOKBACK", "SimulatedTechnicians", "VisitFinding", "inspect"]

log = logging.getLogger(__name__)

#: Wear a technician can see: the mode would fail within this long after the visit.
LOOKAHEAD = timedelta(days=10)
#: A failure this recent, of the mode visited, is what the visit repairs.
LOOKBACK = timedelta(days=14)


@dataclass(frozen=True, slots=True, kw_only=True)
class VisitFinding:
    """What the technician found and records: the outcome, the parts used and a note."""

    outcome: str
    parts: tuple[str, ...]
    note: str


def inspect(truth: Sequence[GroundTruth], *, device_id: str, kind: str, mode: str, at: datetime,
            lookback: timedelta = LOOKBACK, lookahead: timedelta = LOOKAHEAD) -> VisitFinding:
    """What a visit to ``device_id`` about ``mode`` at ``at`` finds, by the simulator's ground truth.

    A visit about a device error (``error:<code>``) or without a failure mode looks at every mode
    of the kind. A failure in ``[at - lookback, at]`` → ``part_replaced``; one in
    ``(at, at + lookahead]`` → ``confirmed_fault``; none → ``no_fault_found``. Sensor faults are
    not failures of the appliance and are not counted.
    """
    try:
        modes = {m.name for m in get_profile(kind).failure_modes}
    except KeyError:  # an unregistered device: only the mode visited
        modes = set()
    looked_at = {mode} if mode in modes or not modes else modes
    failures = sorted((g for g in truth if g.what == "failure" and g.device_id == device_id
                       and g.mode in looked_at and at - lookback <= g.at <= at + lookahead),
                      key=lambda g: g.at)
    past = [g for g in failures if g.at <= at]
    if past:
        g = past[-1]
        words = g.mode.replace("_", " ")
        return VisitFinding(outcome="part_replaced", parts=(f"{words} part",),
                            note=f"Found it failed ({words}, {g.at:%d %b %H:%M} UTC); replaced the part.")
    if failures:
        g = failures[0]
        words = g.mode.replace("_", " ")
        return VisitFinding(outcome="confirmed_fault", parts=(),
                            note=f"Clear signs of {words}; it would have failed within "
                                 f"{(g.at - at).total_seconds() / 86400:.0f} days. Serviced it.")
    return VisitFinding(outcome="no_fault_found", parts=(), note="Checked it over: no fault found.")


class SimulatedTechnicians:
    """Technicians who complete every open visit of theirs once it has ended (``tick``, or a thread)."""

    def __init__(self, rt: Runtime, *, technician_ids: Sequence[str], shadow: Fleet,
                 lookahead: timedelta = LOOKAHEAD, poll_s: float = 0.1) -> None:
        self._rt = rt
        self._ids = tuple(technician_ids)
        self._shadow = shadow
        self._lookahead = lookahead
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.completed: list[Booking] = []

    def tick(self) -> list[Booking]:
        """Complete the visits whose end has come; returns them."""
        now = self._rt.clock.now()
        if self._shadow.until < now + self._lookahead:
            self._shadow.advance(now + self._lookahead)  # messages are not needed, only the truth
        truth = self._shadow.ground_truth
        done = []
        for technician_id in self._ids:
            for job in self._rt.actions.technician_jobs(technician_id):
                visit = job.booking
                if visit.end > now:
                    continue
                finding = inspect(truth, device_id=visit.device_id, kind=str(job.device.get("kind") or ""),
                                  mode=visit.mode, at=visit.end)
                try:
                    done.append(self._rt.actions.complete_booking(
                        visit.booking_id, finding.note, outcome=finding.outcome, parts=finding.parts,
                        actor=f"simulated:{technician_id}"))
                except ActionsError as exc:  # cancelled or completed by a person meanwhile
                    log.info("simulated technician skipped visit %s: %s", visit.booking_id, exc)
        self.completed.extend(done)
        return done

    def start(self) -> None:
        """Work in a background thread, polling every ``poll_s`` real seconds."""
        self._thread = threading.Thread(target=self._run, name="demo-technicians", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (the visit in hand is finished first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._poll_s):
            try:
                self.tick()
            except Exception:  # the demo goes on; the next tick tries again
                log.exception("simulated technicians failed")
