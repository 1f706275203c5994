"""Remaining-time interval coverage on a simulated fleet, plain vs conformal (not a test).

    .venv/bin/python benchmarks/intervals_fleet.py [--devices N] [--days D] [--seed S]

Simulates a fleet with ``devices_sim`` (every kind and failure mode, as ``foresight train`` does),
builds the point-in-time frames, holds out 20 % of the devices (``predictors.training
.holdout_devices``) and fits each mode's model twice on the others, side by side: plain quantile
boosting (``conformal_intervals=False``) and with the cross-conformal correction (the default).
Prints, per mode, how often the 10-90 % remaining-time interval holds the held-out truth -- on
every row whose capped time to failure is known and on the positive rows (failure within the
horizon) -- with the median width, and the median's MAE (the correction leaves the median alone).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from foresight.training import simulate_history  # noqa: E402
from predictors import FailureModeModel, build_frames  # noqa: E402
from predictors.training import exclude_sensor_faults, holdout_devices  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=150)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--seed", type=int, default=21)
    args = ap.parse_args()
    started = time.perf_counter()
    history = simulate_history(devices=args.devices, days=args.days, seed=args.seed)
    frames, _ = exclude_sensor_faults(build_frames(history.readings, history.failures,
                                                   observed_until=history.observed_until),
                                      history.sensor_faults)
    print(f"simulated {args.devices} devices x {args.days} days (seed {args.seed}): "
          f"{len(history.readings):,} readings, {len(history.failures)} failures "
          f"({time.perf_counter() - started:.0f} s)")
    print(f"{'mode':<36}{'held-out':>9}  {'covered, all known rows':>26}  {'covered, positive rows':>24}"
          f"  {'MAE h (pos.)':>13}")
    print(f"{'':<36}{'rows':>9}  {'plain':>9} {'conformal':>10} {'width':>5}  {'plain':>8} {'conformal':>10}"
          f"  {'plain / conf.':>13}")
    for (kind, mode), frame in sorted(frames.items()):
        if frame.n_positives < 20:
            continue
        test = np.isin(frame.device_ids, holdout_devices(frame, 0.2, 0))
        train, held = frame.take(~test), frame.take(test)
        known = np.isfinite(held.ttf_h)
        pos = known & (held.y == 1)
        if not pos.any() or len(np.unique(train.device_ids[train.y == 1])) < 3:
            continue
        row = []
        for conformal in (False, True):
            model = FailureModeModel(max_iter=50, importance_repeats=1, conformal_intervals=conformal,
                                     random_state=0).fit(train.X, train.y, train.ttf_h,
                                                         groups=train.device_ids)
            q = model.predict_ttf(held.X[known])
            t = held.ttf_h[known]
            inside = (q[:, 0] <= t) & (t <= q[:, 2])
            at_pos = pos[known]
            row.append((inside.mean(), np.median(q[:, 2] - q[:, 0]), inside[at_pos].mean(),
                        np.abs(q[at_pos, 1] - t[at_pos]).mean()))
        (c0, _, p0, m0), (c1, w1, p1, m1) = row
        print(f"{kind + '.' + mode:<36}{int(known.sum()):>9,}  {c0:>9.0%} {c1:>10.0%} {w1:>5.0f}  "
              f"{p0:>8.0%} {p1:>10.0%}  {m0:>6.1f} / {m1:.1f}", flush=True)
    print("nominal coverage 80 %; widths in hours (conformal)")


if __name__ == "__main__":
    main()
