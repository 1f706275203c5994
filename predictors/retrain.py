"""Learning from outcomes: labels from what really happened, challenger against champion, promotion.

**Outcome labels.** An ``OutcomeLabel`` says what a person found on a device at ``ts`` for one
failure mode: ``failed=True`` (a technician confirmed the fault or replaced the part, the homeowner
fixed it) or ``failed=False`` (no fault found, "wrong alert"). ``merge_outcomes`` turns them into
the two inputs ``build_frames`` already understands, so the frames stay point-in-time correct:

* a failure becomes a ``FailureLabel`` at ``ts`` (unless the history already records one of that
  mode within ``same_failure_h`` of it -- the device's own report and the visit are one failure);
* a negative verdict at ``ts`` extends how long the device is known to be observed to at least
  ``ts + horizon``: the rows of the horizon before the verdict, which were censored because the
  outcome was not yet known, become negatives (``y = 0``) unless a failure follows within their
  horizon. Rows after the verdict stay as they were. A verdict therefore never turns a recorded
  failure into a negative; it adds what the history could not know.

**Observation ends.** Unless told otherwise a device is observed up to its own last reading: one
that went silent (unplugged, or dead without anyone recording it) is not vouched for after it.
Every observation end, a verdict's included, is capped at ``now``: nothing is known of the future.

**A history too big for memory** comes as ``ReadingChunks``: the readings a few devices at a time,
and from when rows count (``rows_from``). The readings before ``rows_from`` are context only --
each device's first ``baseline_readings`` (its baseline, as the live store keeps it) and the
``window - 1`` just before ``rows_from`` -- so every row's features are those the service computed
at that reading. Frames are built chunk by chunk: memory holds one chunk's readings and the frames.

**Promotion.** ``retrain`` builds, per (kind, mode) with enough rows, a challenger from the current
history plus outcomes, with the champion's own parameters (unless told otherwise). Champion and
challenger are scored on the same held-out devices, neither having seen them: the live champion was
refitted on every device, so it is replayed -- its parameters fitted on the training devices' rows
up to its ``data_until`` -- and the challenger is fitted on the training devices' rows up to now.
The difference measured is what the new data, the new labels and the new parameters bring.
``decide`` compares Brier score, ROC AUC and remaining-time MAE with explicit tolerances. The
challenger is then refitted on every device and registered -- live when promoted, kept but not
live when refused -- with the decision's reason as the version's note and both sets of metrics in
``summary["evaluation"]``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from ingest.contract import PROFILES, ApplianceProfile
from ingest.features import Reading
from predictors.dataset import DEFAULT_TTF_CAP_H, FailureLabel, TrainingFrame, build_frames
from predictors.model import FailureModeModel
from predictors.registry import Candidate, ModelRegistry
from predictors.training import _fit_one, holdout_devices, holdout_metrics

__all__ = ["Decision", "OutcomeLabel", "ReadingChunks", "RetrainResult", "Tolerance", "decide",
           "merge_outcomes", "outcome_frames", "retrain"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OutcomeLabel:
    """What a person found on a device for one failure mode: a failure (True) or a false alert."""

    device_id: str
    mode: str
    ts: datetime
    failed: bool
    source: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadingChunks:
    """Readings a few devices at a time (all of a device's in one chunk), rows from ``rows_from``.

    Readings before ``rows_from`` give the devices' baselines and the first windows; they are not
    rows themselves. ``chunks`` is iterated once.
    """

    chunks: Iterable[Sequence[Reading]]
    rows_from: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Tolerance:
    """How much worse than the champion a challenger may be and still be promoted.

    ``auc`` is absolute (0.01: 0.97 -> 0.96 passes, 0.95 does not); ``brier`` and ``ttf_mae`` are
    relative (0.05: Brier 0.020 -> 0.021 passes).
    """

    auc: float = 0.01
    brier: float = 0.05
    ttf_mae: float = 0.10


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """Promote or refuse, and why, in words an operator reads (``promoted: brier 0.021 → 0.019``)."""

    promote: bool
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrainResult:
    """One (kind, mode) after a retrain: the challenger's version (None if none was built) and why."""

    kind: str
    mode: str
    champion: str | None
    challenger: str | None
    promoted: bool
    reason: str
    evaluation: Mapping[str, Any]


def merge_outcomes(readings: Sequence[Reading], failures: Sequence[FailureLabel],
                   outcomes: Iterable[OutcomeLabel], *,
                   profiles: Mapping[str, ApplianceProfile] = PROFILES,
                   observed_until: datetime | Mapping[str, datetime] | None = None,
                   now: datetime | None = None,
                   same_failure_h: float = 24.0) -> tuple[list[FailureLabel], dict[str, datetime]]:
    """Failures and per-device observation ends with the outcomes folded in (see the module doc).

    ``observed_until`` defaults to each device's last reading; every end is capped at ``now``.
    Outcomes for devices without readings, or modes their kind does not have, are ignored.
    """
    kind_of: dict[str, str] = {}
    last: dict[str, datetime] = {}
    for r in readings:
        kind_of.setdefault(r.device_id, r.kind)
        if r.device_id not in last or r.ts > last[r.device_id]:
            last[r.device_id] = r.ts
    if isinstance(observed_until, Mapping):
        observed = {d: observed_until.get(d, t) for d, t in last.items()}
    elif observed_until is not None:
        observed = dict.fromkeys(last, observed_until)
    else:
        observed = dict(last)
    merged = list(failures)
    recorded: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for f in failures:
        recorded[(f.device_id, f.mode)].append(f.failed_at)
    window = timedelta(hours=same_failure_h)
    for o in sorted(outcomes, key=lambda o: o.ts):
        profile = profiles.get(kind_of.get(o.device_id, ""))
        mode = next((m for m in profile.failure_modes if m.name == o.mode), None) if profile else None
        if mode is None:
            continue
        if o.failed:
            if all(abs(t - o.ts) > window for t in recorded[(o.device_id, o.mode)]):
                merged.append(FailureLabel(o.device_id, o.mode, o.ts))
                recorded[(o.device_id, o.mode)].append(o.ts)
        else:
            vouched = o.ts + timedelta(hours=mode.horizon_h)
            observed[o.device_id] = max(observed[o.device_id], vouched)
    if now is not None:
        observed = {d: min(t, now) for d, t in observed.items()}
    return merged, observed


def decide(champion: Mapping[str, Any], challenger: Mapping[str, Any], *,
           tolerance: Tolerance = Tolerance()) -> Decision:
    """Promote unless the challenger's held-out metrics regress beyond ``tolerance`` (pure)."""
    ch_brier, base = challenger.get("brier"), challenger.get("brier_base_rate")
    if ch_brier is None:
        return Decision(promote=False, reason="refused: challenger has no held-out Brier score")
    if base is not None and ch_brier >= base:
        return Decision(promote=False, reason=f"refused: brier {ch_brier} not better than the "
                                              f"base rate {base}")
    regressions: list[str] = []
    changes: list[str] = []
    for key, worse in (("brier", lambda a, b: b > a * (1 + tolerance.brier)),
                       ("auc", lambda a, b: b < a - tolerance.auc),
                       ("ttf_mae_h", lambda a, b: b > a * (1 + tolerance.ttf_mae))):
        a, b = champion.get(key), challenger.get(key)
        if a is None or b is None:
            continue
        if worse(a, b):
            regressions.append(f"{key} regressed {_fmt(a)} → {_fmt(b)}")
        else:
            changes.append(f"{key} {_fmt(a)} → {_fmt(b)}")
    if regressions:
        return Decision(promote=False, reason="refused: " + ", ".join(regressions))
    if not champion:
        return Decision(promote=True, reason=f"promoted: first live model; brier {_fmt(ch_brier)} "
                                             f"< base rate {_fmt(base)}")
    return Decision(promote=True, reason="promoted: " + (", ".join(changes) or "no comparable metric"))


def retrain(readings: Sequence[Reading] | ReadingChunks, failures: Sequence[FailureLabel],
            outcomes: Iterable[OutcomeLabel], *, registry: ModelRegistry, now: datetime,
            profiles: Mapping[str, ApplianceProfile] = PROFILES,
            observed_until: datetime | Mapping[str, datetime] | None = None,
            tolerance: Tolerance = Tolerance(), min_positives: int = 20,
            holdout_fraction: float = 0.2, random_state: int = 0,
            model_params: Mapping[str, Any] | None = None,
            only: Iterable[tuple[str, str]] | None = None) -> list[RetrainResult]:
    """Build a challenger per (kind, mode), decide against the live champion, register (see module).

    ``readings`` is the whole history or ``ReadingChunks``; ``observed_until`` is as in
    ``merge_outcomes``. ``model_params`` override the champion's parameters (or the defaults for a
    mode without one); ``only`` limits the retrain to some (kind, mode) pairs. Every challenger is
    registered in one transaction.
    """
    wanted = set(only) if only is not None else None
    plans: list[tuple[ApplianceProfile, str, Any, dict[str, Any]]] = []
    for profile in profiles.values():
        for mode in profile.failure_modes:
            if wanted is not None and (profile.kind, mode.name) not in wanted:
                continue
            champ = registry.live(profile.kind, mode.name)
            params = {**(dict(champ.summary.get("params", {})) if champ else {}),
                      **dict(model_params or {})}
            params.update(ttf_cap_h=float(params.get("ttf_cap_h") or DEFAULT_TTF_CAP_H),
                          random_state=random_state)
            plans.append((profile, mode.name, champ, params))
    history = readings if isinstance(readings, ReadingChunks) else ReadingChunks(chunks=[readings])
    frames_by_cap, added = outcome_frames(history, failures, outcomes, profiles=profiles, now=now,
                                           observed_until=observed_until,
                                           caps={p["ttf_cap_h"] for *_, p in plans})
    results: list[RetrainResult] = []
    candidates: list[Candidate] = []
    for profile, mode_name, champ, params in plans:
        key = (profile.kind, mode_name)
        cap = params["ttf_cap_h"]
        frame = frames_by_cap[cap].get(key)
        report, candidate = _fit_one(profile, mode_name, frame, min_positives=min_positives,
                                     params=params, holdout_fraction=holdout_fraction,
                                     seed=random_state)
        if candidate is None or frame is None:
            results.append(RetrainResult(kind=key[0], mode=key[1], champion=champ and champ.version,
                                         challenger=None, promoted=False,
                                         reason=f"no challenger: {report.skipped}", evaluation={}))
            continue
        challenger_metrics = {k: candidate.summary.get(k) for k in
                              ("brier", "brier_base_rate", "auc", "ttf_mae_h", "holdout_devices")}
        if champ is None or tuple(champ.features) != tuple(frame.features):
            # Nothing comparable: the challenger only has to beat the base rate.
            champion_metrics: dict[str, Any] = {}
            decision = decide({}, challenger_metrics, tolerance=tolerance)
            if champ is not None and decision.promote:
                decision = Decision(promote=True, reason=decision.reason.replace(
                    "first live model", f"{champ.version} uses other features", 1))
        else:
            champion_metrics = _champion_metrics(champ.summary, frame, holdout_fraction=holdout_fraction,
                                                 seed=random_state, cap=cap)
            decision = decide(champion_metrics, challenger_metrics, tolerance=tolerance)
        evaluation = {"decided_at": now.isoformat(), "champion": champ and champ.version,
                      "champion_metrics": champion_metrics,
                      "challenger_metrics": challenger_metrics, "promoted": decision.promote,
                      "reason": decision.reason,
                      "tolerance": {"auc": tolerance.auc, "brier": tolerance.brier,
                                    "ttf_mae": tolerance.ttf_mae},
                      "outcome_failures_added": added}
        candidates.append(Candidate(kind=key[0], mode=key[1], model=candidate.model,
                                    summary={**candidate.summary, "evaluation": evaluation},
                                    make_live=decision.promote, note=decision.reason))
        results.append(RetrainResult(kind=key[0], mode=key[1], champion=champ and champ.version,
                                     challenger=None, promoted=decision.promote,
                                     reason=decision.reason, evaluation=evaluation))
    versions = iter(registry.register_all(candidates, now=now))
    by_key = {(c.kind, c.mode): next(versions) for c in candidates}
    return [RetrainResult(kind=r.kind, mode=r.mode, champion=r.champion,
                          challenger=by_key.get((r.kind, r.mode)), promoted=r.promoted,
                          reason=r.reason, evaluation=r.evaluation) for r in results]


def outcome_frames(history: ReadingChunks, failures: Sequence[FailureLabel],
                    outcomes: Iterable[OutcomeLabel], *, caps: set[float],
                    profiles: Mapping[str, ApplianceProfile], now: datetime,
                    observed_until: datetime | Mapping[str, datetime] | None,
                    ) -> tuple[dict[float, dict[tuple[str, str], TrainingFrame]], int]:
    """Frames per remaining-time cap with the outcomes folded in, a chunk of devices at a time.

    Everything ``merge_outcomes`` and ``build_frames`` compute is per device, so chunk by chunk
    gives the frames of the whole history. Also returns how many failures the outcomes added.
    """
    by_device: dict[str, list[OutcomeLabel]] = defaultdict(list)
    for o in outcomes:
        by_device[o.device_id].append(o)
    rows_from = None if history.rows_from is None else \
        np.datetime64(history.rows_from.astimezone(UTC).replace(tzinfo=None), "us")
    parts: dict[float, dict[tuple[str, str], list[TrainingFrame]]] = {c: defaultdict(list) for c in caps}
    added = 0
    for chunk in history.chunks:
        devices = {r.device_id for r in chunk}
        own = [f for f in failures if f.device_id in devices]
        merged, observed = merge_outcomes(chunk, own, [o for d in devices for o in by_device.get(d, ())],
                                          profiles=profiles, observed_until=observed_until, now=now)
        added += len(merged) - len(own)
        for cap in caps:
            for key, frame in build_frames(chunk, merged, observed_until=observed, profiles=profiles,
                                           ttf_cap_h=cap).items():
                parts[cap][key].append(frame if rows_from is None else frame.take(frame.ts >= rows_from))
    return {cap: {key: _concat(chunks) for key, chunks in by_key.items()}
            for cap, by_key in parts.items()}, added


def _champion_metrics(summary: Mapping[str, Any], frame: TrainingFrame, *, holdout_fraction: float,
                      seed: int, cap: float) -> dict[str, Any]:
    """The champion's recipe (its parameters, the rows it could have seen) on the held-out devices.

    The live model itself was refitted on every device, the held-out ones included: scored on them
    it would be judged in-sample. Its replica is fitted on the same training devices as the
    challenger, on the rows up to the champion's ``data_until``.
    """
    test = np.isin(frame.device_ids, holdout_devices(frame, holdout_fraction, seed))
    seen = ~test
    if summary.get("data_until"):
        seen &= frame.ts <= np.datetime64(str(summary["data_until"]).replace("+00:00", ""), "us")
    train = frame.take(seen)
    params = {**dict(summary.get("params", {})), "ttf_cap_h": cap, "random_state": seed}
    cv = int(params.get("cv", 3))
    if np.unique(train.device_ids[train.y == 1]).size < cv or train.n_positives == train.n_rows:
        return {"replica": "too few positives in the champion's rows to refit it"}
    model = FailureModeModel(**params).fit(train.X, train.y, train.ttf_h, groups=train.device_ids)
    return {**holdout_metrics(model, frame.take(test), base_rate=float(train.y.mean())),
            "replica_rows": train.n_rows}


def _concat(frames: Sequence[TrainingFrame]) -> TrainingFrame:
    first = frames[0]
    return TrainingFrame(kind=first.kind, mode=first.mode, features=first.features,
                         horizon_h=first.horizon_h, ttf_cap_h=first.ttf_cap_h,
                         X=np.concatenate([f.X for f in frames]), y=np.concatenate([f.y for f in frames]),
                         ttf_h=np.concatenate([f.ttf_h for f in frames]),
                         device_ids=np.concatenate([f.device_ids for f in frames]),
                         ts=np.concatenate([f.ts for f in frames]))


def _fmt(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
