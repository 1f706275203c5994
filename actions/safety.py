"""Safety signals in the telemetry (overheating), declared as data, and what the service does about them.

A ``SafetyRule`` says: for this appliance kind, a last reading of ``metric`` at or beyond
``limit`` is a safety matter. No model is asked and no dwell applies: the household is told at
once, quiet hours or not, and an urgent ticket goes to a person (the same as a safety error code,
see ``events``). One open case per (device, ``safety:<rule>``) keeps a hot appliance that stays
hot from sending an alert per reading. ``SafetyMixin.check_safety`` runs on every scoring sweep
(``ActionService.handle``) over the devices just scored; ``breaches`` is the pure part.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ingest.contract import feature_name
from ingest.db import DeviceRow, FeatureOnlineRow

from .context import device_info, readings_summary
from .core import ServiceCore
from .db import CaseRow
from .delivery import Urgency
from .notify import NewNotification, create_notification
from .policy import DecisionAction
from .tickets import open_ticket

__all__ = ["SAFETY_RULES", "SafetyMixin", "SafetyRule", "breaches"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SafetyRule:
    """A reading that is a safety matter on its own; texts per language (``en``, ``zh``)."""

    kind: str
    name: str
    metric: str
    limit: float
    above: bool
    #: What was noticed; ``{value}`` is the reading.
    meaning: Mapping[str, str]
    todo: Mapping[str, str]

    @property
    def mode(self) -> str:
        """The case key: ``safety:<name>``."""
        return f"safety:{self.name}"

    def breached(self, value: float) -> bool:
        return value >= self.limit if self.above else value <= self.limit


_UNPLUG = {"en": "Switch it off and unplug it, keep it away from anything that can burn, and do not use it "
                 "until it has been checked.",
           "zh": "关闭电源并拔下插头，远离易燃物品，检修前请勿使用。"}

SAFETY_RULES: tuple[SafetyRule, ...] = (
    SafetyRule(kind="rice_cooker", name="overheating", metric="peak_temp_c", limit=230.0, above=True,
               meaning={"en": "overheating: the pot bottom reached {value:.0f} °C, far above cooking temperatures.",
                        "zh": "过热：锅底温度达到 {value:.0f} °C，远超正常烹饪温度。"}, todo=_UNPLUG),
    SafetyRule(kind="air_conditioner", name="overheating", metric="supply_air_temp_c", limit=60.0, above=True,
               meaning={"en": "overheating: the air leaving the unit reached {value:.0f} °C.",
                        "zh": "过热：出风温度达到 {value:.0f} °C。"}, todo=_UNPLUG),
)


def breaches(kind: str, values: Mapping[str, Any],
             rules: Sequence[SafetyRule] = SAFETY_RULES) -> list[tuple[SafetyRule, float]]:
    """The rules a device's latest readings (its ``<metric>__last`` features) breach, with the value."""
    out = []
    for rule in rules:
        value = values.get(feature_name(rule.metric, "last"))
        if rule.kind == kind and isinstance(value, (int, float)) and rule.breached(float(value)):
            out.append((rule, float(value)))
    return out


class SafetyMixin(ServiceCore):
    """Safety signals in the latest readings: an immediate notification and an urgent ticket."""

    def check_safety(self, device_ids: Iterable[str]) -> list[int]:
        """Act on the safety rules the devices' latest readings breach; returns the tickets opened."""
        ids = sorted(set(device_ids))
        if not ids:
            return []
        with self._sessions() as s:
            found = [(row.device_id, rule, value) for row in s.scalars(
                select(FeatureOnlineRow).where(FeatureOnlineRow.device_id.in_(ids)))
                for rule, value in breaches(row.kind, row.values)]
        tickets = []
        for device_id, rule, value in found:
            ticket_id = self._retrying(lambda s, d=device_id, r=rule, v=value: self._raise_safety(s, d, r, v))
            if ticket_id is not None:
                tickets.append(ticket_id)
        return tickets

    def _raise_safety(self, s: Any, device_id: str, rule: SafetyRule, value: float) -> int | None:
        now = self._clock.now()
        if s.scalar(select(CaseRow.id).where(CaseRow.device_id == device_id, CaseRow.mode == rule.mode,
                                             CaseRow.status == "open")) is not None:
            return None  # already with a person
        device = s.get(DeviceRow, device_id)
        meaning = {lang: text.format(value=value) for lang, text in rule.meaning.items()}
        case = self._new_case(s, device_id=device_id, kind=rule.kind, mode=rule.mode,
                              action=DecisionAction.OPEN_TICKET.value, priority="urgent",
                              reason=f"safety: {rule.metric} = {value:g} (limit {rule.limit:g})", due_by=None, now=now)
        ticket = open_ticket(
            s, category="safety", priority="urgent", device_id=device_id,
            household_id=device.household_id if device else None, kind=rule.kind, mode=rule.mode, case_id=case.id,
            features=case.features, now=now,
            subject=f"Safety: {rule.kind} {device_id} {rule.name} ({rule.metric} {value:g})",
            context={"reason": f"safety rule {rule.name}: {rule.metric} = {value:g}, limit {rule.limit:g}",
                     "safety_rule": {"name": rule.name, "metric": rule.metric, "limit": rule.limit, "value": value},
                     "device": device_info(device, device_id),
                     "readings": readings_summary(s, device_id, last_n=self._readings_in_context),
                     "features": case.features})
        if device is not None and device.household_id:
            create_notification(s, NewNotification(
                household_id=device.household_id, device_id=device_id, kind=rule.kind, mode=rule.mode,
                template="safety", urgency=Urgency.SAFETY, case_id=case.id, ticket_id=ticket.id,
                values={"meaning": meaning, "todo": dict(rule.todo)}), config=self._delivery, now=now)
        return ticket.id
