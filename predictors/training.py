"""Train one model per (appliance kind, failure mode), measure it on held-out devices, register it.

For each mode with enough positive rows: about ``holdout_fraction`` of the devices (stratified by
whether a device ever had a positive row) are held out; a model fitted on the others gives the
summary metrics -- Brier score next to the Brier score of predicting the training base rate, ROC AUC,
and the mean absolute error of the median remaining time on held-out positive rows. Then the model
is refitted on every device. It goes live only when its held-out Brier score beats the base rate (a
model worse than a constant would only add noise); otherwise it is registered with a note and the
previous live version stays.

Readings under a known sensor fault (``SensorFault``, e.g. a simulator's ground truth) are not
appliance failures, nor healthy data: the live data-quality checks hand such predictions to a person
instead of the model's judgement, and the evaluation counts the faults apart. Training leaves out the
rows of every mode that uses the faulty metric from the fault's onset on (a faulty sensor stays
faulty in the history), and records how many in the summary (``sensor_fault_rows_excluded``).

Every mode is fitted before anything is registered; then all versions (and the profiles of kinds
being onboarded) are registered in one transaction, so an error half-way registers nothing. Each
version's summary records the profile it was trained with.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sklearn.metrics import brier_score_loss, roc_auc_score

from ingest.contract import PROFILES, ApplianceProfile
from ingest.features import Reading
from predictors.dataset import DEFAULT_TTF_CAP_H, FailureLabel, TrainingFrame, build_frames
from predictors.drift import feature_reference
from predictors.model import FailureModeModel
from predictors.profile_file import OnboardingProfile, profile_to_dict
from predictors.registry import Candidate, ModelRegistry

__all__ = ["Fitted", "SensorFault", "TrainingReport", "exclude_sensor_faults", "fit_all", "holdout_devices",
           "holdout_metrics", "register_fitted", "train_all"]


@dataclass(frozen=True, slots=True)
class SensorFault:
    """A known sensor fault: from ``since`` on, ``metric`` of ``device_id`` does not read the truth."""

    device_id: str
    metric: str
    since: datetime


@dataclass(frozen=True, slots=True)
class Fitted:
    """A mode's training outcome before registration: the report and the model, if one was fitted."""

    report: TrainingReport
    candidate: Candidate | None


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingReport:
    """What happened to one (kind, mode): registered as ``version`` or ``skipped`` with the reason."""

    kind: str
    mode: str
    version: str | None = None
    live: bool = False
    skipped: str = ""
    summary: Mapping[str, Any] = field(default_factory=dict)

    @property
    def trained(self) -> bool:
        return self.version is not None


def train_all(readings: Iterable[Reading], failures: Sequence[FailureLabel], *,
              registry: ModelRegistry, now: datetime,
              register_profiles: Sequence[OnboardingProfile] = (),
              **options: Any) -> list[TrainingReport]:
    """Build frames, evaluate on held-out devices, fit on all and register every trainable mode.

    ``options`` are those of ``fit_all``. ``register_profiles`` -- profiles of kinds not declared
    in code -- are registered with the versions, in the same transaction.
    """
    return register_fitted(fit_all(readings, failures, **options), registry=registry, now=now,
                           profiles=register_profiles)


def fit_all(readings: Iterable[Reading], failures: Sequence[FailureLabel], *,
            profiles: Mapping[str, ApplianceProfile] = PROFILES, min_positives: int = 20,
            random_state: int = 0,
            observed_until: datetime | Mapping[str, datetime] | None = None,
            holdout_fraction: float = 0.2, ttf_cap_h: float = DEFAULT_TTF_CAP_H,
            model_params: Mapping[str, Any] | None = None,
            sensor_faults: Sequence[SensorFault] = (),
            progress: Callable[[str], None] | None = None) -> list[Fitted]:
    """Build frames, evaluate on held-out devices and fit every trainable mode; registers nothing.

    ``min_positives`` counts positive rows (readings within the horizon of a failure); a mode also
    needs positives on at least ``cv`` devices outside the hold-out. ``model_params`` go to
    ``FailureModeModel`` (``ttf_cap_h`` and ``random_state`` always come from the arguments here, so
    the frames and the model agree on the cap). ``observed_until`` is as in ``build_frames``.
    ``sensor_faults`` leave rows out (``exclude_sensor_faults``).
    ``progress`` is called with a line of text as each step starts.
    """
    say = progress or (lambda _msg: None)
    params = {**dict(model_params or {}), "ttf_cap_h": ttf_cap_h, "random_state": random_state}
    say("building point-in-time training frames")
    frames, excluded = exclude_sensor_faults(
        build_frames(readings, failures, observed_until=observed_until, profiles=profiles,
                     ttf_cap_h=ttf_cap_h), sensor_faults, profiles=profiles)
    fitted: list[Fitted] = []
    for profile in profiles.values():
        for mode in profile.failure_modes:
            frame = frames.get((profile.kind, mode.name))
            say(f"fitting {profile.kind}.{mode.name}")
            report, candidate = _fit_one(profile, mode.name, frame, min_positives=min_positives,
                                         params=params, holdout_fraction=holdout_fraction,
                                         seed=random_state,
                                         extra={"sensor_fault_rows_excluded":
                                                excluded.get((profile.kind, mode.name), 0)})
            fitted.append(Fitted(report=report, candidate=candidate))
    return fitted


