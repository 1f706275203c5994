"""Sensor faults that are not failures, dropped metrics, late delivery and firmware differences."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

import pytest

from devices_sim import Fleet, Scenario, ScenarioError
from ingest.contract import Telemetry

START = datetime(2026, 3, 2, tzinfo=UTC)


def series(fleet: Fleet, device: str, metric: str, days: float) -> list[tuple[datetime, float]]:
    msgs = fleet.advance(START + timedelta(days=days))
    return [(m.ts, m.metrics[metric]) for m in msgs
            if isinstance(m, Telemetry) and m.device_id == device and metric in m.metrics]


@pytest.mark.parametrize("fault", ["spiking", "drifting"])
def test_faulty_sensor_is_ground_truth_and_not_a_failure(fault: str) -> None:
    sc = [Scenario(device_id="ac-f", kind="air_conditioner", fault_metric="filter_dp_pa",
                   fault_after=timedelta(days=3), fault=fault),  # type: ignore[arg-type]
          Scenario(device_id="ac-ok", kind="air_conditioner")]
    fleet = Fleet.from_scenarios(start=START, seed=5, scenarios=sc)
    faulty = series(fleet, "ac-f", "filter_dp_pa", 14)
    fleet2 = Fleet.from_scenarios(start=START, seed=5, scenarios=[Scenario(device_id="ac-f", kind="air_conditioner")])
    clean = series(fleet2, "ac-f", "filter_dp_pa", 14)
    assert [t for t, _ in faulty] == [t for t, _ in clean]  # the same appliance, only the sensor lies
    onset = START + timedelta(days=3)
    before = [(a, b) for (t, a), (_, b) in zip(faulty, clean, strict=True) if t < onset]
    after = [(a, b) for (t, a), (_, b) in zip(faulty, clean, strict=True) if t >= onset]
    assert all(a == b for a, b in before)
    truth = fleet.ground_truth
    assert [(g.device_id, g.what, g.mode, g.metric) for g in truth] == [
        ("ac-f", "sensor_fault", f"{fault}_sensor", "filter_dp_pa")]
    assert truth[0].at >= onset
    if fault == "spiking":
        spikes = [a / b for a, b in after if abs(a / b - 1) > 0.5]
        assert 0.08 * len(after) < len(spikes) < 0.3 * len(after)
        assert statistics.median(a / b for a, b in after) == pytest.approx(1.0, abs=0.01)
    else:
        ratios = [a / b for a, b in after]
        assert abs(ratios[-1] - 1) > 0.15 and abs(ratios[-1] - 1) > abs(ratios[0] - 1)


def test_unknown_fault_kind_is_refused() -> None:
    with pytest.raises(ScenarioError):
        Scenario(device_id="x", kind="air_conditioner", fault_metric="filter_dp_pa",
                 fault_after=timedelta(0), fault="melting")  # type: ignore[arg-type]


def test_fleet_readings_arrive_late_and_miss_metrics_sometimes() -> None:
    fleet = Fleet.build(n_devices=60, seed=8, start=START)
    delivered: list[tuple[datetime, Telemetry]] = []
    step = START
    while step < START + timedelta(days=30):
        step += timedelta(hours=6)
        delivered.extend((step, m) for m in fleet.advance(step) if isinstance(m, Telemetry))
    late = [m for at, m in delivered if at - m.ts >= timedelta(hours=6)]
    assert late, "no reading was held by an outage"
    full = {d.device_id: set() for d in fleet.devices}
    for _, m in delivered:
        full[m.device_id] |= set(m.metrics)
    partial = [m for _, m in delivered if set(m.metrics) < full[m.device_id]]
    assert 0 < len(partial) < 0.05 * len(delivered)
    # per device, sequence numbers still cover every reading exactly once
    seqs: dict[str, list[int]] = {}
    for _, m in delivered:
        seqs.setdefault(m.device_id, []).append(m.seq)
    assert all(len(s) == len(set(s)) for s in seqs.values())


def test_old_firmware_does_not_report_every_metric() -> None:
    sc = [Scenario(device_id="old", kind="water_purifier", firmware="1.4.2"),
          Scenario(device_id="new", kind="water_purifier", firmware="2.0.1")]
    msgs = [m for m in Fleet.from_scenarios(start=START, seed=2, scenarios=sc).advance(START + timedelta(days=3))
            if isinstance(m, Telemetry)]
    assert msgs and all("water_temp_c" not in m.metrics for m in msgs if m.device_id == "old")
    assert all("water_temp_c" in m.metrics for m in msgs if m.device_id == "new")
