"""The wire contract between appliances and the backend: topics, payloads, strict decoding.

Pure: no I/O and no clock of its own. Both the simulator (which encodes) and the ingester (which
decodes) use this module, so the two sides cannot drift apart. ``telemetry.schema.json`` beside
this file is the same contract for people and other languages; tests check both agree.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from math import isfinite
from typing import Any

import orjson

from .profiles import PROFILES, ApplianceProfile, MetricSpec

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "QOS_TELEMETRY",
    "STATUS_OFFLINE",
    "STATUS_ONLINE",
    "WIRE_VERSION",
    "DecodeError",
    "Event",
    "Reason",
    "Telemetry",
    "decode_event",
    "decode_telemetry",
    "decode_telemetry_from",
    "encode_event",
    "encode_telemetry",
    "events_topic",
    "format_ts",
    "parse_topic",
    "status_topic",
    "telemetry_topic",
]

WIRE_VERSION = 1
QOS_TELEMETRY = 1
MAX_PAYLOAD_BYTES = 8192
MAX_METRICS = 64
TOPIC_ROOT = "appliances"
STATUS_ONLINE = "online"
STATUS_OFFLINE = "offline"
_RFC3339 = re.compile(r"(?P<date>\d{4}-\d{2}-\d{2})[Tt](?P<time>\d{2}:\d{2}:\d{2})(?P<frac>\.\d{1,9})?"
                      r"(?P<offset>[Zz]|[+-]\d{2}:\d{2})")
_TELEMETRY_KEYS = frozenset({"v", "device_id", "kind", "model", "firmware", "seq", "ts", "metrics"})
_EVENT_KEYS = frozenset({"v", "device_id", "kind", "seq", "ts", "event"})
_EVENT_OPTIONAL = frozenset({"code"})
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class Reason(StrEnum):
    """Why a message was rejected; stored with it in the dead-letter table."""

    TOO_LARGE = "too_large"
    BAD_ENCODING = "bad_encoding"
    BAD_JSON = "bad_json"
    DUPLICATE_KEY = "duplicate_key"
    NON_FINITE = "non_finite"
    SCHEMA = "schema"
    UNSUPPORTED_VERSION = "unsupported_version"
    BAD_TOPIC = "bad_topic"
    DEVICE_MISMATCH = "device_mismatch"
    UNKNOWN_KIND = "unknown_kind"
    UNKNOWN_METRIC = "unknown_metric"
    OUT_OF_RANGE = "out_of_range"
    BAD_TIMESTAMP = "bad_timestamp"
    CLOCK_SKEW = "clock_skew"
    KIND_MISMATCH = "kind_mismatch"
    UNKNOWN_DEVICE = "unknown_device"
    REVOKED_DEVICE = "revoked_device"
    STORE_ERROR = "store_error"


class DecodeError(ValueError):
    """A message that breaks the contract; ``reason`` is a ``Reason``, ``detail`` says where."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Telemetry:
    """One validated telemetry message."""

    device_id: str
    kind: str
    model: str
    firmware: str
    seq: int
    ts: datetime
    metrics: dict[str, float]


@dataclass(frozen=True, slots=True)
class Event:
    """One validated device event: an error code or a finished cycle."""

    device_id: str
    kind: str
    seq: int
    ts: datetime
    event: str
    code: str | None


def telemetry_topic(device_id: str) -> str:
    return f"{TOPIC_ROOT}/{device_id}/telemetry"


def status_topic(device_id: str) -> str:
    return f"{TOPIC_ROOT}/{device_id}/status"


def events_topic(device_id: str) -> str:
    return f"{TOPIC_ROOT}/{device_id}/events"


def parse_topic(topic: str) -> tuple[str, str]:
    """Split ``appliances/{device_id}/{channel}`` into (device_id, channel)."""
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != TOPIC_ROOT or parts[2] not in ("telemetry", "status", "events"):
        raise DecodeError(Reason.BAD_TOPIC, f"topic {topic!r} is not appliances/<device_id>/<channel>")
    if not _valid_id(parts[1]):
        raise DecodeError(Reason.BAD_TOPIC, f"device id {parts[1]!r} in topic is not a valid id")
    return parts[1], parts[2]


