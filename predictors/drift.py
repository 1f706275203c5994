"""Feature drift: the live feature distribution against the one a model was trained on.

At training time ``feature_reference`` stores, per feature, the decile edges of the training rows and
the share of rows in each bin (plus the share missing); it travels in the model version's summary
(``summary["reference"]``). ``feature_drift`` bins the live values (the online feature vectors of
the model's kind) on the same edges and computes the population stability index

    PSI = sum over bins of (live share - reference share) * ln(live share / reference share)

with the missing-value share as one more bin and shares floored at ``1e-4`` (an empty bin would
make the logarithm infinite). The usual reading: below 0.1 stable, 0.1-0.25 a moderate shift,
above 0.25 a shift worth a person's look -- the default ``threshold``.

A small fleet has a large PSI by chance alone: with ``n`` live and ``N`` training values, ``PSI *
nN/(n+N)`` is close to a chi-square with (bins - 1) degrees of freedom when nothing changed (PSI is,
to second order, the chi-square divergence). A feature drifts only when its PSI is above both the
threshold and that chance level at ``confidence`` (99.9 %): 60 devices alone reach about 0.17 on
average and 0.49 at 99.9 %, so they need a real shift. Features with too few live values
(``min_live``) are not judged. Pure functions: no database, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import chi2

from predictors.dataset import feature_value

__all__ = ["DEFAULT_PSI_THRESHOLD", "DriftReport", "FeatureDrift", "chance_psi", "feature_drift",
           "feature_reference", "psi"]

DEFAULT_PSI_THRESHOLD = 0.25
_BINS = 10
_FLOOR = 1e-4


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureDrift:
    """One feature's population stability index, live against the training reference."""

    feature: str
    psi: float
    #: Live vectors judged, those missing the feature included (they fill the missing bin).
    live_n: int
    #: The PSI that chance alone stays below at the report's confidence, for this many values.
    chance_psi: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftReport:
    """Drift of one model version: every judged feature and those above the threshold."""

    version: str
    kind: str
    mode: str
    threshold: float
    live_devices: int
    features: tuple[FeatureDrift, ...]

    @property
    def drifting(self) -> tuple[FeatureDrift, ...]:
        """Features whose PSI is above the threshold, worst first."""
        return tuple(sorted((f for f in self.features if f.psi > max(self.threshold, f.chance_psi)),
                            key=lambda f: -f.psi))

    @property
    def max_psi(self) -> float:
        return max((f.psi for f in self.features), default=0.0)


def feature_reference(X: np.ndarray, features: Sequence[str]) -> dict[str, Any]:
    """Per feature of training matrix ``X``: decile edges, bin shares and missing share (JSON-ready)."""
    out: dict[str, Any] = {}
    for j, name in enumerate(features):
        col = np.asarray(X[:, j], float)
        finite = col[np.isfinite(col)]
        missing = 1.0 - finite.size / max(col.size, 1)
        if finite.size == 0:
            out[name] = {"edges": [], "shares": [], "missing": 1.0, "n": int(col.size)}
            continue
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, _BINS + 1)[1:-1]))
        shares = _shares(finite, edges) * (1.0 - missing)
        out[name] = {"edges": [float(e) for e in edges], "shares": [float(s) for s in shares],
                     "missing": float(missing), "n": int(col.size)}
    return out


def psi(reference: Mapping[str, Any], live: np.ndarray) -> float:
    """Population stability index of ``live`` values (NaN = missing) against one feature's reference."""
    live = np.asarray(live, float)
    finite = live[np.isfinite(live)]
    missing = 1.0 - finite.size / max(live.size, 1)
    edges = np.asarray(reference["edges"], float)
    ref = np.append(np.asarray(reference["shares"], float), float(reference["missing"]))
    cur = np.append(_shares(finite, edges) * (1.0 - missing) if finite.size else
                    np.zeros(edges.size + 1), missing)
    ref, cur = np.maximum(ref, _FLOOR), np.maximum(cur, _FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def feature_drift(*, version: str, kind: str, mode: str, reference: Mapping[str, Any],
                  live_vectors: Iterable[Mapping[str, float]],
                  threshold: float = DEFAULT_PSI_THRESHOLD, min_live: int = 20,
                  confidence: float = 0.999) -> DriftReport:
    """PSI per referenced feature over the live vectors (``{feature: value}`` mappings)."""
    vectors = list(live_vectors)
    judged: list[FeatureDrift] = []
    for name, ref in reference.items():
        values = np.array([_number(feature_value(v, name)) for v in vectors], float)
        if np.isfinite(values).sum() < min_live:
            continue
        judged.append(FeatureDrift(feature=name, psi=round(psi(ref, values), 4), live_n=values.size,
                                   chance_psi=round(chance_psi(ref, values.size, confidence), 4)))
    return DriftReport(version=version, kind=kind, mode=mode, threshold=threshold,
                       live_devices=len(vectors), features=tuple(judged))


def chance_psi(reference: Mapping[str, Any], live_n: int, confidence: float = 0.999) -> float:
    """The PSI that ``live_n`` values of an unchanged distribution stay below with ``confidence``."""
    bins = len(reference["edges"]) + 2  # the value bins and the missing bin
    train_n = reference.get("n")
    n_eff = live_n if not train_n else live_n * train_n / (live_n + train_n)
    return float(chi2.ppf(confidence, bins - 1) / max(n_eff, 1))


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of ``values`` in each of the ``len(edges) + 1`` bins (right-closed, like quantiles)."""
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size + 1)
    return counts / max(values.size, 1)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and value is not None else np.nan
