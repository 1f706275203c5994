"""A seeded fleet of simulated appliances whose degradation shows in the telemetry they send.

``Fleet.build`` makes a realistic mixed fleet; ``Fleet.from_scenarios`` makes explicit devices for
tests. ``Fleet.advance(until)`` returns every message due up to ``until`` in timestamp order. A
device's history depends only on the fleet seed and its own id, never on how ``until`` is chunked:
each device simulates whole UTC days on demand from its own generators and hands out what is due.
"""

from __future__ import annotations

import heapq
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np

from ingest.contract import Event, Telemetry, get_profile

from .errors import ScenarioError
from .faults import FAULT_MODES, FaultKind, NetworkTrouble, SensorFault, draw_sensor_fault
from .kinds import PHYSICS
from .physics import Household, KindPhysics, Pace, draw_household

__all__ = ["DeviceSpec", "Fleet", "GroundTruth", "Message", "Scenario"]

Message = Telemetry | Event

SERVICE_AREAS: tuple[str, ...] = ("SE1", "N7", "E2")
FIRMWARE: tuple[tuple[str, float], ...] = (("1.4.2", 0.5), ("1.5.0", 0.3), ("2.0.1", 0.2))
_DAY = timedelta(days=1)
_FAULT_KINDS: tuple[FaultKind, ...] = ("stuck", "spiking", "drifting")


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """One explicitly configured device: which failure to plant (or none), and an optional sensor fault.

    ``mode=None`` is a healthy device (degradation so slow nothing fails for months). With a mode,
    the hidden state is tuned so that failure lands close to ``start + fails_after``; the exact time
    is whatever the simulation produces and is reported in ``Fleet.ground_truth``.
    """

    device_id: str
    kind: str
    mode: str | None = None
    fails_after: timedelta | None = None
    #: A sensor fault (``fault``: stuck, spiking or drifting) on ``fault_metric`` from ``fault_after``.
    fault_metric: str | None = None
    fault_after: timedelta | None = None
    fault: FaultKind = "stuck"
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
        if (self.fault_metric is None) != (self.fault_after is None):
            raise ScenarioError(f"{self.device_id}: give both fault_metric and fault_after, or neither")
        if self.fault_metric is not None and self.fault_metric not in profile.metric_names:
            raise ScenarioError(f"{self.device_id}: {self.kind} has no metric {self.fault_metric!r}")
        if self.fault_after is not None and self.fault_after < timedelta(0):
            raise ScenarioError(f"{self.device_id}: fault_after must not be negative")
        if self.fault not in _FAULT_KINDS:
            raise ScenarioError(f"{self.device_id}: fault must be one of {_FAULT_KINDS}, got {self.fault!r}")
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
    #: The faulty sensor's metric, for sensor faults (``mode`` says stuck, spiking or drifting).
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
    """One device's running simulation: unit, hidden state, its generators and undelivered output.

    The outbox is a heap on delivery time: a reading taken during a network outage is delivered
    when the connection is back, after readings stamped later may already have gone out.
    """

    __slots__ = ("spec", "_physics", "_unit", "_state", "_plan_rng", "_step_rng", "_sense_rng", "_start",
                 "_day", "_seq", "_outbox", "_truths", "_fault", "_network", "_omits")

    def __init__(self, *, spec: DeviceSpec, physics: KindPhysics, unit: Any, state: Any,
                 seeds: list[np.random.SeedSequence], start: datetime, fault: SensorFault | None,
                 network: bool) -> None:
        plan_seed, step_seed, sense_seed, net_seed = seeds
        self.spec, self._physics, self._unit, self._state = spec, physics, unit, state
        self._plan_rng = np.random.default_rng(plan_seed)
        self._step_rng = np.random.default_rng(step_seed)
        self._sense_rng = np.random.default_rng(sense_seed)
        self._start, self._day = start, start.date()
        self._seq = 0
        self._outbox: list[tuple[datetime, int, Message]] = []
        self._truths: list[GroundTruth] = []
        self._fault = fault
        self._network = None
        if network:
            rng = np.random.default_rng(net_seed)
            self._network = NetworkTrouble(metric_drop_prob=float(rng.uniform(0.0, 0.02)),
                                           outage_per_day=float(rng.uniform(0.0, 0.04)), _rng=rng)
        self._omits = frozenset(physics.firmware_omits.get(spec.firmware, ()))

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
                metrics = self._sense(step.at, step.metrics)
                self._send(Telemetry(device_id=spec.device_id, kind=spec.kind, model=spec.model,
                                     firmware=spec.firmware, seq=self._next_seq(), ts=step.at,
                                     metrics=metrics))
            if step.error_code is not None:
                self._send(Event(device_id=spec.device_id, kind=spec.kind, seq=self._next_seq(),
                                 ts=step.at, event="error", code=step.error_code))

    def _send(self, msg: Message) -> None:
        deliver = self._network.delivered_at(msg.ts) if self._network is not None else msg.ts
        heapq.heappush(self._outbox, (deliver, msg.seq, msg))

    def _sense(self, at: datetime, metrics: dict[str, float]) -> dict[str, float]:
        """What the sensors report: the firmware's metrics, a faulty sensor's value, dropped metrics."""
        if self._omits:
            metrics = {k: v for k, v in metrics.items() if k not in self._omits}
        fault = self._fault
        if fault is not None and fault.metric in metrics and at >= fault.onset:
            value, first = fault.apply(at, metrics[fault.metric], self._sense_rng)
            if first:
                self._truths.append(GroundTruth(device_id=self.spec.device_id, kind=self.spec.kind,
                                                mode=FAULT_MODES[fault.fault], at=at, what="sensor_fault",
                                                metric=fault.metric))
            metrics = {**metrics, fault.metric: value}
        if self._network is not None:
            metrics = self._network.drop(metrics)
        return metrics

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    def take_due(self, until: datetime) -> tuple[list[tuple[datetime, Message]], list[GroundTruth]]:
        """Hand out ``(delivered_at, message)`` delivered by ``until`` and ground truth stamped by then."""
        msgs: list[tuple[datetime, Message]] = []
        while self._outbox and self._outbox[0][0] <= until:
            deliver, _, msg = heapq.heappop(self._outbox)
            msgs.append((deliver, msg))
        truths = [t for t in self._truths if t.at <= until]
        self._truths = [t for t in self._truths if t.at > until]
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
        days after ``start + plant_after``, about 8 % get a sensor fault (stuck, spiking or
        drifting, in turn) within the first week after it, the rest age naturally from a random
        age (none fails in the first two weeks; later, natural failures keep coming). Fleet devices
        also drop a metric now and then and sit behind connections with outages (late delivery);
        a firmware may not report every metric (``KindPhysics.firmware_omits``). ``"new"``:
        everything fresh, nothing planted.
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
        faulty: dict[int, tuple[str, timedelta, FaultKind]] = {}
        if initial_wear == "mixed" and n_devices:
            order = [int(i) for i in rng.permutation(n_devices)]
            n_plant = round(0.2 * n_devices)
            n_faulty = max(1, round(0.08 * n_devices)) if n_devices >= 5 else 0
            for i in order[:n_plant]:
                modes = get_profile(kinds[i]).failure_modes
                planted[i] = (modes[int(rng.integers(len(modes)))].name,
                              plant_after + timedelta(days=float(rng.uniform(3.5, 11.0))))
            for k, i in enumerate(order[n_plant:n_plant + n_faulty]):
                candidates = PHYSICS[kinds[i]].fault_candidates
                faulty[i] = (candidates[int(rng.integers(len(candidates)))],
                             plant_after + timedelta(days=float(rng.uniform(1.0, 7.0))),
                             _FAULT_KINDS[k % len(_FAULT_KINDS)])

        devices = []
        for i, kind in enumerate(kinds):
            profile = get_profile(kind)
            device_id = f"{PHYSICS[kind].id_prefix}-{i + 1:04d}"
            mode, fails_after = planted.get(i, (None, None))
            fault_metric, fault_after, fault = faulty.get(i, (None, None, "stuck"))
            scenario = None
            if mode is not None or fault_metric is not None:
                scenario = Scenario(device_id=device_id, kind=kind, mode=mode, fails_after=fails_after,
                                    fault_metric=fault_metric, fault_after=fault_after, fault=fault)
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
        """Every message delivered in (previous ``until``, ``until``], in delivery order.

        Delivery is the message's ``ts`` except during a network outage, when readings are held
        by the device and delivered, late, when the connection is back.
        """
        until = _utc(until, "until")
        if until <= self._until:
            return []
        due: list[tuple[datetime, Message]] = []
        truths: list[GroundTruth] = []
        for device in self._devices:
            device.simulate_through(until)
            m, t = device.take_due(until)
            due.extend(m)
            truths.extend(t)
        due.sort(key=lambda d: (d[0], d[1].device_id, d[1].seq))
        msgs = [m for _, m in due]
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
    unit_seed, plan_seed, step_seed, sense_seed, net_seed = root.spawn(5)
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

    fault = None
    if scenario is not None and scenario.fault_metric is not None and scenario.fault_after is not None:
        fault = draw_sensor_fault(kind=spec.kind, metric=scenario.fault_metric, fault=scenario.fault,
                                  onset=start + scenario.fault_after,
                                  rng=np.random.default_rng(sense_seed.spawn(1)[0]))
    return _Device(spec=spec, physics=physics, unit=unit, state=state,
                   seeds=[plan_seed, step_seed, sense_seed, net_seed], start=start, fault=fault,
                   network=natural_age is not None)


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
