"""Evaluation metrics of alerts against what really happened: pure functions, no I/O.

Definitions (also in docs/evaluation.md):

* An **alert** is a proactive action for (device, mode): a homeowner notification or a technician
  booking, at the time the case first called for it (opened, or a ticket case escalated to it).
* An alert is **true** when a failure of the same device and mode follows within ``match_window``
  (default 14 days); otherwise it is a **false alert** -- unless the history ends less than
  ``match_window`` after it: then its outcome is unknown and it is counted as *unresolved*, in
  neither precision nor false alerts (as a censored device is not healthy forever).
* A failure is **caught at lead L** when a true alert of its device and mode came at least ``L``
  hours before it and after the previous failure of that device and mode. ``recall_48h`` is the
  share of evaluated failures caught at 48 h; the **lead time** of a failure is its earliest true
  alert's lead. Failures in the first ``warmup`` of a device's history are not evaluated (nothing
  could have been seen), and are counted apart; an alert before one is still a true alert.
* An **escalation** is a case opened as a ticket for a person (bad data, out of distribution,
  lasting uncertainty); ``escalation_rate`` is escalations over all cases opened.
* ``false_alerts_per_1000_device_months``: false alerts per 1,000 device-months of history
  (device-month = 30.44 days between a device's first and last reading).
* ``brier``: mean squared error of ``p_fail`` against "a failure of that mode within the horizon",
  over every scored prediction whose outcome is known (predictions closer than the horizon to the
  end of a device's history without a failure are left out).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

__all__ = ["Alert", "Failure", "LEADS_H", "brier", "calibration_curve", "evaluate_alerts", "horizon_labels",
           "lead_curve"]

#: Lead-time thresholds of the precision/recall curve, in hours.
LEADS_H: tuple[float, ...] = tuple(float(h) for h in range(0, 169, 12))
_MONTH_H = 30.4375 * 24


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """A proactive action (``at``) or an escalation to a person for one device and mode."""

    device_id: str
    kind: str
    mode: str
    at: datetime
    escalation: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """A failure that really happened."""

    device_id: str
    kind: str
    mode: str
    at: datetime


def _match(alerts: Sequence[Alert], failures: Sequence[Failure], match_window: timedelta
           ) -> tuple[list[bool], dict[int, float]]:
    """Per proactive alert: true or not; per failure index: lead (h) of its earliest true alert."""
    fails: dict[tuple[str, str], list[tuple[datetime, int]]] = {}
    for i, f in enumerate(failures):
        fails.setdefault((f.device_id, f.mode), []).append((f.at, i))
    for v in fails.values():
        v.sort()
    true_flags: list[bool] = []
    lead: dict[int, float] = {}
    for a in alerts:
        nxt = next(((at, i) for at, i in fails.get((a.device_id, a.mode), ()) if at > a.at), None)
        ok = nxt is not None and nxt[0] - a.at <= match_window
        true_flags.append(ok)
        if ok and nxt is not None:
            h = (nxt[0] - a.at).total_seconds() / 3600.0
            lead[nxt[1]] = max(lead.get(nxt[1], 0.0), h)
    return true_flags, lead


def _known_and_evaluated(failures: Sequence[Failure], first_seen: Mapping[str, datetime], warmup: timedelta
                         ) -> tuple[list[Failure], list[bool]]:
    """Failures of devices in the history, and per failure whether recall counts it (after the warm-up).

    A failure in the warm-up still makes an alert before it true: it happened.
    """
    known = [f for f in failures if f.device_id in first_seen]
    return known, [f.at - first_seen[f.device_id] >= warmup for f in known]


def _resolved(alerts: Sequence[Alert], true_flags: Sequence[bool], last_seen: Mapping[str, datetime],
              match_window: timedelta) -> list[bool]:
    """An alert's outcome is known when it came true or the history runs ``match_window`` past it."""
    return [ok or last_seen.get(a.device_id, a.at) - a.at >= match_window
            for a, ok in zip(alerts, true_flags, strict=True)]


