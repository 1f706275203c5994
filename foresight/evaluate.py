"""`foresight evaluate`: replay a held-out history through the live models and the policy, and report.

Reads ``telemetry.csv`` and ``failures.csv`` (and, when present, ``ground_truth.jsonl`` for sensor
faults) from a history folder, replays it with ``actions.replay`` and computes the figures of
``predictors.evaluation`` overall, per kind and per (kind, mode). Writes the JSON, two PNG plots
(precision/recall against the lead required, calibration curve) and an HTML report beside the JSON.
"""

from __future__ import annotations

import html
import json
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from actions.policy import DecisionAction, PolicyConfig
from actions.replay import ReplayResult, VectorScorer, replay
from devices_sim import GroundTruth, read_failures_csv, read_ground_truth_jsonl, read_telemetry_csv
from ingest.contract import PROFILES
from ingest.features import Reading
from predictors.evaluation import (
    Alert,
    Failure,
    brier,
    calibration_curve,
    evaluate_alerts,
    horizon_labels,
    lead_curve,
)

__all__ = ["EvaluationError", "History", "evaluate_history", "load_history", "write_report"]

HEADLINE = ("recall_48h", "precision", "false_alerts_per_1000_device_months", "escalation_rate",
            "median_lead_time_h", "brier")


class EvaluationError(ValueError):
    """The history folder cannot be evaluated (missing file, unknown device in failures, ...)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class History:
    """A recorded history: readings, failures and (from a simulator) sensor-fault ground truth."""

    readings: list[Reading]
    failures: list[Failure]
    sensor_faults: list[GroundTruth]


def load_history(folder: Path) -> History:
    """Read a history folder as written by ``foresight simulate``."""
    telemetry, failures_csv = folder / "telemetry.csv", folder / "failures.csv"
    for path in (telemetry, failures_csv):
        if not path.is_file():
            raise EvaluationError(f"{path}: no such file (a history folder holds telemetry.csv and failures.csv)")
    rows = read_telemetry_csv(telemetry)
    kinds: dict[str, str] = {}
    readings = []
    for i, r in enumerate(rows):
        if r.kind not in PROFILES:
            raise EvaluationError(f"{telemetry}: row {i + 2}, column kind: unknown kind {r.kind!r}")
        kinds.setdefault(r.device_id, r.kind)
        readings.append(Reading(device_id=r.device_id, kind=r.kind, seq=i, ts=r.ts, metrics=r.metrics))
    failures = []
    for i, (device_id, at, mode) in enumerate(read_failures_csv(failures_csv)):
        kind = kinds.get(device_id)
        if kind is None:
            raise EvaluationError(f"{failures_csv}: row {i + 2}, column device_id: {device_id!r} has no telemetry")
        if mode not in {m.name for m in PROFILES[kind].failure_modes}:
            raise EvaluationError(f"{failures_csv}: row {i + 2}, column mode: {kind} has no mode {mode!r}")
        failures.append(Failure(device_id=device_id, kind=kind, mode=mode, at=at))
    truth = folder / "ground_truth.jsonl"
    faults = [g for g in read_ground_truth_jsonl(truth) if g.what == "sensor_fault"] if truth.is_file() else []
    return History(readings=readings, failures=failures, sensor_faults=faults)


def evaluate_history(history: History, *, scorer: VectorScorer, config: PolicyConfig,
                     sweep: timedelta = timedelta(hours=1),
                     progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Replay and measure: the JSON report (``overall``, ``by_kind``, ``by_mode``, curves, faults)."""
    started = time.perf_counter()
    progress(f"replaying {len(history.readings):,} readings of "
             f"{len({r.device_id for r in history.readings}):,} devices")
    result = replay(history.readings, scorer=scorer, config=config, sweep=sweep)
    progress(f"scored {result.predictions:,} predictions, {len(result.cases):,} cases "
             f"in {time.perf_counter() - started:.0f} s")
    return _report(history, result)


def _alerts(result: ReplayResult) -> list[Alert]:
    return [Alert(device_id=c.device_id, kind=c.kind, mode=c.mode, at=c.proactive_at)
            for c in result.cases if c.proactive_at is not None]