def exclude_sensor_faults(frames: Mapping[tuple[str, str], TrainingFrame], faults: Sequence[SensorFault], *,
                          profiles: Mapping[str, ApplianceProfile] = PROFILES,
                          ) -> tuple[dict[tuple[str, str], TrainingFrame], dict[tuple[str, str], int]]:
    """The frames without the rows a known sensor fault touches, and how many each lost.

    A fault touches a mode's rows of its device from its onset on when the mode uses its metric.
    """
    by_device: dict[str, list[SensorFault]] = {}
    for f in faults:
        by_device.setdefault(f.device_id, []).append(f)
    out: dict[tuple[str, str], TrainingFrame] = {}
    excluded: dict[tuple[str, str], int] = {}
    for (kind, mode), frame in frames.items():
        metrics = set(profiles[kind].mode(mode).metrics)
        drop = np.zeros(frame.n_rows, dtype=bool)
        for device_id in np.unique(frame.device_ids) if by_device else ():
            onsets = [f.since for f in by_device.get(str(device_id), ()) if f.metric in metrics]
            if onsets:
                since = np.datetime64(min(onsets).astimezone(UTC).replace(tzinfo=None), "us")
                drop |= (frame.device_ids == device_id) & (frame.ts >= since)
        out[(kind, mode)] = frame.take(~drop) if drop.any() else frame
        excluded[(kind, mode)] = int(drop.sum())
    return out, excluded


def register_fitted(fitted: Sequence[Fitted], *, registry: ModelRegistry, now: datetime,
                    profiles: Sequence[OnboardingProfile] = ()) -> list[TrainingReport]:
    """Register every fitted candidate and the given profiles in one transaction; the reports.

    A profile is registered only when a model of its kind is: a kind that trained nothing stays
    unknown to the service.
    """
    candidates = [f.candidate for f in fitted if f.candidate is not None]
    kinds = {c.kind for c in candidates}
    versions = iter(registry.register_all(candidates, now=now,
                                          profiles=[p for p in profiles if p.profile.kind in kinds]))
    return [f.report if f.candidate is None else replace(f.report, version=next(versions))
            for f in fitted]


def _fit_one(profile: ApplianceProfile, mode: str, frame: TrainingFrame | None, *,
             min_positives: int, params: dict[str, Any], holdout_fraction: float,
             seed: int, extra: Mapping[str, Any] | None = None) -> tuple[TrainingReport, Candidate | None]:
    kind = profile.kind
    skip = _why_skip(kind, mode, frame, min_positives=min_positives, params=params,
                     holdout_fraction=holdout_fraction, seed=seed)
    if skip is not None:
        return replace(skip, summary={**skip.summary, **dict(extra or {})}), None
    assert frame is not None
    held = holdout_devices(frame, holdout_fraction, seed)
    test = np.isin(frame.device_ids, held)
    started = time.perf_counter()
    metrics = _evaluate(FailureModeModel(**params), frame.take(~test), frame.take(test))
    model = FailureModeModel(**params).fit(frame.X, frame.y, frame.ttf_h, groups=frame.device_ids)
    fit_s = time.perf_counter() - started

    summary = {
        **_counts(frame), **metrics, **dict(extra or {}),
        "features": list(frame.features), "horizon_h": frame.horizon_h, "ttf_cap_h": frame.ttf_cap_h,
        "data_from": str(frame.ts.min()), "data_until": str(frame.ts.max()),
        "has_ttf": model.has_ttf, "fit_seconds": round(fit_s, 2),
        "params": {k: v for k, v in model.get_params().items()},
        "profile": profile_to_dict(profile),
        # The training distribution of every feature, for drift watching (predictors.drift).
        "reference": feature_reference(frame.X, frame.features),
    }
    brier, base = metrics["brier"], metrics["brier_base_rate"]
    skilled = brier is not None and base is not None and brier < base
    note = "" if skilled else (f"held-out Brier {brier} not better than base rate {base}; "
                               "registered but not made live")
    return (TrainingReport(kind=kind, mode=mode, live=skilled, summary=summary),
            Candidate(kind=kind, mode=mode, model=model, summary=summary, make_live=skilled,
                      note=note))


