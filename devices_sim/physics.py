"""Appliance physics: hidden degradation state, a daily usage plan and one step per reading, per kind.

Each kind declares itself once, as a ``KindPhysics`` in ``PHYSICS``; the fleet never branches on kind.
All randomness comes from ``numpy.random.Generator`` objects passed in. Two generators per unit keep
planted failures exact: ``plan_day`` (when the appliance runs) draws only from the *plan* generator,
``step`` (what it measures, how it wears) only from the *step* generator, so the fleet can replay a
unit's plan ahead of time and place a failure on the run nearest a chosen moment.

Degradation "pace" per failure mode: ``"tiny"`` (healthy for months), ``"natural"`` (household-driven,
the spread the brief asks for) or ``"fast"`` (the quick end of the natural spread, used for planted
failures so the trend is plain to see in telemetry).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import numpy as np

from ingest.contract import get_profile

__all__ = [
    "AirConState",
    "AirConUnit",
    "AIR_CONDITIONER_PHYSICS",
    "RICE_COOKER_PHYSICS",
    "Household",
    "KindPhysics",
    "finish",
    "growth_noise",
    "midnight",
    "Pace",
    "RiceCookerState",
    "RiceCookerUnit",
    "Step",
    "draw_household",
    "season",
]

Pace = Literal["tiny", "natural", "fast"]

# Metric resolution as the devices report it (also keeps payloads short).
_DECIMALS: dict[str, int] = {
    "time_to_boil_s": 1, "heater_power_w": 1, "peak_temp_c": 1, "cycle_energy_wh": 1,
    "ambient_temp_c": 1, "filter_dp_pa": 1, "fan_current_a": 3, "supply_air_temp_c": 1,
    "return_air_temp_c": 1, "power_w": 1, "run_hours": 0,
    "flow_lpm": 2, "tds_in_ppm": 0, "tds_out_ppm": 1, "pump_current_a": 3, "water_temp_c": 1,
    "litres": 2,
}
_GROWTH_SIGMA = 0.08  # per-step lognormal wobble on degradation growth (mean 1)


def season(when: date | datetime) -> float:
    """Seasonal factor in [-1, 1]: +1 in late July, -1 in late January (northern hemisphere)."""
    doy = when.timetuple().tm_yday
    return math.cos(2 * math.pi * (doy - 200) / 365.25)


def midnight(day: date) -> datetime:
    """00:00 UTC of ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def growth_noise(z: float) -> float:
    """Lognormal wobble with mean 1 for one step of degradation growth, from a standard normal ``z``."""
    return math.exp(_GROWTH_SIGMA * z - _GROWTH_SIGMA**2 / 2)


def finish(kind: str, raw: Mapping[str, float]) -> dict[str, float]:
    """Round to the device's resolution and clamp into the profile's valid range."""
    profile = get_profile(kind)
    out: dict[str, float] = {}
    for name, value in raw.items():
        spec = profile.metric(name)
        out[name] = float(round(min(max(float(value), spec.low), spec.high), _DECIMALS[name]))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Household:
    """Traits shared by the appliances of one home: water, dust, habits, kitchen climate."""

    household_id: str
    service_area: str
    water_hardness: float        # 0 soft .. 1 very hard
    dustiness: float             # 0 clean .. 1 dusty
    meal_probs: tuple[float, float, float]  # chance of a breakfast, lunch, dinner cook
    skip_prob: float             # chance the rice cooker is not used at all that day
    ac_base_hours: float         # AC running hours on a spring/autumn day
    ac_start_hour: float         # usual AC start (hour of day, UTC)
    ambient_offset_c: float
    water_use: float = 1.0       # drinking-water draws relative to an average home