def format_ts(ts: datetime) -> str:
    """RFC 3339 UTC with millisecond precision and a ``Z`` suffix."""
    if ts.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_telemetry(t: Telemetry) -> bytes:
    """The JSON payload for one telemetry message."""
    body = {"v": WIRE_VERSION, "device_id": t.device_id, "kind": t.kind, "model": t.model,
            "firmware": t.firmware, "seq": t.seq, "ts": format_ts(t.ts), "metrics": t.metrics}
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def encode_event(e: Event) -> bytes:
    """The JSON payload for one device event."""
    body = {"v": WIRE_VERSION, "device_id": e.device_id, "kind": e.kind, "seq": e.seq,
            "ts": format_ts(e.ts), "event": e.event, "code": e.code}
    return json.dumps(body, separators=(",", ":")).encode()


def decode_telemetry(payload: bytes, *, topic: str, now: datetime,
                     max_future: timedelta = timedelta(minutes=5),
                     max_past: timedelta = timedelta(days=30)) -> Telemetry:
    """Decode and strictly validate a telemetry payload received on ``topic``.

    ``now`` is the service's event-time clock; timestamps further than ``max_future`` ahead of it or
    ``max_past`` behind it are rejected as clock skew. Raises ``DecodeError`` with the reason.
    """
    topic_device, channel = parse_topic(topic)
    if channel != "telemetry":
        raise DecodeError(Reason.BAD_TOPIC, f"expected a telemetry topic, got {topic!r}")
    return _decode_telemetry_on(topic_device, payload, now=now, max_future=max_future, max_past=max_past)


def decode_telemetry_from(topic_device: str, payload: bytes, *, now: datetime,
                          max_future: timedelta = timedelta(minutes=5),
                          max_past: timedelta = timedelta(days=30)) -> Telemetry:
    """``decode_telemetry`` of a payload that arrived on the telemetry topic of ``topic_device``,
    for a caller that has the device id rather than the topic."""
    if not _valid_id(topic_device):
        raise DecodeError(Reason.BAD_TOPIC, f"device id {topic_device!r} in topic is not a valid id")
    return _decode_telemetry_on(topic_device, payload, now=now, max_future=max_future, max_past=max_past)


def _decode_telemetry_on(topic_device: str, payload: bytes, *, now: datetime, max_future: timedelta,
                         max_past: timedelta) -> Telemetry:
    """The payload's part of ``decode_telemetry``, ``topic_device`` a checked id (checked once)."""
    body = _load_object(payload)
    _exact_keys(body, required=_TELEMETRY_KEYS)
    _check_version(body["v"])
    device_id = body["device_id"]
    if device_id != topic_device:  # an equal id is the topic's, checked above: only another one is
        device_id = _id_field(body, "device_id")
        raise DecodeError(Reason.DEVICE_MISMATCH,
                          f"payload device_id {device_id!r} differs from topic device {topic_device!r}")
    kind = _str_field(body, "kind")
    profile = PROFILES.get(kind)
    if profile is None:
        raise DecodeError(Reason.UNKNOWN_KIND, f"kind {kind!r} is not one of {sorted(PROFILES)}")
    model = _str_field(body, "model")
    firmware = _str_field(body, "firmware")
    seq = _seq_field(body)
    ts = _ts_field(body, now=now, max_future=max_future, max_past=max_past)
    raw = body["metrics"]
    if not isinstance(raw, dict) or not raw:
        raise DecodeError(Reason.SCHEMA, "metrics must be a non-empty object of name: number")
    if len(raw) > MAX_METRICS:
        raise DecodeError(Reason.SCHEMA, f"metrics has {len(raw)} entries, at most {MAX_METRICS}")
    metrics: dict[str, float] = {}
    specs = _specs(profile)
    for name, value in raw.items():
        spec = specs.get(name)
        if spec is None:
            raise DecodeError(Reason.UNKNOWN_METRIC, f"metric {name!r} is not a {kind} metric")
        if type(value) is float:  # the usual case, checked first; bool is an int, never a float
            number = value
        elif isinstance(value, bool) or not isinstance(value, int):
            raise DecodeError(Reason.SCHEMA, f"metrics.{name} must be a number, got {type(value).__name__}")
        else:
            number = _finite(value, name)
        if not isfinite(number):
            raise DecodeError(Reason.NON_FINITE, f"metrics.{name} is not finite")
        if not spec.low <= number <= spec.high:
            raise DecodeError(Reason.OUT_OF_RANGE,
                              f"metrics.{name}={number:g} {spec.unit} outside [{spec.low:g}, {spec.high:g}]")
        metrics[name] = number
    return Telemetry(device_id=device_id, kind=kind, model=model, firmware=firmware, seq=seq,
                     ts=ts, metrics=metrics)


