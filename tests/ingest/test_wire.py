"""The wire contract: the strict decoder and the JSON Schema agree; every bad input has a reason."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.contract import (
    PROFILES,
    DecodeError,
    Event,
    Reason,
    Telemetry,
    decode_event,
    decode_telemetry,
    decode_telemetry_from,
    encode_event,
    encode_telemetry,
    telemetry_topic,
)
from ingest.contract.wire import _id_field
from tests.payloads import bad_payloads

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SCHEMA = json.loads((Path(__file__).parents[2] / "ingest" / "contract" / "telemetry.schema.json").read_text())


def _good(**over: object) -> Telemetry:
    base = dict(device_id="rc-1", kind="rice_cooker", model="RC-100", firmware="1.4.2", seq=7,
                ts=NOW - timedelta(minutes=1), metrics={"time_to_boil_s": 712.5, "heater_power_w": 650.0})
    base.update(over)
    return Telemetry(**base)  # type: ignore[arg-type]


def test_round_trip_and_schema_agree() -> None:
    payload = encode_telemetry(_good())
    jsonschema.validate(json.loads(payload), SCHEMA, format_checker=jsonschema.FormatChecker())
    decoded = decode_telemetry(payload, topic=telemetry_topic("rc-1"), now=NOW)
    assert decoded == _good(ts=decoded.ts)
    assert decoded.ts == (NOW - timedelta(minutes=1))


def test_schema_lists_every_profile_kind() -> None:
    assert set(SCHEMA["properties"]["kind"]["enum"]) == set(PROFILES)


@pytest.mark.parametrize("case", bad_payloads(NOW), ids=lambda c: c.name)
def test_every_recorded_bad_payload_is_refused_with_its_reason(case) -> None:  # type: ignore[no-untyped-def]
    if not case.topic.endswith("/telemetry"):
        pytest.skip("status and event payloads are checked by the store")
    with pytest.raises(DecodeError) as info:
        decode_telemetry(case.payload, topic=case.topic, now=NOW)
    assert info.value.reason == case.reason
    assert info.value.detail


def _with_device_id(value: object) -> bytes:
    body = json.loads(encode_telemetry(_good()))
    body["device_id"] = value
    return json.dumps(body).encode()


def _reason_of(decode: Callable[[], object]) -> Reason | None:
    try:
        decode()
    except DecodeError as exc:
        return exc.reason
    return None


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.sampled_from(["rc-1", "rc-2", "RC-1", "rc-1 ", "rc_1.a"]), st.text(max_size=70),
                 st.integers(), st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
                 st.lists(st.integers(), max_size=2)))
def test_a_payload_device_id_is_refused_as_before_the_topic_was_parsed_once(value: object) -> None:
    """The order the decoder had before: the payload's id checked first, then compared with the topic's."""
    def before() -> None:
        _id_field({"device_id": value}, "device_id")
        if value != "rc-1":
            raise DecodeError(Reason.DEVICE_MISMATCH, "differs")
    payload = _with_device_id(value)
    assert _reason_of(lambda: decode_telemetry_from("rc-1", payload, now=NOW)) == _reason_of(before)
    assert _reason_of(lambda: decode_telemetry(payload, topic=telemetry_topic("rc-1"), now=NOW)) == _reason_of(before)


@pytest.mark.parametrize(("payload_id", "reason"), [
    ("rc-2", Reason.DEVICE_MISMATCH), ("rc 1", Reason.SCHEMA), ("", Reason.SCHEMA), (7, Reason.SCHEMA),
    ("rc-1\u0000", Reason.SCHEMA), ("x" * 65, Reason.SCHEMA)])
def test_a_payload_device_id_other_than_the_topics_is_checked_then_refused(payload_id, reason) -> None:  # type: ignore[no-untyped-def]
    assert _reason_of(lambda: decode_telemetry_from("rc-1", _with_device_id(payload_id), now=NOW)) == reason


def test_decoding_on_a_split_topic_checks_its_device_id_and_decodes_as_on_the_topic() -> None:
    payload = encode_telemetry(_good())
    assert decode_telemetry_from("rc-1", payload, now=NOW) == decode_telemetry(
        payload, topic=telemetry_topic("rc-1"), now=NOW)
    bad = encode_telemetry(_good(device_id="rc 1"))  # the payload agrees with the bad topic id
    assert _reason_of(lambda: decode_telemetry_from("rc 1", bad, now=NOW)) == Reason.BAD_TOPIC


def test_schema_also_refuses_the_structurally_bad_ones() -> None:
    for case in bad_payloads(NOW):
        if case.reason not in ("schema", "unsupported_version", "unknown_kind"):
            continue
        try:
            body = json.loads(case.payload)
        except ValueError:
            continue
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(body, SCHEMA)


def test_oversized_and_deeply_nested_payloads() -> None:
    with pytest.raises(DecodeError) as big:
        decode_telemetry(b"{" + b" " * 9000 + b"}", topic=telemetry_topic("rc-1"), now=NOW)
    assert big.value.reason == Reason.TOO_LARGE
    with pytest.raises(DecodeError) as deep:
        decode_telemetry(b"[" * 4000 + b"]" * 4000, topic=telemetry_topic("rc-1"), now=NOW)
    assert deep.value.reason in (Reason.BAD_JSON, Reason.SCHEMA)


def test_topic_must_be_an_appliance_channel() -> None:
    with pytest.raises(DecodeError) as info:
        decode_telemetry(encode_telemetry(_good()), topic="appliances/rc-1/secrets", now=NOW)
    assert info.value.reason == Reason.BAD_TOPIC


def test_events_round_trip() -> None:
    event = Event(device_id="rc-1", kind="rice_cooker", seq=9, ts=NOW, event="error", code="E3")
    assert decode_event(encode_event(event), topic="appliances/rc-1/events", now=NOW) == event


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_escape_as_anything_but_decode_error(blob: bytes) -> None:
    try:
        decode_telemetry(blob, topic=telemetry_topic("rc-1"), now=NOW)
    except DecodeError as exc:
        assert isinstance(exc.reason, Reason)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["v", "device_id", "kind", "model", "firmware", "seq", "ts", "metrics", "x"]),
                       json_values, max_size=9))
def test_arbitrary_json_objects_are_accepted_only_when_valid(body: dict) -> None:  # type: ignore[type-arg]
    payload = json.dumps(body).encode()
    try:
        t = decode_telemetry(payload, topic=telemetry_topic("rc-1"), now=NOW)
    except DecodeError:
        return
    assert t.device_id == "rc-1" and t.kind in PROFILES


def _object_text(pairs: list[tuple[str, object]], seps: list[str], ascii_only: bool) -> str:
    """A JSON object written from ``pairs`` as given: duplicate keys and odd spacing included."""
    parts = []
    for i, (key, value) in enumerate(pairs):
        text = _object_text(*value) if isinstance(value, tuple) else json.dumps(value, ensure_ascii=ascii_only)
        parts.append(f"{json.dumps(key, ensure_ascii=ascii_only)}{seps[i % len(seps)]}{text}")
    return "{" + ",".join(parts) + "}"


_keys = st.sampled_from(["v", "device_id", "kind", "model", "firmware", "seq", "ts", "metrics", "a:b", "time_to_boil_s"])
_scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.sampled_from(
    [1, 2, 700, 2**63, 2**64 + 1, 10**30, "rc-1", "rice_cooker", "RC-100", "1.0", "x:y", "\u00e9:", "2026-03-02T12:00:00Z",
     "2026-03-02T11:59:00.123Z"]))
_seps = st.lists(st.sampled_from([":", " : ", ": ", ":\n"]), min_size=1, max_size=3)
_metrics = st.tuples(st.lists(st.tuples(st.sampled_from(["time_to_boil_s", "heater_power_w", "a:b", "peak_temp_c"]),
                                        _scalars), max_size=4), _seps, st.booleans())


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_keys, _scalars | _metrics), max_size=10), _seps, st.booleans(), st.booleans())
def test_the_fast_json_path_decides_exactly_as_the_exact_one(pairs, seps, ascii_only, valid_base) -> None:  # type: ignore[no-untyped-def]
    """orjson is used only where it cannot differ: same telemetry or same reason, duplicates included."""
    import ingest.contract.wire as wire

    if valid_base:  # most generated objects fail early; start from a valid one and add to it
        base = [("v", 1), ("device_id", "rc-1"), ("kind", "rice_cooker"), ("model", "RC-100"), ("firmware", "1.0"),
                ("seq", 1), ("ts", "2026-03-02T12:00:00Z"), ("metrics", ([("time_to_boil_s", 700.5)], [":"], True))]
        pairs = base + pairs
    payload = _object_text(pairs, seps, ascii_only).encode()

    def outcome() -> object:
        try:
            return decode_telemetry(payload, topic=telemetry_topic("rc-1"), now=NOW)
        except DecodeError as exc:
            return exc.reason

    fast = outcome()
    plain, wire._load_plain_object = wire._load_plain_object, lambda _: None
    try:
        exact = outcome()
    finally:
        wire._load_plain_object = plain
    assert fast == exact
