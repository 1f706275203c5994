"""Read a manufacturer's history files -- telemetry and failures CSV -- strictly, into readings and labels.

``telemetry.csv``: header ``device_id,ts,kind`` plus one numeric column per metric; one row per
reading; an empty cell is a metric the device did not report. ``failures.csv``: header
``device_id,failed_at,mode``. Timestamps are RFC 3339 with an offset (``2025-03-01T08:00:00Z``) or
a number of seconds since 1970-01-01 UTC. The format is documented in ``docs/onboarding.md``.

Everything that would make a model quietly wrong is refused with a ``HistoryError`` naming the
file, the row (line number in the file; the header is row 1) and the column: missing columns,
unparsable timestamps, NaN / infinite / non-numeric values, duplicate readings and failures, a
device reported under two kinds, failures of devices absent from the telemetry, and -- for kinds
with a known profile -- metrics or failure modes the profile does not have and values outside its
valid range.
"""

from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ingest.contract import ApplianceProfile
from ingest.features import Reading
from predictors.dataset import FailureLabel
from predictors.errors import HistoryError
from predictors.profile_file import NAME_PATTERN

__all__ = ["FAILURE_COLUMNS", "TELEMETRY_KEYS", "History", "parse_ts", "read_failures",
           "read_telemetry"]

TELEMETRY_KEYS = ("device_id", "ts", "kind")
FAILURE_COLUMNS = ("device_id", "failed_at", "mode")
_DEVICE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True, slots=True, kw_only=True)
class History:
    """A validated history: readings (per device in time order, ``seq`` from 1) and failures.

    ``kinds[kind]`` lists the metric columns holding values for that kind; ``observed_until`` is each
    device's last reading (a device without a later failure is censored there).
    """

    telemetry_file: str
    failures_file: str
    readings: tuple[Reading, ...]
    failures: tuple[FailureLabel, ...]
    kinds: Mapping[str, tuple[str, ...]]
    device_kinds: Mapping[str, str]
    observed_until: Mapping[str, datetime]


def parse_ts(raw: str) -> datetime:
    """An RFC 3339 timestamp with offset, or seconds since the Unix epoch; ValueError otherwise."""
    text = raw.strip()
    if _RFC3339.match(text):
        return datetime.fromisoformat(text.replace("z", "Z")).astimezone(UTC)
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"{raw!r} is neither RFC 3339 with an offset (2025-03-01T08:00:00Z) "
                         "nor seconds since 1970-01-01 UTC") from None
    if not math.isfinite(seconds) or not -1e11 < seconds < 1e11:
        raise ValueError(f"{raw!r} is not a usable number of seconds since 1970-01-01 UTC")
    return datetime.fromtimestamp(seconds, tz=UTC)


def read_telemetry(path: Path, *, profiles: Mapping[str, ApplianceProfile]) -> tuple[
        list[Reading], dict[str, tuple[str, ...]], dict[str, str]]:
    """Readings (grouped by device, time order), metric columns used per kind, each device's kind.

    Rows of kinds in ``profiles`` are checked against the profile (metrics and ranges); other
    kinds are new and accept any metric column.
    """
    name = str(path)

    def check_header(header: list[str]) -> None:
        metrics = [c for c in header if c not in TELEMETRY_KEYS]
        if not metrics:
            raise HistoryError(name, "no metric columns: add one numeric column per metric after "
                                     "device_id,ts,kind", row=1)
        for col in metrics:
            if not NAME_PATTERN.match(col):
                raise HistoryError(name, "a metric column name must be lower-case letters, digits "
                                         "and _ (at most 32, starting with a letter)", row=1, column=col)

    header, rows = _open(path, required=TELEMETRY_KEYS, check_header=check_header)
    metrics = [c for c in header if c not in TELEMETRY_KEYS]
    idx = {c: header.index(c) for c in header}
    seen: dict[tuple[str, datetime], int] = {}
    device_kind: dict[str, tuple[str, int]] = {}
    used: dict[str, dict[str, None]] = defaultdict(dict)
    by_device: dict[str, list[tuple[datetime, dict[str, float]]]] = defaultdict(list)
    for line, cells in rows:
        device_id = _device_id(cells[idx["device_id"]], name, line)
        kind = cells[idx["kind"]].strip()
        if not NAME_PATTERN.match(kind):
            raise HistoryError(name, f"kind {kind!r} must be lower-case letters, digits and _ "
                                     "(at most 32, starting with a letter)", row=line, column="kind")
        first = device_kind.setdefault(device_id, (kind, line))
        if first[0] != kind:
            raise HistoryError(name, f"device {device_id} is {first[0]!r} at row {first[1]} and "
                                     f"{kind!r} here", row=line, column="kind")
        ts = _ts(cells[idx["ts"]], name, line, "ts")
        if (device_id, ts) in seen:
            raise HistoryError(name, f"duplicate reading: device {device_id} at {ts.isoformat()} "
                                     f"is also row {seen[(device_id, ts)]}", row=line, column="ts")
        seen[(device_id, ts)] = line
        profile = profiles.get(kind)
        values: dict[str, float] = {}
        for col in metrics:
            raw = cells[idx[col]].strip()
            if raw == "":
                continue
            value = _value(raw, name, line, col)
            if profile is not None:
                _check_against(profile, col, value, name, line)
            values[col] = value
            used[kind][col] = None
        if not values:
            raise HistoryError(name, "no metric values in this row", row=line)
        by_device[device_id].append((ts, values))
    readings: list[Reading] = []
    for device_id in sorted(by_device):
        kind = device_kind[device_id][0]
        for seq, (ts, values) in enumerate(sorted(by_device[device_id], key=lambda x: x[0]), 1):
            readings.append(Reading(device_id=device_id, kind=kind, seq=seq, ts=ts, metrics=values))
    kinds = {k: tuple(c for c in metrics if c in cols) for k, cols in used.items()}
    return readings, kinds, {d: k for d, (k, _) in device_kind.items()}


