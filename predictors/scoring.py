"""Score feature vectors with the live models: one ``Prediction`` per (device, failure mode).

``score_many`` is the scale path: vectors are grouped by kind and every live model is called once per
batch (probability, time quantiles, reasons and range check are all vectorised). ``score`` is
``score_many`` of one vector, so the two cannot drift apart.

Which version is live is looked up in the registry at most once per ``live_cache_s`` seconds per
(kind, mode) (monotonic process time, not event time: it only bounds how stale the cache is, like
Feast's registry ``cache_ttl_seconds``). A database round trip per mode was most of the time of
scoring one device after its reading; a promotion now takes effect within ``live_cache_s``. A
missing live model is never cached, so the first model registered is used at once.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np

from ingest.contract import PROFILES, ApplianceProfile
from ingest.features import FeatureVector
from predictors.dataset import input_matrix, min_readings
from predictors.quality import sensor_faults
from predictors.registry import LoadedModel, ModelRegistry
from predictors.types import FeatureContribution, Prediction

__all__ = ["Scorer"]

TOP_FEATURES = 3
#: Statistics the out-of-distribution flag looks at (see ``_predict``).
OOD_STATS = frozenset({"last", "mean", "delta"})


class Scorer:
    """Turns feature vectors into predictions with whatever model is live for each failure mode."""

    def __init__(self, registry: ModelRegistry, *,
                 profiles: Mapping[str, ApplianceProfile] = PROFILES,
                 live_cache_s: float = 1.0) -> None:
        self._registry = registry
        self._profiles = profiles
        self._live_cache_s = live_cache_s
        self._live: dict[tuple[str, str], tuple[float, LoadedModel]] = {}

    def _live_model(self, kind: str, mode: str) -> LoadedModel | None:
        now = time.monotonic()
        hit = self._live.get((kind, mode))
        if hit is not None and now - hit[0] < self._live_cache_s:
            return hit[1]
        loaded = self._registry.live(kind, mode)
        if loaded is None:
            self._live.pop((kind, mode), None)
        else:
            self._live[(kind, mode)] = (now, loaded)
        return loaded

    def score(self, vector: FeatureVector, *, now: datetime) -> list[Prediction]:
        """Predictions for every failure mode of the vector's kind that has a live model."""
        return self.score_many([vector], now=now)

    def score_many(self, vectors: Sequence[FeatureVector], *, now: datetime) -> list[Prediction]:
        """Predictions for many vectors: in input order, each vector's modes in profile order.

        Predictions are as of each vector's ``ts`` (``ttf_h`` counts from there); ``now`` is the
        caller's clock, accepted for symmetry with the policy and not used in the arithmetic.
        Vectors of kinds without a profile or without any live model yield nothing, and so do
        vectors of devices still warming up (fewer readings than training rows needed: the
        model has never seen such a window and would only guess).
        """
        del now  # predictions are event-time: nothing here depends on the wall clock
        by_kind: dict[str, list[int]] = defaultdict(list)
        for i, v in enumerate(vectors):
            profile = self._profiles.get(v.kind)
            if profile is not None and v.n_readings >= min_readings(profile):
                by_kind[v.kind].append(i)
        slots: list[list[Prediction]] = [[] for _ in vectors]
        for kind, idx in by_kind.items():
            profile = self._profiles[kind]
            batch = [vectors[i] for i in idx]
            for mode in profile.failure_modes:
                loaded = self._live_model(kind, mode.name)
                if loaded is None:
                    continue
                for i, pred in zip(idx, _predict(loaded, batch, profile, mode.metrics), strict=True):
                    slots[i].append(pred)
        return [p for slot in slots for p in slot]


def _predict(loaded: LoadedModel, batch: Sequence[FeatureVector], profile: ApplianceProfile,
             metrics: Sequence[str]) -> list[Prediction]:
    model, names = loaded.model, loaded.features
    o = model.outlook(input_matrix([v.values for v in batch], names), top=TOP_FEATURES)
    X, p, ttf, top_idx, top_w, oor = o.X, o.p_fail, o.ttf_h, o.top_index, o.top_weight, o.out_of_range
    # Novelty is judged on levels. Slopes and spreads are heavy-tailed: a repair or a filter change
    # inside the window sends them past the training percentiles for a day, on a familiar device.
    level = [name.rpartition("__")[2] in OOD_STATS for name in names]
    out = []
    for r, v in enumerate(batch):
        reasons = tuple(FeatureContribution(names[j], float(X[r, j]), float(w))
                        for j, w in zip(top_idx[r], top_w[r], strict=True) if j >= 0)
        bad = [j for j in np.flatnonzero(oor[r]) if level[j]]
        detail = "; ".join(
            f"{names[j]}={X[r, j]:.6g} {'above' if oor[r, j] > 0 else 'below'} training range "
            f"[{model.range_low_[j]:.6g}, {model.range_high_[j]:.6g}]" for j in bad)
        faults = sensor_faults(profile, metrics, v.values)
        out.append(Prediction(
            device_id=v.device_id, kind=v.kind, mode=loaded.mode, ts=v.ts, p_fail=float(p[r]),
            horizon_h=loaded.horizon_h, ttf_h=float(ttf[r, 1]), ttf_low_h=float(ttf[r, 0]),
            ttf_high_h=float(ttf[r, 2]), model_version=loaded.version, top_features=reasons,
            n_readings=v.n_readings,
            ood=bool(bad), ood_detail=detail, sensor_faults=faults))
    return out
