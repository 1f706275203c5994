"""The whole loop through a real Mosquitto: simulated appliances → ingest → features → models →
policy → notifications, bookings and tickets, on a manual event-time clock (two weeks in seconds)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from actions.booking import Technician
from devices_sim import Fleet, Publisher, Scenario
from foresight.runtime import Runtime, build_runtime, score_pending
from foresight.settings import Settings
from ingest.clock import ManualClock
from ingest.contract import encode_event, encode_telemetry, events_topic, telemetry_topic, Telemetry
from ingest.store import DeviceInfo
from tests.conftest import START
from tests.services import Mosquitto
from tests.trained import TrainedModels

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]
_ids = itertools.count()

SCENARIOS = [
    Scenario(device_id="rc-scale", kind="rice_cooker", mode="scale_buildup", fails_after=timedelta(days=9),
             household_id="hh-1", service_area="SE1"),
    Scenario(device_id="ac-clog", kind="air_conditioner", mode="filter_clogging", fails_after=timedelta(days=10),
             household_id="hh-2", service_area="N7"),
    Scenario(device_id="ac-stuck", kind="air_conditioner", fault_metric="filter_dp_pa",
             fault_after=timedelta(days=4), household_id="hh-3", service_area="E2"),
    Scenario(device_id="rc-healthy", kind="rice_cooker", household_id="hh-4", service_area="SE1"),
    Scenario(device_id="ac-healthy", kind="air_conditioner", household_id="hh-4", service_area="SE1"),
]
TECHNICIANS = [
    Technician(technician_id="tech-hvac", name="Ana", skills=frozenset({"hvac"}),
               service_areas=frozenset({"SE1", "N7", "E2"}), working_hours=(8, 18), working_days=frozenset(range(6))),
    Technician(technician_id="tech-rc", name="Chen", skills=frozenset({"rice_cooker"}),
               service_areas=frozenset({"SE1", "N7", "E2"}), working_hours=(8, 18), working_days=frozenset(range(6))),
]


@dataclass
class Loop:
    rt: Runtime
    clock: ManualClock
    fleet: Fleet
    publisher: Publisher
    sent: list[tuple[str, bytes]]

    def run(self, *, days: float, step: timedelta = timedelta(hours=6)) -> None:
        """Advance event time step by step: publish what is due, wait for ingest, score and act."""
        end = self.clock.now() + timedelta(days=days)
        while self.clock.now() < end:
            self.clock.advance(step)
            self.publisher.publish_until(self.clock.now())
            assert self.rt.ingester is not None and self.rt.ingester.wait_idle(timeout_s=20, settle_s=0.1)
            score_pending(self.rt)
            self.rt.actions.mark_due_bookings()
            self.rt.actions.close_recovered_cases()


@pytest.fixture
def loop(tmp_path: Path, mosquitto: Mosquitto, trained_models: TrainedModels) -> Iterator[Loop]:
    database = trained_models.copy_to(tmp_path)
    settings = Settings(database_url=f"sqlite:///{database}", model_dir=trained_models.model_dir,
                        ingest_client_id=f"e2e-ingest-{next(_ids)}")
    clock = ManualClock(START)
    rt = build_runtime(settings, clock=clock)
    fleet = Fleet.from_scenarios(start=START, seed=11, scenarios=SCENARIOS)
    rt.store.register_devices(DeviceInfo(**row) for row in fleet.manifest())  # type: ignore[arg-type]
    rt.seed_technicians(TECHNICIANS)
    rt.start_ingest(host=mosquitto.host, port=mosquitto.port)
    publisher = Publisher(fleet=fleet, host=mosquitto.host, port=mosquitto.port, now=clock.now)
    publisher.connect()
    loop = Loop(rt=rt, clock=clock, fleet=fleet, publisher=publisher, sent=[])
    yield loop
    publisher.stop()
    rt.stop()
    rt.engine.dispose()


def _failure(loop: Loop, device_id: str):  # type: ignore[no-untyped-def]
    found = [g for g in loop.fleet.ground_truth if g.device_id == device_id and g.what == "failure"]
    assert found, f"{device_id} never failed in the simulation"
    return found[0]


def test_the_loop_anticipates_failures_and_escalates_the_ambiguous(loop: Loop, mosquitto: Mosquitto) -> None:
    loop.run(days=14)
    rt = loop.rt

    # A degrading rice cooker: the homeowner hears about it at least 48 h before it fails.
    scale = _failure(loop, "rc-scale")
    notes = [n for n in rt.actions.notifications_for_household("hh-1") if n.mode == "scale_buildup"]
    assert notes, "no descaling notification"
    assert min(n.created_at for n in notes) <= scale.at - timedelta(hours=48)
    assert "descale" in notes[0].body.lower()

    # A clogging AC filter: a technician is booked for a slot before the threshold is crossed.
    clog = _failure(loop, "ac-clog")
    bookings = [b for b in rt.actions.bookings_for_technician("tech-hvac") if b.device_id == "ac-clog"]
    assert len(bookings) == 1
    assert bookings[0].start < clog.at and bookings[0].mode == "filter_clogging"

    # A stuck sensor is not a failure to guess about: a person gets a ticket with the context.
    tickets = [t for t in rt.actions.open_tickets() if t.device_id == "ac-stuck"]
    assert len(tickets) == 1, [(t.category, t.created_at, t.context["prediction"]) for t in tickets]
    context = tickets[0].context
    assert context["device"]["device_id"] == "ac-stuck"
    assert context["readings"]["count"] > 0 and "filter_dp_pa" in context["readings"]["metrics"]
    assert context["prediction"]["sensor_faults"] == ["filter_dp_pa"], (tickets[0].category, context["prediction"])
    assert context["prediction"]["top_features"]

    # Healthy appliances: the machine says nothing.
    for device_id in ("rc-healthy", "ac-healthy"):
        assert rt.actions.device_cases(device_id) == [], rt.predictions.latest([device_id])
    assert rt.actions.notifications_for_household("hh-4") == []


def test_redelivered_messages_change_nothing(loop: Loop, mosquitto: Mosquitto) -> None:
    loop.run(days=12)
    rt = loop.rt
    before = (rt.store.counts(), _actions_snapshot(rt))
    # Replay the whole history, as a broker redelivering after a lost ack or a device resending would.
    replay = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"replay-{next(_ids)}")
    replay.connect(mosquitto.host, mosquitto.port)
    replay.loop_start()
    again = Fleet.from_scenarios(start=START, seed=11, scenarios=SCENARIOS)
    for m in again.advance(loop.clock.now()):
        if isinstance(m, Telemetry):
            replay.publish(telemetry_topic(m.device_id), encode_telemetry(m), qos=1).wait_for_publish(5)
        else:
            replay.publish(events_topic(m.device_id), encode_event(m), qos=1).wait_for_publish(5)
    replay.disconnect()
    replay.loop_stop()
    assert rt.ingester is not None and rt.ingester.wait_idle(timeout_s=30, settle_s=0.3)
    score_pending(rt)
    assert rt.ingester.stats.duplicates > 0
    assert (rt.store.counts(), _actions_snapshot(rt)) == before


def _actions_snapshot(rt: Runtime) -> tuple[int, int, int, int]:
    households = {d.household_id for d in rt.store.devices() if d.household_id}
    notes = sum(len(rt.actions.notifications_for_household(h)) for h in households)
    bookings = sum(len(rt.actions.bookings_for_technician(t.technician_id)) for t in rt.actions.technicians())
    cases = sum(len(rt.actions.device_cases(d.device_id)) for d in rt.store.devices())
    return notes, bookings, len(rt.actions.open_tickets()), cases
