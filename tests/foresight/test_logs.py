"""``FORESIGHT_LOG_FORMAT=json``: one JSON object per log line, with the traceback and extra fields."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from datetime import timedelta

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine

from foresight.logs import JsonFormatter
from foresight.settings import Settings
from ingest.clock import ManualClock
from ingest.contract import Telemetry, encode_telemetry, telemetry_topic
from tests.ingest.writers import make_ingester, refuse_reading
from tests.services import Mosquitto


def test_json_lines_carry_level_logger_message_extra_and_traceback() -> None:
    logger = logging.getLogger("foresight.test")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logger.makeRecord("foresight.test", logging.ERROR, __file__, 1, "batch of %d failed", (500,),
                                   exc_info=sys.exc_info(), extra={"device_id": "rc-1"})
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "ERROR" and line["logger"] == "foresight.test"
    assert line["message"] == "batch of 500 failed" and line["device_id"] == "rc-1"
    assert line["ts"].endswith("Z") and "ValueError: boom" in line["exc"]


def test_log_format_is_a_validated_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORESIGHT_LOG_FORMAT", "json")
    assert Settings().log_format == "json"
    monkeypatch.setenv("FORESIGHT_LOG_FORMAT", "xml")
    with pytest.raises(ValueError):
        Settings()


@pytest.mark.mqtt
def test_the_writer_process_logs_in_the_parents_json_format(engine: Engine, clock: ManualClock,
                                                            mosquitto: Mosquitto) -> None:
    """What the writer process logs comes out of the parent's handler, formatted as JSON there."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    writers: set[int | None] = set()  # the processes the ingest.writing records came from

    def note_process(record: logging.LogRecord) -> bool:
        if record.name == "ingest.writing":
            writers.add(record.process)
        return True

    handler.addFilter(note_process)
    root = logging.getLogger()
    root.addHandler(handler)
    refuse_reading(engine, device_id="ac-json-log", seq=1)
    ing = make_ingester("process", engine=engine, clock=clock, host=mosquitto.host, port=mosquitto.port,
                        client_id="test-json-log-ingest")
    ing.start()
    writer_pid = ing.writer_pid
    try:
        pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="test-json-log-pub")
        pub.connect(mosquitto.host, mosquitto.port)
        pub.loop_start()
        payload = encode_telemetry(Telemetry(device_id="ac-json-log", kind="air_conditioner", model="AC-2500",
                                             firmware="1.0", seq=1, ts=clock.now() - timedelta(minutes=5),
                                             metrics={"filter_dp_pa": 60.0}))
        pub.publish(telemetry_topic("ac-json-log"), payload, qos=1).wait_for_publish(5)
        assert ing.wait_idle(timeout_s=30, settle_s=0.5)
        pub.disconnect()
        pub.loop_stop()
    finally:
        ing.stop()
        root.removeHandler(handler)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]  # every line is one JSON object
    shipped = [line for line in lines if line["logger"] == "ingest.writing"]
    assert shipped and all(line["level"] == "ERROR" for line in shipped)
    assert "dead-lettering" in shipped[-1]["message"]
    assert "reading refused by the database" in shipped[-1]["exc"]
    assert writers == {writer_pid} and writer_pid != os.getpid()
