"""Revoked devices on both backends: everything from them is dead-lettered, the rest of the batch is not."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from ingest import revocations
from ingest.clock import ManualClock
from ingest.contract import Event, Reason, Telemetry, encode_event, encode_telemetry, events_topic, telemetry_topic
from ingest.store import DeviceInfo, Inbound, IngestStore


def _telemetry(clock: ManualClock, device_id: str, seq: int) -> Inbound:
    t = Telemetry(device_id=device_id, kind="air_conditioner", model="AC-2500", firmware="1.0", seq=seq,
                  ts=clock.now() - timedelta(minutes=5), metrics={"filter_dp_pa": 70.0})
    return Inbound(telemetry_topic(device_id), encode_telemetry(t), clock.now())


def test_telemetry_events_and_status_of_a_revoked_device_are_dead_lettered(any_engine: Engine,
                                                                           clock: ManualClock) -> None:
    store = IngestStore(any_engine, clock=clock)
    store.register_devices([DeviceInfo(device_id="ac-ok", kind="air_conditioner"),
                            DeviceInfo(device_id="ac-gone", kind="air_conditioner")])
    store.write_batch([_telemetry(clock, "ac-gone", 1)])
    assert revocations.revoke(any_engine, ["ac-gone", "never-seen"], at=clock.now()) == ["ac-gone", "never-seen"]
    clock.advance(timedelta(minutes=1))
    assert revocations.revoke(any_engine, ["ac-gone"], at=clock.now()) == []  # the first time is kept
    assert revocations.revoked(any_engine)["ac-gone"] == clock.now() - timedelta(minutes=1)

    event = Event(device_id="ac-gone", kind="air_conditioner", seq=2, ts=clock.now() - timedelta(minutes=1),
                  event="error", code="E7")
    mismatched = Event(device_id="ac-ok", kind="rice_cooker", seq=9, ts=clock.now() - timedelta(minutes=1),
                       event="error", code="E3")
    result = store.write_batch([
        _telemetry(clock, "ac-gone", 3), _telemetry(clock, "ac-gone", 1),  # new and redelivered
        Inbound(events_topic("ac-gone"), encode_event(event), clock.now()),
        Inbound("appliances/ac-gone/status", b"offline", clock.now()),
        _telemetry(clock, "never-seen", 1),
        _telemetry(clock, "ac-ok", 1), _telemetry(clock, "ac-ok", 1),  # one stored, one duplicate
        Inbound(events_topic("ac-ok"), encode_event(mismatched), clock.now()),  # not a telemetry duplicate
    ])
    assert (result.accepted, result.duplicates, result.rejected) == (1, 1, 6)
    assert dict(result.rejected_by_reason) == {"revoked_device": 5, "kind_mismatch": 1}
    assert [r.seq for r in store.recent_readings("ac-gone")] == [1]  # from before the revocation
    assert store.device("never-seen") is None and store.device("ac-gone").status == "unknown"  # type: ignore[union-attr]
    assert {d.topic for d in store.dead_letters(reason=Reason.REVOKED_DEVICE)} == {
        telemetry_topic("ac-gone"), events_topic("ac-gone"), "appliances/ac-gone/status", telemetry_topic("never-seen")}

    assert revocations.reinstate(any_engine, ["ac-gone", "ac-ok"]) == ["ac-gone"]
    assert store.write_batch([_telemetry(clock, "ac-gone", 3)]).accepted == 1
