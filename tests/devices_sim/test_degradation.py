"""Degradation is visible in telemetry the way a technician would expect it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from statistics import mean

import numpy as np

from devices_sim import Fleet, Scenario
from ingest.contract import Event, Telemetry

START = datetime(2026, 7, 6, tzinfo=UTC)


def series(fleet: Fleet, msgs: list[Telemetry | Event], device_id: str) -> list[Telemetry]:
    return [m for m in msgs if isinstance(m, Telemetry) and m.device_id == device_id]


def first_failure(fleet: Fleet, device_id: str) -> datetime:
    return next(g.at for g in fleet.ground_truth if g.device_id == device_id and g.what == "failure")


def test_scale_buildup_slows_boiling_and_heats_the_plate_at_unchanged_power() -> None:
    fleet = Fleet.from_scenarios(start=START, seed=1, scenarios=[
        Scenario(device_id="rc-1", kind="rice_cooker", mode="scale_buildup", fails_after=timedelta(days=14))])
    msgs = fleet.advance(START + timedelta(days=16))
    failed_at = first_failure(fleet, "rc-1")
    before = [t for t in series(fleet, msgs, "rc-1") if t.ts < failed_at]
    early, late = before[:8], before[-8:]

    def avg(ts: list[Telemetry], m: str) -> float:
        return mean(t.metrics[m] for t in ts)

    assert avg(late, "time_to_boil_s") > avg(early, "time_to_boil_s") + 60
    assert avg(late, "peak_temp_c") > avg(early, "peak_temp_c") + 3
    assert abs(avg(late, "heater_power_w") - avg(early, "heater_power_w")) < 10
    errors = [m for m in msgs if isinstance(m, Event) and m.device_id == "rc-1"]
    assert errors[0].code == "E3" and errors[0].ts == failed_at


def test_element_wear_drops_heater_power_then_burns_out_and_goes_quiet_until_repaired() -> None:
    fleet = Fleet.from_scenarios(start=START, seed=2, scenarios=[
        Scenario(device_id="rc-2", kind="rice_cooker", mode="heating_element_wear",
                 fails_after=timedelta(days=10))])
    msgs = fleet.advance(START + timedelta(days=20))
    failed_at = first_failure(fleet, "rc-2")
    readings = series(fleet, msgs, "rc-2")
    before = [t for t in readings if t.ts < failed_at]
    assert mean(t.metrics["heater_power_w"] for t in before[-6:]) < \
        mean(t.metrics["heater_power_w"] for t in before[:6]) - 20
    assert mean(t.metrics["time_to_boil_s"] for t in before[-6:]) > \
        mean(t.metrics["time_to_boil_s"] for t in before[:6])
    event = next(m for m in msgs if isinstance(m, Event) and m.device_id == "rc-2")
    assert (event.code, event.ts) == ("E1", failed_at)
    after = [t for t in readings if t.ts > failed_at]
    assert after and after[0].ts - failed_at >= timedelta(days=1.5)  # silent while broken
    assert after[0].metrics["heater_power_w"] > before[0].metrics["heater_power_w"]  # new element


def test_filter_clogging_raises_pressure_drop_and_fan_current_with_run_hours() -> None:
    fleet = Fleet.from_scenarios(start=START, seed=3, scenarios=[
        Scenario(device_id="ac-1", kind="air_conditioner", mode="filter_clogging",
                 fails_after=timedelta(days=12))])
    msgs = fleet.advance(START + timedelta(days=18))
    failed_at = first_failure(fleet, "ac-1")
    readings = series(fleet, msgs, "ac-1")
    before = [t for t in readings if t.ts <= failed_at]
    hours = np.array([t.metrics["run_hours"] for t in before])
    assert np.all(np.diff(hours) == 1)
    dp = np.array([t.metrics["filter_dp_pa"] for t in before])
    current = np.array([t.metrics["fan_current_a"] for t in before])
    assert np.polyfit(hours, dp, 1)[0] > 0.1   # Pa per run hour
    assert np.polyfit(hours, current, 1)[0] > 0
    assert dp[-10:].mean() > dp[:10].mean() + 25
    assert 235 < dp[-1] < 265  # the failure is where the true pressure drop crosses 250 Pa
    assert all(t.metrics["filter_dp_pa"] < 250 - 12 for t in before[:5])
    after = [t for t in readings if t.ts > failed_at]
    changed = next(i for i, t in enumerate(after) if t.metrics["run_hours"] < after[0].metrics["run_hours"])
    assert after[changed].metrics["run_hours"] == 1
    assert after[changed].metrics["filter_dp_pa"] < 120
    assert timedelta(days=1) <= after[changed].ts - failed_at <= timedelta(days=5)


def test_healthy_devices_have_no_ground_truth_for_60_days() -> None:
    fleet = Fleet.from_scenarios(start=START, seed=4, scenarios=[
        Scenario(device_id="rc-h1", kind="rice_cooker", model="RC-100"),
        Scenario(device_id="rc-h2", kind="rice_cooker", model="RC-200"),
        Scenario(device_id="ac-h1", kind="air_conditioner", model="AC-2500"),
        Scenario(device_id="ac-h2", kind="air_conditioner", model="AC-3500"),
    ])
    msgs = fleet.advance(START + timedelta(days=60))
    assert fleet.ground_truth == []
    assert not any(isinstance(m, Event) for m in msgs)
    rc = series(fleet, msgs, "rc-h1")
    assert 60 <= len(rc) <= 180  # 1-3 cycles a day
    assert abs(mean(t.metrics["time_to_boil_s"] for t in rc[:10]) -
               mean(t.metrics["time_to_boil_s"] for t in rc[-10:])) < 40


def test_stuck_sensor_repeats_one_value_forever_and_is_a_sensor_fault() -> None:
    fleet = Fleet.from_scenarios(start=START, seed=5, scenarios=[
        Scenario(device_id="ac-s", kind="air_conditioner", fault_metric="filter_dp_pa",
                 fault_after=timedelta(days=2)),
        Scenario(device_id="rc-s", kind="rice_cooker", fault_metric="time_to_boil_s",
                 fault_after=timedelta(days=3))])
    msgs = fleet.advance(START + timedelta(days=10))
    for device_id, metric, after in (("ac-s", "filter_dp_pa", 2), ("rc-s", "time_to_boil_s", 3)):
        readings = series(fleet, msgs, device_id)
        fault = next(g for g in fleet.ground_truth if g.device_id == device_id)
        assert (fault.what, fault.mode, fault.metric) == ("sensor_fault", "stuck_sensor", metric)
        assert fault.at >= START + timedelta(days=after)
        stuck = [t.metrics[metric] for t in readings if t.ts >= fault.at]
        assert len(stuck) >= 6 and len(set(stuck)) == 1
        assert len({t.metrics[metric] for t in readings if t.ts < fault.at}) > 3
    assert all(g.what == "sensor_fault" for g in fleet.ground_truth)


def test_rice_cooker_cooks_around_meal_times_and_ac_runs_in_afternoon_blocks() -> None:
    fleet = Fleet.build(n_devices=20, seed=6, start=START, initial_wear="new")
    msgs = fleet.advance(START + timedelta(days=14))
    rc = [m for m in msgs if isinstance(m, Telemetry) and m.kind == "rice_cooker"]
    minutes = [(m.ts.hour * 60 + m.ts.minute) for m in rc]
    # Readings arrive at the end of heating: within 45 min (+ boil time) of 07, 12 or 19 h.
    assert all(any(-45 <= mm - h * 60 <= 45 + 40 for h in (7, 12, 19)) for mm in minutes)
    ac = [m for m in msgs if isinstance(m, Telemetry) and m.kind == "air_conditioner"]
    per_day: dict[tuple[str, object], int] = {}
    for m in ac:
        key = (m.device_id, (m.ts - timedelta(hours=7)).date())
        per_day[key] = per_day.get(key, 0) + 1
    assert all(4 <= n <= 16 for n in per_day.values())
    assert all(m.ts.hour >= 9 or m.ts.hour <= 6 for m in ac)
