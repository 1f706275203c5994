"""The publisher against a real Mosquitto: QoS 1 telemetry, retained online/offline status."""

from __future__ import annotations

import queue
import time
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.services import Mosquitto
from devices_sim import Fleet, GroundTruth, Publisher, PublisherError, Scenario
from ingest.contract import (
    STATUS_OFFLINE,
    STATUS_ONLINE,
    decode_event,
    decode_telemetry,
    status_topic,
)

pytestmark = pytest.mark.mqtt

START = datetime(2026, 5, 4, tzinfo=UTC)


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.t = now

    def now(self) -> datetime:
        return self.t


class _Subscriber:
    """A plain paho subscriber whose callback only queues ``(topic, payload, qos, retain)``."""

    def __init__(self, host: str, port: int, topic: str, client_id: str) -> None:
        self.inbox: queue.Queue[tuple[str, bytes, int, bool]] = queue.Queue()
        self.ready = queue.Queue[int]()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311)
        self.client.on_message = lambda c, u, m: self.inbox.put((m.topic, m.payload, m.qos, m.retain))
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.ready.put(mid)
        self.client.connect(host, port)
        self.client.loop_start()
        self.client.subscribe(topic, qos=1)
        self.ready.get(timeout=5)

    def drain(self, *, until_quiet_s: float = 0.3, timeout_s: float = 10.0,
              want: int = 0) -> list[tuple[str, bytes, int, bool]]:
        out: list[tuple[str, bytes, int, bool]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                out.append(self.inbox.get(timeout=until_quiet_s))
            except queue.Empty:
                if len(out) >= want:
                    break
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _fleet() -> Fleet:
    return Fleet.from_scenarios(start=START, seed=1, scenarios=[
        Scenario(device_id="rc-0001", kind="rice_cooker", mode="scale_buildup", fails_after=timedelta(days=1)),
        Scenario(device_id="ac-0001", kind="air_conditioner"),
    ])


def test_publish_until_delivers_qos1_telemetry_events_and_retained_status(mosquitto: Mosquitto) -> None:
    host, port = mosquitto.host, mosquitto.port
    clock = _Clock(START)
    truths: list[GroundTruth] = []
    live = _Subscriber(host, port, "appliances/#", "test-live")
    publisher = Publisher(fleet=_fleet(), host=host, port=port, now=clock.now, on_ground_truth=truths.append)
    try:
        publisher.start(background=False)
        clock.t = START + timedelta(days=3)
        acked = publisher.publish_until(clock.t)
        assert acked == publisher.published > 20 and publisher.failed == 0
        got = live.drain(want=acked + 2)
        telemetry = [m for m in got if m[0].endswith("/telemetry")]
        events = [m for m in got if m[0].endswith("/events")]
        assert len(telemetry) + len(events) == acked
        assert all(qos == 1 for _, _, qos, _ in telemetry + events)
        decoded = [decode_telemetry(p, topic=t, now=clock.t) for t, p, _, _ in telemetry]
        assert {d.device_id for d in decoded} == {"rc-0001", "ac-0001"}
        assert [decode_event(p, topic=t, now=clock.t).code for t, p, _, _ in events] == ["E3"]
        assert [(g.device_id, g.mode) for g in truths] == [("rc-0001", "scale_buildup")]

        late = _Subscriber(host, port, "appliances/+/status", "test-late")
        status = {t: (p, r) for t, p, _, r in late.drain(want=2)}
        late.close()
        assert status[status_topic("rc-0001")] == (STATUS_ONLINE.encode(), True)
        assert status[status_topic("ac-0001")] == (STATUS_ONLINE.encode(), True)
    finally:
        publisher.stop()
        live.close()
    after = _Subscriber(host, port, "appliances/+/status", "test-after")
    status = {t: (p, r) for t, p, _, r in after.drain(want=2)}
    after.close()
    assert status[status_topic("rc-0001")] == (STATUS_OFFLINE.encode(), True)


def test_background_ticks_follow_the_injected_clock(mosquitto: Mosquitto) -> None:
    host, port = mosquitto.host, mosquitto.port
    clock = _Clock(START)
    live = _Subscriber(host, port, "appliances/#", "test-bg")
    publisher = Publisher(fleet=_fleet(), host=host, port=port, now=clock.now, tick_s=0.02)
    try:
        publisher.start()
        time.sleep(0.1)
        assert publisher.published == 0  # the clock has not moved: nothing is due
        clock.t = START + timedelta(days=1)
        deadline = time.monotonic() + 10
        while publisher.published == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        got = [m for m in live.drain(want=publisher.published + 2) if m[0].endswith("/telemetry")]
        assert got and all(decode_telemetry(p, topic=t, now=clock.t).ts <= clock.t for t, p, _, _ in got)
    finally:
        publisher.stop()
        live.close()
    assert publisher.failed == 0


def test_unreachable_broker_is_an_error_not_silence() -> None:
    publisher = Publisher(fleet=_fleet(), host="127.0.0.1", port=1, now=lambda: START, connect_timeout_s=0.5)
    with pytest.raises(PublisherError):
        publisher.start()
