"""History files: telemetry and failures as CSV, ground truth as JSON Lines, the device manifest as CSV.

Timestamps are RFC 3339 UTC (``format_ts``). The telemetry CSV has one column per metric of every
kind, in profile order; a cell is empty where the row's kind has no such metric.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO, TypeVar

from ingest.contract import PROFILES, Event, Telemetry, format_ts

from .fleet import DeviceSpec, GroundTruth

__all__ = [
    "HistoryFileError",
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


_T = TypeVar("_T")


class HistoryFileError(ValueError):
    """A history file that cannot be read; the message names the file, row and column."""


def _parse_ts(raw: str) -> datetime:
    ts = datetime.fromisoformat(raw)
    if ts.tzinfo is None:
        raise ValueError("timestamp without a UTC offset")
    return ts.astimezone(UTC)


def _cell(path: str | Path, row: int, column: str, parse: Callable[[str], _T], raw: str | None) -> _T:
    if raw is None:
        raise HistoryFileError(f"{path}: row {row}, column {column}: missing")
    try:
        return parse(raw)
    except ValueError as exc:
        raise HistoryFileError(f"{path}: row {row}, column {column}: cannot read {raw!r} ({exc})") from None


def _finite(raw: str) -> float:
    value = float(raw)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return value


def _rows(path: str | Path, fh: TextIO, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(fh)
    missing = [c for c in required if c not in (reader.fieldnames or ())]
    if missing:
        raise HistoryFileError(f"{path}: row 1: missing column(s) {', '.join(missing)}")
    return enumerate(reader, start=2)


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
    """Read a file written by ``write_telemetry_csv``; ``HistoryFileError`` names file, row and column."""
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row, r in _rows(path, fh, ("device_id", "ts", "kind")):
            device_id, kind = r.pop("device_id"), r.pop("kind")
            ts = _cell(path, row, "ts", _parse_ts, r.pop("ts"))
            metrics = {k: _cell(path, row, k, _finite, v) for k, v in r.items() if v not in ("", None)}
            out.append(TelemetryRow(device_id=device_id, ts=ts, kind=kind, metrics=metrics))
    return out


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
        return [(r["device_id"], _cell(path, row, "failed_at", _parse_ts, r["failed_at"]), r["mode"])
                for row, r in _rows(path, fh, ("device_id", "failed_at", "mode"))]


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
