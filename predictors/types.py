"""What predictors hand to the rest of the system: calibrated probabilities and time estimates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["FeatureContribution", "Prediction"]


@dataclass(frozen=True, slots=True)
class FeatureContribution:
    """One feature behind a prediction: its value and how much it pushed the probability."""

    name: str
    value: float
    weight: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Prediction:
    """One device's outlook for one failure mode at ``ts`` (event time of the features scored).

    ``p_fail`` is the calibrated probability of failure within ``horizon_h`` hours; ``ttf_h`` the
    estimated remaining time to failure (median) with an interval ``[ttf_low_h, ttf_high_h]``
    (10th–90th percentile). ``ood`` flags a feature vector unlike anything the model was trained
    on; ``sensor_faults`` names metrics whose sensor looks stuck, spiking or drifting
    (``predictors.quality``). Never a decision: that is policy.
    """

    device_id: str
    kind: str
    mode: str
    ts: datetime
    p_fail: float
    horizon_h: float
    ttf_h: float
    ttf_low_h: float
    ttf_high_h: float
    model_version: str
    top_features: tuple[FeatureContribution, ...] = ()
    #: Readings behind the scored vector. With ``ts`` it versions the prediction: a late reading
    #: leaves ``ts`` (the newest reading) unchanged but adds a reading, so a rescore is newer.
    n_readings: int = 0
    ood: bool = False
    ood_detail: str = ""
    sensor_faults: tuple[str, ...] = ()
