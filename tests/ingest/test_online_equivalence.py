"""Features of a mixed fleet do not depend on how its readings arrive (the batch write path's contract).

Several devices of every kind, readings interleaved across devices, shuffled within a device after
its baseline readings, cut into random batches, some missing a metric, some delivered twice: the
online vectors and the point-in-time history must equal those of writing each device's readings
one at a time in event-time order.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.clock import ManualClock
from ingest.contract import PROFILES, Telemetry, encode_telemetry, telemetry_topic
from ingest.db import create_schema, make_engine
from ingest.store import Inbound, IngestStore
from tests.conftest import START

# (kind, devices, readings each): every kind past its window, so tails, baselines and late
# readings all meet the packed state.
FLEET = (("air_conditioner", 3, 34), ("rice_cooker", 3, 20), ("water_purifier", 2, 26))


def _fleet(rng: random.Random, clock: ManualClock) -> dict[str, list[Inbound]]:
    """Each device's messages in event-time order."""
    out: dict[str, list[Inbound]] = {}
    for kind, n_devices, n_readings in FLEET:
        profile = PROFILES[kind]
        for d in range(n_devices):
            device = f"{kind[:2]}-{d}"
            level = {m.name: m.low + (m.high - m.low) * rng.uniform(0.2, 0.5) for m in profile.metrics}
            msgs = []
            for seq in range(n_readings):
                metrics = {name: round(v * rng.uniform(0.97, 1.03) * (1 + seq / 200), 3) for name, v in level.items()}
                if rng.random() < 0.15:  # a reading without one of its metrics
                    metrics.pop(rng.choice(sorted(metrics)))
                if rng.random() < 0.05:  # a spike
                    name = rng.choice(sorted(metrics))
                    metrics[name] = min(metrics[name] * 1.8, profile.metric(name).high)
                hours = (n_readings - seq) * profile.reading_interval_h
                t = Telemetry(device_id=device, kind=kind, model="M", firmware="1.0", seq=seq,
                              ts=clock.now() - timedelta(hours=hours), metrics=metrics)
                msgs.append(Inbound(telemetry_topic(device), encode_telemetry(t), clock.now()))
            out[device] = msgs
    return out


def _arrival(rng: random.Random, fleet: dict[str, list[Inbound]], *, shuffle: bool) -> list[Inbound]:
    """Per device its baseline readings first and in order (the baseline is what arrived first),
    the rest shuffled if ``shuffle`` (late readings) else in order (the usual case); devices
    interleaved at random; a few messages delivered twice."""
    queues = {}
    for device, msgs in fleet.items():
        b = PROFILES[_kind(device)].baseline_readings
        rest = msgs[b:]
        if shuffle:
            rng.shuffle(rest)
        queues[device] = msgs[:b] + rest
    arrival: list[Inbound] = []
    while queues:
        device = rng.choice(sorted(queues))
        arrival.append(queues[device].pop(0))
        if not queues[device]:
            del queues[device]
    for _ in range(rng.randint(0, 6)):  # redelivered later (an earlier copy would move the baseline)
        at = rng.randrange(len(arrival))
        arrival.insert(rng.randint(at + 1, len(arrival)), arrival[at])
    return arrival


def _kind(device: str) -> str:
    return next(kind for kind, _, _ in FLEET if kind.startswith(device.split("-")[0]))


def _features(batches: list[list[Inbound]], clock: ManualClock, devices: list[str]) -> tuple[object, ...]:
    engine = make_engine("sqlite://")
    create_schema(engine)
    store = IngestStore(engine, clock=clock)
    for batch in batches:
        store.write_batch(batch)
    latest = {v.device_id: (v.ts, v.n_readings, v.values) for v in store.latest_features(devices)}
    history = {d: {(v.ts, v.n_readings): v.values for v in store.feature_history(d)} for d in devices}
    engine.dispose()
    return latest, history


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shuffle=st.booleans(), long_baseline=st.booleans(),
       batch_sizes=st.lists(st.integers(1, 60), min_size=1, max_size=8))
def test_a_fleet_gets_the_same_features_whatever_the_arrival_order_and_batching(
        seed: int, shuffle: bool, long_baseline: bool, batch_sizes: list[int]) -> None:
    # ``long_baseline``: an onboarded profile may make the baseline longer than the window (here
    # the air conditioner's 30 first readings, window 24).
    patched = {"air_conditioner": replace(PROFILES["air_conditioner"], baseline_readings=30)} if long_baseline else {}
    with mock.patch.dict(PROFILES, patched):
        _check_equivalence(seed, shuffle, batch_sizes)


def _check_equivalence(seed: int, shuffle: bool, batch_sizes: list[int]) -> None:
    rng = random.Random(seed)
    clock = ManualClock(START)
    fleet = _fleet(rng, clock)
    arrival = _arrival(rng, fleet, shuffle=shuffle)
    batches, at, i = [], 0, 0
    while at < len(arrival):
        size = batch_sizes[i % len(batch_sizes)]
        batches.append(arrival[at:at + size])
        at, i = at + size, i + 1
    devices = sorted(fleet)
    in_order = [[m] for device in devices for m in fleet[device]]
    got, want = _features(batches, clock, devices), _features(in_order, clock, devices)
    assert got[0] == want[0]
    assert got[1] == want[1]
    assert all(len(want[1][d]) == len(fleet[d]) for d in devices)
