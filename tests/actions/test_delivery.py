"""The pure delivery policy as tables of cases: quiet hours, cooldown, storm cap, safety override."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from actions.delivery import (
    DeliveryConfig,
    DeliveryPrefs,
    PastAlert,
    QuietHours,
    Urgency,
    parse_hhmm,
    plan_delivery,
    quiet_until,
)

H = timedelta(hours=1)
NIGHT = QuietHours(start=time(22, 0), end=time(7, 0))
SHANGHAI = DeliveryPrefs(timezone="Asia/Shanghai", quiet=NIGHT)  # UTC+8, no DST
BERLIN = DeliveryPrefs(timezone="Europe/Berlin", quiet=NIGHT)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(("prefs", "now", "until"), [
    # Shanghai 23:30 local = 15:30 UTC: quiet until 07:00 local next day = 23:00 UTC
    (SHANGHAI, utc(2026, 3, 2, 15, 30), utc(2026, 3, 2, 23, 0)),
    # Shanghai 06:59 local = 22:59 UTC the day before: quiet until 07:00 local, a minute later
    (SHANGHAI, utc(2026, 3, 1, 22, 59), utc(2026, 3, 1, 23, 0)),
    # Shanghai 07:00 local: the window is over (end exclusive)
    (SHANGHAI, utc(2026, 3, 1, 23, 0), None),
    # Shanghai 21:59 local: not yet
    (SHANGHAI, utc(2026, 3, 2, 13, 59), None),
    # Berlin in winter (UTC+1): 22:00 local = 21:00 UTC, until 07:00 local = 06:00 UTC
    (BERLIN, utc(2026, 1, 15, 21, 0), utc(2026, 1, 16, 6, 0)),
    # Berlin, the night the clocks go forward (29 Mar 2026): 07:00 CEST = 05:00 UTC
    (BERLIN, utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 5, 0)),
    # A daytime window (nap 13:00-15:00 UTC)
    (DeliveryPrefs(quiet=QuietHours(start=time(13), end=time(15))), utc(2026, 3, 2, 14), utc(2026, 3, 2, 15)),
    (DeliveryPrefs(quiet=QuietHours(start=time(13), end=time(15))), utc(2026, 3, 2, 15), None),
    # No quiet hours at all
    (DeliveryPrefs(), utc(2026, 3, 2, 3), None),
])
def test_quiet_until(prefs: DeliveryPrefs, now: datetime, until: datetime | None) -> None:
    assert quiet_until(now, prefs) == until


NOW = utc(2026, 3, 2, 15, 30)  # 23:30 in Shanghai: quiet
DAY = utc(2026, 3, 2, 4, 0)  # 12:00 in Shanghai
CFG = DeliveryConfig(cooldown=24 * H, storm_window=6 * H, storm_max=3)


def alert(device: str = "rc-1", mode: str = "scale_buildup", ago: timedelta = H, now: datetime = DAY) -> PastAlert:
    return PastAlert(device_id=device, mode=mode, at=now - ago)


@pytest.mark.parametrize(("case", "urgency", "now", "past", "send", "rule", "deliver_at"), [
    ("day alert goes now", Urgency.ALERT, DAY, [], True, "now", DAY),
    ("night alert is held until 07:00", Urgency.ALERT, NOW, [], True, "quiet_hours", utc(2026, 3, 2, 23)),
    ("night info is held too", Urgency.INFO, NOW, [], True, "quiet_hours", utc(2026, 3, 2, 23)),
    ("safety at night goes now", Urgency.SAFETY, NOW, [], True, "safety", NOW),
    ("same device+mode inside cooldown is dropped", Urgency.ALERT, DAY, [alert(ago=23 * H)], False, "cooldown", DAY),
    ("same device+mode after cooldown goes", Urgency.ALERT, DAY, [alert(ago=24 * H)], True, "now", DAY),
    ("other mode of the device is not in cooldown", Urgency.ALERT, DAY,
     [alert(mode="heating_element_wear")], True, "now", DAY),
    ("other device is not in cooldown", Urgency.ALERT, DAY, [alert(device="rc-2")], True, "now", DAY),
    ("safety ignores the cooldown", Urgency.SAFETY, DAY, [alert(ago=H)], True, "safety", DAY),
    ("info ignores the cooldown", Urgency.INFO, DAY, [alert(ago=H)], True, "now", DAY),
    ("storm: three alerts in 6 h, the fourth is dropped", Urgency.ALERT, DAY,
     [alert(device=f"d{i}", ago=i * H) for i in range(1, 4)], False, "storm", DAY),
    ("storm window passed", Urgency.ALERT, DAY,
     [alert(device=f"d{i}", ago=(6 + i) * H) for i in range(1, 4)], True, "now", DAY),
    ("safety in a storm still goes", Urgency.SAFETY, DAY,
     [alert(device=f"d{i}", ago=i * H) for i in range(1, 4)], True, "safety", DAY),
])
def test_plan_delivery(case: str, urgency: Urgency, now: datetime, past: list[PastAlert], send: bool,
                       rule: str, deliver_at: datetime) -> None:
    plan = plan_delivery(device_id="rc-1", mode="scale_buildup", urgency=urgency, prefs=SHANGHAI,
                         past=past, config=CFG, now=now)
    assert (plan.send, plan.rule, plan.deliver_at) == (send, rule, deliver_at), case
    assert plan.held == (rule == "quiet_hours")
    assert plan.channels == (SHANGHAI.channels if send else frozenset())


# Quiet hours end 07:00 Shanghai = 23:00 UTC; NOW is 23:30 Shanghai, quiet.
@pytest.mark.parametrize(("case", "now", "act_by", "rule", "deliver_at"), [
    ("visit after quiet hours end + margin: held to the end", NOW, utc(2026, 3, 3, 1), "quiet_hours",
     utc(2026, 3, 2, 23)),
    ("visit exactly margin after the end: held to the end", NOW, utc(2026, 3, 3, 0), "quiet_hours",
     utc(2026, 3, 2, 23)),
    ("visit at 07:30 local: held only until 06:30 local", NOW, utc(2026, 3, 2, 23, 30), "quiet_hours",
     utc(2026, 3, 2, 22, 30)),
    ("visit at 08:00 local from 06:30 local: due at 07:00 = end", utc(2026, 3, 2, 22, 30), utc(2026, 3, 3, 0),
     "quiet_hours", utc(2026, 3, 2, 23)),
    ("visit in 90 min from 23:30: held 30 min", NOW, utc(2026, 3, 2, 17), "quiet_hours", utc(2026, 3, 2, 16)),
    ("visit in exactly the margin: now", NOW, NOW + H, "timely", NOW),
    ("visit in 20 min: now", NOW, NOW + timedelta(minutes=20), "timely", NOW),
    ("visit already begun (a cancellation): now", NOW, NOW - H, "timely", NOW),
    ("outside quiet hours the visit changes nothing", DAY, DAY + timedelta(minutes=10), "now", DAY),
])
def test_a_visit_notice_arrives_before_the_visit(case: str, now: datetime, act_by: datetime, rule: str,
                                                 deliver_at: datetime) -> None:
    plan = plan_delivery(device_id="rc-1", mode="scale_buildup", urgency=Urgency.INFO, prefs=SHANGHAI,
                         past=[], config=CFG, now=now, act_by=act_by)
    assert (plan.send, plan.rule, plan.deliver_at) == (True, rule, deliver_at), case
    assert plan.held == (deliver_at > now)
    assert plan.deliver_at <= max(now, act_by - CFG.act_margin) or rule == "now"


def test_the_margin_is_configurable() -> None:
    cfg = DeliveryConfig(act_margin=timedelta(0))
    plan = plan_delivery(device_id="rc-1", mode="m", urgency=Urgency.INFO, prefs=SHANGHAI, past=[], config=cfg,
                         now=NOW, act_by=utc(2026, 3, 2, 20))
    assert (plan.rule, plan.deliver_at) == ("quiet_hours", utc(2026, 3, 2, 20))
    with pytest.raises(ValueError, match="act_margin"):
        DeliveryConfig(act_margin=-H)


def test_a_flapping_signal_alerts_once_per_cooldown() -> None:
    """A signal that crosses the line every 2 h for two days: 2 alerts, not 24."""
    sent: list[PastAlert] = []
    t = utc(2026, 3, 2, 0)
    for _ in range(24):
        plan = plan_delivery(device_id="rc-1", mode="scale_buildup", urgency=Urgency.ALERT,
                             prefs=DeliveryPrefs(), past=sent, config=CFG, now=t)
        if plan.send:
            sent.append(PastAlert(device_id="rc-1", mode="scale_buildup", at=t))
        t += 2 * H
    assert [a.at for a in sent] == [utc(2026, 3, 2, 0), utc(2026, 3, 3, 0)]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"channels": frozenset({"sms"})}, "unknown channels"),
])
def test_bad_preferences_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DeliveryPrefs(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["7:00", "07-00", "25:00", "ab:cd", ""])
def test_bad_times_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="HH:MM"):
        parse_hhmm(bad)


def test_quiet_hours_need_a_window() -> None:
    with pytest.raises(ValueError):
        QuietHours(start=time(7), end=time(7))
