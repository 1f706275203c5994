"""A seeded fleet of simulated appliances whose degradation shows in the telemetry they send.

``Fleet.build`` makes a realistic mixed fleet; ``Fleet.from_scenarios`` makes explicit devices for
tests. ``Fleet.advance(until)`` returns every message due up to ``until`` in timestamp order. A
device's history depends only on the fleet seed and its own id, never on how ``until`` is chunked:
each device simulates whole UTC days on demand from its own generators and hands out what is due.
"""

from __future__ import annotations

import zlib
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np

from ingest.contract import Event, Telemetry, get_profile

from .errors import ScenarioError
from .physics import PHYSICS, Household, KindPhysics, Pace, draw_household

__all__ = ["DeviceSpec", "Fleet", "GroundTruth", "Message", "Scenario"]

Message = Telemetry | Event

SERVICE_AREAS: tuple[str, ...] = ("SE1", "N7", "E2")
FIRMWARE: tuple[tuple[str, float], ...] = (("1.4.2", 0.5), ("1.5.0", 0.3), ("2.0.1", 0.2))
_DAY = timedelta(days=1)
_STUCK_SENSOR = "stuck_sensor"


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """One explicitly configured device: which failure to plant (or none), and an optional stuck sensor.

    ``mode=None`` is a healthy device (degradation so slow nothing fails for months). With a mode,
    the hidden state is tuned so that failure lands close to ``start + fails_after``; the exact time
    is whatever the simulation produces and is reported in ``Fleet.ground_truth``.
    """

    device_id: str
    kind: str
    mode: str | None = None
    fails_after: timedelta | None = None
    stuck_metric: str | None = None
    stuck_after: timedelta | None = None
    model: str | None = None
    firmware: str = "1.4.2"
    household_id: str | None = None
    service_area: str = "SE1"

    def __post_init__(self) -> None:
        if self.kind not in PHYSICS:
            raise ScenarioError(f"{self.device_id}: unknown kind {self.kind!r}, one of {sorted(PHYSICS)}")
        profile = get_profile(self.kind)
        if self.mode is not None:
            profile_modes = [m.name for m in profile.failure_modes]
            if self.mode not in profile_modes:
                raise ScenarioError(f"{self.device_id}: {self.kind} has no mode {self.mode!r} ({profile_modes})")
            if self.fails_after is None or self.fails_after <= timedelta(0):
                raise ScenarioError(f"{self.device_id}: mode {self.mode!r} needs a positive fails_after")
        elif self.fails_after is not None:
            raise ScenarioError(f"{self.device_id}: fails_after given without a mode")
        if (self.stuck_metric is None) != (self.stuck_after is None):
            raise ScenarioError(f"{self.device_id}: give both stuck_metric and stuck_after, or neither")
        if self.stuck_metric is not None and self.stuck_metric not in profile.metric_names:
            raise ScenarioError(f"{self.device_id}: {self.kind} has no metric {self.stuck_metric!r}")
        if self.stuck_after is not None and self.stuck_after < timedelta(0):
            raise ScenarioError(f"{self.device_id}: stuck_after must not be negative")
        if self.model is not None and self.model not in profile.models:
            raise ScenarioError(f"{self.device_id}: {self.kind} has no model {self.model!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceSpec:
    """A simulated device as the backend may know it, plus the hidden ``scenario`` planted in it.

    ``scenario`` is None for a device that simply ages with its household (``Fleet.build``).
    """

    device_id: str
    kind: str
    model: str
    firmware: str
    household_id: str
    service_area: str
    scenario: Scenario | None = None

    def manifest_row(self) -> dict[str, str]:
        """What an installer registers: no hidden scenario."""
        return {"device_id": self.device_id, "kind": self.kind, "model": self.model,
                "firmware": self.firmware, "household_id": self.household_id,
                "service_area": self.service_area}


@dataclass(frozen=True, slots=True, kw_only=True)
class GroundTruth:
    """Something that really happened to a device: a failure (by mode) or a sensor fault."""

    device_id: str
    kind: str
    mode: str
    at: datetime
    what: Literal["failure", "sensor_fault"]
    #: The stuck metric, for sensor faults.
    metric: str | None = None


def _utc(when: datetime, name: str) -> datetime:
    if when.tzinfo is None:
        raise ScenarioError(f"{name} must be timezone-aware")
    return when.astimezone(UTC)


def _seed(seed: int, *key: int) -> np.random.SeedSequence:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ScenarioError(f"seed must be a non-negative int, got {seed!r}")
    return np.random.SeedSequence(seed, spawn_key=key)


def _key(text: str) -> int:
    return zlib.crc32(text.encode())


class _Device:
    """One device's running simulation: unit, hidden state, its two generators and undelivered output."""

    __slots__ = ("spec", "_physics", "_unit", "_state", "_plan_rng", "_step_rng", "_start", "_day",
                 "_seq", "_outbox", "_truths", "_stuck_metric", "_stuck_at", "_stuck_value")

    def __init__(self, *, spec: DeviceSpec, physics: KindPhysics, unit: Any, state: Any,
                 plan_seed: np.random.SeedSequence, step_seed: np.random.SeedSequence,
                 start: datetime, stuck_metric: str | None, stuck_at: datetime | None) -> None:
        self.spec, self._physics, self._unit, self._state = spec, physics, unit, state
        self._plan_rng = np.random.default_rng(plan_seed)
        self._step_rng = np.random.default_rng(step_seed)
        self._start, self._day = start, start.date()
        self._seq = 0
        self._outbox: deque[Message] = deque()
        self._truths: deque[GroundTruth] = deque()
        self._stuck_metric, self._stuck_at, self._stuck_value = stuck_metric, stuck_at, None

    def simulate_through(self, until: datetime) -> None:
        """Simulate every whole day that can hold a message at or before ``until``."""
        # A day's runs all start after its midnight and end before the next day's first run.
        while datetime(self._day.year, self._day.month, self._day.day, tzinfo=UTC) <= until:
            self._simulate_day()
            self._day += _DAY

    def _simulate_day(self) -> None:
        spec, physics = self.spec, self._physics
        for at in physics.plan_day(self._unit, self._day, self._plan_rng):
            if at <= self._start:
                continue
            self._state, step = physics.step(self._unit, self._state, at, self._step_rng)
            if step is None:
                continue
            if step.failure is not None:
                self._truths.append(GroundTruth(device_id=spec.device_id, kind=spec.kind,
                                                mode=step.failure, at=step.at, what="failure"))
            if step.metrics is not None:
                self._outbox.append(Telemetry(
                    device_id=spec.device_id, kind=spec.kind, model=spec.model, firmware=spec.firmware,
                    seq=self._next_seq(), ts=step.at, metrics=self._sense(step.at, step.metrics)))
            if step.error_code is not None:
                self._outbox.append(Event(device_id=spec.device_id, kind=spec.kind, seq=self._next_seq(),
                                          ts=step.at, event="error", code=step.error_code))

    def _sense(self, at: datetime, metrics: dict[str, float]) -> dict[str, float]:
        """Apply a stuck sensor: from its first reading at or after ``stuck_at`` it repeats that value."""
        metric = self._stuck_metric
        if metric is None or self._stuck_at is None or at < self._stuck_at:
            return metrics
        if self._stuck_value is None:
            self._stuck_value = metrics[metric]
            self._truths.append(GroundTruth(device_id=self.spec.device_id, kind=self.spec.kind,
                                            mode=_STUCK_SENSOR, at=at, what="sensor_fault", metric=metric))
        return {**metrics, metric: self._stuck_value}

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    def take_due(self, until: datetime) -> tuple[list[Message], list[GroundTruth]]:
        """Hand out the messages and ground truth stamped at or before ``until``."""
        msgs, truths = [], []
        while self._outbox and self._outbox[0].ts <= until:
            msgs.append(self._outbox.popleft())
        while self._truths and self._truths[0].at <= until:
            truths.append(self._truths.popleft())
        return msgs, truths


class Fleet:
    """A fleet of simulated appliances advanced in simulated time; see the module docstring."""

    __slots__ = ("start", "seed", "_devices", "_until", "_truth")

    def __init__(self, *, start: datetime, seed: int, devices: list[_Device]) -> None:
        """Use ``Fleet.build`` or ``Fleet.from_scenarios``."""
        self.start, self.seed = start, seed
        self._devices = devices
        self._until = start
        self._truth: list[GroundTruth] = []

    # ---------------------------------------------------------------------------------------------
    @classmethod
    def build(cls, *, n_devices: int, seed: int, start: datetime, mix: dict[str, float] | None = None,
              initial_wear: str = "mixed", plant_after: timedelta = timedelta(0)) -> Fleet:
        """A realistic fleet: kinds mixed by ``mix`` (default equal), homes with 1–2 devices.

        ``initial_wear="mixed"``: appliances of mixed age; about 20 % are planted to fail 3.5–11
        days after ``start + plant_after``, about 4 % get a stuck sensor within the first week after
        it, the rest age naturally from a random age (none fails in the first two weeks; later,
        natural failures keep coming). ``"new"``: everything fresh, nothing planted.
        ``plant_after`` lets a caller start the fleet early — appliances already in service with a
        history when the backend starts watching — without moving the planted events into it.
        """
        if plant_after < timedelta(0):
            raise ScenarioError("plant_after must not be negative")
        start = _utc(start, "start")
        if n_devices < 0:
            raise ScenarioError("n_devices must not be negative")
        if initial_wear not in ("mixed", "new"):
            raise ScenarioError(f"initial_wear must be 'mixed' or 'new', got {initial_wear!r}")
        rng = np.random.default_rng(_seed(seed, 0))
        kinds = _split_kinds(n_devices, mix if mix is not None else dict.fromkeys(PHYSICS, 1.0))
        rng.shuffle(kinds)

        households: list[tuple[str, str]] = []
        while len(households) < n_devices:
            hh = (f"hh-{len(households) + 1:04d}", str(rng.choice(SERVICE_AREAS)))
            households.extend([hh] * (1 if rng.uniform() < 0.5 else 2))
        households = households[:n_devices]

        planted: dict[int, tuple[str, timedelta]] = {}
        stuck: dict[int, tuple[str, timedelta]] = {}
        if initial_wear == "mixed" and n_devices:
            order = [int(i) for i in rng.permutation(n_devices)]
            n_plant = round(0.2 * n_devices)
            n_stuck = max(1, round(0.04 * n_devices)) if n_devices >= 5 else 0
            for i in order[:n_plant]:
                modes = get_profile(kinds[i]).failure_modes
                planted[i] = (modes[int(rng.integers(len(modes)))].name,
                              plant_after + timedelta(days=float(rng.uniform(3.5, 11.0))))
            for i in order[n_plant:n_plant + n_stuck]:
                candidates = PHYSICS[kinds[i]].stuck_candidates
                stuck[i] = (candidates[int(rng.integers(len(candidates)))],
                            plant_after + timedelta(days=float(rng.uniform(1.0, 7.0))))

        devices = []
        for i, kind in enumerate(kinds):
            profile = get_profile(kind)
            device_id = f"{PHYSICS[kind].id_prefix}-{i + 1:04d}"
            mode, fails_after = planted.get(i, (None, None))
            stuck_metric, stuck_after = stuck.get(i, (None, None))
            scenario = None
            if mode is not None or stuck_metric is not None:
                scenario = Scenario(device_id=device_id, kind=kind, mode=mode, fails_after=fails_after,
                                    stuck_metric=stuck_metric, stuck_after=stuck_after)
            spec = DeviceSpec(
                device_id=device_id, kind=kind,
                model=str(profile.models[int(rng.integers(len(profile.models)))]),
                firmware=str(rng.choice([f for f, _ in FIRMWARE], p=[p for _, p in FIRMWARE])),
                household_id=households[i][0], service_area=households[i][1], scenario=scenario)
            devices.append(_make_device(spec=spec, seed=seed, start=start, scenario=scenario,
                                        natural_age=initial_wear == "mixed"))
        return cls(start=start, seed=seed, devices=devices)

    @classmethod
    def from_scenarios(cls, *, start: datetime, seed: int, scenarios: list[Scenario]) -> Fleet:
        """A fleet of exactly the given devices, for tests and demos with a script."""
        start = _utc(start, "start")
        ids = [s.device_id for s in scenarios]
        if len(set(ids)) != len(ids):
            raise ScenarioError("device ids must be unique")
        devices = []
        for sc in scenarios:
            profile = get_profile(sc.kind)
            spec = DeviceSpec(device_id=sc.device_id, kind=sc.kind, model=sc.model or profile.models[0],
                              firmware=sc.firmware, household_id=sc.household_id or f"hh-{sc.device_id}",
                              service_area=sc.service_area, scenario=sc)
            devices.append(_make_device(spec=spec, seed=seed, start=start, scenario=sc, natural_age=None))
        return cls(start=start, seed=seed, devices=devices)

    # ---------------------------------------------------------------------------------------------
    @property
    def devices(self) -> list[DeviceSpec]:
        """The devices, in fleet order."""
        return [d.spec for d in self._devices]

    @property
    def until(self) -> datetime:
        """Simulated time the fleet has been advanced to (``start`` at first)."""
        return self._until

    @property
    def ground_truth(self) -> list[GroundTruth]:
        """Everything that has happened up to ``until``, in time order."""
        return list(self._truth)

    def manifest(self) -> list[dict[str, str]]:
        """The installed-base list: device_id, kind, model, firmware, household_id, service_area."""
        return [d.spec.manifest_row() for d in self._devices]

    def advance(self, until: datetime) -> list[Message]:
        """Every message stamped in (previous ``until``, ``until``], ordered by (ts, device_id, seq)."""
        until = _utc(until, "until")
        if until <= self._until:
            return []
        msgs: list[Message] = []
        truths: list[GroundTruth] = []
        for device in self._devices:
            device.simulate_through(until)
            m, t = device.take_due(until)
            msgs.extend(m)
            truths.extend(t)
        msgs.sort(key=lambda m: (m.ts, m.device_id, m.seq))
        truths.sort(key=lambda t: (t.at, t.device_id))
        self._truth.extend(truths)
        self._until = until
        return msgs


def _split_kinds(n: int, mix: dict[str, float]) -> list[str]:
    """Exactly ``n`` kinds in the proportions of ``mix`` (largest remainder)."""
    unknown = set(mix) - set(PHYSICS)
    if unknown or not mix or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise ScenarioError(f"mix must weight known kinds {sorted(PHYSICS)} with non-negative weights")
    total = sum(mix.values())
    exact = {k: n * w / total for k, w in mix.items()}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: counts[k] - exact[k])[: n - sum(counts.values())]:
        counts[k] += 1
    return [k for k in mix for _ in range(counts[k])]