def draw_household(*, household_id: str, service_area: str, rng: np.random.Generator,
                   regular: bool = False) -> Household:
    """Draw one household's traits; ``regular`` homes cook (nearly) every day, for scripted tests."""
    meals = (rng.uniform(0.25, 0.7), rng.uniform(0.2, 0.6), rng.uniform(0.8, 0.97))
    skip = rng.uniform(0.03, 0.12)
    if regular:
        meals, skip = (0.6, 0.4, 0.97), 0.02
    return Household(
        household_id=household_id, service_area=service_area,
        water_hardness=float(rng.uniform()), dustiness=float(rng.uniform()),
        meal_probs=(float(meals[0]), float(meals[1]), float(meals[2])),
        skip_prob=float(skip),
        ac_base_hours=float(rng.uniform(6.0, 11.0)), ac_start_hour=float(rng.uniform(11.0, 15.0)),
        ambient_offset_c=float(rng.normal(0.0, 1.0)),
        water_use=1.0 if regular else float(rng.uniform(0.5, 1.6)),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """What one planned run produced: a reading, an error event and/or a (ground-truth) failure."""

    at: datetime
    metrics: dict[str, float] | None = None
    error_code: str | None = None
    failure: str | None = None


# --------------------------------------------------------------------------------------------------
# Rice cooker: one reading per cooking cycle.

_MEAL_HOURS = (7.0, 12.0, 19.0)
_MEAL_JITTER_MIN = 45.0
_FRESH_SCALE = 0.02


@dataclass(frozen=True, slots=True, kw_only=True)
class RiceCookerUnit:
    """One rice cooker's fixed traits: nominal physics, degradation rates and its household's habits."""

    model: str
    nominal_power_w: float
    base_boil_s: float
    scale_rate: float            # scale added per cycle
    wear_rate: float             # element wear added per cycle, times (1 + 2 w)
    meal_probs: tuple[float, float, float]
    skip_prob: float
    ambient_offset_c: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RiceCookerState:
    """Hidden degradation: scale ``s`` and element wear ``w`` (each fails at 1), plus a pending repair."""

    scale: float = _FRESH_SCALE
    wear: float = 0.0
    broken_mode: str | None = None
    repair_at: datetime | None = None


def _new_rice_cooker(*, model: str, household: Household, pace: Mapping[str, Pace],
                     rng: np.random.Generator) -> RiceCookerUnit:
    big = model == "RC-200"
    scale_rate = {"tiny": 0.0002, "natural": 0.002 + 0.018 * household.water_hardness,
                  "fast": float(rng.uniform(0.012, 0.02))}[pace.get("scale_buildup", "natural")]
    wear_rate = {"tiny": 0.00005, "natural": float(rng.uniform(0.0005, 0.008)),
                 "fast": float(rng.uniform(0.005, 0.008))}[pace.get("heating_element_wear", "natural")]
    return RiceCookerUnit(
        model=model,
        nominal_power_w=float(rng.normal(1000, 30) if big else rng.normal(650, 20)),
        base_boil_s=float(rng.normal(540, 25) if big else rng.normal(720, 30)),
        scale_rate=scale_rate, wear_rate=wear_rate,
        meal_probs=household.meal_probs, skip_prob=household.skip_prob,
        ambient_offset_c=household.ambient_offset_c,
    )


def _plan_rice_cooker_day(unit: RiceCookerUnit, day: date, rng: np.random.Generator) -> list[datetime]:
    draws = rng.uniform(size=7)  # fixed count per day keeps the plan stream simple to replay
    if draws[0] < unit.skip_prob:
        return []
    out = []
    for i, (hour, p) in enumerate(zip(_MEAL_HOURS, unit.meal_probs, strict=True)):
        if draws[1 + 2 * i] < p:
            jitter_s = round((2 * draws[2 + 2 * i] - 1) * _MEAL_JITTER_MIN * 60)
            out.append(midnight(day) + timedelta(hours=hour, seconds=jitter_s))
    return out


def _cycles_per_day(unit: Any) -> float:
    return (1 - unit.skip_prob) * sum(unit.meal_probs)


def _step_rice_cooker(unit: RiceCookerUnit, state: RiceCookerState, at: datetime,
                      rng: np.random.Generator) -> tuple[RiceCookerState, Step | None]:
    if state.repair_at is not None:
        if at < state.repair_at:
            return state, None  # broken or waiting for descaling: the cooker is not used
        if state.broken_mode == "scale_buildup":
            state = RiceCookerState(scale=float(rng.uniform(0.01, 0.03)), wear=state.wear)
        else:
            state = RiceCookerState(scale=state.scale, wear=0.0)
    z = rng.standard_normal(8)
    s, w = state.scale, state.wear
    if w >= 1.0 or s >= 1.0:
        if w >= 1.0:  # the element burns out within a minute; repaired by a technician ~3 days later
            mode, code, trip_s = "heating_element_wear", "E1", 30 + 30 * abs(z[0])
            delay_h = float(np.clip(72 + 12 * z[1], 36, 120))
        else:  # the thermal cut-off trips around boiling; the homeowner descales ~1 day later
            mode, code, trip_s = "scale_buildup", "E3", unit.base_boil_s * (1 + 0.6 * s) + 30 * abs(z[0])
            delay_h = float(np.clip(24 + 4 * z[1], 8, 48))
        failed_at = at + timedelta(seconds=round(trip_s))
        new = replace(state, broken_mode=mode, repair_at=failed_at + timedelta(hours=delay_h))
        return new, Step(at=failed_at, error_code=code, failure=mode)
    ambient = 22 + 4 * season(at) + unit.ambient_offset_c + z[0]
    power = unit.nominal_power_w * (1 - 0.3 * w)
    boil = unit.base_boil_s * (1 + 0.6 * s) / (1 - 0.3 * w) * (1 + 0.005 * (22 - ambient))
    metrics = finish("rice_cooker", {
        "heater_power_w": power + 5 * z[1],
        "time_to_boil_s": boil + 10 * z[2],
        "peak_temp_c": 125 + 25 * s - 10 * w + 1.5 * z[3],
        "ambient_temp_c": ambient,
    })
    metrics["cycle_energy_wh"] = finish("rice_cooker", {"cycle_energy_wh": (
        metrics["heater_power_w"] * metrics["time_to_boil_s"] / 3600 + 40 + 3 * z[4])})["cycle_energy_wh"]
    new = replace(state, scale=s + unit.scale_rate * growth_noise(z[5]),
                  wear=w + unit.wear_rate * (1 + 2 * w) * growth_noise(z[6]))
    return new, Step(at=at + timedelta(seconds=round(metrics["time_to_boil_s"])), metrics=metrics)


def _initial_rice_cooker(unit: RiceCookerUnit, steps_left: Mapping[str, float]
                         ) -> tuple[RiceCookerUnit, RiceCookerState]:
    """State (and, if it must, a faster rate) so each listed mode fails on run number ``steps_left``."""
    scale, wear = _FRESH_SCALE, 0.0
    n = steps_left.get("scale_buildup")
    if n is not None:
        if n <= 0.5:
            scale = 1.0
        else:  # linear growth: s_n = s0 + n * rate, aim half a step past 1
            scale = 1.0 - (n - 0.5) * unit.scale_rate
            if scale < _FRESH_SCALE:
                scale = _FRESH_SCALE
                unit = replace(unit, scale_rate=(1.0 - _FRESH_SCALE) / (n - 0.5))
    n = steps_left.get("heating_element_wear")
    if n is not None:
        if n <= 0.5:
            wear = 1.0
        else:  # (1 + 2 w_n) = (1 + 2 w0) (1 + 2a)^n, aim half a step past w = 1
            wear = (3.0 / (1 + 2 * unit.wear_rate) ** (n - 0.5) - 1) / 2
            if wear < 0.0:
                wear = 0.0
                unit = replace(unit, wear_rate=(3.0 ** (1 / (n - 0.5)) - 1) / 2)
    return unit, RiceCookerState(scale=scale, wear=wear)


def _rice_cooker_life(unit: RiceCookerUnit, mode: str) -> float:
    if mode == "scale_buildup":
        return (1.0 - _FRESH_SCALE) / unit.scale_rate
    return math.log(3.0) / math.log(1 + 2 * unit.wear_rate)


# --------------------------------------------------------------------------------------------------
# Air conditioner: one reading per running hour.

def _clogging_threshold() -> float:
    """The replacement threshold from the profile, so the sim fails exactly where the backend says."""
    threshold = get_profile("air_conditioner").mode("filter_clogging").threshold
    if threshold is None or threshold.metric != "filter_dp_pa" or not threshold.above:
        raise RuntimeError("the air_conditioner profile must declare filter_clogging above filter_dp_pa")
    return threshold.value


_CLOG_ACCEL = 0.5  # dust loading speeds up by half as the filter fills: d(load)/dh = k (1 + 0.5 load/room)
# Refrigerant loss ``lost`` runs from 0 (full charge) to 1 (the low-pressure switch stops the unit):
# slowly up to _LEAK_ONSET, then, once the leak has opened up, over ``leak_final_h`` run hours.
_LEAK_ONSET = 0.6


@dataclass(frozen=True, slots=True, kw_only=True)
class AirConUnit:
    """One air conditioner's fixed traits: clean-filter physics, dust loading, leak rate and habits."""

    model: str
    clean_dp_pa: float
    fan_current_a: float
    base_power_w: float
    clog_growth: float           # per run hour growth factor c of (1 + 0.5 load/room)
    threshold_pa: float
    leak_rate: float             # ``lost`` per run hour before the onset
    leak_final_h: float          # run hours from the onset to the switch
    base_hours: float
    start_hour: float
    report_minute: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AirConState:
    """Hidden dust load (Pa above clean), run hours since the filter change, refrigerant charge and
    pending service: a filter change (the unit keeps running) or a leak repair (the unit is off)."""

    load_pa: float = 0.0
    run_hours: int = 0
    replace_at: datetime | None = None
    lost: float = 0.0
    recharge_at: datetime | None = None


def _hours_to_growth(hours: float) -> float:
    """Growth factor c that takes a clean filter to the threshold in ``hours`` run hours."""
    return (1 + _CLOG_ACCEL) ** (1 / hours) - 1


def _new_air_conditioner(*, model: str, household: Household, pace: Mapping[str, Pace],
                         rng: np.random.Generator) -> AirConUnit:
    life_h = {"tiny": 1e6, "natural": 2500 - 1900 * household.dustiness * float(rng.uniform(0.9, 1.0)),
              "fast": float(rng.uniform(600, 800))}[pace.get("filter_clogging", "natural")]
    # Most units are tight; a leaky one (a flare joint, a pinhole) loses its margin in 80-400 days
    # of use. The draw is made whatever the pace, so the other traits do not depend on it.
    leaky, leak_life_h = rng.uniform() < 0.35, float(rng.uniform(700, 3500))
    leak_h = {"tiny": 1e9, "natural": leak_life_h if leaky else 1e9,
              "fast": float(rng.uniform(500, 800))}[pace.get("refrigerant_leak", "natural")]
    final_h = float(rng.uniform(60, 150))
    return AirConUnit(
        model=model,
        clean_dp_pa=float(rng.normal(55, 8)), fan_current_a=float(rng.normal(0.8, 0.05)),
        base_power_w=1000.0 if model == "AC-2500" else 1400.0,
        clog_growth=_hours_to_growth(life_h), threshold_pa=_clogging_threshold(),
        leak_rate=_LEAK_ONSET / leak_h, leak_final_h=final_h,
        base_hours=household.ac_base_hours, start_hour=household.ac_start_hour,
        report_minute=int(rng.integers(0, 60)),
    )


def _plan_air_conditioner_day(unit: AirConUnit, day: date, rng: np.random.Generator) -> list[datetime]:
    z = rng.standard_normal(2)
    hours = int(np.clip(round(unit.base_hours * (1 + 0.4 * season(day)) + 1.5 * z[0]), 4, 16))
    # One contiguous afternoon/evening block that ends by 06:00 next day, before the next block.
    first = int(np.clip(round(unit.start_hour + 0.75 * z[1]), 8, 30 - hours))
    secs = rng.integers(0, 60, size=hours)
    base = midnight(day) + timedelta(minutes=unit.report_minute)
    return [base + timedelta(hours=first + k + 1, seconds=int(secs[k])) for k in range(hours)]


def _run_hours_per_day(unit: Any) -> float:
    return float(unit.base_hours)


def _step_air_conditioner(unit: AirConUnit, state: AirConState, at: datetime,
                          rng: np.random.Generator) -> tuple[AirConState, Step | None]:
    if state.recharge_at is not None:
        if at < state.recharge_at:
            return state, None  # stopped by the low-pressure switch until the technician comes
        state = replace(state, lost=0.0, recharge_at=None)  # leak brazed, unit recharged
    if state.replace_at is not None and at >= state.replace_at:
        state = replace(state, load_pa=0.0, run_hours=0, replace_at=None)  # clean filter
    z = rng.standard_normal(8)
    rate = unit.leak_rate if state.lost < _LEAK_ONSET else (1 - _LEAK_ONSET) / unit.leak_final_h
    lost = state.lost + rate * growth_noise(z[6])
    if lost >= 1.0:
        delay_h = float(np.clip(72 + 12 * z[7], 36, 120))
        new = replace(state, lost=lost, recharge_at=at + timedelta(hours=delay_h))
        return new, Step(at=at, error_code="E7", failure="refrigerant_leak")
    room = unit.threshold_pa - unit.clean_dp_pa
    u = state.load_pa / room
    u = ((1 + _CLOG_ACCEL * u) * (1 + unit.clog_growth * growth_noise(z[0])) - 1) / _CLOG_ACCEL
    load = u * room
    state = replace(state, load_pa=load, run_hours=state.run_hours + 1, lost=lost)
    failure = None
    if unit.clean_dp_pa + load >= unit.threshold_pa and state.replace_at is None:
        failure = "filter_clogging"  # the filter is changed ~2 days later; the unit keeps running
        state = replace(state, replace_at=at + timedelta(hours=float(np.clip(48 + 8 * z[1], 24, 96))))
    # Lost charge cuts cooling (a smaller supply/return difference) and compressor power.
    ret = 26 + 1.0 * season(at) + 1.0 * z[2]
    cooling = (10 - 0.015 * load) * (1 - 0.6 * lost * lost)
    metrics = finish("air_conditioner", {
        "filter_dp_pa": unit.clean_dp_pa + load + 3 * z[3],
        "fan_current_a": unit.fan_current_a * (1 + 0.0015 * load) + 0.02 * z[4],
        "return_air_temp_c": ret,
        "supply_air_temp_c": ret - cooling + 0.3 * z[5],
        "power_w": unit.base_power_w * (1 - 0.25 * lost * lost) + 0.8 * load + 20 * rng.standard_normal(),
        "run_hours": state.run_hours,
    })
    return state, Step(at=at, metrics=metrics, failure=failure)


def _initial_air_conditioner(unit: AirConUnit, steps_left: Mapping[str, float]
                             ) -> tuple[AirConUnit, AirConState]:
    """State (and, if it must, faster wear) so each listed mode fails on run ``steps_left[mode]``."""
    state = AirConState()
    n = steps_left.get("filter_clogging")
    if n is not None:
        # (1 + 0.5 u) grows by (1 + c) per run hour; reading n has had n + 1 hours of growth.
        start = (1 + _CLOG_ACCEL) / (1 + unit.clog_growth) ** (n + 0.5)
        if start < 1.0:
            unit = replace(unit, clog_growth=_hours_to_growth(n + 0.5))
        else:
            u0 = (start - 1) / _CLOG_ACCEL
            hours = round(math.log(start) / math.log(1 + unit.clog_growth))
            state = AirConState(load_pa=u0 * (unit.threshold_pa - unit.clean_dp_pa), run_hours=hours)
    n = steps_left.get("refrigerant_leak")
    if n is not None:  # piecewise linear loss, aim half a step past the switch
        final_rate = (1 - _LEAK_ONSET) / unit.leak_final_h
        if n + 0.5 <= unit.leak_final_h:
            lost = 1.0 - (n + 0.5) * final_rate
        else:
            lost = _LEAK_ONSET - (n + 0.5 - unit.leak_final_h) * unit.leak_rate
            if lost < 0.0:
                lost = 0.0
                unit = replace(unit, leak_rate=_LEAK_ONSET / (n + 0.5 - unit.leak_final_h))
        state = replace(state, lost=lost)
    return unit, state


def _air_con_life(unit: AirConUnit, mode: str) -> float:
    if mode == "refrigerant_leak":
        return _LEAK_ONSET / unit.leak_rate + unit.leak_final_h
    return math.log(1 + _CLOG_ACCEL) / math.log(1 + unit.clog_growth)


# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class KindPhysics:
    """How one appliance kind is simulated; the fleet reads only this."""

    kind: str
    id_prefix: str
    #: Metrics a sensor fault (stuck, spiking, drifting) is drawn from in ``Fleet.build``.
    fault_candidates: tuple[str, ...]
    new_unit: Callable[..., Any]
    plan_day: Callable[[Any, date, np.random.Generator], list[datetime]]
    step: Callable[[Any, Any, datetime, np.random.Generator], tuple[Any, Step | None]]
    initial: Callable[[Any, Mapping[str, float]], tuple[Any, Any]]
    runs_per_day: Callable[[Any], float]
    #: Runs a fresh unit lasts before failing in a mode, at its expected degradation rate.
    life_runs: Callable[[Any, str], float]
    #: Metrics an old firmware does not report, by firmware version.
    firmware_omits: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


RICE_COOKER_PHYSICS = KindPhysics(
    kind="rice_cooker", id_prefix="rc", fault_candidates=("time_to_boil_s", "peak_temp_c", "heater_power_w"),
    new_unit=_new_rice_cooker, plan_day=_plan_rice_cooker_day, step=_step_rice_cooker,
    initial=_initial_rice_cooker, runs_per_day=_cycles_per_day, life_runs=_rice_cooker_life,
    firmware_omits={"1.4.2": ("cycle_energy_wh",)},
)
AIR_CONDITIONER_PHYSICS = KindPhysics(
    kind="air_conditioner", id_prefix="ac",
    fault_candidates=("filter_dp_pa", "return_air_temp_c", "supply_air_temp_c", "fan_current_a"),
    new_unit=_new_air_conditioner, plan_day=_plan_air_conditioner_day, step=_step_air_conditioner,
    initial=_initial_air_conditioner, runs_per_day=_run_hours_per_day, life_runs=_air_con_life,
    firmware_omits={"1.4.2": ("power_w",)},
)
