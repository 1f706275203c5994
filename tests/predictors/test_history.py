"""Bad history files get an error naming the file, row and column; nothing is trained or registered."""

from __future__ import annotations

from pathlib import Path

import pytest

from predictors import HistoryError, load_history, onboard
from predictors.history import parse_ts
from tests.predictors.conftest import FAST, new_registry
from tests.predictors.history_files import write_history

TELEMETRY = """device_id,ts,kind,vibration,current
p-1,2025-01-01T00:00:00Z,pump,1.0,5.0
p-1,2025-01-01T01:00:00Z,pump,1.1,5.1
p-2,2025-01-01T00:00:00+02:00,pump,0.9,
p-2,1735693200,pump,1.0,4.9
"""
FAILURES = """device_id,failed_at,mode
p-1,2025-01-01T02:00:00Z,bearing
"""

# (which file, replace this, with that, row, column, words in the message)
CASES = [
    ("telemetry", "device_id,ts,kind,", "device_id,time,kind,", 1, "ts", "missing column"),
    ("telemetry", ",vibration,current", "", 1, None, "no metric columns"),
    ("telemetry", "vibration,current", "vibration,vibration", 1, "vibration", "appears twice"),
    ("telemetry", "Z,pump,1.1", "Z,pump,1.1,7", 3, None, "6 fields"),
    ("telemetry", "2025-01-01T01:00:00Z", "2025-01-01 01:00", 3, "ts", "unparsable timestamp"),
    ("telemetry", "2025-01-01T01:00:00Z", "2025-01-01T01:00:00", 3, "ts", "with an offset"),
    ("telemetry", "2025-01-01T01:00:00Z", "yesterday", 3, "ts", "unparsable timestamp"),
    ("telemetry", "pump,1.1,5.1", "pump,NaN,5.1", 3, "vibration", "not a finite number"),
    ("telemetry", "pump,1.1,5.1", "pump,inf,5.1", 3, "vibration", "not a finite number"),
    ("telemetry", "pump,1.1,5.1", "pump,1.1,high", 3, "current", "'high' is not a number"),
    ("telemetry", "pump,1.1,5.1", "pump,,", 3, None, "no metric values"),
    # +02:00 midnight (row 4) is 2024-12-31T22:00Z: the same reading again in another notation.
    ("telemetry", "1735693200,pump,1.0", "2024-12-31T22:00:00Z,pump,1.0", 5, "ts", "also row 4"),
    ("telemetry", "p-2,1735693200,pump", "p-1,2025-01-01T01:00:00Z,pump", 5, "ts", "also row 3"),
    ("telemetry", "p-2,1735693200,pump", "p-2,1735693200,fan", 5, "kind", "is 'pump' at row 4"),
    ("telemetry", "p-2,1735693200,pump", "p 2,1735693200,pump", 5, "device_id", "device id"),
    ("failures", "p-1,2025", "p-9,2025", 2, "device_id", "p-9 has no readings"),
    ("failures", "mode\n", "mode,note\n", 1, "note", "unexpected column"),
    ("failures", "T02:00:00Z", "T02:00:00Q", 2, "failed_at", "unparsable timestamp"),
    ("failures", ",bearing", ",", 2, "mode", "mode ''"),
    ("failures", "bearing\n", "bearing\np-1,2025-01-01T02:00:00Z,bearing\n", 3, None, "duplicate failure"),
    ("failures", "failed_at,mode", "failed,mode", 1, "failed_at", "missing column"),
]


def _write(tmp: Path, telemetry: str, failures: str) -> tuple[Path, Path]:
    t, f = tmp / "telemetry.csv", tmp / "failures.csv"
    t.write_text(telemetry, encoding="utf-8")
    f.write_text(failures, encoding="utf-8")
    return t, f


