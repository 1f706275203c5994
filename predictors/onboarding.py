"""Onboarding from history: telemetry + failures files (+ an optional profile) to registered models.

``load_history`` reads and checks the files and settles one profile per appliance kind in them:

* a kind declared in code (``ingest.contract.PROFILES``) uses that profile;
* a kind named by the profile file uses the file (it may not redefine a kind declared in code);
* a kind onboarded before uses its registered profile, so the features stay those of its models;
* any other kind gets a profile inferred from the history (``profile_file.infer_profile``).

``onboard`` then trains through ``train_all`` -- the same point-in-time frames, models, hold-out
evaluation and registry as every other training -- with each device censored at its own last reading,
and registers the new profiles with the model versions in one transaction. Remaining-time intervals
are conformally calibrated on out-of-fold devices (as for every kind) unless the profile says
otherwise: a manufacturer's history is the first data these models see, and their intervals must
mean what they say.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ingest.contract import PROFILES, ApplianceProfile
from ingest.features import Reading
from predictors.dataset import DEFAULT_TTF_CAP_H
from predictors.errors import HistoryError
from predictors.history import History, read_failures, read_telemetry
from predictors.profile_file import OnboardingProfile, infer_profile, parse_profile_toml
from predictors.registry import ModelRegistry
from predictors.training import Fitted, TrainingReport, fit_all, register_fitted

__all__ = ["OnboardingPlan", "load_history", "onboard"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OnboardingPlan:
    """The profile settled for each kind in a history, and where it came from."""

    profiles: Mapping[str, OnboardingProfile]
    #: Kinds whose profile is new (not declared in code, not registered before): registered on success.
    new_kinds: frozenset[str]

    def source(self, kind: str) -> str:
        return self.profiles[kind].source


def load_history(telemetry: Path, failures: Path, *, profile_path: Path | None = None,
                 registered: Mapping[str, OnboardingProfile | ApplianceProfile] | None = None,
                 builtin: Mapping[str, ApplianceProfile] = PROFILES) -> tuple[History, OnboardingPlan]:
    """Read and check both files and settle every kind's profile; ``HistoryError`` on bad input."""
    given: OnboardingProfile | None = None
    if profile_path is not None:
        try:
            text = Path(profile_path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise HistoryError(str(profile_path), f"cannot read: {exc}") from None
        given = parse_profile_toml(text, file=str(profile_path))
        if given.profile.kind in builtin:
            raise HistoryError(str(profile_path), f"kind {given.profile.kind!r} is declared in code "
                                                  "(ingest/contract/profiles.py); name a new kind")
    known: dict[str, OnboardingProfile] = {
        k: p if isinstance(p, OnboardingProfile) else OnboardingProfile(profile=p, source="registered")
        for k, p in (registered or {}).items()}
    known.update({k: OnboardingProfile(profile=p, source="declared in code") for k, p in builtin.items()})
    if given is not None:
        known[given.profile.kind] = given
    readings, kinds, device_kinds = read_telemetry(
        telemetry, profiles={k: o.profile for k, o in known.items()})
    if given is not None and given.profile.kind not in kinds:
        raise HistoryError(str(profile_path), f"kind {given.profile.kind!r} has no rows in {telemetry} "
                                              f"(it has {', '.join(sorted(kinds))})")
    labels = read_failures(failures, device_kinds=device_kinds, telemetry_file=str(telemetry),
                           profiles={k: o.profile for k, o in known.items()})
    settled: dict[str, OnboardingProfile] = {}
    for kind in sorted(kinds):
        if kind in known:
            settled[kind] = known[kind]
            continue
        per_metric: dict[str, list[np.ndarray]] = defaultdict(list)
        gaps: list[np.ndarray] = []
        spans: list[float] = []
        modes = sorted({f.mode for f in labels if device_kinds[f.device_id] == kind})
        for dev in _by_device(r for r in readings if r.kind == kind):
            t = np.array([r.ts.timestamp() for r in dev])
            gaps.append(np.diff(t) / 3600.0)
            spans.append((t[-1] - t[0]) / 3600.0)
            for col in kinds[kind]:
                per_metric[col].append(np.array([r.metrics[col] for r in dev if col in r.metrics]))
        settled[kind] = infer_profile(kind, values={c: per_metric[c] for c in kinds[kind]},
                                      gaps_h=np.concatenate(gaps), spans_h=np.array(spans),
                                      modes=modes,
                                      source=str(telemetry))
    observed = {}
    for r in readings:  # readings are grouped by device in time order
        observed[r.device_id] = r.ts
    history = History(telemetry_file=str(telemetry), failures_file=str(failures),
                      readings=tuple(readings), failures=tuple(labels), kinds=kinds,
                      device_kinds=device_kinds, observed_until=observed)
    new = frozenset(k for k in settled if k not in builtin and k not in (registered or {}))
    if given is not None:
        new |= {given.profile.kind}
    return history, OnboardingPlan(profiles=settled, new_kinds=new)


def onboard(history: History, plan: OnboardingPlan, *, registry: ModelRegistry, now: datetime,
            random_state: int = 0, model_params: Mapping[str, Any] | None = None,
            progress: Callable[[str], None] | None = None) -> list[TrainingReport]:
    """Train every failure mode of every kind in the history and register models and new profiles.

    Kinds are trained one ``fit_all`` each (their remaining-time caps may differ) but registered
    in one transaction at the end: an error anywhere registers nothing.
    """
    fitted: list[Fitted] = []
    for kind, onb in plan.profiles.items():
        fitted += fit_all(
            [r for r in history.readings if r.kind == kind], history.failures,
            profiles={kind: onb.profile}, min_positives=onb.min_positives or 20,
            random_state=random_state, observed_until=history.observed_until,
            ttf_cap_h=onb.ttf_cap_h or DEFAULT_TTF_CAP_H,
            model_params={"conformal_intervals": onb.conformal_intervals is not False,
                          **dict(model_params or {})},
            progress=progress)
    if progress is not None:
        progress("registering")
    return register_fitted(fitted, registry=registry, now=now,
                           profiles=[plan.profiles[k] for k in sorted(plan.new_kinds)])


def _by_device(readings: Iterable[Reading]) -> list[list[Reading]]:
    groups: dict[str, list[Reading]] = defaultdict(list)
    for r in readings:
        groups[r.device_id].append(r)
    return list(groups.values())
