"""The replay keeps case history as the service does: one case per device and mode, data-quality
tickets covering a device, escalation of a ticket by clean data, closing on calm, cooldown."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from actions.policy import DecisionAction, PolicyConfig
from actions.replay import ThresholdBaseline, replay
from ingest.contract import PROFILES
from ingest.features import FeatureVector, Reading
from predictors.types import Prediction

T0 = datetime(2026, 3, 1, tzinfo=UTC)
RC = PROFILES["rice_cooker"]


def cooker_readings(device: str, days: int, *, boil: Callable[[int], float] = lambda i: 700.0) -> list[Reading]:
    return [Reading(device_id=device, kind="rice_cooker", seq=i, ts=T0 + timedelta(hours=8 * i, minutes=5),
                    metrics={"time_to_boil_s": boil(i), "heater_power_w": 650.0 + i % 3, "peak_temp_c": 125.0})
            for i in range(days * 3)]


class Scripted:
    """Predictions from a script of (device, mode, hours since T0) -> (p, ttf_low, ood, faults)."""

    def __init__(self, script: Callable[[str, str, float], tuple[float, float, bool, tuple[str, ...]]]) -> None:
        self.script = script

    def score_many(self, vectors: Sequence[FeatureVector], *, now: datetime) -> list[Prediction]:
        out = []
        for v in vectors:
            if v.n_readings < 6:
                continue
            for mode in RC.failure_modes:
                p, low, ood, faults = self.script(v.device_id, mode.name, (v.ts - T0).total_seconds() / 3600)
                out.append(Prediction(device_id=v.device_id, kind=v.kind, mode=mode.name, ts=v.ts, p_fail=p,
                                      horizon_h=48.0, ttf_h=low * 1.2, ttf_low_h=low, ttf_high_h=low * 1.5,
                                      model_version="v", n_readings=v.n_readings, ood=ood,
                                      sensor_faults=faults))
        return out


def healthy(*_: object) -> tuple[float, float, bool, tuple[str, ...]]:
    return 0.01, 600.0, False, ()


def test_one_case_however_often_the_failure_is_predicted() -> None:
    def script(device: str, mode: str, h: float):
        return (0.6, 60.0, False, ()) if mode == "scale_buildup" and 100 < h < 300 else healthy()

    result = replay(cooker_readings("rc-1", 20), scorer=Scripted(script), config=PolicyConfig())
    assert [(c.mode, c.opened_action) for c in result.cases] == [("scale_buildup", DecisionAction.NOTIFY_HOMEOWNER)]
    case = result.cases[0]
    assert case.proactive_at == case.opened_at and case.closed_at is not None  # calm again after 300 h
    assert result.predictions == 2 * (20 * 3 - 5)
    assert result.decisions["open_case"] > 10


def test_an_ood_device_is_escalated_then_acted_on_when_clean_data_calls_for_it() -> None:
    def script(device: str, mode: str, h: float):
        if h < 150:
            return 0.05, 500.0, True, ()
        return (0.6, 60.0, False, ()) if mode == "heating_element_wear" else healthy()

    result = replay(cooker_readings("rc-1", 15), scorer=Scripted(script), config=PolicyConfig())
    tickets = [c for c in result.cases if c.rule == "ood"]
    assert len(tickets) == 1 and tickets[0].escalated_to_human  # one ticket although both modes are OOD
    element = next(c for c in result.cases if c.mode == "heating_element_wear")
    assert element.proactive_at is not None and element.proactive_at >= T0 + timedelta(hours=150)


def test_a_sensor_fault_opens_one_ticket_for_the_device_and_no_alert() -> None:
    def script(device: str, mode: str, h: float):
        # the faulty sensor also makes the model think the pot is scaling: bad data wins
        return (0.9, 10.0, False, ("time_to_boil_s",)) if h > 80 else healthy()

    result = replay(cooker_readings("rc-1", 20), scorer=Scripted(script), config=PolicyConfig())
    assert [(c.rule, c.escalated_to_human, c.proactive_at) for c in result.cases] == [("sensor_fault", True, None)]
    assert result.cases[0].closed_at is None  # the data never became clean again
    assert result.decisions["covered"] > 0


def test_cooldown_after_a_case_closes() -> None:
    def script(device: str, mode: str, h: float):
        if mode == "scale_buildup" and (100 < h < 150 or 190 < h < 240):
            return 0.5, 90.0, False, ()  # "normal" priority: the cooldown applies
        return healthy()

    result = replay(cooker_readings("rc-1", 20), scorer=Scripted(script), config=PolicyConfig())
    assert len(result.cases) == 1 and result.decisions["cooldown"] > 0
    longer = replay(cooker_readings("rc-1", 20), scorer=Scripted(script),
                    config=PolicyConfig(cooldown=timedelta(hours=1)))
    assert len(longer.cases) == 2


def test_threshold_baseline_acts_on_a_rise_over_the_own_baseline() -> None:
    rising = cooker_readings("rc-1", 20, boil=lambda i: 700.0 * (1 + 0.01 * i))
    result = replay(rising, scorer=ThresholdBaseline(), config=PolicyConfig())
    assert {c.mode for c in result.cases} == {"scale_buildup", "heating_element_wear"}
    assert all(c.proactive_at is not None for c in result.cases)
    assert replay(cooker_readings("rc-2", 20), scorer=ThresholdBaseline(), config=PolicyConfig()).cases == []
