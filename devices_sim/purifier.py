"""Water purifier physics: one reading per dispense; a spent cartridge and a wearing booster pump.

Hidden state: the cartridge's load ``f`` (0 fresh, exhausted at 1), grown by the dissolved solids
that pass through it (litres x feed TDS), and the pump's wear ``w`` (stalls at 1). A spent cartridge
lets solids break through (purified-water TDS climbs with f^2) and slows the flow; a worn pump draws
more current and delivers less flow. Feed water is the household's (hardness sets its TDS) and
warmer in summer, when people also drink more. See ``physics`` for the generator discipline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import numpy as np

from .physics import Household, KindPhysics, Pace, Step, finish, growth_noise, midnight, season

__all__ = ["WATER_PURIFIER_PHYSICS", "PurifierState", "PurifierUnit"]

_MEAN_LITRES = 1.4
_FRESH_LOAD = 0.02
# Pump wear runs slowly up to _BEARING_ONSET; then the bearing goes within ``final_draws`` draws.
_BEARING_ONSET = 0.8


@dataclass(frozen=True, slots=True, kw_only=True)
class PurifierUnit:
    """One purifier's fixed traits: nominal flow and pump current, feed water, wear rates, habits."""

    model: str
    nominal_flow_lpm: float
    pump_current_a: float
    feed_tds_ppm: float
    rejection: float             # share of solids a fresh membrane passes (0.02-0.05)
    load_per_ppm_litre: float    # cartridge load added per litre at 1 ppm feed TDS
    wear_rate: float             # pump wear per dispense before the bearing onset
    final_draws: float           # dispenses from the onset to the stall
    draws_per_day: float
    feed_temp_offset_c: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PurifierState:
    """Cartridge load and pump wear (each fails at 1), and a pending cartridge change or pump repair."""

    load: float = _FRESH_LOAD
    wear: float = 0.0
    broken_mode: str | None = None
    repair_at: datetime | None = None


def _new_purifier(*, model: str, household: Household, pace: Mapping[str, Pace],
                  rng: np.random.Generator) -> PurifierUnit:
    big = model == "WP-75"
    draws = (5.0 if big else 4.0) * household.water_use
    feed = 80 + 420 * household.water_hardness
    litres_per_day = draws * _MEAN_LITRES
    # Natural cartridge life: 45-220 days depending on how hard the water is and how much is drunk.
    life_days = {"tiny": 5000.0, "natural": float(rng.uniform(45, 220)),
                 "fast": float(rng.uniform(25, 40))}[pace.get("filter_exhaustion", "natural")]
    pump_life = {"tiny": 1e6, "natural": float(rng.uniform(90, 700)) * draws,
                 "fast": float(rng.uniform(80, 140)) * draws}[pace.get("pump_wear", "natural")]
    return PurifierUnit(
        model=model,
        nominal_flow_lpm=float(rng.normal(2.6, 0.12) if big else rng.normal(1.8, 0.1)),
        pump_current_a=float(rng.normal(1.2, 0.06) if big else rng.normal(0.9, 0.05)),
        feed_tds_ppm=float(feed), rejection=float(rng.uniform(0.02, 0.05)),
        load_per_ppm_litre=(1 - _FRESH_LOAD) / (life_days * litres_per_day * feed),
        wear_rate=_BEARING_ONSET / pump_life, final_draws=float(rng.uniform(10, 25)) * draws,
        draws_per_day=draws,
        feed_temp_offset_c=household.ambient_offset_c,
    )


def _plan_purifier_day(unit: PurifierUnit, day: date, rng: np.random.Generator) -> list[datetime]:
    n = int(rng.poisson(unit.draws_per_day * (1 + 0.3 * season(day))))
    seconds = np.sort(rng.integers(6 * 3600, 23 * 3600, size=n))
    return [midnight(day) + timedelta(seconds=int(t)) for t in seconds]


def _draws_per_day(unit: PurifierUnit) -> float:
    return unit.draws_per_day


