"""Appliance profiles as data outside the code: a TOML profile file, a JSON-able dict, or inferred.

The three build the same ``ingest.contract.ApplianceProfile`` dataclasses the built-in kinds use, so
an onboarded kind goes through the wire contract, the feature store, training, scoring and the
policy exactly like a built-in one. The file format is documented in ``docs/onboarding.md``.

``infer_profile`` guesses a profile from a history when no file is given: metrics from the columns
that hold values, valid ranges from the data's 0.1st-99.9th percentiles widened by half their
spread (and never narrower than what was seen), the reading interval from the median gap between
readings, the stuck-sensor run length from the longest run of identical values seen (twice it, at
least 6; off when that exceeds the window), and the
failure modes from the failures file. Columns constant over the whole history stay valid metrics
but feed no model: they carry no signal, and their ever-repeating value would look like a stuck
sensor on every prediction.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ingest.contract import ActionKind, ApplianceProfile, FailureMode, MetricSpec, Threshold
from predictors.dataset import DEFAULT_TTF_CAP_H
from predictors.errors import HistoryError

__all__ = ["NAME_PATTERN", "OnboardingProfile", "infer_profile", "parse_profile_toml",
           "profile_from_dict", "profile_to_dict", "profile_to_toml"]

#: Kind, metric and failure-mode names: what the wire contract, the tables and feature names allow.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

#: A stuck-sensor threshold that never fires (the ``stuck`` feature cannot exceed the window).
NEVER_STUCK = 10**9

_TOP_KEYS = {"kind", "description", "reading_interval_h", "silence_grace", "window",
             "baseline_readings", "models", "horizon_h", "metrics", "failure_modes", "training"}
_METRIC_KEYS = {"unit", "low", "high", "description", "stuck_after", "spike_jump", "drift_after",
                "corroborated_by"}
_MODE_KEYS = {"description", "action", "metrics", "horizon_h", "act_before_h", "threshold",
              "homeowner_tip", "skill", "ratios"}
_TRAINING_KEYS = {"ttf_cap_h", "min_positives", "conformal_intervals"}


@dataclass(frozen=True, slots=True, kw_only=True)
class OnboardingProfile:
    """A profile plus how to train it (None: the default).

    ``ttf_cap_h`` caps the remaining-time target; ``min_positives`` is the positive rows a mode needs;
    ``conformal_intervals`` widens the remaining-time interval to its nominal coverage on
    out-of-fold devices (default on; ``false`` keeps plain quantile boosting).
    """

    profile: ApplianceProfile
    ttf_cap_h: float | None = None
    min_positives: int | None = None
    conformal_intervals: bool | None = None
    source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


def profile_to_dict(profile: ApplianceProfile) -> dict[str, Any]:
    """Plain JSON-able form of a profile (what ``appliance_profiles.spec`` stores)."""
    out = asdict(profile)
    for mode in out["failure_modes"]:
        mode["action"] = str(mode["action"])
    return out


def profile_from_dict(data: Mapping[str, Any]) -> ApplianceProfile:
    """The inverse of ``profile_to_dict``."""
    modes = []
    for m in data["failure_modes"]:
        threshold = m.get("threshold")
        modes.append(FailureMode(**{**m, "action": ActionKind(m["action"]),
                                    "metrics": tuple(m["metrics"]),
                                    "ratios": tuple((str(a), str(b)) for a, b in m.get("ratios", ())),
                                    "threshold": Threshold(**threshold) if threshold else None}))
    metrics = tuple(MetricSpec(**{**s, "corroborated_by": tuple(
        (str(partner), float(ratio)) for partner, ratio in s.get("corroborated_by", ()))})
        for s in data["metrics"])
    return ApplianceProfile(**{**data, "metrics": metrics,
                               "failure_modes": tuple(modes), "models": tuple(data.get("models", ()))})


def parse_profile_toml(text: str, *, file: str) -> OnboardingProfile:
    """Parse and check a TOML profile file; ``HistoryError`` names the file and the offending key."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HistoryError(file, f"not valid TOML: {exc}") from None
    _only(doc, _TOP_KEYS, file, "")
    kind = _name(doc.get("kind"), file, "kind")
    raw_metrics = _table(doc.get("metrics"), file, "metrics")
    if not raw_metrics:
        raise HistoryError(file, "needs at least one [metrics.<name>] table")
    metrics = tuple(_metric(name, spec, file) for name, spec in raw_metrics.items())
    names = [m.name for m in metrics]
    horizon = _number(doc.get("horizon_h", 48.0), file, "horizon_h", positive=True)
    raw_modes = _table(doc.get("failure_modes"), file, "failure_modes")
    if not raw_modes:
        raise HistoryError(file, "needs at least one [failure_modes.<name>] table")
    modes = tuple(_mode(name, spec, file, names=names, horizon=horizon)
                  for name, spec in raw_modes.items())
    window = _integer(doc.get("window", 24), file, "window", low=3)
    training = _table(doc.get("training", {}), file, "training")
    _only(training, _TRAINING_KEYS, file, "training.")
    try:
        profile = ApplianceProfile(
            kind=kind, description=str(doc.get("description", "")),
            reading_interval_h=_number(doc.get("reading_interval_h", 1.0), file,
                                       "reading_interval_h", positive=True),
            silence_grace=_number(doc.get("silence_grace", 3.0), file, "silence_grace", positive=True),
            window=window,
            baseline_readings=_integer(doc.get("baseline_readings", 6), file, "baseline_readings", low=1),
            models=tuple(str(m) for m in doc.get("models", ())),
            metrics=metrics, failure_modes=modes)
    except TypeError as exc:
        raise HistoryError(file, str(exc)) from None
    cap = training.get("ttf_cap_h")
    min_pos = training.get("min_positives")
    conformal = training.get("conformal_intervals")
    if conformal is not None and not isinstance(conformal, bool):
        raise HistoryError(file, f"training.conformal_intervals must be true or false, got {conformal!r}")
    return OnboardingProfile(
        profile=profile, source=f"profile file {file}",
        ttf_cap_h=None if cap is None else _number(cap, file, "training.ttf_cap_h", positive=True),
        min_positives=None if min_pos is None else _integer(min_pos, file, "training.min_positives",
                                                            low=1),
        conformal_intervals=conformal)