def read_failures(path: Path, *, device_kinds: Mapping[str, str], telemetry_file: str,
                  profiles: Mapping[str, ApplianceProfile]) -> list[FailureLabel]:
    """Failure labels; each device must be in the telemetry and each mode in its kind's profile."""
    name = str(path)

    def check_header(header: list[str]) -> None:
        extra = [c for c in header if c not in FAILURE_COLUMNS]
        if extra:
            raise HistoryError(name, f"unexpected column (the columns are {','.join(FAILURE_COLUMNS)})",
                               row=1, column=extra[0])

    header, rows = _open(path, required=FAILURE_COLUMNS, check_header=check_header)
    idx = {c: header.index(c) for c in FAILURE_COLUMNS}
    seen: dict[tuple[str, str, datetime], int] = {}
    out = []
    for line, cells in rows:
        device_id = _device_id(cells[idx["device_id"]], name, line)
        kind = device_kinds.get(device_id)
        if kind is None:
            raise HistoryError(name, f"device {device_id} has no readings in {telemetry_file}",
                               row=line, column="device_id")
        failed_at = _ts(cells[idx["failed_at"]], name, line, "failed_at")
        mode = cells[idx["mode"]].strip()
        if not NAME_PATTERN.match(mode):
            raise HistoryError(name, f"mode {mode!r} must be lower-case letters, digits and _ "
                                     "(at most 32, starting with a letter)", row=line, column="mode")
        profile = profiles.get(kind)
        if profile is not None and mode not in {m.name for m in profile.failure_modes}:
            raise HistoryError(name, f"{mode!r} is not a failure mode of {kind} (one of "
                                     f"{', '.join(m.name for m in profile.failure_modes)})",
                               row=line, column="mode")
        key = (device_id, mode, failed_at)
        if key in seen:
            raise HistoryError(name, f"duplicate failure: {mode} of {device_id} at "
                                     f"{failed_at.isoformat()} is also row {seen[key]}", row=line)
        seen[key] = line
        out.append(FailureLabel(device_id=device_id, mode=mode, failed_at=failed_at))
    return out


def _open(path: Path, *, required: tuple[str, ...],
          check_header: Callable[[list[str]], None]) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header (checked first) and the non-blank data rows with their line numbers."""
    name = str(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, strict=True)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise HistoryError(name, "the file is empty (expected a header row)") from None
            dupes = sorted({h for h in header if header.count(h) > 1})
            if dupes:
                raise HistoryError(name, "column appears twice in the header", row=1, column=dupes[0])
            for col in required:
                if col not in header:
                    raise HistoryError(name, "missing column (the header must have "
                                             f"{', '.join(required)})", row=1, column=col)
            check_header(header)
            rows = []
            for cells in reader:
                line = reader.line_num
                if not cells or all(c.strip() == "" for c in cells):
                    continue  # blank lines carry nothing
                if len(cells) != len(header):
                    raise HistoryError(name, f"{len(cells)} fields, the header has {len(header)}",
                                       row=line)
                rows.append((line, cells))
    except OSError as exc:
        raise HistoryError(name, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise HistoryError(name, f"not UTF-8 text (byte {exc.start})") from None
    except csv.Error as exc:
        raise HistoryError(name, f"not valid CSV: {exc}") from None
    if not rows:
        raise HistoryError(name, "no data rows after the header")
    return header, rows


def _device_id(raw: str, file: str, line: int) -> str:
    value = raw.strip()
    if not _DEVICE_ID.match(value):
        raise HistoryError(file, f"device id {raw!r} must be 1-64 of A-Z a-z 0-9 . _ -",
                           row=line, column="device_id")
    return value


def _ts(raw: str, file: str, line: int, column: str) -> datetime:
    try:
        return parse_ts(raw)
    except ValueError as exc:
        raise HistoryError(file, f"unparsable timestamp: {exc}", row=line, column=column) from None


def _value(raw: str, file: str, line: int, column: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise HistoryError(file, f"{raw!r} is not a number", row=line, column=column) from None
    if not math.isfinite(value):
        raise HistoryError(file, f"{raw!r} is not a finite number (leave the cell empty for a "
                                 "missing reading)", row=line, column=column)
    return value


def _check_against(profile: ApplianceProfile, column: str, value: float, file: str, line: int) -> None:
    if column not in profile.metric_names:
        raise HistoryError(file, f"{column!r} is not a metric of {profile.kind} (one of "
                                 f"{', '.join(s.name for s in profile.metrics)})", row=line, column=column)
    spec = profile.metric(column)
    if not spec.low <= value <= spec.high:
        raise HistoryError(file, f"{value:g} {spec.unit} is outside the valid range "
                                 f"[{spec.low:g}, {spec.high:g}] of {profile.kind}.{column}",
                           row=line, column=column)

