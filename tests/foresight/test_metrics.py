"""``GET /metrics`` over a real runtime on SQLite: what an operator's Prometheus would scrape."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from foresight.api import create_app
from foresight.runtime import Runtime, build_runtime
from foresight.settings import Settings
from ingest.clock import ManualClock
from ingest.contract import Telemetry, encode_telemetry, telemetry_topic
from ingest.store import Inbound
from tests.conftest import START
from tests.foresight.people import seed_users, signed_in
from tests.ingest.writers import WRITERS
from tests.payloads import bad_payloads
from tests.services import Mosquitto

_ids = itertools.count()


@pytest.fixture
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on SQLite; parametrized indirectly with the ingest writer (default: the settings')."""
    clock = ManualClock(START + timedelta(days=1))
    rt = build_runtime(Settings(database_url=f"sqlite:///{tmp_path / 'metrics.db'}", model_dir=tmp_path / "models",
                                ingest_client_id=f"test-metrics-{next(_ids)}",
                                ingest_writer=getattr(request, "param", None)), clock=clock)
    seed_users(rt)
    yield rt
    rt.stop()
    rt.engine.dispose()


def _good(clock: ManualClock, device_id: str, seq: int) -> bytes:
    return encode_telemetry(Telemetry(device_id=device_id, kind="rice_cooker", model="RC-100", firmware="1.0",
                                      seq=seq, ts=clock.now() - timedelta(minutes=30 - seq),
                                      metrics={"time_to_boil_s": 700.0 + seq}))


def _scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_metrics_count_a_stored_batch_with_rejections_by_reason(runtime: Runtime) -> None:
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    bad = {case.name: case for case in bad_payloads(clock.now())}
    batch = [Inbound(telemetry_topic("rc-m1"), _good(clock, "rc-m1", seq), clock.now()) for seq in (1, 2, 3)]
    batch += [Inbound(telemetry_topic("rc-m1"), _good(clock, "rc-m1", 2), clock.now())]  # redelivered
    batch += [Inbound(bad[name].topic, bad[name].payload, clock.now()) for name in ("bad_json", "nan", "infinity")]
    clock.advance(timedelta(seconds=2))
    # What the ingester's on_batch hook (wired by Runtime.start_ingest) does after each commit.
    runtime.metrics.observe_batch(runtime.store.write_batch(batch))

    m = _scrape(signed_in(create_app(runtime), "op"))
    assert m[("foresight_messages_ingested_total", ())] == 3
    assert m[("foresight_messages_duplicate_total", ())] == 1
    assert m[("foresight_messages_rejected_total", (("reason", "bad_json"),))] == 1
    assert m[("foresight_messages_rejected_total", (("reason", "non_finite"),))] == 2
    assert m[("foresight_batch_commit_seconds_count", ())] == 1
    # Event time to commit: the readings were 27-29 minutes old when committed.
    assert m[("foresight_ingest_lag_seconds_count", ())] == 3
    assert m[("foresight_ingest_lag_seconds_bucket", (("le", "900.0"),))] == 0
    assert m[("foresight_ingest_lag_seconds_bucket", (("le", "3600.0"),))] == 3
    # No ingester running: its gauges say so rather than disappearing.
    assert m[("foresight_mqtt_connected", ())] == 0 and m[("foresight_ingest_queue_depth", ())] == 0
    assert ("foresight_predictions_scored_total", ()) in m


@pytest.mark.mqtt
@pytest.mark.parametrize("runtime", WRITERS, indirect=True)
def test_metrics_follow_live_mqtt_traffic(runtime: Runtime, mosquitto: Mosquitto) -> None:
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    runtime.start_ingest(host=mosquitto.host, port=mosquitto.port)
    assert runtime.ingester is not None and runtime.ingester.wait_idle(timeout_s=15)
    api = signed_in(create_app(runtime), "op")
    # The session's broker is shared: retained messages of other tests arrive on subscribe.
    before = _scrape(api)
    pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"test-metrics-pub-{next(_ids)}")
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()
    device = f"rc-metrics-{next(_ids)}"
    bad = {case.name: case for case in bad_payloads(clock.now())}
    for seq in range(1, 6):
        pub.publish(telemetry_topic(device), _good(clock, device, seq), qos=1).wait_for_publish(5)
    for name in ("bad_json", "out_of_range", "bad_status"):
        pub.publish(bad[name].topic, bad[name].payload, qos=1).wait_for_publish(5)
    assert runtime.ingester is not None and runtime.ingester.wait_idle(timeout_s=15)
    pub.disconnect()
    pub.loop_stop()

    m = _scrape(api)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return m[key] - before.get(key, 0.0)

    assert delta("foresight_messages_received_total") == 8
    assert delta("foresight_messages_ingested_total") == 5
    for reason in ("bad_json", "out_of_range", "schema"):
        assert delta("foresight_messages_rejected_total", reason=reason) == 1
    assert m[("foresight_acks_outstanding", ())] == 0
    assert m[("foresight_ingest_queue_depth", ())] == 0
    assert m[("foresight_mqtt_connected", ())] == 1
    assert m[("foresight_write_errors_total", ())] == 0
    assert m[("foresight_ingest_writer_restarts_total", ())] == 0
    assert delta("foresight_batch_commit_seconds_count") >= 1
    # Event time to commit, from the runtime's clock whichever process wrote: 25-29 minutes.
    assert delta("foresight_ingest_lag_seconds_count") == 5
    assert delta("foresight_ingest_lag_seconds_bucket", le="900.0") == 0
    assert delta("foresight_ingest_lag_seconds_bucket", le="3600.0") == 5