def profile_to_toml(onb: OnboardingProfile) -> str:
    """A profile file ``parse_profile_toml`` reads back to the same profile (to edit an inferred one)."""
    p = onb.profile
    lines = [f"kind = {_q(p.kind)}", f"description = {_q(p.description)}",
             f"reading_interval_h = {p.reading_interval_h!r}", f"silence_grace = {p.silence_grace!r}",
             f"window = {p.window}", f"baseline_readings = {p.baseline_readings}"]
    if p.models:
        lines.append("models = [" + ", ".join(_q(m) for m in p.models) + "]")
    training = {k: v for k, v in (("ttf_cap_h", onb.ttf_cap_h), ("min_positives", onb.min_positives),
                                  ("conformal_intervals", onb.conformal_intervals)) if v is not None}
    if training:
        lines += ["", "[training]", *(f"{k} = {json.dumps(v)}" for k, v in training.items())]
    for m in p.metrics:
        lines += ["", f"[metrics.{m.name}]", f"unit = {_q(m.unit)}", f"low = {m.low!r}",
                  f"high = {m.high!r}", f"stuck_after = {m.stuck_after}"]
        if m.description:
            lines.append(f"description = {_q(m.description)}")
        if m.spike_jump != MetricSpec.__dataclass_fields__["spike_jump"].default:
            lines.append(f"spike_jump = {m.spike_jump!r}")
        if m.drift_after is not None:
            lines.append(f"drift_after = {m.drift_after!r}")
        if m.corroborated_by:
            lines.append("corroborated_by = { " + ", ".join(f"{_q(k)} = {v!r}" for k, v in m.corroborated_by)
                         + " }")
    for f in p.failure_modes:
        lines += ["", f"[failure_modes.{f.name}]", f"description = {_q(f.description)}",
                  f"action = {_q(str(f.action))}",
                  "metrics = [" + ", ".join(_q(x) for x in f.metrics) + "]",
                  f"horizon_h = {f.horizon_h!r}", f"act_before_h = {f.act_before_h!r}"]
        if f.skill:
            lines.append(f"skill = {_q(f.skill)}")
        if f.ratios:
            lines.append("ratios = [" + ", ".join(f"[{_q(a)}, {_q(b)}]" for a, b in f.ratios) + "]")
        if f.homeowner_tip:
            lines.append(f"homeowner_tip = {_q(f.homeowner_tip)}")
        if f.threshold is not None:
            t = f.threshold
            lines.append(f"threshold = {{ metric = {_q(t.metric)}, value = {t.value!r}, "
                         f"above = {'true' if t.above else 'false'} }}")
    return "\n".join(lines) + "\n"


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _metric(name: str, spec: Any, file: str) -> MetricSpec:
    key = f"metrics.{name}"
    _name(name, file, key)
    spec = _table(spec, file, key)
    _only(spec, _METRIC_KEYS, file, key + ".")
    for required in ("low", "high"):
        if required not in spec:
            raise HistoryError(file, f"{key}.{required} is required")
    low = _number(spec["low"], file, f"{key}.low")
    high = _number(spec["high"], file, f"{key}.high")
    if not low < high:
        raise HistoryError(file, f"{key}: low {low:g} must be below high {high:g}")
    drift_after = spec.get("drift_after")
    partners = _table(spec.get("corroborated_by", {}), file, f"{key}.corroborated_by")
    return MetricSpec(name=name, unit=str(spec.get("unit", "")), low=low, high=high,
                      description=str(spec.get("description", "")),
                      stuck_after=_integer(spec.get("stuck_after", 6), file, f"{key}.stuck_after", low=2),
                      spike_jump=_number(spec.get("spike_jump", 0.5), file, f"{key}.spike_jump", positive=True),
                      drift_after=None if drift_after is None else _number(
                          drift_after, file, f"{key}.drift_after", positive=True),
                      corroborated_by=tuple(
                          (str(k), _number(v, file, f"{key}.corroborated_by.{k}", positive=True))
                          for k, v in partners.items()))


