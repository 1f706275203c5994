"""Error codes appliances report themselves (``appliances/{id}/events``), declared as data. Pure.

One ``ErrorCode`` per (kind, model, code); ``model="*"`` applies to every model of the kind and a
model-specific entry overrides it. Each says what the code means, how severe it is, what the
homeowner can do, whether a visit is needed and whether it is a safety matter; ``action_for``
maps it to one of the three actions. A known code needs no prediction. Adding a code means adding
one entry to ``ERROR_CODES``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ingest.contract import ActionKind

__all__ = ["ERROR_CODES", "ErrorCode", "action_for", "lookup"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorCode:
    """What one error code means and what it calls for; texts per language (``en``, ``zh``)."""

    kind: str
    model: str
    code: str
    meaning: Mapping[str, str]
    #: low / medium / high / critical
    severity: str
    homeowner_fix: Mapping[str, str]
    visit_needed: bool
    safety: bool = False
    #: The failure mode this code confirms, when it is one the models predict (shares its case).
    failure_mode: str | None = None
    #: Technician skill for a visit (defaults to the kind).
    skill: str = ""

    def __post_init__(self) -> None:
        if self.severity not in ("low", "medium", "high", "critical"):
            raise ValueError(f"{self.kind}/{self.code}: unknown severity {self.severity!r}")
        if self.safety and self.severity != "critical":
            raise ValueError(f"{self.kind}/{self.code}: a safety code is critical")
        if not {"en", "zh"} <= set(self.meaning) or not {"en", "zh"} <= set(self.homeowner_fix):
            raise ValueError(f"{self.kind}/{self.code}: texts need en and zh")

    @property
    def case_mode(self) -> str:
        """The ``mode`` its case, labels and cooldown are keyed by."""
        return self.failure_mode or f"error:{self.code}"

    @property
    def priority(self) -> str:
        return {"critical": "urgent", "high": "high", "medium": "normal", "low": "low"}[self.severity]


def _code(kind: str, code: str, *, model: str = "*", en: str, zh: str, fix_en: str, fix_zh: str,
          severity: str, visit: bool, safety: bool = False, mode: str | None = None,
          skill: str = "") -> ErrorCode:
    return ErrorCode(kind=kind, model=model, code=code, meaning={"en": en, "zh": zh}, severity=severity,
                     homeowner_fix={"en": fix_en, "zh": fix_zh}, visit_needed=visit, safety=safety,
                     failure_mode=mode, skill=skill or ("hvac" if kind == "air_conditioner" else kind))


_UNPLUG_EN = "Switch it off and unplug it, keep it away from anything that can burn, and do not use it until it has been checked."
_UNPLUG_ZH = "关闭电源并拔下插头，远离易燃物品，检修前请勿使用。"

ERROR_CODES: tuple[ErrorCode, ...] = (
    _code("rice_cooker", "E1", en="the heating element has failed.", zh="加热元件故障。",
          fix_en="Stop using it; a technician needs to replace the heating element.",
          fix_zh="请停止使用；需要技师更换加热元件。", severity="high", visit=True,
          mode="heating_element_wear"),
    _code("rice_cooker", "E2", en="the lid is not closed properly.", zh="锅盖未盖好。",
          fix_en="Open the lid, check the seal for rice grains, and close it until it clicks.",
          fix_zh="打开锅盖，清理密封圈上的米粒，然后盖紧至听到咔哒声。", severity="low", visit=False),
    _code("rice_cooker", "E3", en="the thermal cut-off tripped: scale on the heating plate made it too hot.",
          zh="温控保护跳闸：加热盘水垢导致过热。",
          fix_en="Let it cool, then descale: water and a tablespoon of citric acid, one plain cycle, wipe the plate.",
          fix_zh="待其冷却后除垢：加水和一汤匙柠檬酸，空煮一次，擦净加热盘。", severity="medium",
          visit=False, mode="scale_buildup"),
    _code("rice_cooker", "E5", en="overheating: the pot bottom is far hotter than cooking allows.",
          zh="过热：锅底温度远超正常烹饪温度。", fix_en=_UNPLUG_EN, fix_zh=_UNPLUG_ZH,
          severity="critical", visit=True, safety=True),
    _code("rice_cooker", "E7", model="RC-200", en="the induction coil driver reports a fault.",
          zh="电磁线圈驱动故障。", fix_en="Unplug it for a minute and plug it back in; if E7 returns, a technician is needed.",
          fix_zh="拔下插头一分钟后重新插上；若再次出现E7，需要技师上门。", severity="high", visit=True),
    _code("air_conditioner", "F1", en="the air filter is blocked.", zh="空气滤网堵塞。",
          fix_en="A technician will clean or replace the filter.", fix_zh="技师将上门清洗或更换滤网。",
          severity="medium", visit=True, mode="filter_clogging"),
    _code("air_conditioner", "F4", en="the drain pan is full.", zh="排水盘已满。",
          fix_en="Switch it off and check that the drain hose outside is not kinked or blocked.",
          fix_zh="请关机，并检查室外排水管是否弯折或堵塞。", severity="low", visit=False),
    _code("air_conditioner", "P4", en="the compressor is overheating.", zh="压缩机过热。",
          fix_en=_UNPLUG_EN, fix_zh=_UNPLUG_ZH, severity="critical", visit=True, safety=True),
    _code("air_conditioner", "H6", model="AC-3500", en="the indoor fan motor has stalled.",
          zh="室内风机电机堵转。", fix_en="Switch it off; a technician needs to check the fan motor.",
          fix_zh="请关机；需要技师检查风机电机。", severity="high", visit=True),
    _code("air_conditioner", "E7", en="the low-pressure switch stopped the unit: refrigerant is low.",
          zh="低压保护停机：制冷剂不足。", fix_en="A technician needs to find the leak and recharge the refrigerant.",
          fix_zh="需要技师查找漏点并重新加注制冷剂。", severity="high", visit=True, mode="refrigerant_leak"),
    _code("water_purifier", "E5", en="the filter cartridge is spent: dispensing is locked.",
          zh="滤芯已失效：已停止出水。",
          fix_en="Replace the filter cartridge: twist the old one out, fit the new one and run water for two minutes.",
          fix_zh="请更换滤芯：拧下旧滤芯，装上新滤芯，放水两分钟。", severity="medium", visit=False,
          mode="filter_exhaustion"),
    _code("water_purifier", "E8", en="water is leaking inside the cabinet.", zh="机身内部漏水。",
          fix_en="Close the feed-water valve under the sink, unplug the purifier and wipe up the water.",
          fix_zh="请关闭水槽下的进水阀，拔下净水器插头，并擦干积水。", severity="high", visit=True),
    _code("water_purifier", "E6", en="the booster pump has stalled.", zh="增压泵堵转。",
          fix_en="Unplug it; a technician needs to replace the booster pump.",
          fix_zh="请拔下插头；需要技师更换增压泵。", severity="high", visit=True, mode="pump_wear"),
)

_INDEX: dict[tuple[str, str, str], ErrorCode] = {(e.kind, e.model, e.code): e for e in ERROR_CODES}
if len(_INDEX) != len(ERROR_CODES):
    raise RuntimeError("ERROR_CODES declares a (kind, model, code) twice")


def lookup(*, kind: str, model: str, code: str) -> ErrorCode | None:
    """The entry for a code on this kind and model (model-specific first), or None when unknown."""
    return _INDEX.get((kind, model, code)) or _INDEX.get((kind, "*", code))


def action_for(entry: ErrorCode) -> ActionKind:
    """The action a code calls for: safety → ticket (plus an immediate notification), visit → booking."""
    if entry.safety:
        return ActionKind.OPEN_TICKET
    return ActionKind.BOOK_TECHNICIAN if entry.visit_needed else ActionKind.NOTIFY_HOMEOWNER
