"""The fleet: deterministic streams, wire-valid telemetry, planted failures where asked."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from devices_sim import Fleet, Scenario, ScenarioError
from ingest.contract import (
    Event,
    Telemetry,
    decode_event,
    decode_telemetry,
    encode_event,
    encode_telemetry,
    events_topic,
    get_profile,
    telemetry_topic,
)

START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def run(fleet: Fleet, days: float, step: timedelta = timedelta(days=1)) -> list[Telemetry | Event]:
    out: list[Telemetry | Event] = []
    t = fleet.start
    end = fleet.start + timedelta(days=days)
    while t < end:
        t = min(t + step, end)
        out.extend(fleet.advance(t))
    return out


def test_same_seed_gives_the_same_stream_however_advance_is_chunked() -> None:
    a = run(Fleet.build(n_devices=12, seed=3, start=START), 8, timedelta(days=1))
    b = run(Fleet.build(n_devices=12, seed=3, start=START), 8, timedelta(minutes=37))
    c = Fleet.build(n_devices=12, seed=3, start=START).advance(START + timedelta(days=8))
    assert a == b == c
    assert a != run(Fleet.build(n_devices=12, seed=4, start=START), 8)


def test_ground_truth_does_not_depend_on_chunking() -> None:
    f1, f2 = Fleet.build(n_devices=20, seed=5, start=START), Fleet.build(n_devices=20, seed=5, start=START)
    run(f1, 15, timedelta(hours=5))
    f2.advance(START + timedelta(days=15))
    assert f1.ground_truth == f2.ground_truth
    assert f1.ground_truth


def test_advance_returns_only_new_messages_in_time_order_with_gapless_seq() -> None:
    fleet = Fleet.build(n_devices=10, seed=1, start=START)
    first = fleet.advance(START + timedelta(days=2))
    assert fleet.advance(START + timedelta(days=2)) == []
    assert fleet.advance(START + timedelta(days=1)) == []  # going back is a no-op
    second = fleet.advance(START + timedelta(days=4))
    msgs = first + second
    assert all(START < m.ts <= START + timedelta(days=2) for m in first)
    assert all(m.ts > START + timedelta(days=2) for m in second)
    assert [m.ts for m in msgs] == sorted(m.ts for m in msgs)
    by_device: dict[str, list[int]] = {}
    for m in msgs:
        by_device.setdefault(m.device_id, []).append(m.seq)
    for seqs in by_device.values():
        assert seqs == list(range(len(seqs)))


def test_every_message_passes_the_strict_decoder() -> None:
    fleet = Fleet.build(n_devices=30, seed=11, start=START)
    msgs = run(fleet, 30, timedelta(days=3))
    kinds = Counter(type(m).__name__ for m in msgs)
    assert kinds["Telemetry"] > 1000 and kinds["Event"] >= 1
    for m in msgs:
        if isinstance(m, Telemetry):
            assert decode_telemetry(encode_telemetry(m), topic=telemetry_topic(m.device_id), now=m.ts) == m
        else:
            assert decode_event(encode_event(m), topic=events_topic(m.device_id), now=m.ts) == m


def test_build_mixes_kinds_households_and_planted_trouble() -> None:
    fleet = Fleet.build(n_devices=50, seed=2, start=START)
    kinds = Counter(d.kind for d in fleet.devices)
    assert kinds == {"rice_cooker": 17, "air_conditioner": 17, "water_purifier": 16}
    assert all(1 <= n <= 2 for n in Counter(d.household_id for d in fleet.devices).values())
    assert {d.service_area for d in fleet.devices} <= {"SE1", "N7", "E2"}
    ids = [d.device_id for d in fleet.devices]
    assert len(set(ids)) == 50 and all(i[:3] in ("rc-", "ac-", "wp-") for i in ids)
    assert fleet.manifest()[0].keys() == {"device_id", "kind", "model", "firmware", "household_id",
                                          "service_area"}
    fleet.advance(START + timedelta(days=12))
    failed = {g.device_id for g in fleet.ground_truth if g.what == "failure"}
    early = {g.device_id for g in fleet.ground_truth if g.what == "failure" and g.at < START + timedelta(days=3)}
    faulty = {g.device_id for g in fleet.ground_truth if g.what == "sensor_fault"}
    assert 0.15 * 50 <= len(failed) <= 0.3 * 50
    assert not early
    assert 2 <= len(faulty) <= 4
    assert {g.mode for g in fleet.ground_truth if g.what == "sensor_fault"} <= {
        "stuck_sensor", "spiking_sensor", "drifting_sensor"}


def test_plant_after_keeps_planted_trouble_out_of_the_history() -> None:
    warmup = timedelta(days=4)
    fleet = Fleet.build(n_devices=50, seed=2, start=START, plant_after=warmup)
    fleet.advance(START + warmup + timedelta(days=12))
    planted = {d.device_id for d in fleet.devices if d.scenario is not None}
    events = [g for g in fleet.ground_truth if g.device_id in planted]
    assert events and all(g.at >= START + warmup + timedelta(days=1) for g in events)


def test_new_fleet_is_fresh() -> None:
    fleet = Fleet.build(n_devices=30, seed=2, start=START, initial_wear="new")
    fleet.advance(START + timedelta(days=14))
    assert fleet.ground_truth == []
    assert all(d.scenario is None for d in fleet.devices)


def test_mix_is_honoured() -> None:
    fleet = Fleet.build(n_devices=10, seed=2, start=START, mix={"air_conditioner": 1.0})
    assert {d.kind for d in fleet.devices} == {"air_conditioner"}
    with pytest.raises(ScenarioError):
        Fleet.build(n_devices=10, seed=2, start=START, mix={"toaster": 1.0})


@pytest.mark.parametrize(("kind", "mode"), [("rice_cooker", "scale_buildup"),
                                            ("rice_cooker", "heating_element_wear"),
                                            ("air_conditioner", "filter_clogging"),
                                            ("air_conditioner", "refrigerant_leak"),
                                            ("water_purifier", "filter_exhaustion"),
                                            ("water_purifier", "pump_wear")])
@pytest.mark.parametrize("days", [2, 4, 6, 10, 20])
def test_planted_failures_land_near_fails_after(kind: str, mode: str, days: int) -> None:
    scenarios = [Scenario(device_id=f"d-{i}", kind=kind, mode=mode, fails_after=timedelta(days=days),
                          model=m)
                 for i, m in enumerate(get_profile(kind).models)]
    fleet = Fleet.from_scenarios(start=START, seed=days, scenarios=scenarios)
    fleet.advance(START + timedelta(days=days * 1.3 + 1))
    for sc in scenarios:
        first = next(g for g in fleet.ground_truth if g.device_id == sc.device_id and g.what == "failure")
        assert first.mode == mode
        assert abs(first.at - (START + sc.fails_after)) <= 0.3 * sc.fails_after


def test_scenarios_are_validated() -> None:
    with pytest.raises(ScenarioError):
        Scenario(device_id="x", kind="rice_cooker", mode="filter_clogging", fails_after=timedelta(days=1))
    with pytest.raises(ScenarioError):
        Scenario(device_id="x", kind="rice_cooker", mode="scale_buildup")
    with pytest.raises(ScenarioError):
        Scenario(device_id="x", kind="air_conditioner", fault_metric="filter_dp_pa")
    with pytest.raises(ScenarioError):
        Scenario(device_id="x", kind="air_conditioner", fault_metric="nope", fault_after=timedelta(0))
    with pytest.raises(ScenarioError):
        Fleet.from_scenarios(start=START, seed=1, scenarios=[Scenario(device_id="x", kind="rice_cooker")] * 2)
    with pytest.raises(ScenarioError):
        Fleet.from_scenarios(start=START.replace(tzinfo=None), seed=1, scenarios=[])
