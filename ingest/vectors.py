"""How a feature vector is stored: JSON that names each metric and statistic once.

A vector holds, for each metric its window had, the ``STATS`` features. Spelled out as an object of
``metric__stat`` keys it is ~1.3 kB per row, seven times the reading it was computed from, and
the write path writes two such rows per reading (history and online). Stored compactly it is

    {"s": ["last", "mean", ...], "m": ["filter_dp_pa", ...], "v": [metric-major values]}

about a third of that, and cheaper to build (no dict per row: one ``orjson`` list per row). It
stays self-describing: the statistics and metrics it was computed with travel with it, so a
profile or ``STATS`` that changes later cannot misread an old row. ``expand`` turns either form
(rows written before this encoding are spelled out) into the ``{feature name: value}`` every
reader uses; ``ingest.db.FeatureValues`` does that for the ORM, so readers see no difference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import orjson

from ingest.contract import STATS, ApplianceProfile, feature_name

__all__ = ["encode_rows", "expand"]

_PREFIXES: dict[str, tuple[ApplianceProfile, str]] = {}


def encode_rows(profile: ApplianceProfile, matrix: np.ndarray, has: np.ndarray) -> list[str]:
    """The stored JSON of each row of ``matrix`` ``(R, m * len(STATS))`` (metric-major, ``STATS``
    within), keeping only the metrics ``has`` ``(R, m)`` marks present in that row's window."""
    prefix = _prefix(profile)
    complete = has.all(axis=1).tolist()
    rows = matrix.tolist()
    out = [prefix + orjson.dumps(row).decode() + "}" if full else ""
           for row, full in zip(rows, complete, strict=True)]
    names = [spec.name for spec in profile.metrics]
    width = len(STATS)
    for r in (r for r, full in enumerate(complete) if not full):
        present = has[r].tolist()
        out[r] = orjson.dumps({"s": STATS, "m": [n for n, p in zip(names, present, strict=True) if p],
                               "v": [v for j, p in enumerate(present) if p for v in rows[r][j * width:(j + 1) * width]]
                               }).decode()
    return out


def _prefix(profile: ApplianceProfile) -> str:
    """``{"s":[...],"m":[...],"v":`` of a profile's complete vectors (built once per profile)."""
    cached = _PREFIXES.get(profile.kind)
    if cached is None or cached[0] is not profile:
        head = orjson.dumps({"s": STATS, "m": [spec.name for spec in profile.metrics]}).decode()
        cached = _PREFIXES[profile.kind] = (profile, head[:-1] + ',"v":')
    return cached[1]


@lru_cache(maxsize=256)
def _feature_names(stats: tuple[str, ...], metrics: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(feature_name(m, s) for m in metrics for s in stats)


def expand(stored: Mapping[str, Any] | None) -> dict[str, float]:
    """``{feature name: value}`` of a stored vector, compact or spelled out; None gives ``{}``.

    A value stored as null (a non-finite number: JSON has none) is left out, as a missing feature.
    """
    if not stored:
        return {}
    if stored.keys() != {"s", "m", "v"}:
        return {k: v for k, v in stored.items() if v is not None}
    values: Sequence[float | None] = stored["v"]
    names = _feature_names(tuple(stored["s"]), tuple(stored["m"]))
    if len(names) != len(values):
        raise ValueError(f"stored vector has {len(values)} values for {len(names)} features")
    return {n: v for n, v in zip(names, values, strict=True) if v is not None}