def _mode(name: str, spec: Any, file: str, *, names: Sequence[str], horizon: float) -> FailureMode:
    key = f"failure_modes.{name}"
    _name(name, file, key)
    spec = _table(spec, file, key)
    _only(spec, _MODE_KEYS, file, key + ".")
    metrics = spec.get("metrics", list(names))
    if not isinstance(metrics, list) or not metrics:
        raise HistoryError(file, f"{key}.metrics must be a non-empty list of metric names")
    for m in metrics:
        if m not in names:
            raise HistoryError(file, f"{key}.metrics: {m!r} is not a metric of this profile "
                                     f"(one of {', '.join(names)})")
    try:
        action = ActionKind(spec.get("action", ActionKind.OPEN_TICKET.value))
    except ValueError:
        raise HistoryError(file, f"{key}.action must be one of "
                                 f"{', '.join(a.value for a in ActionKind)}") from None
    h = _number(spec.get("horizon_h", horizon), file, f"{key}.horizon_h", positive=True)
    threshold = spec.get("threshold")
    if threshold is not None:
        threshold = _table(threshold, file, f"{key}.threshold")
        _only(threshold, {"metric", "value", "above"}, file, f"{key}.threshold.")
        if threshold.get("metric") not in names:
            raise HistoryError(file, f"{key}.threshold.metric must be a metric of this profile")
        threshold = Threshold(metric=threshold["metric"],
                              value=_number(threshold.get("value"), file, f"{key}.threshold.value"),
                              above=bool(threshold.get("above", True)))
    if action is ActionKind.BOOK_TECHNICIAN and not spec.get("skill"):
        raise HistoryError(file, f"{key}: action book_technician needs a skill")
    ratios = spec.get("ratios", [])
    if not isinstance(ratios, list) or not all(
            isinstance(r, list) and len(r) == 2 and all(x in names for x in r) for r in ratios):
        raise HistoryError(file, f"{key}.ratios must be a list of [numerator, denominator] metric pairs "
                                 f"of this profile (metrics: {', '.join(names)})")
    return FailureMode(
        name=name, description=str(spec.get("description", "")), action=action,
        metrics=tuple(metrics), horizon_h=h,
        act_before_h=_number(spec.get("act_before_h", 2 * h), file, f"{key}.act_before_h",
                             positive=True),
        threshold=threshold, homeowner_tip=str(spec.get("homeowner_tip", "")),
        skill=str(spec.get("skill", "")), ratios=tuple((str(a), str(b)) for a, b in ratios))