@pytest.mark.parametrize(("which", "old", "new", "row", "column", "words"), CASES)
def test_bad_input_names_file_row_and_column(tmp_path, which, old, new, row, column, words):
    text = TELEMETRY if which == "telemetry" else FAILURES
    assert old in text
    bad = text.replace(old, new, 1)
    t, f = _write(tmp_path, bad if which == "telemetry" else TELEMETRY,
                  bad if which == "failures" else FAILURES)
    with pytest.raises(HistoryError) as err:
        load_history(t, f)
    e = err.value
    assert (e.file, e.row, e.column) == (str(t if which == "telemetry" else f), row, column), str(e)
    assert words in str(e)
    assert str(e).startswith(f"{e.file}, row {row}")


def test_the_good_file_reads_with_both_timestamp_forms(tmp_path):
    history, plan = load_history(*_write(tmp_path, TELEMETRY, FAILURES))
    p2 = [r for r in history.readings if r.device_id == "p-2"]
    assert [r.ts.isoformat() for r in p2] == ["2024-12-31T22:00:00+00:00", "2025-01-01T01:00:00+00:00"]
    assert [r.metrics for r in p2] == [{"vibration": 0.9}, {"vibration": 1.0, "current": 4.9}]
    assert plan.profiles["pump"].profile.failure_modes[0].name == "bearing"


@pytest.mark.parametrize("raw", ["nan", "1e400", "-inf", "", "2025-13-01T00:00:00Z"])
def test_unusable_timestamps(raw):
    with pytest.raises(ValueError):
        parse_ts(raw)


def test_empty_and_missing_files(tmp_path):
    t, f = _write(tmp_path, "", FAILURES)
    with pytest.raises(HistoryError, match="empty"):
        load_history(t, f)
    t.write_text("device_id,ts,kind,v\n")
    with pytest.raises(HistoryError, match="no data rows"):
        load_history(t, f)
    with pytest.raises(HistoryError, match="cannot read"):
        load_history(tmp_path / "nope.csv", f)
    t.write_bytes(b"device_id,ts,kind,v\np-1,0,pump,\xff\n")
    with pytest.raises(HistoryError, match="not UTF-8"):
        load_history(t, f)


def test_built_in_kinds_are_checked_against_their_profile(tmp_path):
    t, f = _write(tmp_path, "device_id,ts,kind,filter_dp_pa,wattage\n"
                            "ac-1,2025-01-01T00:00:00Z,air_conditioner,5000,\n", FAILURES)
    with pytest.raises(HistoryError, match=r"outside the valid range \[0, 1000\]") as err:
        load_history(t, f)
    assert (err.value.row, err.value.column) == (2, "filter_dp_pa")
    t.write_text("device_id,ts,kind,filter_dp_pa,wattage\nac-1,2025-01-01T00:00:00Z,air_conditioner,50,3\n")
    with pytest.raises(HistoryError, match="'wattage' is not a metric of air_conditioner"):
        load_history(t, f)
    t.write_text("device_id,ts,kind,filter_dp_pa\nac-1,2025-01-01T00:00:00Z,air_conditioner,50\n")
    f.write_text("device_id,failed_at,mode\nac-1,2025-01-02T00:00:00Z,compressor\n")
    with pytest.raises(HistoryError, match="'compressor' is not a failure mode of air_conditioner") as err:
        load_history(t, f)
    assert (err.value.file, err.value.row, err.value.column) == (str(f), 2, "mode")


def test_a_bad_row_late_in_a_big_file_registers_nothing(tmp_path):
    files = write_history(tmp_path / "h", devices=10, days=6)
    lines = files.telemetry.read_text().splitlines()
    cells = lines[-3].split(",")
    cells[4] = "n/a"
    lines[-3] = ",".join(cells)
    files.telemetry.write_text("\n".join(lines) + "\n")
    _, registry = new_registry(tmp_path)
    with pytest.raises(HistoryError) as err:
        history, plan = load_history(files.telemetry, files.failures)
        onboard(history, plan, registry=registry, now=files.end, model_params=FAST)
    assert (err.value.row, err.value.column) == (len(lines) - 2, "motor_current_a")
    assert registry.versions() == [] and registry.profiles() == {}