def evaluate_alerts(alerts: Sequence[Alert], failures: Sequence[Failure], *,
                    device_hours: float, cases: int, escalations: int,
                    first_seen: Mapping[str, datetime], last_seen: Mapping[str, datetime],
                    warmup: timedelta = timedelta(days=7),
                    match_window: timedelta = timedelta(days=14), lead_h: float = 48.0) -> dict[str, object]:
    """The headline figures for one slice (overall, a kind or a mode); see the module docstring.

    ``alerts`` are proactive alerts only; ``cases``/``escalations`` count every case and the ticket
    cases among them; ``device_hours`` is the slice's observed device time.
    """
    known, evaluated = _known_and_evaluated(failures, first_seen, warmup)
    true_flags, lead = _match(alerts, known, match_window)
    resolved = _resolved(alerts, true_flags, last_seen, match_window)
    leads = [h for i, h in lead.items() if evaluated[i]]
    n_true = sum(true_flags)
    false_alerts = sum(r and not t for r, t in zip(resolved, true_flags, strict=True))
    months = device_hours / _MONTH_H
    n_evaluated = sum(evaluated)
    return {
        "failures": n_evaluated,
        "failures_in_warmup": len(failures) - n_evaluated,
        "caught_48h": sum(1 for h in leads if h >= lead_h),
        "recall_48h": _ratio(sum(1 for h in leads if h >= lead_h), n_evaluated),
        "recall_any_lead": _ratio(len(leads), n_evaluated),
        "alerts": len(alerts),
        "true_alerts": n_true,
        "false_alerts": false_alerts,
        "alerts_unresolved": len(alerts) - sum(resolved),
        "precision": _ratio(n_true, n_true + false_alerts),
        "device_months": round(months, 1),
        "false_alerts_per_1000_device_months": round(1000 * false_alerts / months, 2) if months else None,
        "cases": cases,
        "escalations": escalations,
        "escalation_rate": _ratio(escalations, cases),
        "median_lead_time_h": round(statistics.median(leads), 1) if leads else None,
    }


def lead_curve(alerts: Sequence[Alert], failures: Sequence[Failure], *, first_seen: Mapping[str, datetime],
               last_seen: Mapping[str, datetime], warmup: timedelta = timedelta(days=7), match_window: timedelta = timedelta(days=14),
               leads_h: Iterable[float] = LEADS_H) -> list[dict[str, float | None]]:
    """Recall and precision as a function of the lead required: an alert less than ``L`` hours
    before its failure counts as too late (false at that ``L``), a failure without one as missed."""
    known, evaluated = _known_and_evaluated(failures, first_seen, warmup)
    fails: dict[tuple[str, str], list[datetime]] = {}
    for f in known:
        fails.setdefault((f.device_id, f.mode), []).append(f.at)
    true_flags, lead = _match(alerts, known, match_window)
    lead = {i: h for i, h in lead.items() if evaluated[i]}
    n_evaluated = sum(evaluated)
    alerts = [a for a, r in zip(alerts, _resolved(alerts, true_flags, last_seen, match_window), strict=True) if r]
    alert_leads = []
    for a in alerts:
        nxt = min((at for at in fails.get((a.device_id, a.mode), ()) if a.at < at <= a.at + match_window),
                  default=None)
        alert_leads.append((nxt - a.at).total_seconds() / 3600.0 if nxt is not None else None)
    out = []
    for L in leads_h:
        good = sum(1 for h in alert_leads if h is not None and h >= L)
        out.append({"lead_h": L, "recall": _ratio(sum(1 for h in lead.values() if h >= L), n_evaluated),
                    "precision": _ratio(good, len(alerts))})
    return out


def horizon_labels(keys: np.ndarray, devices: np.ndarray, ts_s: np.ndarray, *,
                   failures: Sequence[Failure], horizons_h: Mapping[str, float],
                   last_seen_s: Mapping[str, float]) -> np.ndarray:
    """Per scored prediction: 1 a failure of its mode within the horizon, 0 none, NaN unknown.

    ``keys`` are ``"kind.mode"``; ``ts_s`` epoch seconds; ``last_seen_s`` each device's last reading.
    """
    by: dict[tuple[str, str], np.ndarray] = {}
    tmp: dict[tuple[str, str], list[float]] = {}
    for f in failures:
        tmp.setdefault((f.device_id, f"{f.kind}.{f.mode}"), []).append(f.at.timestamp())
    for k, v in tmp.items():
        by[k] = np.sort(np.asarray(v))
    y = np.full(ts_s.shape[0], np.nan)
    for i in range(ts_s.shape[0]):
        h = horizons_h[keys[i]] * 3600.0
        times = by.get((devices[i], keys[i]))
        if times is not None:
            j = np.searchsorted(times, ts_s[i], side="left")
            if j < times.size and times[j] - ts_s[i] <= h:
                y[i] = 1.0
                continue
        if last_seen_s.get(devices[i], -np.inf) - ts_s[i] >= h:
            y[i] = 0.0
    return y


def calibration_curve(p: np.ndarray, y: np.ndarray, *, bins: int = 10) -> list[dict[str, float]]:
    """Mean predicted probability against the observed frequency, in equal-width bins of ``p``."""
    known = ~np.isnan(y)
    p, y = p[known], y[known]
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        sel = which == b
        if sel.any():
            out.append({"p_mean": float(p[sel].mean()), "observed": float(y[sel].mean()), "n": int(sel.sum())})
    return out


def brier(p: np.ndarray, y: np.ndarray) -> float | None:
    """Brier score over the predictions with a known outcome (None when there are none)."""
    known = ~np.isnan(y)
    return round(float(np.mean((p[known] - y[known]) ** 2)), 5) if known.any() else None


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None
