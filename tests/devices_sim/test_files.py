"""History files round-trip through the csv/json modules."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devices_sim import (
    Fleet,
    read_failures_csv,
    read_ground_truth_jsonl,
    read_manifest_csv,
    read_telemetry_csv,
    write_failures_csv,
    write_ground_truth_jsonl,
    write_manifest_csv,
    write_telemetry_csv,
)
from devices_sim.files import metric_columns
from ingest.contract import PROFILES, Telemetry, format_ts

START = datetime(2026, 1, 12, 8, tzinfo=UTC)


def test_history_files_round_trip(tmp_path: Path) -> None:
    fleet = Fleet.build(n_devices=16, seed=9, start=START)
    msgs = fleet.advance(START + timedelta(days=12))
    telemetry = [m for m in msgs if isinstance(m, Telemetry)]
    truth = fleet.ground_truth
    assert any(g.what == "failure" for g in truth) and any(g.what == "sensor_fault" for g in truth)

    assert write_telemetry_csv(tmp_path / "telemetry.csv", msgs) == len(telemetry)
    with open(tmp_path / "telemetry.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    header = ["device_id", "ts", "kind", *metric_columns()]
    assert list(rows[0].keys()) == header
    assert set(metric_columns()) == {s.name for p in PROFILES.values() for s in p.metrics}
    for row, t in zip(rows, telemetry, strict=True):
        assert (row["device_id"], row["ts"], row["kind"]) == (t.device_id, format_ts(t.ts), t.kind)
        for name in metric_columns():
            assert row[name] == ("" if name not in t.metrics else repr(t.metrics[name]))
    back = read_telemetry_csv(tmp_path / "telemetry.csv")
    assert [(r.device_id, r.ts, r.kind, r.metrics) for r in back] == \
        [(t.device_id, t.ts, t.kind, t.metrics) for t in telemetry]

    failures = [g for g in truth if g.what == "failure"]
    assert write_failures_csv(tmp_path / "failures.csv", truth) == len(failures)
    with open(tmp_path / "failures.csv", newline="") as fh:
        assert next(csv.reader(fh)) == ["device_id", "failed_at", "mode"]
    assert read_failures_csv(tmp_path / "failures.csv") == [(g.device_id, g.at, g.mode) for g in failures]

    write_ground_truth_jsonl(tmp_path / "truth.jsonl", truth)
    lines = (tmp_path / "truth.jsonl").read_text().splitlines()
    assert {json.loads(x)["what"] for x in lines} == {"failure", "sensor_fault"}
    assert read_ground_truth_jsonl(tmp_path / "truth.jsonl") == truth

    write_manifest_csv(tmp_path / "manifest.csv", fleet.devices)
    assert read_manifest_csv(tmp_path / "manifest.csv") == fleet.manifest()
