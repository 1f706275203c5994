"""Fuzzing the write path: whatever bytes arrive, the store never raises, each message is either
stored or dead-lettered with a reason, and good traffic in the same batch is stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.clock import ManualClock
from ingest.contract import Reason, Telemetry, encode_telemetry, telemetry_topic
from ingest.db import create_schema, make_engine
from ingest.store import Inbound, IngestStore

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
GOOD_FIELDS = {"v": 1, "device_id": "ac-fuzz", "kind": "air_conditioner", "model": "AC-2500", "firmware": "1.0",
               "seq": 1, "ts": "2026-03-02T11:00:00Z", "metrics": {"filter_dp_pa": 80.0}}

nasty_numbers = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", str(10**400), "1e-400",
                                 "-0", "9223372036854775808", "-1"])
nasty_ts = st.sampled_from(["2026-03-02T11:00:00Z", "1970-01-01T00:00:00Z", "2999-01-01T00:00:00Z",
                            "2026-02-30T11:00:00Z", "2026-03-02 11:00:00", "", "2026-03-02T11:00:00+05:00"])


@st.composite
def mutated_payloads(draw: st.DrawFn) -> bytes:
    """A valid payload with one field broken in one of the ways devices get it wrong."""
    kind = draw(st.sampled_from(["number", "ts", "seq", "nesting", "duplicate", "bytes", "drop", "huge"]))
    body = json.dumps(GOOD_FIELDS)
    if kind == "number":
        return body.replace("80.0", draw(nasty_numbers)).encode()
    if kind == "ts":
        return body.replace("2026-03-02T11:00:00Z", draw(nasty_ts)).encode()
    if kind == "seq":
        return body.replace('"seq": 1', f'"seq": {draw(st.sampled_from(["-5", "1.5", "true", "null", str(2**70)]))}').encode()
    if kind == "nesting":
        depth = draw(st.integers(10, 5000))
        return body.replace("80.0", "[" * depth + "]" * depth).encode()
    if kind == "duplicate":
        return body.replace('"seq": 1', '"seq": 1, "seq": 2').encode()
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "drop":
        fields = dict(GOOD_FIELDS)
        fields.pop(draw(st.sampled_from(sorted(fields))))
        return json.dumps(fields).encode()
    return b'{"pad": "' + b"x" * draw(st.integers(8200, 20000)) + b'"}'


@settings(max_examples=200, deadline=None)
@given(payloads=st.lists(mutated_payloads(), min_size=1, max_size=8))
def test_malformed_payloads_are_refused_by_reason_and_good_traffic_still_lands(payloads: list[bytes]) -> None:
    engine = make_engine("sqlite://")
    create_schema(engine)
    clock = ManualClock(NOW)
    store = IngestStore(engine, clock=clock)
    good = Inbound(telemetry_topic("ac-good"), encode_telemetry(Telemetry(
        device_id="ac-good", kind="air_conditioner", model="AC-2500", firmware="1.0", seq=1,
        ts=NOW - timedelta(minutes=5), metrics={"filter_dp_pa": 70.0})), NOW)
    batch = [Inbound(telemetry_topic("ac-fuzz"), p, NOW) for p in payloads] + [good]
    result = store.write_batch(batch)  # never raises
    assert result.accepted + result.duplicates + result.rejected == len(batch)
    assert len(store.recent_readings("ac-good")) == 1
    letters = store.dead_letters(limit=100)
    assert len(letters) == result.rejected
    assert all(d.reason in {r.value for r in Reason} and d.detail for d in letters)
    engine.dispose()
