"""The demo's simulated technicians: findings from the ground truth, visits completed, outcomes as labels."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from actions.booking import Technician
from actions.learning import outcome_labels
from devices_sim import Fleet, GroundTruth, Scenario
from foresight.demo_technician import SimulatedTechnicians, inspect
from foresight.runtime import Runtime, build_runtime
from foresight.settings import Settings
from ingest.clock import ManualClock
from ingest.store import DeviceInfo

T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)
D = timedelta(days=1)


def failure(mode: str, at: datetime, device_id: str = "rc-1") -> GroundTruth:
    return GroundTruth(device_id=device_id, kind="rice_cooker", mode=mode, at=at, what="failure")


@pytest.mark.parametrize(("case", "mode", "truth", "outcome"), [
    ("nothing happened: no fault found", "heating_element_wear", [], "no_fault_found"),
    ("it fails in 3 days: the wear is there", "heating_element_wear",
     [failure("heating_element_wear", T0 + 3 * D)], "confirmed_fault"),
    ("it fails in 20 days: too early to see", "heating_element_wear",
     [failure("heating_element_wear", T0 + 20 * D)], "no_fault_found"),
    ("it failed yesterday: part replaced", "heating_element_wear",
     [failure("heating_element_wear", T0 - D)], "part_replaced"),
    ("it failed a month ago: not this visit's fault", "heating_element_wear",
     [failure("heating_element_wear", T0 - 30 * D)], "no_fault_found"),
    ("another mode fails: not what the visit is about", "heating_element_wear",
     [failure("scale_buildup", T0 + 2 * D)], "no_fault_found"),
    ("another device fails: not this one", "heating_element_wear",
     [failure("heating_element_wear", T0 + 2 * D, device_id="rc-2")], "no_fault_found"),
    ("a device error visit looks at every mode", "error:E1",
     [failure("scale_buildup", T0 + 2 * D)], "confirmed_fault"),
    ("a sensor fault is no appliance failure", "heating_element_wear",
     [GroundTruth(device_id="rc-1", kind="rice_cooker", mode="stuck_sensor", at=T0 - D, what="sensor_fault",
                  metric="peak_temp_c")], "no_fault_found"),
])
def test_what_a_visit_finds(case: str, mode: str, truth: list[GroundTruth], outcome: str) -> None:
    finding = inspect(truth, device_id="rc-1", kind="rice_cooker", mode=mode, at=T0)
    assert finding.outcome == outcome, case
    assert bool(finding.parts) == (outcome == "part_replaced") and finding.note


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = build_runtime(Settings(database_url=f"sqlite:///{tmp_path / 'demo.db'}", model_dir=tmp_path / "models"),
                       clock=ManualClock(T0))
    yield rt
    rt.engine.dispose()


def test_technicians_complete_visits_at_their_end_and_the_outcomes_become_labels(runtime: Runtime) -> None:
    start = T0 - 2 * D
    fleet_args = dict(start=start, seed=3, scenarios=[
        Scenario(device_id="rc-worn", kind="rice_cooker", mode="heating_element_wear", fails_after=6 * D,
                 service_area="SE1"),
        Scenario(device_id="rc-fine", kind="rice_cooker", service_area="SE1")])
    fleet = Fleet.from_scenarios(**fleet_args)  # type: ignore[arg-type]
    runtime.store.register_devices(DeviceInfo(**row) for row in fleet.manifest())  # type: ignore[arg-type]
    runtime.seed_technicians([Technician(technician_id="tech-chen", name="Chen", skills=frozenset({"rice_cooker"}),
                                         service_areas=frozenset({"SE1"}), working_hours=(0, 24),
                                         working_days=frozenset(range(7)))])
    worn = runtime.actions.book_technician(device_id="rc-worn", mode="heating_element_wear")
    fine = runtime.actions.book_technician(device_id="rc-fine", mode="heating_element_wear")
    techs = SimulatedTechnicians(runtime, technician_ids=["tech-chen"], shadow=Fleet.from_scenarios(**fleet_args))  # type: ignore[arg-type]
    assert techs.tick() == []  # nothing has ended yet
    clock: ManualClock = runtime.clock  # type: ignore[assignment]
    clock.advance(max(worn.end, fine.end) - clock.now())
    done = {b.device_id: b for b in techs.tick()}
    assert set(done) == {"rc-worn", "rc-fine"} and techs.tick() == []  # each visit once
    assert done["rc-worn"].outcome == "confirmed_fault" and done["rc-fine"].outcome == "no_fault_found"
    assert done["rc-worn"].completed_by == "simulated:tech-chen" and done["rc-worn"].status == "completed"
    # The shadow fleet agrees with the real one: the failure the technician foresaw does happen.
    fleet.advance(T0 + 10 * D)
    assert [(g.device_id, g.mode) for g in fleet.ground_truth if g.what == "failure"] == [
        ("rc-worn", "heating_element_wear")]
    # The outcomes are labels the learning loop reads, and no visit goes overdue.
    labels = {(x.device_id, x.failed) for x in outcome_labels(runtime.engine)}
    assert labels == {("rc-worn", True), ("rc-fine", False)}
    clock.advance(6 * timedelta(hours=1))
    assert runtime.actions.mark_overdue_bookings() == 0

