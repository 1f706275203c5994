"""Appliance kinds declared as data: metrics, valid ranges, failure modes and the action each calls for.

Adding an appliance kind means adding one ``ApplianceProfile`` to ``PROFILES`` below; the validator,
feature store, trainer, policy and simulator all read from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "DATA_QUALITY_STATS",
    "RATIO_STATS",
    "STATS",
    "ActionKind",
    "ApplianceProfile",
    "FailureMode",
    "MetricSpec",
    "PROFILES",
    "Threshold",
    "feature_name",
    "ratio_metric",
    "get_profile",
]

#: Rolling statistics the feature store computes for every metric over the profile's window.
#: ``stuck`` and ``spikes`` are data-quality features: the length of the trailing run of identical
#: values, and the number of isolated spikes (a reading that jumps away from both neighbours by more
#: than the metric's ``spike_jump``, in the same direction).
STATS: tuple[str, ...] = ("last", "mean", "std", "slope_per_day", "delta", "stuck", "spikes")
#: Statistics that judge the sensor, not the appliance: read by the policy, never fed to a model.
DATA_QUALITY_STATS: frozenset[str] = frozenset({"stuck", "spikes"})


#: Statistics of a ratio feature (``FailureMode.ratios``), derived from its two metrics' statistics.
RATIO_STATS: tuple[str, ...] = ("last", "mean", "std", "slope_per_day", "delta")


def ratio_metric(numerator: str, denominator: str) -> str:
    """The name of a ratio of two metrics in feature names, e.g. ``tds_out_ppm/tds_in_ppm``."""
    return f"{numerator}/{denominator}"


def feature_name(metric: str, stat: str) -> str:
    """The feature-store name of one rolling statistic of one metric, e.g. ``filter_dp_pa__slope_per_day``."""
    return f"{metric}__{stat}"


class ActionKind(StrEnum):
    """What a failure mode calls for when it is predicted."""

    NOTIFY_HOMEOWNER = "notify_homeowner"
    BOOK_TECHNICIAN = "book_technician"
    OPEN_TICKET = "open_ticket"


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricSpec:
    """One telemetry metric: its unit and the physically valid range (outside it is rejected)."""

    name: str
    unit: str
    low: float
    high: float
    description: str = ""
    #: A sensor that repeats the same value this many readings in a row is considered stuck.
    stuck_after: int = 6
    #: Relative jump from both neighbours that makes a reading a spike (0.5: 50 %).
    spike_jump: float = 0.5
    #: Drift check: a window mean this far from the device's baseline (relative) must be
    #: corroborated by a partner metric, since every failure mode moves several metrics together.
    drift_after: float | None = None
    #: ``(partner, ratio)``: the change is corroborated when the partner's relative change from its
    #: baseline is at least ``ratio`` times this metric's. No partners with ``drift_after``: no
    #: failure mode moves the metric at all, so any such move is the sensor.
    corroborated_by: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Threshold:
    """A replacement threshold on a metric: the mode 'fails' when the metric crosses it."""

    metric: str
    value: float
    above: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureMode:
    """A way an appliance kind fails, the features that predict it and the action it calls for."""

    name: str
    description: str
    action: ActionKind
    #: Metrics whose rolling statistics feed this mode's model.
    metrics: tuple[str, ...]
    #: Probability horizon: the model predicts P(failure within horizon_h hours).
    horizon_h: float = 48.0
    #: Act when the predicted remaining time (lower bound) falls below this many hours. It is larger
    #: than the 48 h promise so that a notification or a booking lands in time.
    act_before_h: float = 96.0
    threshold: Threshold | None = None
    #: Shown to the homeowner for NOTIFY_HOMEOWNER modes.
    homeowner_tip: str = ""
    #: Technician skill required for BOOK_TECHNICIAN modes.
    skill: str = ""
    #: ``(numerator, denominator)`` metric pairs whose ratio the model also sees (``RATIO_STATS``,
    #: derived from the two metrics' rolling statistics by ``predictors.dataset``; the feature
    #: store is unchanged). E.g. purified over feed TDS: the share of solids the cartridge lets
    #: through, which the household's water hardness no longer hides.
    ratios: tuple[tuple[str, str], ...] = ()

    @property
    def features(self) -> tuple[str, ...]:
        """Model input features (data-quality statistics excluded; the policy reads those)."""
        return (tuple(feature_name(m, s) for m in self.metrics for s in STATS if s not in DATA_QUALITY_STATS)
                + tuple(feature_name(ratio_metric(a, b), s) for a, b in self.ratios for s in RATIO_STATS))


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplianceProfile:
    """Everything the backend knows about one appliance kind."""

    kind: str
    description: str
    metrics: tuple[MetricSpec, ...]
    failure_modes: tuple[FailureMode, ...]
    #: How often a healthy device reports, in hours; a longer silence marks it stale.
    reading_interval_h: float
    #: A device silent for longer than ``reading_interval_h * silence_grace`` is *stale* (see
    #: ``ingest.presence``). Large where silence is normal use, e.g. an air conditioner that is off.
    silence_grace: float = 3.0
    #: Number of most recent readings the rolling features are computed over.
    window: int = 24
    #: Number of first readings that make a device's baseline for the ``delta`` statistic.
    baseline_readings: int = 6
    models: tuple[str, ...] = ()

    def metric(self, name: str) -> MetricSpec:
        """The spec of one metric by name (KeyError when unknown)."""
        for spec in self.metrics:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def mode(self, name: str) -> FailureMode:
        """One failure mode by name (KeyError when unknown)."""
        for mode in self.failure_modes:
            if mode.name == name:
                return mode
        raise KeyError(name)

    @property
    def metric_names(self) -> frozenset[str]:
        return frozenset(spec.name for spec in self.metrics)


RICE_COOKER = ApplianceProfile(
    kind="rice_cooker",
    description="Countertop induction/plate rice cooker; one reading per cooking cycle.",
    reading_interval_h=8.0,
    window=12,
    baseline_readings=4,
    models=("RC-100", "RC-200"),
    metrics=(
        MetricSpec(name="time_to_boil_s", unit="s", low=60, high=7200,
                   description="Seconds from start until the pot reaches boiling",
                   drift_after=0.15, corroborated_by=(("peak_temp_c", 0.1), ("heater_power_w", 0.2))),
        MetricSpec(name="heater_power_w", unit="W", low=0, high=3000,
                   description="Mean electrical power drawn by the heating element while heating",
                   drift_after=0.1, corroborated_by=(("time_to_boil_s", 0.15), ("peak_temp_c", 0.15))),
        MetricSpec(name="peak_temp_c", unit="°C", low=0, high=300,
                   description="Highest pot-bottom temperature during the cycle",
                   drift_after=0.08, corroborated_by=(("time_to_boil_s", 0.3), ("heater_power_w", 0.3))),
        MetricSpec(name="cycle_energy_wh", unit="Wh", low=0, high=3000,
                   description="Energy used by the whole cycle"),
        MetricSpec(name="ambient_temp_c", unit="°C", low=-30, high=60, spike_jump=1.5,
                   description="Kitchen temperature at cycle start"),
    ),
    failure_modes=(
        FailureMode(
            name="scale_buildup",
            description="Mineral scale on the heating plate insulates the pot: time-to-boil and "
                        "peak temperature rise at unchanged power until the thermal cut-off trips.",
            action=ActionKind.NOTIFY_HOMEOWNER,
            metrics=("time_to_boil_s", "heater_power_w", "peak_temp_c"),
            act_before_h=120.0,
            homeowner_tip="Descale your rice cooker: fill the pot with water and a tablespoon of "
                          "citric acid, run a plain cook cycle, then wipe the heating plate.",
        ),
        FailureMode(
            name="heating_element_wear",
            description="The heating element degrades: heater power falls and time-to-boil "
                        "lengthens until the element burns out.",
            action=ActionKind.BOOK_TECHNICIAN,
            metrics=("time_to_boil_s", "heater_power_w", "peak_temp_c"),
            # 168 h alerted up to three weeks early; 112 h keeps a median lead of ~6 days with far
            # fewer false alerts (validation fleet, docs/evaluation.md).
            act_before_h=112.0,
            skill="rice_cooker",
        ),
    ),
)

AIR_CONDITIONER = ApplianceProfile(
    kind="air_conditioner",
    description="Split-system air conditioner; one reading per running hour.",
    reading_interval_h=1.0,
    # Reports only while running: nights and a long weekend switched off are normal, so 72 h.
    silence_grace=72.0,
    window=24,
    baseline_readings=12,
    models=("AC-2500", "AC-3500"),
    metrics=(
        MetricSpec(name="filter_dp_pa", unit="Pa", low=0, high=1000,
                   description="Pressure drop across the return-air filter",
                   drift_after=0.3, corroborated_by=(("fan_current_a", 0.02),)),
        MetricSpec(name="fan_current_a", unit="A", low=0, high=20,
                   description="Indoor fan motor current",
                   drift_after=0.1, corroborated_by=(("filter_dp_pa", 3.0),)),
        MetricSpec(name="supply_air_temp_c", unit="°C", low=-20, high=70,
                   description="Air temperature leaving the indoor unit",
                   drift_after=0.25, corroborated_by=(("power_w", 0.2), ("filter_dp_pa", 1.0))),
        MetricSpec(name="return_air_temp_c", unit="°C", low=-20, high=70,
                   description="Room air temperature entering the indoor unit", drift_after=0.15),
        MetricSpec(name="power_w", unit="W", low=0, high=8000,
                   description="Total electrical power of the unit",
                   drift_after=0.15, corroborated_by=(("supply_air_temp_c", 0.5), ("filter_dp_pa", 1.0))),
        MetricSpec(name="run_hours", unit="h", low=0, high=200_000, stuck_after=10**9,
                   description="Compressor run hours since the filter was last replaced"),
    ),
    failure_modes=(
        FailureMode(
            name="filter_clogging",
            description="Dust loads the filter: pressure drop and fan current rise with run hours "
                        "until the pressure drop crosses the replacement threshold.",
            action=ActionKind.BOOK_TECHNICIAN,
            metrics=("filter_dp_pa", "fan_current_a", "run_hours"),
            act_before_h=120.0,
            threshold=Threshold(metric="filter_dp_pa", value=250.0),
            skill="hvac",
        ),
        FailureMode(
            name="refrigerant_leak",
            description="A slow leak loses refrigerant charge: the supply air gets warmer (less "
                        "cooling) and the compressor draws less power until the low-pressure "
                        "switch stops the unit.",
            action=ActionKind.BOOK_TECHNICIAN,
            metrics=("supply_air_temp_c", "return_air_temp_c", "power_w"),
            act_before_h=80.0,
            skill="hvac",
        ),
    ),
)

WATER_PURIFIER = ApplianceProfile(
    kind="water_purifier",
    description="Under-sink reverse-osmosis purifier with a booster pump; one reading per dispense.",
    reading_interval_h=3.0,
    # Nobody draws water at night or while the household is away for a day.
    silence_grace=16.0,
    window=16,
    baseline_readings=6,
    models=("WP-50", "WP-75"),
    metrics=(
        MetricSpec(name="flow_lpm", unit="L/min", low=0, high=20,
                   description="Mean product-water flow during the dispense",
                   drift_after=0.25, corroborated_by=(("pump_current_a", 0.3), ("tds_out_ppm", 0.5))),
        MetricSpec(name="tds_in_ppm", unit="ppm", low=0, high=2000,
                   description="Total dissolved solids of the feed water"),
        MetricSpec(name="tds_out_ppm", unit="ppm", low=0, high=2000,
                   # No drift check: a spent cartridge raises TDS while flow falls by a few per
                   # cent, which the season's water temperature can hide; a drifting TDS sensor
                   # cannot be told from exhaustion with these metrics (docs/evaluation.md).
                   description="Total dissolved solids of the purified water"),
        MetricSpec(name="pump_current_a", unit="A", low=0, high=10,
                   description="Booster pump motor current",
                   drift_after=0.25, corroborated_by=(("flow_lpm", 0.05),)),
        MetricSpec(name="water_temp_c", unit="°C", low=0, high=60, spike_jump=1.5,
                   description="Feed water temperature"),
        MetricSpec(name="litres", unit="L", low=0, high=50, stuck_after=10**9,
                   description="Water dispensed in the session (often a round figure: a full jug)"),
    ),
    failure_modes=(
        FailureMode(
            name="filter_exhaustion",
            description="The cartridge is spent: dissolved solids break through (purified-water "
                        "TDS climbs) and flow drops until the purifier locks dispensing.",
            action=ActionKind.NOTIFY_HOMEOWNER,
            metrics=("tds_out_ppm", "tds_in_ppm", "flow_lpm"),
            # Breakthrough is a share of the feed: the same purified TDS is a fresh cartridge on
            # hard water and a spent one on soft water (docs/evaluation.md).
            ratios=(("tds_out_ppm", "tds_in_ppm"),),
            act_before_h=120.0,
            homeowner_tip="Your purifier's filter cartridge is nearly spent: replace it (twist the "
                          "old cartridge out, fit the new one and run water for two minutes).",
        ),
        FailureMode(
            name="pump_wear",
            description="The booster pump's bearings and vanes wear: current rises while flow "
                        "falls until the pump stalls.",
            action=ActionKind.BOOK_TECHNICIAN,
            metrics=("pump_current_a", "flow_lpm", "water_temp_c"),
            act_before_h=112.0,
            skill="water_purifier",
        ),
    ),
)

PROFILES: dict[str, ApplianceProfile] = {p.kind: p for p in (RICE_COOKER, AIR_CONDITIONER, WATER_PURIFIER)}


def get_profile(kind: str) -> ApplianceProfile:
    """The profile of an appliance kind (KeyError when the kind is unknown)."""
    return PROFILES[kind]
