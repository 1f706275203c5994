"""History files: telemetry and failures as CSV, ground truth as JSON Lines, the device manifest as CSV.

Timestamps are RFC 3339 UTC (``format_ts``). The telemetry CSV has one column per metric of every
kind, in profile order; a cell is empty where the row's kind has no such metric.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ingest.contract import PROFILES, Event, Telemetry, format_ts

from .fleet import DeviceSpec, GroundTruth

__all__ = [
    "MANIFEST_COLUMNS",
    "TelemetryRow",
    "metric_columns",
    "read_failures_csv",
    "read_ground_truth_jsonl",
    "read_manifest_csv",
    "read_telemetry_csv",
    "write_failures_csv",
    "write_ground_truth_jsonl",
    "write_manifest_csv",
    "write_telemetry_csv",
]

MANIFEST_COLUMNS = ("device_id", "kind", "model", "firmware", "household_id", "service_area")


def metric_columns() -> list[str]:
    """Every metric of every kind, in profile order, each once."""
    return list(dict.fromkeys(spec.name for p in PROFILES.values() for spec in p.metrics))


@dataclass(frozen=True, slots=True, kw_only=True)
class TelemetryRow:
    """One row of a telemetry history file."""

    device_id: str
    ts: datetime
    kind: str
    metrics: dict[str, float]


def _parse_ts(raw: str) -> datetime:
    return datetime.fromisoformat(raw).astimezone(UTC)


def write_telemetry_csv(path: str | Path, telemetry: Iterable[Telemetry | Event]) -> int:
    """Write telemetry as ``device_id,ts,kind,<metrics…>``; events in the input are skipped. Returns rows."""
    columns = metric_columns()
    rows = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["device_id", "ts", "kind", *columns])
        for t in telemetry:
            if not isinstance(t, Telemetry):
                continue
            out.writerow([t.device_id, format_ts(t.ts), t.kind,
                          *(repr(t.metrics[c]) if c in t.metrics else "" for c in columns)])
            rows += 1
    return rows


def read_telemetry_csv(path: str | Path) -> list[TelemetryRow]:
    """Read a file written by ``write_telemetry_csv``."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [TelemetryRow(device_id=r.pop("device_id"), ts=_parse_ts(r.pop("ts")), kind=r.pop("kind"),
                             metrics={k: float(v) for k, v in r.items() if v != ""})
                for r in csv.DictReader(fh)]


def write_failures_csv(path: str | Path, ground_truth: Iterable[GroundTruth]) -> int:
    """Write ``device_id,failed_at,mode`` for failures only (sensor faults are left out). Returns rows."""
    rows = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["device_id", "failed_at", "mode"])
        for g in ground_truth:
            if g.what == "failure":
                out.writerow([g.device_id, format_ts(g.at), g.mode])
                rows += 1
    return rows


def read_failures_csv(path: str | Path) -> list[tuple[str, datetime, str]]:
    """Read ``(device_id, failed_at, mode)`` rows written by ``write_failures_csv``."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [(r["device_id"], _parse_ts(r["failed_at"]), r["mode"]) for r in csv.DictReader(fh)]


def write_ground_truth_jsonl(path: str | Path, ground_truth: Iterable[GroundTruth]) -> int:
    """Write every ground-truth record (failures and sensor faults) as one JSON object a line."""
    rows = 0
    with open(path, "w", encoding="utf-8") as fh:
        for g in ground_truth:
            fh.write(json.dumps({"device_id": g.device_id, "kind": g.kind, "mode": g.mode,
                                 "at": format_ts(g.at), "what": g.what, "metric": g.metric}) + "\n")
            rows += 1
    return rows


def read_ground_truth_jsonl(path: str | Path) -> list[GroundTruth]:
    """Read a file written by ``write_ground_truth_jsonl``."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                d = json.loads(line)
                out.append(GroundTruth(device_id=d["device_id"], kind=d["kind"], mode=d["mode"],
                                       at=_parse_ts(d["at"]), what=d["what"], metric=d.get("metric")))
    return out


def write_manifest_csv(path: str | Path, devices: Iterable[DeviceSpec]) -> int:
    """Write the installed base (no hidden scenarios): one row per device."""
    rows = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
        out.writeheader()
        for d in devices:
            out.writerow(d.manifest_row())
            rows += 1
    return rows


def read_manifest_csv(path: str | Path) -> list[dict[str, str]]:
    """Read a file written by ``write_manifest_csv``."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [dict(r) for r in csv.DictReader(fh)]
