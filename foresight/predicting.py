"""Wiring for `foresight predict`: score the latest state of every device in a telemetry file.

Batch scoring of a manufacturer's records with the live models: the file is read and checked like
onboarding telemetry (``predictors.history``), each device's latest feature vector is computed with
the live feature code (``ingest.features``: its last ``window`` readings and its baseline), scored
by ``predictors.Scorer`` and run through ``actions.policy.decide`` as if no case were open, with
``now`` = the time of the scored reading. The policy belongs to ``actions``, so this lives in the
composition root: predictors never import actions.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from actions.policy import CaseHistory, DecisionAction, PolicyConfig, decide
from ingest.contract import PROFILES, ApplianceProfile
from ingest.features import FeatureVector, Reading, compute_baseline, compute_features
from predictors import HistoryError, ModelRegistry, Prediction, Scorer
from predictors.dataset import min_readings
from predictors.history import read_telemetry

__all__ = ["latest_vectors", "predict_file", "write_json"]


def latest_vectors(readings: list[Reading], *,
                   profiles: Mapping[str, ApplianceProfile]) -> list[FeatureVector]:
    """Each device's feature vector as of its newest reading, as the live feature store has it."""
    by_device: dict[str, list[Reading]] = defaultdict(list)
    for r in readings:
        by_device[r.device_id].append(r)
    out = []
    for device_id in sorted(by_device):
        dev = sorted(by_device[device_id], key=lambda r: r.ts)
        profile = profiles[dev[0].kind]
        baseline = compute_baseline(profile, dev[: profile.baseline_readings])
        values = compute_features(profile, dev[-profile.window:], baseline)
        out.append(FeatureVector(device_id=device_id, kind=profile.kind, ts=dev[-1].ts,
                                 n_readings=len(dev), values=values))
    return out


def predict_file(registry: ModelRegistry, telemetry: Path, *,
                 policy: PolicyConfig | None = None) -> dict[str, Any]:
    """The JSON document ``foresight predict`` writes (see docs/onboarding.md)."""
    config = policy or PolicyConfig()
    readings, kinds, _ = read_telemetry(telemetry, profiles=PROFILES)
    unknown = sorted(k for k in kinds if k not in PROFILES)
    if unknown:
        raise HistoryError(str(telemetry), f"kind {unknown[0]!r} has no profile: onboard it first "
                                           "with foresight train --telemetry ... --failures ...",
                           column="kind")
    vectors = latest_vectors(readings, profiles=PROFILES)
    scorer = Scorer(registry, profiles=PROFILES)
    by_device: dict[str, list[Prediction]] = defaultdict(list)
    for p in scorer.score_many(vectors, now=max(v.ts for v in vectors)):
        by_device[p.device_id].append(p)
    devices = []
    for v in vectors:
        profile = PROFILES[v.kind]
        entry: dict[str, Any] = {"device_id": v.device_id, "kind": v.kind, "ts": v.ts.isoformat(),
                                 "n_readings": v.n_readings, "modes": []}
        need = min_readings(profile)
        if v.n_readings < need:
            entry["skipped"] = f"warming up: {v.n_readings} readings, scoring needs {need}"
        missing = [m.name for m in profile.failure_modes if registry.live(v.kind, m.name) is None]
        if missing:
            entry["no_live_model"] = missing
        for p in by_device.get(v.device_id, []):
            entry["modes"].append(_mode_entry(p, config))
        devices.append(entry)
    scored = [d for d in devices if d["modes"]]
    return {
        "telemetry": str(telemetry),
        "devices": devices,
        "summary": {
            "devices": len(devices), "scored": len(scored),
            "predictions": sum(len(d["modes"]) for d in devices),
            "would_act": sum(1 for d in devices for m in d["modes"] if m["decision"]["action"] != "none"),
            "escalated_to_human": sum(1 for d in devices for m in d["modes"] if m["escalate_to_human"]),
        },
    }


#: Rules that hand a prediction to a person instead of acting on it (a mode whose own action is a
#: ticket is not an escalation).
_ESCALATING = frozenset({"sensor_fault", "ood", "uncertain"})


def _mode_entry(p: Prediction, config: PolicyConfig) -> dict[str, Any]:
    d = decide(p, CaseHistory(), config, now=p.ts)
    return {
        "mode": p.mode, "model_version": p.model_version,
        "p_fail": round(p.p_fail, 4), "horizon_h": p.horizon_h,
        "remaining_h": {"median": _r(p.ttf_h), "low": _r(p.ttf_low_h), "high": _r(p.ttf_high_h),
                        "interval": "10th-90th percentile"},
        "reasons": [{"feature": f.name, "value": _r(f.value), "weight": round(f.weight, 4)}
                    for f in p.top_features],
        "ood": p.ood, "ood_detail": p.ood_detail, "sensor_faults": list(p.sensor_faults),
        "decision": {"action": str(d.action), "rule": d.rule, "priority": d.priority,
                     "reason": d.reason, "due_by": d.due_by.isoformat() if d.due_by else None},
        "escalate_to_human": d.action is DecisionAction.OPEN_TICKET and d.rule in _ESCALATING,
    }


def _r(x: float) -> float | None:
    return round(x, 2) if math.isfinite(x) else None


def write_json(doc: dict[str, Any], path: Path) -> None:
    """Write ``doc`` as indented JSON, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