def decode_event(payload: bytes, *, topic: str, now: datetime,
                 max_future: timedelta = timedelta(minutes=5),
                 max_past: timedelta = timedelta(days=30)) -> Event:
    """Decode and strictly validate a device event payload received on ``topic``."""
    topic_device, channel = parse_topic(topic)
    if channel != "events":
        raise DecodeError(Reason.BAD_TOPIC, f"expected an events topic, got {topic!r}")
    body = _load_object(payload)
    _exact_keys(body, required=_EVENT_KEYS, optional=_EVENT_OPTIONAL)
    _check_version(body["v"])
    device_id = _id_field(body, "device_id")
    if device_id != topic_device:
        raise DecodeError(Reason.DEVICE_MISMATCH,
                          f"payload device_id {device_id!r} differs from topic device {topic_device!r}")
    kind = _str_field(body, "kind")
    if kind not in PROFILES:
        raise DecodeError(Reason.UNKNOWN_KIND, f"kind {kind!r} is not one of {sorted(PROFILES)}")
    event = _str_field(body, "event")
    if event not in ("error", "cycle_finished"):
        raise DecodeError(Reason.SCHEMA, f"event must be 'error' or 'cycle_finished', got {event!r}")
    code = body.get("code")
    if code is not None and (not isinstance(code, str) or len(code) > 32):
        raise DecodeError(Reason.SCHEMA, "code must be a string of at most 32 characters or null")
    return Event(device_id=device_id, kind=kind, seq=_seq_field(body),
                 ts=_ts_field(body, now=now, max_future=max_future, max_past=max_past),
                 event=event, code=code)


_SPECS: dict[str, tuple[ApplianceProfile, dict[str, MetricSpec]]] = {}


def _specs(profile: ApplianceProfile) -> dict[str, MetricSpec]:
    """``name -> spec`` of a profile's metrics, built once per profile (looked up for every metric)."""
    cached = _SPECS.get(profile.kind)
    if cached is None or cached[0] is not profile:
        cached = _SPECS[profile.kind] = (profile, {spec.name: spec for spec in profile.metrics})
    return cached[1]