def _report(history: History, result: ReplayResult) -> dict[str, Any]:
    alerts = _alerts(result)
    first_seen = {d: span[0] for d, span in result.spans.items()}
    last = {d: span[1] for d, span in result.spans.items()}
    hours = {d: (span[1] - span[0]).total_seconds() / 3600.0 for d, span in result.spans.items()}
    horizons = {f"{p.kind}.{m.name}": m.horizon_h for p in PROFILES.values() for m in p.failure_modes}
    last_seen = {d: span[1].timestamp() for d, span in result.spans.items()}
    y = horizon_labels(result.scored_key, result.scored_device, result.scored_ts, failures=history.failures,
                       horizons_h=horizons, last_seen_s=last_seen)

    def figures(kind: str | None, mode: str | None) -> dict[str, Any]:
        def keep(k: str, m: str) -> bool:
            return (kind is None or k == kind) and (mode is None or m == mode)

        devs = [d for d, k in result.kinds.items() if kind is None or k == kind]
        cases = [c for c in result.cases if keep(c.kind, c.mode)]
        out = evaluate_alerts([a for a in alerts if keep(a.kind, a.mode)],
                              [f for f in history.failures if keep(f.kind, f.mode)],
                              device_hours=sum(hours[d] for d in devs), cases=len(cases),
                              escalations=sum(c.escalated_to_human for c in cases), first_seen=first_seen,
                              last_seen=last)
        sel = np.fromiter((keep(*k.split(".", 1)) for k in result.scored_key), bool, result.scored_key.size)
        out["brier"] = brier(result.scored_p[sel], y[sel])
        out["scored_predictions"] = int(sel.sum())
        return out

    by_mode = {f"{p.kind}.{m.name}": figures(p.kind, m.name) for p in PROFILES.values() for m in p.failure_modes}
    return {
        "overall": figures(None, None),
        "by_kind": {p.kind: figures(p.kind, None) for p in PROFILES.values()},
        "by_mode": by_mode,
        "lead_curve": lead_curve(alerts, history.failures, first_seen=first_seen, last_seen=last),
        "calibration": calibration_curve(result.scored_p, y),
        "sensor_faults": _sensor_faults(history, result, alerts),
        "escalations_by_rule": _count(c.rule for c in result.cases if c.escalated_to_human),
        "decisions": result.decisions,
    }


def _sensor_faults(history: History, result: ReplayResult, alerts: Sequence[Alert]) -> dict[str, Any]:
    """Per fault kind: how many were escalated as data quality, and false alerts on faulty devices."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"faults": 0, "escalated": 0, "false_alerts": 0})
    fails = defaultdict(list)
    for f in history.failures:
        fails[(f.device_id, f.mode)].append(f.at)
    for g in history.sensor_faults:
        row = out[g.mode]
        row["faults"] += 1
        if any(c.device_id == g.device_id and c.escalated_to_human and c.rule in ("sensor_fault", "ood")
               and c.opened_at >= g.at for c in result.cases):
            row["escalated"] += 1
        row["false_alerts"] += sum(
            1 for a in alerts if a.device_id == g.device_id and a.at >= g.at
            and not any(a.at < t <= a.at + timedelta(days=14) for t in fails[(a.device_id, a.mode)]))
    return dict(out)


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for i in items:
        out[i] += 1
    return dict(out)


def write_report(report: Mapping[str, Any], json_path: Path, *, title: str = "Foresight evaluation") -> dict[str, Path]:
    """Write the JSON, ``<stem>-lead.png``, ``<stem>-calibration.png`` and ``<stem>.html`` beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    stem = json_path.with_suffix("")
    lead_png, cal_png, html_path = (Path(f"{stem}-lead.png"), Path(f"{stem}-calibration.png"),
                                    Path(f"{stem}.html"))

    fig, ax = plt.subplots(figsize=(6, 4))
    curve = report["lead_curve"]
    ax.plot([c["lead_h"] for c in curve], [c["recall"] for c in curve], marker="o", label="recall")
    ax.plot([c["lead_h"] for c in curve], [c["precision"] for c in curve], marker="s", label="precision")
    ax.axvline(48, color="grey", linestyle=":", label="48 h promise")
    ax.set(xlabel="lead time required (h)", ylabel="share", ylim=(0, 1.02),
           title="Precision and recall against the lead required")
    ax.legend()
    fig.tight_layout()
    fig.savefig(lead_png, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    cal = report["calibration"]
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    ax.plot([c["p_mean"] for c in cal], [c["observed"] for c in cal], marker="o", label="models")
    ax.set(xlabel="predicted P(failure within horizon)", ylabel="observed frequency",
           xlim=(0, 1), ylim=(0, 1), title="Calibration on the held-out history")
    ax.legend()
    fig.tight_layout()
    fig.savefig(cal_png, dpi=110)
    plt.close(fig)

    html_path.write_text(_html(report, title, lead_png.name, cal_png.name), encoding="utf-8")
    return {"json": json_path, "html": html_path, "lead_png": lead_png, "calibration_png": cal_png}


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return html.escape(str(v))


def _html(report: Mapping[str, Any], title: str, lead_png: str, cal_png: str) -> str:
    cols = ("failures", "caught_48h", *HEADLINE, "alerts", "false_alerts", "cases", "escalations")
    rows = [("overall", report["overall"]), *report["by_kind"].items(), *report["by_mode"].items()]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(f"<tr><th>{html.escape(name)}</th>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in cols)
                   + "</tr>" for name, r in rows)
    faults = "".join(f"<tr><th>{html.escape(k)}</th><td>{v['faults']}</td><td>{v['escalated']}</td>"
                     f"<td>{v['false_alerts']}</td></tr>" for k, v in report["sensor_faults"].items())
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:80em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.25em .5em;text-align:right}}tbody th{{text-align:left}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Definitions: docs/evaluation.md.</p>
<table><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>Sensor faults (not appliance failures)</h2>
<table><thead><tr><th>fault</th><th>faults</th><th>escalated as data quality</th><th>false alerts on the device</th></tr></thead>
<tbody>{faults}</tbody></table>
<h2>Plots</h2><p><img src="{html.escape(lead_png)}" alt="precision and recall against lead time">
<img src="{html.escape(cal_png)}" alt="calibration curve"></p>
</body></html>
"""
