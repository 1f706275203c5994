"""`foresight devices revoke` against a real Mosquitto and the ingester.

The broker runs on the very folder `devices provision` wrote, as in production; `revoke
--pid-file` rewrites it and sends SIGHUP. Then the device's login is refused (and its open
connection dropped), whatever it published before still reaches the ingester from its persistent
session and is dead-lettered as ``revoked_device``, and only an explicit ``--reinstate`` gives it
a login again, with a new password.
"""

from __future__ import annotations

import csv
import itertools
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from foresight.cli import app
from foresight.migrate import upgrade
from foresight.provision import BACKEND_CREDENTIALS_FILE, CREDENTIALS_FILE, provision, read_credentials
from ingest import revocations
from ingest.clock import ManualClock
from ingest.contract import Reason, Telemetry, encode_telemetry, telemetry_topic
from ingest.db import make_engine
from ingest.store import IngestStore
from ingest.subscriber import Ingester
from tests.security.clients import NOT_AUTHORIZED, Client, connect_client
from tests.services import Mosquitto

pytestmark = pytest.mark.mqtt
DEVICE_A, DEVICE_B, BACKEND = "rev-a", "rev-b", "foresight"
_runs = itertools.count()


@dataclass
class Site:
    broker: Mosquitto
    folder: Path  # the provision folder the broker reads
    manifest: Path
    pid_file: Path
    engine: Engine

    def passwords(self) -> dict[str, str]:
        return {**read_credentials(self.folder / CREDENTIALS_FILE),
                **read_credentials(self.folder / BACKEND_CREDENTIALS_FILE)}

    def cli(self, *args: str) -> str:
        result = CliRunner().invoke(app, ["devices", *args])
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())  # rich wraps long lines


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    first = tmp_path / "provisioned"
    provision([DEVICE_A, DEVICE_B], out=first, backend_users=[BACKEND])
    broker = Mosquitto.start_new(password_file=first / "passwd", acl_file=first / "acl")
    # The broker's own copies of passwd and acl sit in its directory: make that the provision folder.
    for name in (CREDENTIALS_FILE, BACKEND_CREDENTIALS_FILE):
        shutil.copy2(first / name, broker.directory / name)
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["device_id", "kind", "model", "firmware", "household_id", "service_area"])
        w.writerows([d, "air_conditioner", "AC-2500", "1.0", "hh-1", "SE1"] for d in (DEVICE_A, DEVICE_B))
    pid_file = tmp_path / "mosquitto.pid"
    assert broker.proc is not None
    pid_file.write_text(f"{broker.proc.pid}\n")
    url = f"sqlite:///{tmp_path / 'foresight.db'}"
    monkeypatch.setenv("FORESIGHT_DATABASE_URL", url)
    engine = make_engine(url)
    upgrade(engine)
    yield Site(broker=broker, folder=broker.directory, manifest=manifest, pid_file=pid_file, engine=engine)
    engine.dispose()
    broker.close()


def _device(site: Site, device_id: str, password: str) -> Client:
    return connect_client(site.broker, device_id, password, client_id=device_id)


def _ingester(site: Site, store: IngestStore, clock: ManualClock, client_id: str) -> Ingester:
    return Ingester(store=store, clock=clock, host=site.broker.host, port=site.broker.port, client_id=client_id,
                    username=BACKEND, password=site.passwords()[BACKEND])


def _reading(device_id: str, seq: int, clock: ManualClock) -> bytes:
    return encode_telemetry(Telemetry(device_id=device_id, kind="air_conditioner", model="AC-2500", firmware="1.0",
                                      seq=seq, ts=clock.now() - timedelta(minutes=1),
                                      metrics={"filter_dp_pa": 80.0, "fan_current_a": 0.9}))


def test_after_revoke_and_sighup_the_login_is_refused_and_its_connection_dropped(site: Site) -> None:
    before = site.passwords()
    a, b = _device(site, DEVICE_A, before[DEVICE_A]), _device(site, DEVICE_B, before[DEVICE_B])
    assert not a.connect_rc.is_failure and not b.connect_rc.is_failure  # type: ignore[union-attr]

    out = site.cli("revoke", DEVICE_A, "--out", str(site.folder), "--pid-file", str(site.pid_file))
    assert "sent SIGHUP" in out
    assert a.dropped.wait(5), "the revoked device's open connection was not closed on reload"
    again = _device(site, DEVICE_A, before[DEVICE_A])
    assert again.connect_rc is not None and again.connect_rc.is_failure
    assert not b.dropped.is_set() and b.client.is_connected()
    assert _device(site, DEVICE_B, before[DEVICE_B]).connect_rc.is_failure is False  # type: ignore[union-attr]

    assert DEVICE_A not in (site.folder / "passwd").read_text()
    assert set(read_credentials(site.folder / CREDENTIALS_FILE)) == {DEVICE_B}
    assert set(revocations.revoked(site.engine)) == {DEVICE_A}
    repeat = site.cli("revoke", DEVICE_A, "--out", str(site.folder))  # safe to repeat; says how to reload
    assert "already revoked: rev-a" in repeat and "kill -HUP" in repeat
    b.close()