def _load_object(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError(Reason.TOO_LARGE, f"payload is {len(payload)} bytes, at most {MAX_PAYLOAD_BYTES}")
    body = _load_plain_object(payload)
    if body is not None:
        return body
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(Reason.BAD_ENCODING, f"payload is not UTF-8 (byte {exc.start})") from None
    try:
        body = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except DecodeError:
        raise
    except RecursionError:
        raise DecodeError(Reason.BAD_JSON, "JSON nested too deeply") from None
    except ValueError as exc:
        raise DecodeError(Reason.BAD_JSON, f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise DecodeError(Reason.SCHEMA, f"payload must be a JSON object, got {type(body).__name__}")
    return body


def _load_plain_object(payload: bytes) -> dict[str, Any] | None:
    """The fast path of ``_load_object``: orjson's parse of a plain payload, or None for the exact path.

    orjson is several times faster than ``json.loads`` with a Python duplicate-key hook, but keeps
    the last of duplicate keys silently. It is trusted only for an object of scalars and at most
    one level of objects of numbers, with no backslash in the text, and when the payload's colons
    are exactly one per key plus those inside the parsed strings. Without escapes a string's text
    is its value, so a discarded duplicate key (and its colon) makes the count come out higher and
    the message takes the exact path, which names the duplicate. Anything else unusual (NaN, a
    BOM, huge integers that orjson would turn into floats, deep nesting, bad UTF-8) goes there too,
    so the reasons given stay exactly those of the exact path.
    """
    if b"\\" in payload:
        return None
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if type(body) is not dict:
        return None
    keys, colons = len(body), 0
    for key, value in body.items():
        colons += key.count(":")
        kind = type(value)
        if kind is str:
            colons += value.count(":")
        elif kind is dict:
            keys += len(value)
            for name, number in value.items():
                if type(number) is not float and type(number) is not int:
                    return None
                colons += name.count(":")
        elif kind is not int and kind is not bool and value is not None:
            return None  # floats too: orjson reads an integer past 64 bits as a float
    return body if payload.count(b":") == keys + colons else None


def _reject_constant(name: str) -> float:
    raise DecodeError(Reason.NON_FINITE, f"{name} is not a valid JSON number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DecodeError(Reason.DUPLICATE_KEY, f"key {key!r} appears twice")
        out[key] = value
    return out


def _exact_keys(body: dict[str, Any], *, required: frozenset[str], optional: frozenset[str] = frozenset()) -> None:
    if body.keys() == required:
        return
    missing = required - body.keys()
    if missing:
        raise DecodeError(Reason.SCHEMA, f"missing field(s) {sorted(missing)}")
    extra = body.keys() - required - optional
    if extra:
        raise DecodeError(Reason.SCHEMA, f"unexpected field(s) {sorted(extra)}")


def _check_version(v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, int):
        raise DecodeError(Reason.SCHEMA, "v must be an integer")
    if v != WIRE_VERSION:
        raise DecodeError(Reason.UNSUPPORTED_VERSION, f"wire version {v} is not supported (expected {WIRE_VERSION})")


def _str_field(body: dict[str, Any], name: str, max_len: int = 64) -> str:
    value = body[name]
    if not isinstance(value, str) or not value:
        raise DecodeError(Reason.SCHEMA, f"{name} must be a non-empty string")
    if len(value) > max_len:
        raise DecodeError(Reason.SCHEMA, f"{name} is longer than {max_len} characters")
    if not value.isprintable():  # NUL and friends: PostgreSQL text refuses NUL outright
        raise DecodeError(Reason.SCHEMA, f"{name} contains control characters")
    return value


def _valid_id(value: str) -> bool:
    return 0 < len(value) <= 64 and set(value) <= _ID_CHARS


def _id_field(body: dict[str, Any], name: str) -> str:
    value = _str_field(body, name)
    if not _valid_id(value):
        raise DecodeError(Reason.SCHEMA, f"{name} {value!r} may only hold letters, digits, '-', '_' and '.'")
    return value


def _seq_field(body: dict[str, Any]) -> int:
    seq = body["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise DecodeError(Reason.SCHEMA, f"seq must be an integer, got {type(seq).__name__}")
    if not 0 <= seq < 2**63:
        raise DecodeError(Reason.OUT_OF_RANGE, f"seq {seq} outside [0, 2^63)")
    return seq


def _ts_field(body: dict[str, Any], *, now: datetime, max_future: timedelta, max_past: timedelta) -> datetime:
    raw = body["ts"]
    if not isinstance(raw, str) or len(raw) > 40:
        raise DecodeError(Reason.SCHEMA, "ts must be an RFC 3339 string")
    match = _RFC3339.fullmatch(raw)
    if match is None:
        raise DecodeError(Reason.BAD_TIMESTAMP, f"ts {raw!r} is not RFC 3339 (YYYY-MM-DDTHH:MM:SS[.frac]Z)")
    if match["offset"].upper() not in ("Z", "+00:00"):
        raise DecodeError(Reason.BAD_TIMESTAMP, f"ts {raw!r} must be RFC 3339 in UTC (Z or +00:00)")
    try:
        ts = datetime.fromisoformat(f"{match['date']}T{match['time']}{(match['frac'] or '')[:7]}+00:00")
    except ValueError:
        raise DecodeError(Reason.BAD_TIMESTAMP, f"ts {raw!r} is not a valid date and time") from None
    ts = ts.astimezone(UTC)
    if ts > now + max_future:
        raise DecodeError(Reason.CLOCK_SKEW, f"ts {raw} is {ts - now} ahead of the service clock")
    if ts < now - max_past:
        raise DecodeError(Reason.CLOCK_SKEW, f"ts {raw} is {now - ts} behind the service clock")
    return ts


def _finite(value: int, metric: str) -> float:
    """An integer metric as a float (the caller checks finiteness)."""
    try:
        return float(value)
    except OverflowError:
        raise DecodeError(Reason.NON_FINITE, f"metrics.{metric} is too large to be a number") from None