def infer_profile(kind: str, *, values: Mapping[str, Sequence[np.ndarray]], gaps_h: np.ndarray,
                  spans_h: np.ndarray, modes: Sequence[str], source: str) -> OnboardingProfile:
    """A profile guessed from a history (see the module docstring).

    ``values[metric]`` holds one array per device, in time order, of the metric's present values;
    ``gaps_h`` the hours between consecutive readings of each device; ``spans_h`` each device's
    first-to-last reading hours; ``modes`` the failure modes recorded for devices of this kind.

    The remaining-time cap is half the median device span, within [2 x act window, 720 h]: a
    device watched for at least the cap without failing is known to have at least the cap left,
    so a cap the history can show keeps healthy devices in the regression's training rows.
    """
    notes: list[str] = []
    horizon = 48.0
    act_before = 2 * horizon
    span = float(np.median(spans_h)) if spans_h.size else 0.0
    cap = float(np.clip(0.5 * span, 2 * act_before, DEFAULT_TTF_CAP_H))
    notes.append(f"horizon {horizon:g} h, act {act_before:g} h ahead, remaining time capped at "
                 f"{cap:g} h (half the median device history of {span:g} h)")
    interval = float(np.median(gaps_h)) if gaps_h.size else 1.0
    interval = interval if interval > 0 else 1.0
    window, baseline = 24, 6
    metrics: list[MetricSpec] = []
    informative: list[str] = []
    for name, per_device in values.items():
        allv = np.concatenate(per_device) if per_device else np.empty(0)
        if allv.size == 0:
            continue
        lo, hi = float(np.percentile(allv, 0.1)), float(np.percentile(allv, 99.9))
        pad = 0.5 * (hi - lo) or max(abs(lo), 1.0) * 0.5
        low, high = min(lo - pad, float(allv.min())), max(hi + pad, float(allv.max()))
        if float(allv.min()) >= 0.0:
            low = max(low, 0.0)  # a metric never negative in years of history is physically so
        constant = bool(np.all(allv == allv[0]))
        run = max((_longest_run(v) for v in per_device), default=1)
        stuck_after = max(6, 2 * run)
        stuck_after = stuck_after if stuck_after <= window and not constant else NEVER_STUCK
        if constant:
            notes.append(f"{name}: constant ({allv[0]:g}) in the whole history, used by no model")
        else:
            informative.append(name)
            if stuck_after == NEVER_STUCK:
                notes.append(f"{name}: runs of up to {run} identical values are normal here; "
                             "stuck-sensor detection off")
        metrics.append(MetricSpec(name=name, unit="", low=_round(low), high=_round(high),
                                  stuck_after=stuck_after,
                                  description="inferred from history"))
    if not informative:
        raise HistoryError(source, f"kind {kind!r}: no metric column varies; nothing to learn from")
    failure_modes = tuple(
        FailureMode(name=m, description="inferred from the failures file",
                    action=ActionKind.OPEN_TICKET, metrics=tuple(informative), horizon_h=horizon,
                    act_before_h=act_before)
        for m in modes)
    if not failure_modes:
        raise HistoryError(source, f"kind {kind!r}: no failures recorded for any of its devices; "
                                   "give a profile with its failure modes, or the failures")
    notes.append("failure modes open a ticket for a person (set `action` in a profile to notify "
                 "the homeowner or book a technician)")
    profile = ApplianceProfile(kind=kind, description=f"onboarded from history ({source})",
                               reading_interval_h=_round(interval), window=window,
                               baseline_readings=baseline, metrics=tuple(metrics),
                               failure_modes=failure_modes)
    return OnboardingProfile(profile=profile, source=f"inferred from {source}", ttf_cap_h=_round(cap),
                             notes=tuple(notes))


def _longest_run(v: np.ndarray) -> int:
    if v.size == 0:
        return 0
    breaks = np.flatnonzero(np.diff(v) != 0)
    edges = np.concatenate([[-1], breaks, [v.size - 1]])
    return int(np.diff(edges).max())


def _round(x: float) -> float:
    """Six significant digits: readable in the summary and the profile dump."""
    return float(f"{x:.6g}")


def _only(table: Mapping[str, Any], allowed: set[str], file: str, prefix: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise HistoryError(file, f"unknown key {prefix}{unknown[0]} (allowed: {', '.join(sorted(allowed))})")


def _table(value: Any, file: str, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise HistoryError(file, f"{key} must be a table")
    return value


def _name(value: Any, file: str, key: str) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise HistoryError(file, f"{key} must be a name of lower-case letters, digits and _ "
                                 f"(at most 32, starting with a letter), got {value!r}")
    return value


def _number(value: Any, file: str, key: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise HistoryError(file, f"{key} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise HistoryError(file, f"{key} must be positive, got {value!r}")
    return float(value)


def _integer(value: Any, file: str, key: str, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise HistoryError(file, f"{key} must be an integer of at least {low}, got {value!r}")
    return int(value)
