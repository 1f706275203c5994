"""Onboarding a kind the code has never seen: inferred or given profile, censoring, atomic registration."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from ingest.contract import PROFILES
from ingest.contract.profiles import PROFILES as BUILTIN_PROFILES
from predictors import ModelRegistry, build_frames, load_history, onboard
from predictors.profile_file import (
    OnboardingProfile,
    parse_profile_toml,
    profile_from_dict,
    profile_to_dict,
    profile_to_toml,
)
from predictors.registry import ModelVersionRow
from tests.predictors.conftest import FAST, new_registry
from tests.predictors.history_files import HistoryFiles, write_history


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> HistoryFiles:
    return write_history(tmp_path_factory.mktemp("pumps"))


def test_profile_inferred_from_the_history(files):
    history, plan = load_history(files.telemetry, files.failures)
    assert plan.new_kinds == {"water_pump"}
    onb = plan.profiles["water_pump"]
    p = onb.profile
    assert onb.source.startswith("inferred from")
    assert [m.name for m in p.metrics] == ["bearing_vibration_mm_s", "motor_current_a", "flow_l_min",
                                           "rated_kw"]
    assert p.reading_interval_h == 1.0
    assert [m.name for m in p.failure_modes] == ["bearing_wear"]
    # The constant nameplate column is valid input but feeds no model (it would look stuck forever).
    assert p.failure_modes[0].metrics == ("bearing_vibration_mm_s", "motor_current_a", "flow_l_min")
    assert any("rated_kw" in note and "constant" in note for note in onb.notes)
    vib = np.array([r.metrics["bearing_vibration_mm_s"] for r in history.readings])
    spec = p.metric("bearing_vibration_mm_s")
    assert spec.low <= vib.min() and vib.max() <= spec.high
    assert spec.low >= 0.0  # never negative in the history
    assert len(history.readings) == len(files.telemetry.read_text().splitlines()) - 1


def test_profile_file_round_trips(files):
    _, plan = load_history(files.telemetry, files.failures)
    onb = plan.profiles["water_pump"]
    again = parse_profile_toml(profile_to_toml(onb), file="p.toml")
    assert again.profile == onb.profile


def test_onboarding_registers_models_and_profile_durably(files, tmp_path):
    engine, registry = new_registry(tmp_path)
    history, plan = load_history(files.telemetry, files.failures)
    reports = onboard(history, plan, registry=registry, now=files.end, model_params=FAST)
    (report,) = reports
    assert report.trained and report.live, report
    assert report.summary["auc"] > 0.9
    assert report.summary["profile"]["kind"] == "water_pump"
    # A new registry on the same database (another process, later) knows the kind and its model.
    later = ModelRegistry(engine, tmp_path / "models")
    assert later.profiles()["water_pump"] == plan.profiles["water_pump"].profile
    assert later.live("water_pump", "bearing_wear").version == report.version
    # Training again without a profile reuses the registered one (its models' features stay valid).
    _, again = load_history(files.telemetry, files.failures, registered=later.onboarded())
    assert again.new_kinds == frozenset() and again.source("water_pump").startswith("registered")
    assert again.profiles["water_pump"].ttf_cap_h == plan.profiles["water_pump"].ttf_cap_h
    assert "water_pump" not in PROFILES  # onboarding does not touch the process's kinds


def test_a_failure_while_registering_registers_nothing(files, tmp_path, monkeypatch):
    engine, registry = new_registry(tmp_path)
    history, plan = load_history(files.telemetry, files.failures)
    import predictors.registry as reg

    calls = []
    real = reg._dump_atomic

    def dump_then_fail(obj, path):
        calls.append(path)
        real(obj, path)
        raise OSError("disk full")

    monkeypatch.setattr(reg, "_dump_atomic", dump_then_fail)
    with pytest.raises(OSError, match="disk full"):
        onboard(history, plan, registry=registry, now=files.end, model_params=FAST)
    assert calls and not any(p.exists() for p in calls)
    assert registry.versions() == [] and registry.profiles() == {}


def test_devices_are_censored_at_their_own_last_reading(files):
    history, plan = load_history(files.telemetry, files.failures)
    profiles = {"water_pump": plan.profiles["water_pump"].profile}
    horizon = timedelta(hours=profiles["water_pump"].failure_modes[0].horizon_h)
    own = build_frames(history.readings, history.failures, observed_until=history.observed_until,
                       profiles=profiles)[("water_pump", "bearing_wear")]
    fleet = build_frames(history.readings, history.failures, observed_until=files.end,
                         profiles=profiles)[("water_pump", "bearing_wear")]
    for device, left_at in files.left_early.items():
        last_kept = own.ts[own.device_ids == device].max().astype("datetime64[us]").item()
        # Nothing is known after the pump left the records: its last horizon of rows is dropped ...
        assert last_kept.replace(tzinfo=left_at.tzinfo) <= left_at - horizon
        # ... where a fleet-wide end would have called them healthy.
        assert (fleet.device_ids == device).sum() > (own.device_ids == device).sum()
        assert (own.y[own.device_ids == device] == 0).all()


def _truncation_violations(build, history, profiles, *, cut_after: int) -> int:
    """Rows whose features change when every reading after them is deleted (a leak)."""
    full = build(history.readings, profiles)
    cut_ts = sorted({r.ts for r in history.readings})[cut_after]
    early = build([r for r in history.readings if r.ts <= cut_ts], profiles)
    index = {(d, t): x for d, t, x in zip(full.device_ids, full.ts, full.X, strict=True)}
    bad = 0
    for d, t, x in zip(early.device_ids, early.ts, early.X, strict=True):
        if not np.allclose(index[(d, t)], x, equal_nan=True):
            bad += 1
    return bad


def _frames(readings, profiles):
    return build_frames(readings, [], profiles=profiles, observed_until=None)[("water_pump",
                                                                              "bearing_wear")]


def test_onboarding_frames_are_point_in_time_and_a_leaking_feature_is_caught(files):
    history, plan = load_history(files.telemetry, files.failures)
    profiles = {"water_pump": plan.profiles["water_pump"].profile}
    assert _truncation_violations(_frames, history, profiles, cut_after=150) == 0

    def leaky(readings, profiles):
        """Vibration relative to the device's whole-history maximum: it sees the failure coming."""
        frame = _frames(readings, profiles)
        col = frame.features.index("bearing_vibration_mm_s__last")
        X = frame.X.copy()
        for d in np.unique(frame.device_ids):
            rows = frame.device_ids == d
            X[rows, col] = X[rows, col] / X[rows, col].max()
        return type(frame)(**{**{f: getattr(frame, f) for f in frame.__dataclass_fields__}, "X": X})

    assert _truncation_violations(leaky, history, profiles, cut_after=150) > 0


