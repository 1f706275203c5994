"""Learning from outcomes on the service database: labels from every source, drift tickets."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from actions import ActionService
from actions.learning import DRIFT_CATEGORY, outcome_labels, retrain_from_outcomes, stored_history, watch_drift
from actions.tickets import record_label
from ingest.clock import ManualClock
from ingest.contract import PROFILES
from ingest.db import ReadingRow
from ingest.features import compute_baseline, compute_features
from predictors import FailureModeModel, ModelRegistry, build_frames, train_all
from predictors.drift import feature_reference
from predictors.retrain import OutcomeLabel, outcome_frames

from tests.predictors.conftest import SYNTH_PROFILES
from tests.predictors.synth import make_fleet

from .helpers import add_device, near, set_features

H = timedelta(hours=1)
FEATURES = PROFILES["air_conditioner"].mode("filter_clogging").features
AC = {"air_conditioner": SYNTH_PROFILES["air_conditioner"]}  # the mode synth simulates


def test_every_outcome_source_becomes_the_right_training_label(service: ActionService, engine: Engine,
                                                              clock: ManualClock) -> None:
    expected: list[tuple[str, str, str, bool]] = []
    # Homeowner replies: "done" (fixed it) is a failure, "wrong alert" a false alert.
    for device_id, action, failed in (("rc-1", "done", True), ("rc-2", "wrong", False)):
        add_device(engine, device_id, "rice_cooker") if device_id != "rc-1" else None
        [a] = service.handle([near(ts=clock.now(), device_id=device_id)])
        service.notification_action(a.notification_id, action, household_id="h-1")  # type: ignore[arg-type]
        expected.append((device_id, "homeowner", "scale_buildup", failed))
        clock.advance(H)
    # Technician job outcomes.
    for i, (outcome, failed) in enumerate((("confirmed_fault", True), ("part_replaced", True),
                                           ("no_fault_found", False))):
        device_id = f"rc-{i + 3}"
        add_device(engine, device_id, "rice_cooker")
        [b] = service.handle([near(ts=clock.now(), device_id=device_id, mode="heating_element_wear")])
        assert b.booking_id is not None, b.decision
        service.complete_booking(b.booking_id, "checked the element", outcome=outcome)
        expected.append((device_id, "technician", "heating_element_wear", failed))
        clock.advance(24 * H)
    # Ticket resolutions, per the label they record.
    for i, (action, outcome, failed) in enumerate((("dismiss", None, False), ("notify", None, True),
                                                   ("dismiss", "false_alarm", False))):
        device_id = f"ac-{i + 2}"
        add_device(engine, device_id, "air_conditioner", household_id=f"h-{i + 3}")
        [c] = service.handle([near(ts=clock.now(), device_id=device_id, kind="air_conditioner",
                                   mode="filter_clogging", ood=True, ood_detail="unlike training")])
        assert c.ticket_id is not None, c.decision
        service.resolve_ticket(c.ticket_id, "looked at the readings", action=action, outcome=outcome)
        expected.append((device_id, "agent", "filter_clogging", failed))
        clock.advance(H)
    labels = outcome_labels(engine)
    assert [(o.device_id, o.source, o.mode, o.failed) for o in labels] == expected
    assert all(isinstance(o, OutcomeLabel) and o.ts.tzinfo is not None for o in labels)


def test_error_code_labels_are_not_training_labels(service: ActionService, engine: Engine,
                                                   clock: ManualClock) -> None:
    with service._sessions.begin() as s:  # noqa: SLF001 (the label an error-code visit records)
        record_label(s, device_id="rc-1", kind="rice_cooker", mode="error:E3", source="technician",
                     outcome="confirmed_fault", now=clock.now())
    assert outcome_labels(engine) == []


def _registry_with_live_model(engine: Engine, tmp: Path, rng: np.random.Generator, *,
                              now: datetime) -> tuple[ModelRegistry, str]:
    X = rng.normal(0, 1, size=(600, len(FEATURES)))
    y = (X[:, 0] + rng.normal(0, 0.5, 600) > 1.2).astype(int)
    model = FailureModeModel(max_iter=5).fit(X, y)
    registry = ModelRegistry(engine, tmp / "models")
    version = registry.register("air_conditioner", "filter_clogging", model,
                                {"features": list(FEATURES), "horizon_h": 96.0,
                                 "reference": feature_reference(X, FEATURES)}, now=now)
    return registry, version



@pytest.mark.parametrize("shift", [0.0, 3.0])
def test_drift_opens_one_ticket_per_model_and_none_when_stable(engine: Engine, tmp_path: Path,
                                                               clock: ManualClock, shift: float) -> None:
    rng = np.random.default_rng(1)
    registry, version = _registry_with_live_model(engine, tmp_path, rng, now=clock.now())
    for i in range(60):
        add_device(engine, f"ac-{i}", "air_conditioner")
        values = dict(zip(FEATURES, rng.normal(0, 1, len(FEATURES)), strict=True))
        values["filter_dp_pa__mean"] += shift  # the sensors of a new batch read high
        set_features(engine, f"ac-{i}", "air_conditioner", values, ts=clock.now())
    first = watch_drift(engine, registry, now=clock.now())
    again = watch_drift(engine, registry, now=clock.now() + H)
    tickets = [t for t in ActionService(engine, clock=clock).open_tickets() if t.category == DRIFT_CATEGORY]
    if shift == 0.0:
        assert first == [] and again == [] and tickets == []
        return
    [alert] = first
    assert [f.feature for f in alert.report.drifting] == ["filter_dp_pa__mean"]
    assert alert.report.version == version and alert.ticket_id is not None
    assert [a.ticket_id for a in again] == [None]  # still drifting, the ticket is already open
    [ticket] = tickets
    assert "filter_dp_pa__mean" in ticket.subject and ticket.mode == "filter_clogging"
    assert ticket.context["drifting"][0]["psi"] > 0.25


def test_the_retrain_learns_failures_from_the_recorded_outcomes(engine: Engine, tmp_path: Path) -> None:
    fleet = make_fleet(n_ac=15, n_rc=0, days=30, seed=3)
    with sessionmaker(engine).begin() as s:
        s.add_all(ReadingRow(device_id=r.device_id, seq=r.seq, ts=r.ts, kind=r.kind,
                             metrics=dict(r.metrics), received_at=r.ts) for r in fleet.readings)
        # The service knows of failures only from what people recorded: a technician confirmed
        # each one; one visit found nothing.
        for f in fleet.failures:
            record_label(s, device_id=f.device_id, kind="air_conditioner", mode=f.mode,
                         source="technician", outcome="confirmed_fault", now=f.failed_at)
        record_label(s, device_id="ac-004", kind="air_conditioner", mode="filter_clogging",
                     source="technician", outcome="no_fault_found", now=fleet.end)
    registry = ModelRegistry(engine, tmp_path / "models")
    [champ] = train_all(fleet.readings, fleet.failures[::2], registry=registry,
                        now=fleet.end, profiles=AC, model_params={"max_iter": 2}, min_positives=5)
    assert champ.version is not None
    [result] = retrain_from_outcomes(engine, registry, now=fleet.end + H, profiles=AC,
                                     model_params={"max_iter": 30}, min_positives=5)
    ev = result.evaluation
    assert result.champion == champ.version and result.challenger is not None
    # Every confirmed fault became a failure (the champion was trained on half of them).
    assert ev["outcome_failures_added"] == len(fleet.failures)
    assert ev["challenger_metrics"]["holdout_devices"] == ev["champion_metrics"]["holdout_devices"]
    version = {v.version: v for v in registry.versions()}[result.challenger]
    assert version.note == result.reason and version.is_live == result.promoted
    assert result.reason.startswith("promoted: ") or result.reason.startswith("refused: ")


def _store(engine: Engine, readings) -> None:  # type: ignore[no-untyped-def]
    with sessionmaker(engine).begin() as s:
        s.add_all(ReadingRow(device_id=r.device_id, seq=r.seq, ts=r.ts, kind=r.kind,
                             metrics=dict(r.metrics), received_at=r.ts) for r in readings)


def test_retrain_rows_have_the_features_the_service_computed_at_that_reading(engine: Engine) -> None:
    fleet = make_fleet(n_ac=5, n_rc=0, days=20, seed=5)
    _store(engine, fleet.readings)
    since = fleet.end - timedelta(days=8)  # the lookback starts long after each baseline
    later = fleet.end + timedelta(days=60)  # every row labelled: compare features only
    history = stored_history(engine, profiles=AC, since=since, devices_per_chunk=2)
    frames, _ = outcome_frames(history, [], [], caps={720.0}, profiles=AC, now=later, observed_until=later)
    key = ("air_conditioner", "filter_clogging")
    frame = frames[720.0][key]
    cut = np.datetime64(since.replace(tzinfo=None), "us")
    full = build_frames(fleet.readings, [], observed_until=later, profiles=AC)[key]
    served = full.take(full.ts >= cut)
    assert frame.n_rows == served.n_rows > 0 and set(frame.device_ids) == set(served.device_ids)
    assert np.array_equal(frame.X, served.X, equal_nan=True)

    # ... which are the live store's own functions over the device's whole history.
    profile = AC["air_conditioner"]
    names = profile.mode("filter_clogging").features
    device = sorted(fleet.readings, key=lambda r: r.ts)
    for i in np.flatnonzero(frame.device_ids == "ac-001")[::37]:
        ts = frame.ts[i].astype("datetime64[us]").item().replace(tzinfo=since.tzinfo)
        mine = [r for r in device if r.device_id == "ac-001" and r.ts <= ts]
        expected = compute_features(profile, mine[-profile.window:], compute_baseline(profile, mine))
        got = dict(zip(names, frame.X[i], strict=True))
        assert {n: got[n] for n in names} == pytest.approx({n: expected.get(n, np.nan) for n in names},
                                                           nan_ok=True)