def test_a_reading_queued_before_the_revocation_is_dead_lettered(site: Site, clock: ManualClock) -> None:
    store = IngestStore(site.engine, clock=clock)
    client_id = f"test-ingest-revoke-{next(_runs)}"
    ing = _ingester(site, store, clock, client_id)
    ing.start()  # creates the persistent session ...
    ing.stop()   # ... which queues what arrives while the ingester is away
    passwords = site.passwords()
    for device_id, seq in ((DEVICE_A, 1), (DEVICE_B, 1)):
        dev = _device(site, device_id, passwords[device_id])
        dev.client.publish(telemetry_topic(device_id), _reading(device_id, seq, clock), qos=1).wait_for_publish(5)
        dev.close()
    site.cli("revoke", DEVICE_A, "--out", str(site.folder), "--pid-file", str(site.pid_file))

    ing = _ingester(site, store, clock, client_id)
    ing.start()
    try:
        deadline = time.monotonic() + 10
        while ing.stats.received < 2 and time.monotonic() < deadline:  # redelivered from the session
            time.sleep(0.02)
        assert ing.wait_idle(timeout_s=10) and ing.stats.received == 2
    finally:
        ing.stop()
    letters = store.dead_letters(reason=Reason.REVOKED_DEVICE)
    assert [d.topic for d in letters] == [telemetry_topic(DEVICE_A)]
    assert "revoked" in letters[0].detail
    assert store.recent_readings(DEVICE_A) == [] and store.device(DEVICE_A) is None  # not even created
    assert [r.seq for r in store.recent_readings(DEVICE_B)] == [1]
    assert store.latest_features([DEVICE_A]) == []  # nothing to score, so nothing to act on


def test_provisioning_again_keeps_a_device_revoked_until_reinstated(site: Site, clock: ManualClock) -> None:
    old = site.passwords()[DEVICE_A]
    site.cli("revoke", DEVICE_A, "--out", str(site.folder), "--pid-file", str(site.pid_file))

    out = site.cli("provision", "--manifest", str(site.manifest), "--out", str(site.folder),
                   "--pid-file", str(site.pid_file))
    assert "left without a login" in out and DEVICE_A not in site.passwords()
    assert _device(site, DEVICE_A, old).connect_rc.is_failure  # type: ignore[union-attr]

    site.cli("provision", "--manifest", str(site.manifest), "--out", str(site.folder), "--reinstate", DEVICE_A,
             "--pid-file", str(site.pid_file))
    new = site.passwords()[DEVICE_A]
    assert new != old and revocations.revoked(site.engine) == {}
    refused = _device(site, DEVICE_A, old)
    assert refused.connect_rc is not None and refused.connect_rc.value == NOT_AUTHORIZED
    a = _device(site, DEVICE_A, new)
    assert a.connect_rc is not None and not a.connect_rc.is_failure

    store = IngestStore(site.engine, clock=clock)
    ing = _ingester(site, store, clock, f"test-ingest-reinstate-{next(_runs)}")
    ing.start()
    try:
        a.client.publish(telemetry_topic(DEVICE_A), _reading(DEVICE_A, 7, clock), qos=1).wait_for_publish(5)
        assert a.wait_for(lambda: len(store.recent_readings(DEVICE_A)) == 1, 10)
    finally:
        a.close()
        ing.stop()
    assert store.dead_letters(reason=Reason.REVOKED_DEVICE) == []


@pytest.mark.parametrize(("ids", "message"), [
    pytest.param(["rev-typo"], "not provisioned", id="unknown-id"),
    pytest.param([BACKEND], "backend login", id="backend-user"),
])
def test_revoke_refuses_ids_it_cannot_mean(site: Site, ids: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["devices", "revoke", *ids, "--out", str(site.folder)])
    assert result.exit_code != 0 and message in " ".join(result.output.split())
    assert revocations.revoked(site.engine) == {} and set(site.passwords()) == {DEVICE_A, DEVICE_B, BACKEND}


def test_a_stale_pid_file_is_not_signalled(site: Site, tmp_path: Path) -> None:
    stale = tmp_path / "stale.pid"
    stale.write_text("1\n")  # init (or whatever runs as pid 1 here): not mosquitto
    result = CliRunner().invoke(app, ["devices", "revoke", DEVICE_A, "--out", str(site.folder),
                                      "--pid-file", str(stale)])
    assert result.exit_code == 1 and "not mosquitto" in " ".join(result.output.split())
    assert DEVICE_A not in site.passwords()  # the files are revoked; only the reload is left to do