def test_a_given_profile_sets_horizon_action_and_training_cap(files, tmp_path):
    profile = tmp_path / "pump.toml"
    profile.write_text('''
kind = "water_pump"
reading_interval_h = 1
window = 12
horizon_h = 24

[training]
ttf_cap_h = 200

[metrics.bearing_vibration_mm_s]
unit = "mm/s"
low = 0
high = 50
[metrics.motor_current_a]
unit = "A"
low = 0
high = 30
[metrics.flow_l_min]
unit = "l/min"
low = 0
high = 400
stuck_after = 8
[metrics.rated_kw]
unit = "kW"
low = 0
high = 100

[failure_modes.bearing_wear]
action = "book_technician"
skill = "pumps"
metrics = ["bearing_vibration_mm_s", "motor_current_a"]
act_before_h = 72
''')
    _, registry = new_registry(tmp_path)
    history, plan = load_history(files.telemetry, files.failures, profile_path=profile)
    onb = plan.profiles["water_pump"]
    assert onb.source == f"profile file {profile}" and onb.ttf_cap_h == 200
    mode = onb.profile.failure_modes[0]
    assert (mode.horizon_h, mode.act_before_h, str(mode.action), mode.skill) == \
        (24.0, 72.0, "book_technician", "pumps")
    (report,) = onboard(history, plan, registry=registry, now=files.end, model_params=FAST)
    assert report.summary["ttf_cap_h"] == 200 and report.summary["horizon_h"] == 24
    assert report.summary["features"][0] == "bearing_vibration_mm_s__last"
    assert len(report.summary["features"]) == 2 * 5
    assert registry.profiles()["water_pump"].window == 12


