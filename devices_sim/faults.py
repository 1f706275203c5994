"""What goes wrong between an appliance's physics and the backend, without the appliance failing.

* **Sensor faults** (ground truth ``what="sensor_fault"``): from its onset one metric's sensor is
  ``stuck`` (repeats its first faulty value), ``spiking`` (about one reading in six is a wild value,
  several times too high or too low) or ``drifting`` (an offset that grows by 1.5-4 % of the value
  per day). The appliance itself is fine; acting on these readings would be a false alert.
* **Dropped metrics**: now and then one metric is missing from a reading (a sensor read timed out).
* **Network outages**: the home's connection is down for 2-36 hours; readings taken meanwhile are
  buffered by the device and delivered, late and in a burst, when it comes back.

All randomness comes from a generator of its own per device, so none of this moves a planted
failure (see ``physics``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import numpy as np

from ingest.contract import get_profile

__all__ = ["FAULT_MODES", "FaultKind", "NetworkTrouble", "SensorFault", "draw_sensor_fault"]

FaultKind = Literal["stuck", "spiking", "drifting"]
#: Ground-truth ``mode`` of each sensor fault kind.
FAULT_MODES: dict[str, str] = {"stuck": "stuck_sensor", "spiking": "spiking_sensor",
                               "drifting": "drifting_sensor"}

_SPIKE_PROB = 1 / 6


@dataclass(slots=True)
class SensorFault:
    """One faulty sensor on one device: which metric, what kind, from when."""

    kind: str
    metric: str
    fault: FaultKind
    onset: datetime
    drift_per_day: float = 0.0
    started: datetime | None = None
    stuck_value: float | None = None

    def apply(self, at: datetime, value: float, rng: np.random.Generator) -> tuple[float, bool]:
        """The value the faulty sensor reports at ``at`` and whether this is the fault's first reading."""
        if at < self.onset:
            return value, False
        first = self.started is None
        if first:
            self.started = at
        if self.fault == "stuck":
            if self.stuck_value is None:
                self.stuck_value = value
            return self.stuck_value, first
        spec = get_profile(self.kind).metric(self.metric)
        if self.fault == "spiking":
            if first or rng.uniform() < _SPIKE_PROB:  # the first faulty reading is always a spike
                factor = rng.uniform(2.0, 4.0) if rng.uniform() < 0.7 else rng.uniform(0.1, 0.4)
                value = value * factor if value else spec.high * 0.5
        else:
            assert self.started is not None
            days = (at - self.started).total_seconds() / 86400.0
            value = value * (1 + self.drift_per_day * days)
        return float(round(min(max(value, spec.low), spec.high), 3)), first


def draw_sensor_fault(*, kind: str, metric: str, fault: FaultKind, onset: datetime,
                      rng: np.random.Generator) -> SensorFault:
    """A sensor fault; a drift's direction and speed are drawn from ``rng``."""
    drift = float(rng.uniform(0.015, 0.04)) * (1 if rng.uniform() < 0.5 else -1)
    return SensorFault(kind=kind, metric=metric, fault=fault, onset=onset,
                       drift_per_day=drift if fault == "drifting" else 0.0)


@dataclass(slots=True)
class NetworkTrouble:
    """A device's flaky connection: drops single metrics and has outages that delay delivery."""

    metric_drop_prob: float
    outage_per_day: float
    _rng: np.random.Generator
    _outage_start: datetime | None = None
    _outage_until: datetime | None = None
    _checked_day: datetime | None = None

    def drop(self, metrics: dict[str, float]) -> dict[str, float]:
        """The reading as sent: now and then one metric is missing (never all of them)."""
        if len(metrics) > 1 and self._rng.uniform() < self.metric_drop_prob:
            names = sorted(metrics)
            gone = names[int(self._rng.integers(len(names)))]
            return {k: v for k, v in metrics.items() if k != gone}
        return metrics

    def delivered_at(self, at: datetime) -> datetime:
        """When a message stamped ``at`` reaches the broker (``at`` itself unless an outage holds it)."""
        day = datetime(at.year, at.month, at.day, tzinfo=at.tzinfo)
        while self._checked_day is None or self._checked_day < day:
            self._checked_day = day if self._checked_day is None else self._checked_day + timedelta(days=1)
            if self._rng.uniform() < self.outage_per_day:
                start = self._checked_day + timedelta(hours=float(self._rng.uniform(0, 24)))
                end = start + timedelta(hours=float(self._rng.uniform(2, 36)))
                if self._outage_until is None or end > self._outage_until:
                    self._outage_start, self._outage_until = start, end
        if (self._outage_start is not None and self._outage_until is not None
                and self._outage_start <= at < self._outage_until):
            return self._outage_until
        return at