def _why_skip(kind: str, mode: str, frame: TrainingFrame | None, *, min_positives: int,
              params: dict[str, Any], holdout_fraction: float, seed: int) -> TrainingReport | None:
    if frame is None or frame.n_rows == 0:
        return TrainingReport(kind=kind, mode=mode, skipped="no training rows for this kind")
    stats = _counts(frame)
    if frame.n_positives < min_positives:
        return TrainingReport(kind=kind, mode=mode, summary=stats,
                              skipped=f"{frame.n_positives} positive rows, need {min_positives}")
    cv = int(params.get("cv", 3))
    train = frame.take(~np.isin(frame.device_ids, holdout_devices(frame, holdout_fraction, seed)))
    if _positive_devices(train) < cv or train.n_positives == train.n_rows:
        return TrainingReport(kind=kind, mode=mode, summary=stats,
                              skipped=f"positives on {stats['positive_devices']} devices; need "
                                      f"{cv} outside the hold-out and some negative rows")
    return None


def _counts(frame: TrainingFrame) -> dict[str, Any]:
    return {"rows": frame.n_rows, "positives": frame.n_positives,
            "devices": int(np.unique(frame.device_ids).size),
            "positive_devices": _positive_devices(frame)}


def _positive_devices(frame: TrainingFrame) -> int:
    return int(np.unique(frame.device_ids[frame.y == 1]).size)


def holdout_devices(frame: TrainingFrame, fraction: float, seed: int) -> np.ndarray:
    """About ``fraction`` of devices, drawn separately from devices with and without positives."""
    rng = np.random.default_rng(seed)
    positive = np.unique(frame.device_ids[frame.y == 1])
    other = np.setdiff1d(np.unique(frame.device_ids), positive)
    held = [rng.permutation(group)[: math.ceil(fraction * group.size)] if group.size > 1
            else group[:0] for group in (positive, other)]
    return np.concatenate(held)


def _evaluate(model: FailureModeModel, train: TrainingFrame, test: TrainingFrame) -> dict[str, Any]:
    if test.n_rows == 0:
        return holdout_metrics(None, test, base_rate=float("nan"))
    model.fit(train.X, train.y, train.ttf_h, groups=train.device_ids)
    return holdout_metrics(model, test, base_rate=float(train.y.mean()))


def holdout_metrics(model: FailureModeModel | None, test: TrainingFrame, *,
                    base_rate: float) -> dict[str, Any]:
    """Brier (and that of predicting ``base_rate``), ROC AUC and remaining-time MAE on ``test`` rows."""
    out: dict[str, Any] = {"holdout_devices": int(np.unique(test.device_ids).size),
                           "holdout_rows": test.n_rows, "holdout_positives": test.n_positives,
                           "brier": None, "brier_base_rate": None, "auc": None, "ttf_mae_h": None,
                           "ttf_interval_coverage": None}
    if test.n_rows == 0 or model is None:
        return out
    p = model.p_fail(test.X)
    out["brier"] = round(float(brier_score_loss(test.y, p, labels=[0, 1])), 5)
    out["brier_base_rate"] = round(float(brier_score_loss(test.y, np.full(test.n_rows, base_rate),
                                                          labels=[0, 1])), 5)
    if 0 < test.n_positives < test.n_rows:
        out["auc"] = round(float(roc_auc_score(test.y, p)), 4)
    pos = (test.y == 1) & np.isfinite(test.ttf_h)
    if pos.any() and model.has_ttf:
        q = model.predict_ttf(test.X[pos])
        truth = test.ttf_h[pos]
        out["ttf_mae_h"] = round(float(np.mean(np.abs(q[:, 1] - truth))), 2)
        out["ttf_interval_coverage"] = round(float(np.mean((q[:, 0] <= truth) & (truth <= q[:, 2]))), 3)
    return out