def _make_device(*, spec: DeviceSpec, seed: int, start: datetime, scenario: Scenario | None,
                 natural_age: bool | None) -> _Device:
    """Draw a device's unit and initial state.

    ``natural_age`` None: a scripted device (unplanted modes healthy). True/False: a fleet device
    whose unplanted modes age with its household, from a random age (True) or new (False).
    """
    physics = PHYSICS[spec.kind]
    profile = get_profile(spec.kind)
    root = _seed(seed, 1, _key(spec.device_id))
    unit_seed, plan_seed, step_seed = root.spawn(3)
    household: Household = draw_household(household_id=spec.household_id, service_area=spec.service_area,
                                          rng=np.random.default_rng(_seed(seed, 2, _key(spec.household_id))),
                                          regular=natural_age is None)
    unit_rng = np.random.default_rng(unit_seed)
    target = scenario.mode if scenario is not None else None
    pace: dict[str, Pace] = {m.name: "tiny" if natural_age is None else "natural" for m in profile.failure_modes}
    if target is not None:
        pace[target] = "fast"
    unit = physics.new_unit(model=spec.model, household=household, pace=pace, rng=unit_rng)

    steps_left: dict[str, float] = {}
    if natural_age:
        for m in profile.failure_modes:
            if m.name == target:
                continue
            # Any age from brand new down to 20 days of life left, so none fails early unplanned.
            per_day = physics.runs_per_day(unit)
            life_days = physics.life_runs(unit, m.name) / max(per_day, 1e-9)
            if life_days > 20:
                steps_left[m.name] = float(unit_rng.uniform(20, life_days)) * per_day
    if scenario is not None and target is not None and scenario.fails_after is not None:
        steps_left[target] = _runs_until(physics, unit, plan_seed, start, start + scenario.fails_after)
    unit, state = physics.initial(unit, steps_left)

    stuck_at = None
    if scenario is not None and scenario.stuck_after is not None:
        stuck_at = start + scenario.stuck_after
    return _Device(spec=spec, physics=physics, unit=unit, state=state, plan_seed=plan_seed,
                   step_seed=step_seed, start=start,
                   stuck_metric=scenario.stuck_metric if scenario is not None else None, stuck_at=stuck_at)


def _runs_until(physics: KindPhysics, unit: Any, plan_seed: np.random.SeedSequence,
                start: datetime, target: datetime) -> float:
    """Index of the planned run nearest ``target``, replaying the device's own plan stream."""
    rng = np.random.default_rng(plan_seed)
    day, index, best, best_gap = start.date(), 0, 0, None
    while True:
        for at in physics.plan_day(unit, day, rng):
            if at <= start:
                continue
            gap = abs((at - target).total_seconds())
            if best_gap is None or gap < best_gap:
                best, best_gap = index, gap
            elif at > target:
                return float(best)
            index += 1
        day += _DAY
        if (datetime(day.year, day.month, day.day, tzinfo=UTC) - target) > timedelta(days=30):
            return float(best)
