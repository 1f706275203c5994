"""The pure wire contract: topics, payload codecs and appliance profiles. No I/O, no backend imports."""

from .profiles import (
    PROFILES,
    RATIO_STATS,
    STATS,
    ActionKind,
    ApplianceProfile,
    FailureMode,
    MetricSpec,
    Threshold,
    feature_name,
    get_profile,
    ratio_metric,
)
from .wire import (
    MAX_PAYLOAD_BYTES,
    QOS_TELEMETRY,
    STATUS_OFFLINE,
    STATUS_ONLINE,
    DecodeError,
    Event,
    Reason,
    Telemetry,
    decode_event,
    decode_telemetry,
    decode_telemetry_from,
    encode_event,
    encode_telemetry,
    events_topic,
    format_ts,
    parse_topic,
    status_topic,
    telemetry_topic,
)

__all__ = [
    "MAX_PAYLOAD_BYTES", "PROFILES", "QOS_TELEMETRY", "RATIO_STATS", "STATS", "STATUS_OFFLINE", "STATUS_ONLINE",
    "ActionKind", "ApplianceProfile", "DecodeError", "Event", "FailureMode", "MetricSpec", "Reason",
    "Telemetry", "Threshold", "decode_event", "decode_telemetry", "decode_telemetry_from", "encode_event",
    "encode_telemetry", "events_topic", "feature_name", "format_ts", "get_profile", "parse_topic", "ratio_metric",
    "status_topic", "telemetry_topic",
]
