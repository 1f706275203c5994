"""Is the sensor to blame? Data-quality checks on one feature vector, declared in the profiles.

A metric's sensor is suspect when, in the current window,

* it is **stuck**: the trailing run of identical values reaches ``MetricSpec.stuck_after``;
* it **spikes**: at least one isolated reading jumps away from both neighbours by more than
  ``MetricSpec.spike_jump`` (the ``spikes`` statistic);
* it **drifts**: its window mean has moved from the device's baseline by more than
  ``MetricSpec.drift_after`` (relative) and no partner in ``corroborated_by`` moved with it. Each
  failure mode moves several metrics together (scale lengthens the boil *and* raises the peak
  temperature; a clogging filter raises the pressure drop *and* the fan current), a drifting sensor
  moves one. When a partner is not reported (old firmware, a dropped reading) the check is skipped
  rather than guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ingest.contract import ApplianceProfile, MetricSpec, feature_name

__all__ = ["relative_change", "sensor_faults"]


def relative_change(values: Mapping[str, float], metric: str) -> float | None:
    """Window mean against the device's baseline, relative (None when unknown)."""
    mean, delta = values.get(feature_name(metric, "mean")), values.get(feature_name(metric, "delta"))
    if mean is None or delta is None:
        return None
    base = mean - delta
    if abs(base) < 1e-9:
        return None
    return delta / abs(base)


def _drifts(spec: MetricSpec, values: Mapping[str, float]) -> bool:
    if spec.drift_after is None:
        return False
    own = relative_change(values, spec.name)
    if own is None or abs(own) < spec.drift_after:
        return False
    partners = [(relative_change(values, p), ratio) for p, ratio in spec.corroborated_by]
    if any(change is None for change, _ in partners):
        return False  # a partner is not reported: cannot tell, so not a fault
    return not any(abs(change) >= ratio * abs(own) for change, ratio in partners if change is not None)


def sensor_faults(profile: ApplianceProfile, metrics: Iterable[str], values: Mapping[str, float]
                  ) -> tuple[str, ...]:
    """The metrics among ``metrics`` whose sensor looks stuck, spiking or drifting in ``values``."""
    out = []
    for name in metrics:
        spec = profile.metric(name)
        stuck = values.get(feature_name(name, "stuck"))
        spikes = values.get(feature_name(name, "spikes"))
        if ((stuck is not None and stuck >= spec.stuck_after) or (spikes is not None and spikes >= 1)
                or _drifts(spec, values)):
            out.append(name)
    return tuple(out)
