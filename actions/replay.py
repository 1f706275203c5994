"""Replay a recorded history through the service's own feature, scoring and policy code.

This is what ``foresight evaluate`` measures: readings become point-in-time feature vectors with
``predictors.dataset.device_feature_matrix`` (checked equal to the live store's
``ingest.features.compute_features``), vectors are scored by a ``predictors.Scorer`` (the live
models), and every prediction goes through ``actions.policy.decide`` with a case history kept as
``actions.service.ActionService`` keeps it:

* event time steps in sweeps of ``sweep`` (the service's scoring interval): at each sweep the newest
  vector of every device that had a reading since the previous sweep is scored; ``now`` is the
  sweep's end, so a prediction is never acted on before its readings exist;
* one open case per (device, mode); a data-quality ticket (``sensor_fault`` / ``ood``) covers the
  device's other modes; an open ticket case is escalated when clean data calls for the mode's
  action; cooldown after a case closes;
* a non-ticket case closes once the device has looked calm (``policy.is_calm``) for
  ``recovered_dwell``; a ticket case closes when a person resolves it. The replay has no people and
  its history cannot change, so it assumes a person resolves an uncertainty ticket
  ``ticket_resolution`` after it opened, and a data-quality ticket once the data has been clean (no
  sensor fault, not out of distribution) for ``recovered_dwell``: the person has the sensor seen to
  and keeps the ticket open meanwhile, rather than closing it on readings that are still bad.

A booking always finds a slot (technician capacity is not what is measured here).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import numpy as np

from ingest.contract import PROFILES, ApplianceProfile
from ingest.features import FeatureVector, Reading
from predictors.dataset import all_feature_names, device_feature_matrix
from predictors.types import Prediction

from .policy import CaseHistory, DecisionAction, PolicyConfig, decide, failure_mode, is_calm, is_uncertain

__all__ = ["ReplayCase", "ReplayResult", "ThresholdBaseline", "VectorScorer", "replay"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CHUNK = 20_000  # readings per batch of devices replayed together: bounds memory on long histories


class VectorScorer(Protocol):
    """Anything that scores feature vectors like ``predictors.Scorer``."""

    def score_many(self, vectors: Sequence[FeatureVector], *, now: datetime) -> list[Prediction]: ...


@dataclass(slots=True, kw_only=True)
class ReplayCase:
    """A case the policy opened during the replay."""

    device_id: str
    kind: str
    mode: str
    #: The action the case opened with, and the rule that opened it.
    opened_action: DecisionAction
    rule: str
    opened_at: datetime
    #: When the case first called for a proactive action (open, or escalation of a ticket case).
    proactive_at: datetime | None = None
    closed_at: datetime | None = None

    @property
    def escalated_to_human(self) -> bool:
        """The case opened as a ticket: a person was asked instead of acting."""
        return self.opened_action is DecisionAction.OPEN_TICKET


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayResult:
    """Cases opened, the probabilities scored (for calibration) and each device's observed span."""

    cases: list[ReplayCase]
    #: Scored predictions, row-aligned: ``(kind, mode)``, device, event time (epoch s), ``p_fail``.
    scored_key: np.ndarray
    scored_device: np.ndarray
    scored_ts: np.ndarray
    scored_p: np.ndarray
    spans: Mapping[str, tuple[datetime, datetime]]
    kinds: Mapping[str, str]
    predictions: int
    decisions: Mapping[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _State:
    case: ReplayCase | None = None
    uncertain_since: datetime | None = None
    calm_since: datetime | None = None
    clean_since: datetime | None = None
    recent: list[float] = field(default_factory=list)
    last_closed_at: datetime | None = None


class ThresholdBaseline:
    """The rule a service without models would use: act when a mode's first metric has risen by
    ``rise`` (default 15 %) over the device's own baseline (window mean vs its first readings).

    Emits predictions (p 1 or 0, remaining time 0 or far) so the same policy and case handling apply.
    """

    def __init__(self, *, rise: float = 0.15, profiles: Mapping[str, ApplianceProfile] = PROFILES) -> None:
        self._rise, self._profiles = rise, profiles

    def score_many(self, vectors: Sequence[FeatureVector], *, now: datetime) -> list[Prediction]:
        """One prediction per vector and failure mode of its kind."""
        del now
        out = []
        for v in vectors:
            profile = self._profiles[v.kind]
            for mode in profile.failure_modes:
                metric = mode.metrics[0]
                mean, delta = v.values.get(f"{metric}__mean"), v.values.get(f"{metric}__delta")
                fires = False
                if mean is not None and delta is not None and abs(mean - delta) > 1e-9:
                    fires = delta / abs(mean - delta) >= self._rise
                far = 10 * mode.act_before_h
                out.append(Prediction(
                    device_id=v.device_id, kind=v.kind, mode=mode.name, ts=v.ts,
                    p_fail=1.0 if fires else 0.0, horizon_h=mode.horizon_h,
                    ttf_h=0.0 if fires else far, ttf_low_h=0.0 if fires else far,
                    ttf_high_h=0.0 if fires else far, model_version="baseline", n_readings=v.n_readings))
        return out


def _by_device(readings: Iterable[Reading], profiles: Mapping[str, ApplianceProfile]) -> dict[str, list[Reading]]:
    """Each known-kind device's readings in timestamp order (references to the inputs, not copies)."""
    by_device: dict[str, list[Reading]] = defaultdict(list)
    for r in readings:
        if r.kind in profiles:
            by_device[r.device_id].append(r)
    for dev in by_device.values():
        dev.sort(key=lambda r: r.ts)
    return by_device


def _device_vectors(profile: ApplianceProfile, dev: Sequence[Reading], step: float
                    ) -> list[tuple[float, FeatureVector]]:
    """(sweep end in epoch s, the device's newest vector by then), for each sweep the device read in."""
    feats = device_feature_matrix(profile, dev)
    names = all_feature_names(profile)
    t = np.fromiter(((r.ts - _EPOCH).total_seconds() for r in dev), float, len(dev))
    sweep_end = (np.floor(t / step) + 1) * step
    last_in_sweep = np.append(sweep_end[1:] != sweep_end[:-1], True)
    out = []
    for i in np.flatnonzero(last_in_sweep):
        values = {n: float(x) for n, x in zip(names, feats[i], strict=True) if not np.isnan(x)}
        out.append((float(sweep_end[i]), FeatureVector(dev[i].device_id, profile.kind, dev[i].ts, int(i) + 1,
                                                       values)))
    return out


def _batches(by_device: Mapping[str, Sequence[Reading]], size: int) -> Iterator[list[str]]:
    """Devices in id order, grouped so that a group holds about ``size`` readings (at least one device)."""
    group: list[str] = []
    count = 0
    for device_id in sorted(by_device):
        group.append(device_id)
        count += len(by_device[device_id])
        if count >= size:
            yield group
            group, count = [], 0
    if group:
        yield group


def replay(readings: Iterable[Reading], *, scorer: VectorScorer, config: PolicyConfig,
           sweep: timedelta = timedelta(hours=1), ticket_resolution: timedelta = timedelta(hours=48),
           profiles: Mapping[str, ApplianceProfile] = PROFILES) -> ReplayResult:
    """Replay ``readings`` (any order) through ``scorer`` and the policy; see the module docstring.

    Case history is per device (a case, a data-quality ticket, a cooldown never spans two devices),
    so devices are replayed a batch at a time -- features, scores and policy for about ``_CHUNK``
    readings' worth of devices, then the next batch: memory is bounded by a batch, not the history.
    Within a device, sweeps run in event-time order.
    """
    if sweep <= timedelta(0) or ticket_resolution < timedelta(0):
        raise ValueError("sweep must be positive and ticket_resolution not negative")
    by_device = _by_device(readings, profiles)
    spans = {d: (dev[0].ts, dev[-1].ts) for d, dev in by_device.items()}
    kinds = {d: dev[0].kind for d, dev in by_device.items()}
    step = sweep.total_seconds()
    cases: list[ReplayCase] = []
    decisions: dict[str, int] = defaultdict(int)
    keys: list[np.ndarray] = []
    devices: list[np.ndarray] = []
    ts: list[np.ndarray] = []
    ps: list[np.ndarray] = []
    n_pred = 0
    names: dict[tuple[str, str], str] = {}  # one "kind.mode" string each, shared by every row
    for group in _batches(by_device, _CHUNK):
        items = [item for d in group for item in _device_vectors(profiles[kinds[d]], by_device[d], step)]
        if not items:
            continue
        # Predictions depend on the vector only, so a batch of devices can be scored in one call.
        by_vector: dict[int, list[Prediction]] = defaultdict(list)
        index = {(v.device_id, v.ts, v.n_readings): k for k, (_, v) in enumerate(items)}
        predictions = scorer.score_many([v for _, v in items], now=_EPOCH + timedelta(seconds=max(t for t, _ in items)))
        for p in predictions:
            by_vector[index[(p.device_id, p.ts, p.n_readings)]].append(p)
        states: dict[tuple[str, str], _State] = defaultdict(_State)
        open_dq: dict[tuple[str, str], set[str]] = defaultdict(set)  # (device, rule) -> modes with such a ticket
        for k, (sweep_end, _) in enumerate(items):  # per device, in sweep order
            now = _EPOCH + timedelta(seconds=sweep_end)
            for p in by_vector.get(k, ()):
                rule = _handle(p, now, states[(p.device_id, p.mode)], open_dq, cases, config, ticket_resolution)
                decisions[rule] += 1
        n_pred += len(predictions)
        keys.append(np.asarray([names.setdefault((p.kind, p.mode), f"{p.kind}.{p.mode}") for p in predictions],
                               dtype=object))
        devices.append(np.asarray([p.device_id for p in predictions], dtype=object))
        ts.append(np.fromiter(((p.ts - _EPOCH).total_seconds() for p in predictions), float, len(predictions)))
        ps.append(np.fromiter((p.p_fail for p in predictions), float, len(predictions)))
    # The order the service would have opened them in: by time, then device, then the profile's modes.
    rank = {(kind, m.name): j for kind, prof in profiles.items() for j, m in enumerate(prof.failure_modes)}
    cases.sort(key=lambda c: (c.opened_at, c.device_id, rank.get((c.kind, c.mode), 0)))

    def joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(parts) if parts else np.asarray([], dtype=dtype)

    return ReplayResult(cases=cases, scored_key=joined(keys, object), scored_device=joined(devices, object),
                        scored_ts=joined(ts, float), scored_p=joined(ps, float), spans=spans, kinds=kinds,
                        predictions=n_pred, decisions=dict(decisions))


def _handle(p: Prediction, now: datetime, state: _State, open_dq: dict[tuple[str, str], set[str]],
            cases: list[ReplayCase], config: PolicyConfig, ticket_resolution: timedelta) -> str:
    mode = failure_mode(p)
    case = state.case
    if case is not None:  # the jobs and people that would have closed it by now
        if case.proactive_at is None and case.rule in ("sensor_fault", "ood"):
            closes_at = (state.clean_since + config.recovered_dwell) if state.clean_since else None
        elif case.proactive_at is None:
            closes_at = case.opened_at + ticket_resolution
        else:
            closes_at = (state.calm_since + config.recovered_dwell) if state.calm_since else None
        if closes_at is not None and closes_at <= now:
            case.closed_at, state.case, state.last_closed_at = closes_at, None, closes_at
            open_dq[(p.device_id, case.rule)].discard(p.mode)
            case = None
    history = CaseHistory(
        open_case_action=(DecisionAction.OPEN_TICKET if case.proactive_at is None else
                          DecisionAction(mode.action.value)) if case is not None else None,
        uncertain_since=state.uncertain_since, recent_p_fail=tuple(state.recent),
        last_closed_at=state.last_closed_at)
    decision = decide(p, history, config, now)
    state.uncertain_since = (state.uncertain_since or now) if is_uncertain(p, mode, config) else None
    state.calm_since = (state.calm_since or now) if is_calm(p, mode, config) else None
    state.clean_since = None if (p.sensor_faults or p.ood) else (state.clean_since or now)
    state.recent = [*state.recent, p.p_fail][-12:]
    if decision.action is DecisionAction.NONE:
        return decision.rule
    if case is None and decision.action is DecisionAction.OPEN_TICKET and decision.rule in ("sensor_fault", "ood") \
            and open_dq[(p.device_id, decision.rule)]:
        return "covered"  # one data-quality ticket per device
    if case is None:
        case = ReplayCase(device_id=p.device_id, kind=p.kind, mode=p.mode, opened_action=decision.action,
                          rule=decision.rule, opened_at=now,
                          proactive_at=None if decision.action is DecisionAction.OPEN_TICKET else now)
        cases.append(case)
        state.case = case
        if decision.action is DecisionAction.OPEN_TICKET:
            open_dq[(p.device_id, decision.rule)].add(p.mode)
    elif decision.action is not DecisionAction.OPEN_TICKET and case.proactive_at is None:
        case.proactive_at = now  # an open ticket case escalated by clean data
        open_dq[(p.device_id, case.rule)].discard(p.mode)
    return decision.rule
