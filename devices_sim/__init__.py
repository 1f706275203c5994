"""Simulated smart appliances: a seeded fleet whose wear shows in its telemetry, put on MQTT.

Speaks only the wire contract (``ingest.contract``); nothing else of the backend is imported.
"""

from .errors import PublisherError, ScenarioError, SimulatorError
from .files import (
    HistoryFileError,
    TelemetryRow,
    read_failures_csv,
    read_ground_truth_jsonl,
    read_manifest_csv,
    read_telemetry_csv,
    write_failures_csv,
    write_ground_truth_jsonl,
    write_manifest_csv,
    write_telemetry_csv,
)
from .fleet import DeviceSpec, Fleet, GroundTruth, Message, Scenario
from .publisher import Publisher

__all__ = [
    "DeviceSpec", "Fleet", "GroundTruth", "HistoryFileError", "Message", "Publisher", "PublisherError", "Scenario",
    "ScenarioError", "SimulatorError", "TelemetryRow", "read_failures_csv", "read_ground_truth_jsonl",
    "read_manifest_csv", "read_telemetry_csv", "write_failures_csv", "write_ground_truth_jsonl",
    "write_manifest_csv", "write_telemetry_csv",
]
