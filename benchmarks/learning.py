"""Learning from outcomes, measured (not a test): drift statistic and challenger against champion.

    .venv/bin/python benchmarks/learning.py [--devices N] [--days D]

1. Trains an air-conditioner model on a synthetic fleet (``tests/predictors/synth``), then computes
   the feature drift (PSI per feature, ``predictors.drift``) of one feature vector per device (at a random
   time) of a *different* fleet (another seed) as it is, and with its filter pressure sensors
   reading 20 % high (a miscalibrated batch). Prints the largest PSI, the chance level and the
   features that would be named in an operator ticket.
2. Runs ``predictors.retrain.retrain`` twice on the same data: a challenger with two boosting
   rounds against the 30-round champion (should be refused), then the 30-round challenger against
   that weak model made live (should be promoted). Prints both sets of held-out metrics and the
   recorded reasons.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1]))

from ingest.contract import PROFILES  # noqa: E402
from ingest.db import create_schema, make_engine  # noqa: E402
from predictors import ModelRegistry, build_frames, train_all  # noqa: E402
from predictors.drift import feature_drift  # noqa: E402
from predictors.retrain import retrain  # noqa: E402
from tests.predictors.synth import make_fleet  # noqa: E402

AC = {"air_conditioner": PROFILES["air_conditioner"]}
KEY = ("air_conditioner", "filter_clogging")


def _live_vectors(fleet, features) -> list[dict[str, float]]:  # type: ignore[no-untyped-def]
    """One feature vector per device at a random time: a fleet whose devices were installed at
    different times, as the online store sees it (the simulated fleets all start on one day, so
    their latest vectors would all be equally old -- and ``run_hours`` would drift by construction)."""
    frame = build_frames(fleet.readings, [], profiles=AC,
                         observed_until=fleet.end + timedelta(days=30))[KEY]
    rng = np.random.default_rng(0)
    rows = [int(rng.choice(np.flatnonzero(frame.device_ids == d))) for d in np.unique(frame.device_ids)]
    return [dict(zip(features, frame.X[i], strict=True)) for i in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=40)
    ap.add_argument("--days", type=float, default=45)
    args = ap.parse_args()
    train = make_fleet(n_ac=args.devices, n_rc=0, days=args.days, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/f.db")
        create_schema(engine)
        registry = ModelRegistry(engine, Path(tmp) / "models")
        [champ] = train_all(train.readings, train.failures, registry=registry, now=train.end,
                            profiles=AC, model_params={"max_iter": 30})
        live = registry.require_live(*KEY)
        reference = live.summary["reference"]

        print("1. feature drift (PSI) of another fleet's feature vectors against the training reference")
        other = make_fleet(n_ac=300, n_rc=0, days=args.days, seed=7)
        shifted = replace(other, readings=[
            replace(r, metrics={**r.metrics, "filter_dp_pa": r.metrics["filter_dp_pa"] * 1.2})
            if "filter_dp_pa" in r.metrics else r for r in other.readings])
        print(f"   {'fleet':<22}{'devices':>8}{'max PSI':>9}{'chance':>8}  drifting features")
        for name, fleet in (("as it is", other), ("dp sensors +20 %", shifted)):
            report = feature_drift(version=live.version, kind=KEY[0], mode=KEY[1], reference=reference,
                                   live_vectors=_live_vectors(fleet, live.features))
            chance = max(f.chance_psi for f in report.features)
            names = ", ".join(f"{f.feature} {f.psi:.2f}" for f in report.drifting) or "-"
            print(f"   {name:<22}{report.live_devices:>8}{report.max_psi:>9.3f}{chance:>8.3f}  {names}")

        print("\n2. challenger against champion (same held-out devices)")
        later = train.end + timedelta(days=1)
        for label, params in (("2-round challenger vs 30-round champion", {"max_iter": 2}),
                              ("30-round challenger vs 2-round champion", {"max_iter": 30})):
            [r] = retrain(train.readings, train.failures, [], registry=registry, now=later,
                          profiles=AC, model_params=params)
            ch, cp = r.evaluation["challenger_metrics"], r.evaluation["champion_metrics"]
            print(f"   {label}")
            print(f"     champion   brier {cp.get('brier')}  auc {cp.get('auc')}  ttf MAE h {cp.get('ttf_mae_h')}")
            print(f"     challenger brier {ch.get('brier')}  auc {ch.get('auc')}  ttf MAE h {ch.get('ttf_mae_h')}")
            print(f"     -> {r.reason}")
            if not r.promoted and r.challenger:
                registry.promote(r.challenger)  # make the weak one live for the second round
            later += timedelta(days=1)
        print(f"\n   versions: {[(v.version, v.is_live) for v in registry.versions()]}  (first: {champ.version})")
        engine.dispose()


if __name__ == "__main__":
    main()