def _step_purifier(unit: PurifierUnit, state: PurifierState, at: datetime,
                   rng: np.random.Generator) -> tuple[PurifierState, Step | None]:
    if state.repair_at is not None:
        if at < state.repair_at:
            return state, None  # dispensing locked until the cartridge is changed or the pump fixed
        if state.broken_mode == "filter_exhaustion":
            state = PurifierState(load=float(rng.uniform(0.01, 0.03)), wear=state.wear)
        else:
            state = PurifierState(load=state.load, wear=0.0)
    z = rng.standard_normal(9)
    f, w = state.load, state.wear
    if f >= 1.0 or w >= 1.0:
        if w >= 1.0:  # the pump stalls; a technician replaces it ~3 days later
            mode, code, delay_h = "pump_wear", "E6", float(np.clip(72 + 12 * z[0], 36, 120))
        else:  # the purifier locks dispensing; the homeowner fits a new cartridge ~1 day later
            mode, code, delay_h = "filter_exhaustion", "E5", float(np.clip(24 + 6 * z[0], 8, 60))
        new = replace(state, broken_mode=mode, repair_at=at + timedelta(hours=delay_h))
        return new, Step(at=at, error_code=code, failure=mode)
    feed = unit.feed_tds_ppm * (1 + 0.05 * z[1])
    temp = 14 + 6 * season(at) + unit.feed_temp_offset_c + 0.8 * z[2]
    litres = float(np.clip(_MEAN_LITRES * math.exp(0.5 * z[3] - 0.125), 0.2, 8.0))
    bearing = max(0.0, w - _BEARING_ONSET)
    flow = (unit.nominal_flow_lpm * (1 - 0.25 * f * f) * (1 - 0.05 * w - 1.25 * bearing)
            * (1 + 0.01 * (temp - 14)))
    metrics = finish("water_purifier", {
        "flow_lpm": flow * (1 + 0.02 * z[4]),
        "tds_in_ppm": feed,
        "tds_out_ppm": feed * (unit.rejection + 0.12 * f * f) * (1 + 0.04 * z[5]),
        "pump_current_a": unit.pump_current_a * (1 + 0.1 * w + 2.0 * bearing) + 0.015 * z[6],
        "water_temp_c": temp,
        "litres": litres,
    })
    new = replace(state, load=f + unit.load_per_ppm_litre * litres * feed * growth_noise(z[7]),
                  wear=w + _pump_rate(unit, w) * growth_noise(z[8]))
    return new, Step(at=at + timedelta(seconds=round(60 * litres / max(flow, 0.1))), metrics=metrics)


def _pump_rate(unit: PurifierUnit, wear: float) -> float:
    return unit.wear_rate if wear < _BEARING_ONSET else (1 - _BEARING_ONSET) / unit.final_draws


def _initial_purifier(unit: PurifierUnit, steps_left: Mapping[str, float]
                      ) -> tuple[PurifierUnit, PurifierState]:
    """State (and, if it must, faster wear) so each listed mode fails on draw ``steps_left[mode]``."""
    load, wear = _FRESH_LOAD, 0.0
    per_draw = unit.load_per_ppm_litre * _MEAN_LITRES * unit.feed_tds_ppm
    n = steps_left.get("filter_exhaustion")
    if n is not None:
        load = 1.0 - (n - 0.5) * per_draw if n > 0.5 else 1.0
        if load < _FRESH_LOAD:
            load = _FRESH_LOAD
            unit = replace(unit, load_per_ppm_litre=(1 - _FRESH_LOAD)
                           / ((n - 0.5) * _MEAN_LITRES * unit.feed_tds_ppm))
    n = steps_left.get("pump_wear")
    if n is not None:  # piecewise linear wear, aim half a step past the stall
        m = max(n - 0.5, 0.0)
        if m <= unit.final_draws:
            wear = 1.0 - m * (1 - _BEARING_ONSET) / unit.final_draws
        else:
            wear = _BEARING_ONSET - (m - unit.final_draws) * unit.wear_rate
            if wear < 0.0:
                wear = 0.0
                unit = replace(unit, wear_rate=_BEARING_ONSET / (m - unit.final_draws))
    return unit, PurifierState(load=load, wear=wear)


def _purifier_life(unit: PurifierUnit, mode: str) -> float:
    if mode == "filter_exhaustion":
        return (1 - _FRESH_LOAD) / (unit.load_per_ppm_litre * _MEAN_LITRES * unit.feed_tds_ppm)
    return _BEARING_ONSET / unit.wear_rate + unit.final_draws


WATER_PURIFIER_PHYSICS = KindPhysics(
    kind="water_purifier", id_prefix="wp",
    fault_candidates=("tds_out_ppm", "flow_lpm", "pump_current_a"),
    new_unit=_new_purifier, plan_day=_plan_purifier_day, step=_step_purifier,
    initial=_initial_purifier, runs_per_day=_draws_per_day, life_runs=_purifier_life,
    firmware_omits={"1.4.2": ("water_temp_c",)},
)
