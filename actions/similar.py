"""Nearest resolved cases over feature vectors (pure numpy; no I/O).

Vectors are dicts of feature name → value. The distance is Euclidean over the features the query
and the candidates share, each standardised by its spread among the candidates (so a feature in
pascals does not drown one in amps); a candidate missing a shared feature takes the candidates'
mean there (it neither helps nor hurts).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["nearest"]


def nearest(query: Mapping[str, float], candidates: Sequence[tuple[int, Mapping[str, float]]], *,
            k: int) -> list[tuple[int, float]]:
    """The ``k`` candidates closest to ``query`` as ``(id, distance)``, closest first (ties: lower id)."""
    if k < 1 or not candidates:
        return []
    names = sorted(n for n, v in query.items() if _finite(v)
                   and any(_finite(c.get(n)) for _, c in candidates))
    if not names:
        return []
    matrix = np.array([[float(c[n]) if _finite(c.get(n)) else np.nan for n in names]
                       for _, c in candidates])
    mean = np.nanmean(matrix, axis=0)
    matrix = np.where(np.isnan(matrix), mean, matrix)
    scale = matrix.std(axis=0)
    scale[scale == 0] = 1.0
    q = np.array([float(query[n]) for n in names])
    distances = np.sqrt((((matrix - q) / scale) ** 2).sum(axis=1))
    order = sorted(range(len(candidates)), key=lambda i: (distances[i], candidates[i][0]))
    return [(candidates[i][0], float(distances[i])) for i in order[:k]]


def _finite(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
