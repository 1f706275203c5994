"""Presence: online, offline, stale (silent past the kind's interval) or unknown; replays change nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from ingest.clock import ManualClock
from ingest.contract import PROFILES, status_topic
from ingest.presence import presence
from ingest.store import DeviceInfo, Inbound, IngestStore
from tests.conftest import START

H = timedelta(hours=1)
RC, AC = PROFILES["rice_cooker"], PROFILES["air_conditioner"]


@pytest.mark.parametrize(("status", "silent_for", "interval_h", "grace", "expected"), [
    ("online", 0 * H, 8.0, 3.0, "online"),
    ("online", 23 * H, 8.0, 3.0, "online"),
    ("online", 24 * H, 8.0, 3.0, "online"),            # exactly at the limit: still within
    ("online", 25 * H, 8.0, 3.0, "stale"),             # a rice cooker unused for a day
    ("unknown", 2 * H, 8.0, 3.0, "online"),            # readings but no status (no last will)
    ("unknown", 30 * H, 8.0, 3.0, "stale"),
    ("unknown", None, 8.0, 3.0, "unknown"),            # never heard from
    ("offline", 1 * H, 8.0, 3.0, "offline"),           # the broker said so: not merely stale
    ("offline", 300 * H, 8.0, 3.0, "offline"),
    ("offline", None, 8.0, 3.0, "offline"),
    ("online", -timedelta(minutes=4), 8.0, 3.0, "online"),  # device clock a little ahead
    ("online", 4 * H, 1.0, 3.0, "stale"),              # default grace on an hourly reporter
    ("online", 48 * H, 1.0, 72.0, "online"),           # an AC switched off over a weekend
    ("online", 73 * H, 1.0, 72.0, "stale"),
])
def test_presence_table(status: str, silent_for: timedelta | None, interval_h: float, grace: float,
                        expected: str) -> None:
    last_seen = None if silent_for is None else START - silent_for
    assert presence(status, last_seen, now=START, reading_interval_h=interval_h, grace_factor=grace) == expected


def test_profiles_choose_their_grace() -> None:
    assert RC.reading_interval_h * RC.silence_grace == 24.0
    assert AC.reading_interval_h * AC.silence_grace == 72.0


def _status(device_id: str, text: str, at: ManualClock) -> Inbound:
    return Inbound(status_topic(device_id), text.encode(), at.now())


def test_store_reports_presence_and_filters_by_it(engine: Engine, clock: ManualClock) -> None:
    store = IngestStore(engine, clock=clock)
    store.register_devices([DeviceInfo(device_id=d, kind="rice_cooker") for d in ("rc-on", "rc-off", "rc-new")])
    store.write_batch([_status("rc-on", "online", clock), _status("rc-off", "offline", clock)])
    assert {d.device_id: d.presence for d in store.devices()} == {
        "rc-on": "online", "rc-off": "offline", "rc-new": "unknown"}
    clock.advance(25 * H)  # connected, but no cooking cycle for more than a day
    assert [d.device_id for d in store.devices(presence="stale")] == ["rc-on"]
    assert store.device("rc-on", now=START).presence == "online"  # type: ignore[union-attr]


def test_retained_status_replay_does_not_move_status_at(engine: Engine, clock: ManualClock) -> None:
    """The broker replays the retained status on every resubscribe; it is not a sign of life."""
    store = IngestStore(engine, clock=clock)
    store.register_devices([DeviceInfo(device_id="rc-r", kind="rice_cooker")])
    store.write_batch([_status("rc-r", "online", clock)])
    clock.advance(30 * H)
    store.write_batch([_status("rc-r", "online", clock)])  # the ingester reconnected
    device = store.device("rc-r")
    assert device is not None and device.status_at == START and device.presence == "stale"
    store.write_batch([_status("rc-r", "offline", clock)])  # a real change does move it
    device = store.device("rc-r")
    assert device is not None and device.status_at == clock.now() and device.presence == "offline"