@pytest.mark.parametrize(("toml", "message"), [
    ('kind = "rice_cooker"\n[metrics.a]\nlow=0\nhigh=1\n[failure_modes.x]\n', "declared in code"),
    ('kind = "water_pump"\ncolour = 3\n', "unknown key colour"),
    ('kind = "water_pump"\n[metrics.a]\nlow=2\nhigh=1\n[failure_modes.x]\n', "low 2 must be below high 1"),
    ('kind = "water_pump"\n[metrics.a]\nlow=0\nhigh=1\n[failure_modes.x]\nmetrics=["b"]\n',
     "'b' is not a metric"),
    ('kind = "water_pump"\n[metrics.a]\nlow=0\nhigh=1\n[failure_modes.x]\naction="book_technician"\n',
     "needs a skill"),
    ('kind = "Water Pump"\n', "kind must be a name"),
    ('kind = [\n', "not valid TOML"),
])
def test_bad_profile_files_are_refused_with_the_key(files, tmp_path, toml, message):
    from predictors import HistoryError

    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(HistoryError, match=message) as err:
        load_history(files.telemetry, files.failures, profile_path=path)
    assert err.value.file == str(path)


def test_unknown_columns_of_a_registered_kind_are_refused(files, tmp_path):
    """A kind known from before validates later files against its profile."""
    from predictors import HistoryError

    _, plan = load_history(files.telemetry, files.failures)
    text = files.telemetry.read_text().splitlines()
    text[0] += ",oil_temp_c"
    text[1:] = [line + "," for line in text[1:]]
    text[5] += "61.5"
    bad = tmp_path / "telemetry.csv"
    bad.write_text("\n".join(text) + "\n")
    with pytest.raises(HistoryError) as err:
        load_history(bad, files.failures, registered={"water_pump": plan.profiles["water_pump"].profile})
    assert (err.value.row, err.value.column) == (6, "oil_temp_c")
    assert "not a metric of water_pump" in str(err.value)


def test_nothing_is_registered_in_an_empty_model_dir_when_all_modes_skip(files, tmp_path):
    engine, registry = new_registry(tmp_path)
    history, plan = load_history(files.telemetry, files.failures)
    from dataclasses import replace

    plan = replace(plan, profiles={"water_pump": replace(plan.profiles["water_pump"],
                                                          min_positives=10**6)})
    (report,) = onboard(history, plan, registry=registry, now=files.end, model_params=FAST)
    assert not report.trained and "need 1000000" in report.skipped
    assert registry.profiles() == {}
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(ModelVersionRow)) == 0
    assert not Path(tmp_path / "models").exists() or not any(Path(tmp_path / "models").iterdir())


def test_the_documented_profile_example_parses():
    text = (Path(__file__).parents[2] / "docs" / "onboarding.md").read_text()
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    onb = parse_profile_toml(block, file="docs/onboarding.md")
    assert onb.profile.kind == "water_pump" and onb.ttf_cap_h == 360 and onb.conformal_intervals
    assert parse_profile_toml(profile_to_toml(onb), file="again.toml") == \
        type(onb)(**{**{f: getattr(onb, f) for f in onb.__dataclass_fields__}, "source": "profile file again.toml"})
    assert onb.profile.mode("bearing_wear").skill == "pumps"


@pytest.mark.parametrize("kind", sorted(BUILTIN_PROFILES))
def test_every_profile_field_survives_the_database_and_the_profile_file(kind: str) -> None:
    """Data-quality settings (spike_jump, drift_after, corroborated_by) round-trip like the rest."""
    profile = BUILTIN_PROFILES[kind]
    assert profile_from_dict(json.loads(json.dumps(profile_to_dict(profile)))) == profile
    onb = OnboardingProfile(profile=profile)
    assert parse_profile_toml(profile_to_toml(onb), file="p.toml").profile == profile
