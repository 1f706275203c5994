"""History files of an appliance kind the code has never seen (``water_pump``), for onboarding tests.

Pumps report hourly. A failing pump's bearing vibration climbs over its last ~3 days to the
failure; motor current and flow are noise around each pump's own level; ``rated_kw`` is a constant
column (a nameplate value exported with the readings). Failed pumps stop reporting. Some healthy
pumps leave the records early (their telemetry ends days before the file's last reading): censored
at their own last reading, they are not known healthy after it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

START = datetime(2025, 6, 2, tzinfo=UTC)
COLUMNS = ("device_id", "ts", "kind", "bearing_vibration_mm_s", "motor_current_a", "flow_l_min",
           "rated_kw")


@dataclass(frozen=True)
class HistoryFiles:
    telemetry: Path
    failures: Path
    failed: dict[str, datetime]
    #: Healthy pumps whose records end early, and where.
    left_early: dict[str, datetime]
    end: datetime


def write_history(folder: Path, *, devices: int = 30, days: int = 20, seed: int = 0,
                  kind: str = "water_pump") -> HistoryFiles:
    """Write ``telemetry.csv`` and ``failures.csv`` into ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    end = START + timedelta(days=days)
    failed: dict[str, datetime] = {}
    left: dict[str, datetime] = {}
    rows = []
    for i in range(devices):
        device = f"wp-{i:03d}"
        hours = days * 24
        fail_h = None
        if i % 5 < 3:
            fail_h = int(rng.integers(hours // 3, hours - 6))
            failed[device] = START + timedelta(hours=fail_h)
        elif i % 5 == 3:
            left[device] = START + timedelta(hours=hours // 2)
        last_h = fail_h if fail_h is not None else (hours // 2 if device in left else hours)
        current0, flow0 = rng.normal(6.0, 0.4), rng.normal(120.0, 8.0)
        for h in range(last_h):
            ts = START + timedelta(hours=h)
            to_fail = None if fail_h is None else fail_h - h
            wear = 0.0 if to_fail is None or to_fail > 72 else (72 - to_fail) / 72
            rows.append([device, ts.isoformat().replace("+00:00", "Z"), kind,
                         f"{2.0 + 9.0 * wear ** 1.5 + rng.normal(0, 0.25):.3f}",
                         f"{current0 + 0.8 * wear + rng.normal(0, 0.1):.3f}",
                         f"{flow0 + rng.normal(0, 3.0):.2f}", "7.5"])
    telemetry = folder / "telemetry.csv"
    with open(telemetry, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(COLUMNS)
        out.writerows(rows)
    failures = folder / "failures.csv"
    with open(failures, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["device_id", "failed_at", "mode"])
        for device, at in failed.items():
            out.writerow([device, at.isoformat().replace("+00:00", "Z"), "bearing_wear"])
    return HistoryFiles(telemetry=telemetry, failures=failures, failed=failed, left_early=left, end=end)
