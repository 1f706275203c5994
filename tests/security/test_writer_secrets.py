"""The writer process gets the database password over its private socket, never on its command line
or in its environment (both readable by other local users or tools: ``ps``, ``/proc``, crash
reports), and a ``StoreSpec`` never prints it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from ingest.contract import Telemetry, encode_telemetry, telemetry_topic
from ingest.db import create_schema, make_engine
from ingest.store import BatchResult, Inbound
from ingest.writer_process import ProcessWriter, StoreSpec
from tests.services import Postgres

pytestmark = pytest.mark.postgres
PASSWORD = "pw-never-on-argv-7f3a"


def test_the_database_password_reaches_the_writer_process_only_over_its_socket(postgres: Postgres) -> None:
    url = make_url(postgres.create_database()).set(password=PASSWORD).render_as_string(hide_password=False)
    engine = make_engine(url)
    create_schema(engine)
    spec = StoreSpec(database_url=url)
    assert PASSWORD not in repr(spec) and PASSWORD not in str(spec)
    stored = threading.Event()
    results: list[BatchResult] = []

    def on_result(token: object, result: BatchResult) -> None:
        results.append(result)
        stored.set()

    writer = ProcessWriter(spec, on_result=on_result)
    writer.start()
    try:
        pid = writer.pid
        assert pid is not None
        now = datetime.now(UTC)
        payload = encode_telemetry(Telemetry(device_id="ac-secret", kind="air_conditioner", model="AC-2500",
                                             firmware="1.0", seq=1, ts=now, metrics={"filter_dp_pa": 60.0}))
        writer.submit([Inbound(telemetry_topic("ac-secret"), payload, now)], now=now, token=None)
        assert stored.wait(30)  # the child did connect with the URL it was sent
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    finally:
        writer.close()
        engine.dispose()
    assert results[0].accepted == 1
    assert b"ingest.writer_process" in cmdline
    assert PASSWORD.encode() not in cmdline and PASSWORD.encode() not in environ
