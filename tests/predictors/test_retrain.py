"""Learning from outcomes: outcome labels into frames, challenger against champion, drift statistic."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from ingest.contract import PROFILES
from ingest.features import Reading
from predictors import train_all
from predictors.dataset import FailureLabel, build_frames
from predictors.drift import feature_drift, feature_reference, psi
from predictors.retrain import Decision, OutcomeLabel, Tolerance, decide, merge_outcomes, retrain
from tests.predictors.conftest import FAST, SYNTH_PROFILES, new_registry
from tests.predictors.synth import START, Fleet

AC = {"air_conditioner": SYNTH_PROFILES["air_conditioner"]}  # the mode synth simulates
H = timedelta(hours=1)


def _hourly(device_id: str, hours: int) -> list[Reading]:
    return [Reading(device_id, "air_conditioner", i, START + i * H,
                    {"filter_dp_pa": 80.0 + i * 0.1, "fan_current_a": 1.5, "power_w": 1000.0})
            for i in range(hours)]


def test_a_confirmed_fault_is_a_failure_and_a_duplicate_is_not_added() -> None:
    readings = _hourly("ac-1", 200)
    own = FailureLabel("ac-1", "filter_clogging", START + 150 * H)
    outcomes = [OutcomeLabel(device_id="ac-1", mode="filter_clogging", ts=START + 160 * H, failed=True),
                OutcomeLabel(device_id="ac-1", mode="filter_clogging", ts=START + 190 * H, failed=True),
                OutcomeLabel(device_id="ac-1", mode="no_such_mode", ts=START, failed=True),
                OutcomeLabel(device_id="unknown", mode="filter_clogging", ts=START, failed=True)]
    failures, _ = merge_outcomes(readings, [own], outcomes, profiles=AC)
    # 160 h is the visit for the failure the device reported at 150 h; 190 h is a new one.
    assert failures == [own, FailureLabel("ac-1", "filter_clogging", START + 190 * H)]


def test_a_false_alert_turns_the_censored_rows_before_it_into_negatives() -> None:
    readings = _hourly("ac-1", 200)
    horizon = PROFILES["air_conditioner"].mode("filter_clogging").horizon_h
    before = build_frames(readings, [], profiles=AC)[("air_conditioner", "filter_clogging")]
    verdict = OutcomeLabel(device_id="ac-1", mode="filter_clogging", ts=START + 199 * H, failed=False)
    failures, observed = merge_outcomes(readings, [], [verdict], profiles=AC)
    assert failures == [] and observed["ac-1"] == START + 199 * H + horizon * H
    after = build_frames(readings, failures, observed_until=observed,
                         profiles=AC)[("air_conditioner", "filter_clogging")]
    assert after.n_rows > before.n_rows and after.n_positives == 0
    newest = after.ts.max().astype("datetime64[us]").item().replace(tzinfo=START.tzinfo)
    assert newest == START + 199 * H  # rows up to the verdict, none after it


def test_a_false_alert_never_overrides_a_recorded_failure() -> None:
    readings = _hourly("ac-1", 200)
    failure = FailureLabel("ac-1", "filter_clogging", START + 190 * H)
    verdict = OutcomeLabel(device_id="ac-1", mode="filter_clogging", ts=START + 180 * H, failed=False)
    failures, observed = merge_outcomes(readings, [failure], [verdict], profiles=AC)
    frame = build_frames(readings, failures, observed_until=observed, profiles=AC)[
        ("air_conditioner", "filter_clogging")]
    near = frame.ts >= np.datetime64((START + 185 * H).replace(tzinfo=None), "us")
    assert frame.y[near].all()


def test_a_device_that_went_silent_is_observed_only_until_its_last_reading() -> None:
    readings = _hourly("ac-1", 200) + _hourly("ac-2", 100)  # ac-2 stopped reporting at 99 h
    horizon = PROFILES["air_conditioner"].mode("filter_clogging").horizon_h
    now = START + 300 * H
    _, observed = merge_outcomes(readings, [], [], profiles=AC, now=now)
    assert observed == {"ac-1": START + 199 * H, "ac-2": START + 99 * H}
    frame = build_frames(readings, [], observed_until=observed, profiles=AC)[
        ("air_conditioner", "filter_clogging")]
    silent = frame.ts[frame.device_ids == "ac-2"].max().astype("datetime64[us]").item()
    # Its last horizon is unknown (it may have died), not healthy until now.
    assert silent.replace(tzinfo=START.tzinfo) == START + 99 * H - horizon * H


def test_a_false_alert_does_not_vouch_for_the_device_past_now() -> None:
    readings = _hourly("ac-1", 200)
    now = START + 205 * H
    verdict = OutcomeLabel(device_id="ac-1", mode="filter_clogging", ts=START + 199 * H, failed=False)
    _, observed = merge_outcomes(readings, [], [verdict], profiles=AC, now=now)
    assert observed["ac-1"] == now  # not 199 h + the 48 h horizon: that is the future
    _, observed = merge_outcomes(readings, [], [], profiles=AC, observed_until=START + 400 * H, now=now)
    assert observed["ac-1"] == now


@pytest.mark.parametrize(("champion", "challenger", "promote", "reason"), [
    ({"brier": 0.021, "auc": 0.97}, {"brier": 0.019, "brier_base_rate": 0.1, "auc": 0.97}, True,
     "promoted: brier 0.021 → 0.019, auc 0.97 → 0.97"),
    ({"brier": 0.021, "auc": 0.97}, {"brier": 0.02, "brier_base_rate": 0.1, "auc": 0.93}, False,
     "refused: auc regressed 0.97 → 0.93"),
    ({"brier": 0.020, "auc": 0.97}, {"brier": 0.0209, "brier_base_rate": 0.1, "auc": 0.965}, True,
     "promoted: brier 0.02 → 0.0209, auc 0.97 → 0.965"),  # within tolerance
    ({"brier": 0.020, "ttf_mae_h": 10.0}, {"brier": 0.02, "brier_base_rate": 0.1, "ttf_mae_h": 12.0},
     False, "refused: ttf_mae_h regressed 10 → 12"),
    ({}, {"brier": 0.2, "brier_base_rate": 0.1}, False, "refused: brier 0.2 not better than the base rate 0.1"),
    ({}, {"brier": 0.05, "brier_base_rate": 0.1}, True, "promoted: first live model; brier 0.05 < base rate 0.1"),
])
def test_the_promotion_rule(champion: dict, challenger: dict, promote: bool, reason: str) -> None:
    assert decide(champion, challenger, tolerance=Tolerance()) == Decision(promote=promote, reason=reason)


@pytest.fixture(scope="module")
def ac_fleet(fleet: Fleet) -> Fleet:
    return replace(fleet, readings=[r for r in fleet.readings if r.kind == "air_conditioner"],
                   failures=[f for f in fleet.failures if f.device_id.startswith("ac-")])


def test_a_worse_challenger_is_refused_and_a_better_one_promoted(ac_fleet: Fleet, tmp_path: Path) -> None:
    engine, registry = new_registry(tmp_path)
    [champ] = train_all(ac_fleet.readings, ac_fleet.failures, registry=registry, now=ac_fleet.end,
                        profiles=AC, model_params=FAST)
    assert champ.live and "reference" in champ.summary
    # A challenger of two boosting rounds (a bad configuration) against the champion's thirty.
    later = ac_fleet.end + timedelta(days=1)
    weak_params = {"max_iter": 2}
    [worse] = retrain(ac_fleet.readings, ac_fleet.failures, [], registry=registry, now=later,
                      profiles=AC, model_params=weak_params)
    assert not worse.promoted and worse.reason.startswith("refused: ") and "regressed" in worse.reason
    assert registry.live("air_conditioner", "filter_clogging").version == champ.version
    kept = {v.version: v for v in registry.versions()}[worse.challenger]
    assert not kept.is_live and kept.note == worse.reason
    assert kept.summary["evaluation"]["champion"] == champ.version

    # Roll back to the weak model by hand; the usual parameters then win and are promoted.
    registry.promote(worse.challenger)
    [better] = retrain(ac_fleet.readings, ac_fleet.failures, [], registry=registry,
                       now=later + timedelta(days=1), profiles=AC, model_params=FAST)
    ev = better.evaluation
    assert better.promoted, better.reason
    assert better.reason.startswith("promoted: brier ")
    assert ev["challenger_metrics"]["brier"] <= ev["champion_metrics"]["brier"] * 1.05
    assert registry.live("air_conditioner", "filter_clogging").version == better.challenger
    engine.dispose()


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(100, 10, size=(5000, 1))
    ref = feature_reference(train, ["x"])["x"]
    assert psi(ref, rng.normal(100, 10, 500)) < 0.05
    assert psi(ref, rng.normal(115, 10, 500)) > 0.5
    # More values missing than in training counts as drift too.
    assert psi(ref, np.where(rng.random(500) < 0.5, np.nan, rng.normal(100, 10, 500))) > 0.25
    report = feature_drift(version="v", kind="k", mode="m", reference={"x": ref},
                           live_vectors=[{"x": v} for v in rng.normal(130, 10, 50)])
    assert [f.feature for f in report.drifting] == ["x"]
    few = feature_drift(version="v", kind="k", mode="m", reference={"x": ref},
                        live_vectors=[{"x": 500.0}] * 5)
    assert few.features == ()  # too few live values to judge
