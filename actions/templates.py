"""Homeowner message templates in English and Chinese, declared as data. Pure: no I/O, no clock.

Every alert says, in plain words, what was noticed, what to do, and by when. ``render`` fills a
template; ``MODE_TEXT`` holds the per-(kind, failure mode) sentences, ``APPLIANCE`` the names;
error codes carry their own texts (``actions.error_codes``). Adding a language means adding one
key to each mapping here; ``LANGUAGES`` lists those every template has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

__all__ = ["APPLIANCE", "LANGUAGES", "MODE_TEXT", "TEMPLATES", "ModeText", "format_when", "mode_label", "render"]

LANGUAGES: tuple[str, ...] = ("en", "zh")


@dataclass(frozen=True, slots=True, kw_only=True)
class ModeText:
    """What a homeowner is told about one failure mode: what was noticed and what to do."""

    noticed: str
    todo: str


APPLIANCE: Mapping[str, Mapping[str, str]] = {
    "rice_cooker": {"en": "Rice cooker", "zh": "电饭煲"},
    "air_conditioner": {"en": "Air conditioner", "zh": "空调"},
}

MODE_TEXT: Mapping[tuple[str, str], Mapping[str, ModeText]] = {
    ("rice_cooker", "scale_buildup"): {
        "en": ModeText(noticed="Your rice cooker takes longer to boil and runs hotter than it used to: "
                               "mineral scale is building up on the heating plate.",
                       todo="Descale your rice cooker: fill the pot with water and a tablespoon of "
                            "citric acid, run a plain cook cycle, then wipe the heating plate."),
        "zh": ModeText(noticed="您的电饭煲煮沸时间变长、温度偏高：加热盘上正在积水垢。",
                       todo="请为电饭煲除垢：内锅加水和一汤匙柠檬酸，空煮一次，然后擦净加热盘。"),
    },
    ("rice_cooker", "heating_element_wear"): {
        "en": ModeText(noticed="Your rice cooker's heating element is wearing out: it draws less power "
                               "and takes longer to boil.",
                       todo="A technician needs to replace the heating element."),
        "zh": ModeText(noticed="您的电饭煲加热元件正在老化：功率下降，煮沸时间变长。",
                       todo="需要技师上门更换加热元件。"),
    },
    ("air_conditioner", "filter_clogging"): {
        "en": ModeText(noticed="Your air conditioner's filter is clogging: air flows less freely and "
                               "the fan works harder.",
                       todo="A technician will clean or replace the filter."),
        "zh": ModeText(noticed="您的空调滤网正在堵塞：风量变小，风机负荷增大。",
                       todo="技师将上门清洗或更换滤网。"),
    },
}

#: template -> language -> (title, body); placeholders are filled by ``render``.
TEMPLATES: Mapping[str, Mapping[str, tuple[str, str]]] = {
    "prediction_fix": {
        "en": ("{appliance}: {mode_label} expected",
               "{noticed} What to do: {todo} Please do it by {by_when}. We expect trouble in about "
               "{ttf_h} hours (between {ttf_low_h} and {ttf_high_h} hours)."),
        "zh": ("{appliance}：预计出现{mode_label}",
               "{noticed}建议：{todo}请在{by_when}之前完成。预计约{ttf_h}小时后出现问题（{ttf_low_h}至{ttf_high_h}小时之间）。"),
    },
    "booking_booked": {
        "en": ("{appliance}: technician visit booked",
               "{noticed} {technician} will visit on {start} (until {end}) about {mode_label}. "
               "What to do: make sure someone is home; reschedule or cancel here if that time does not suit you."),
        "zh": ("{appliance}：已预约技师上门",
               "{noticed}{technician}将于{start}上门（至{end}），处理{mode_label}。建议：请确保届时家中有人；如时间不便，可在此改期或取消。"),
    },
    "booking_reminder": {
        "en": ("{appliance}: technician visit {start}",
               "Reminder: {technician} visits on {start} (until {end}) about {mode_label}. "
               "What to do: make sure someone is home."),
        "zh": ("{appliance}：技师将于{start}上门",
               "提醒：{technician}将于{start}上门（至{end}），处理{mode_label}。建议：请确保届时家中有人。"),
    },
    "booking_rescheduled": {
        "en": ("{appliance}: visit moved to {start}",
               "Your technician visit about {mode_label} is now on {start} (until {end}) with {technician}."),
        "zh": ("{appliance}：上门时间改为{start}",
               "关于{mode_label}的技师上门已改到{start}（至{end}），由{technician}负责。"),
    },
    "booking_cancelled": {
        "en": ("{appliance}: visit cancelled",
               "The technician visit on {start} about {mode_label} is cancelled ({why}). "
               "What to do: book again or talk to a person here if you still need help."),
        "zh": ("{appliance}：上门已取消",
               "原定{start}关于{mode_label}的技师上门已取消（{why}）。建议：如仍需帮助，可在此重新预约或联系人工客服。"),
    },
    "error_fix": {
        "en": ("{appliance}: error {code}",
               "Your {appliance_lower} reported error {code}: {meaning} What to do: {todo} "
               "Please do it by {by_when}."),
        "zh": ("{appliance}：故障代码 {code}",
               "您的{appliance_lower}报告故障代码 {code}：{meaning}建议：{todo}请在{by_when}之前完成。"),
    },
    "error_visit": {
        "en": ("{appliance}: error {code}, a technician is needed",
               "Your {appliance_lower} reported error {code}: {meaning} What to do: {todo} "
               "We are booking a technician to come before {by_when}."),
        "zh": ("{appliance}：故障代码 {code}，需要技师上门",
               "您的{appliance_lower}报告故障代码 {code}：{meaning}建议：{todo}我们正在为您预约技师，将在{by_when}之前上门。"),
    },
    "safety": {
        "en": ("Safety: stop using your {appliance_lower} now",
               "Your {appliance_lower} reported {meaning} What to do now: {todo} "
               "A person from our service team has been alerted and will contact you."),
        "zh": ("安全提醒：请立即停止使用{appliance_lower}",
               "您的{appliance_lower}报告：{meaning}请立即：{todo}我们的客服人员已收到警报，将尽快与您联系。"),
    },
    "agent_message": {
        "en": ("{appliance}: a message from our service team", "{message}"),
        "zh": ("{appliance}：客服留言", "{message}"),
    },
}

_MODE_LABEL: Mapping[str, Mapping[str, str]] = {
    "scale_buildup": {"en": "scale build-up", "zh": "水垢堆积"},
    "heating_element_wear": {"en": "heating element wear", "zh": "加热元件老化"},
    "filter_clogging": {"en": "a clogged filter", "zh": "滤网堵塞"},
    "overheating": {"en": "overheating", "zh": "过热"},
}

_WEEKDAYS_ZH = "一二三四五六日"


def format_when(t: datetime, *, timezone: str, language: str) -> str:
    """A time as the household reads it, in its time zone: ``Thu 5 Mar 14:00`` / ``3月5日（周四）14:00``."""
    local = t.astimezone(ZoneInfo(timezone))
    if language == "zh":
        return f"{local.month}月{local.day}日（周{_WEEKDAYS_ZH[local.weekday()]}）{local:%H:%M}"
    return f"{local:%a} {local.day} {local:%b %H:%M}"


def mode_label(mode: str, language: str) -> str:
    """The failure mode in plain words: ``error:E7`` → ``error E7`` / ``故障代码 E7``, else the name with spaces."""
    known = _MODE_LABEL.get(mode, {}).get(language)
    if known:
        return known
    prefix, _, rest = mode.partition(":")
    if prefix == "error" and rest:
        return f"故障代码 {rest}" if language == "zh" else f"error {rest}"
    if prefix == "safety" and rest:
        return _MODE_LABEL.get(rest, {}).get(language) or rest.replace("_", " ")
    return mode.replace("_", " ")


def render(template: str, language: str, *, kind: str, mode: str | None = None,
           **values: object) -> tuple[str, str]:
    """The (title, body) of ``template`` in ``language`` (English when the language is unknown).

    ``kind`` and ``mode`` fill ``appliance``, ``mode_label``, and — when the mode has texts —
    ``noticed`` and ``todo`` (explicit ``values`` win; empty otherwise). KeyError names a
    missing placeholder.
    """
    lang = language if language in LANGUAGES else "en"
    title, body = TEMPLATES[template][lang]
    appliance = APPLIANCE.get(kind, {}).get(lang) or kind.replace("_", " ").capitalize()
    fields: dict[str, object] = {"appliance": appliance, "noticed": "", "todo": "",
                                 "appliance_lower": appliance if lang == "zh" else appliance.lower()}
    if mode is not None:
        fields["mode_label"] = mode_label(mode, lang)
        text = MODE_TEXT.get((kind, mode), {}).get(lang)
        if text is not None:
            fields.update(noticed=text.noticed, todo=text.todo)
    fields.update(values)
    try:
        return title.format(**fields), body.format(**fields)
    except KeyError as missing:
        raise KeyError(f"template {template!r} needs {missing}") from None
