"""The homeowner pages' words in the household's language (English and Chinese).

Keyed by the English text, gettext-style: a phrase without a translation shows in English. The
notifications themselves come already written in the household's language (``actions.templates``).
"""

from __future__ import annotations

from collections.abc import Callable

from actions.templates import APPLIANCE, mode_label
from ingest.contract import PROFILES

__all__ = ["LANGUAGES", "translator"]

LANGUAGES = ("en", "zh")

_ZH: dict[str, str] = {
    "My appliances": "我的电器", "Sign out": "退出", "Hello": "您好",
    "Message settings": "消息设置", "language, quiet hours, channels.": "语言、免打扰时段、接收方式。",
    "Your appliances": "您的电器", "No appliances are registered to your home yet.": "您家还没有登记电器。",
    "Messages": "消息", "No messages. We will tell you when an appliance needs something.":
        "暂无消息。电器需要照顾时我们会告诉您。",
    "Live: new messages appear here.": "实时：新消息会显示在这里。", "Reconnecting…": "正在重新连接…",
    "New message": "新消息", "Safety": "安全",
    "Technician visits": "上门维修", "Find another time": "换个时间", "Cancel visit": "取消上门",
    "Why cancel": "取消原因", "A technician comes for your": "维修师傅将上门处理您的",
    "Your requests to a person": "您向人工提出的请求",
    "Open since": "提交于", "a person will get back to you": "工作人员会回复您", "by": "截止",
    "Answered": "已回复",
    "Talk to a person": "联系人工客服",
    "Write what is on your mind. A member of our team reads every message — no bots.":
        "请写下您的问题。每条消息都由我们的工作人员亲自阅读——不是机器人。",
    "About": "关于", "My home in general": "我家的整体情况", "Message": "消息内容", "Send to a person": "发送给人工客服",
    # actions and states
    "Got it": "知道了", "Remind me tomorrow": "明天提醒我", "Done — I cleaned it": "已处理——我清洁好了",
    "Book a technician": "预约维修师傅", "This is wrong": "这条提醒有误",
    "You said: got it": "您已确认", "We will remind you": "我们会再提醒您", "You fixed it — thank you": "您已处理——谢谢",
    "You told us this is wrong — thank you": "您告诉我们这条有误——谢谢", "A technician visit is booked": "已预约上门维修",
    "A person is on it": "工作人员正在处理", "Dismissed": "已忽略",
    # health and presence
    "Working well": "运行良好", "Keep an eye on it": "请留意", "Needs care soon": "需要尽快保养",
    "We are checking its data": "我们正在核查它的数据", "Not enough data yet": "数据还不够",
    "Watching for": "正在关注", "possibly within": "可能在", "days": "天内",
    "Connected": "在线", "Not heard from lately": "最近没有收到数据", "Offline": "离线",
    "Waiting for its first report": "等待首次上报", "last report": "最近上报",
    # cancel reasons
    "The time does not suit me": "这个时间不方便", "The problem is fixed": "问题已经解决", "I do not want a visit": "不需要上门",
    # settings
    "Back to my appliances": "返回我的电器", "Household name": "家庭名称", "Language": "语言", "Time zone": "时区",
    "Quiet hours": "免打扰时段", "No non-urgent messages at night": "夜间不发送非紧急消息", "From": "从", "Until": "到",
    "Safety messages (for example overheating) always come at once.": "安全消息（例如过热）总是立即发送。",
    "Channels": "接收方式", "Messages always appear here. You can also have them sent to your own system.":
        "消息总会显示在这里，也可以同时发送到您自己的系统。",
    "Also send to a webhook": "同时发送到 Webhook", "Webhook address": "Webhook 地址",
    "Signing secret": "签名密钥", "saved; leave empty to keep it": "已保存；留空则保持不变",
    "at least 16 characters": "至少 16 个字符", "Save": "保存", "Saved.": "已保存。",
    # flashes
    "A person will get back to you soon": "工作人员会尽快回复您", "request": "请求",
    "Thanks — noted": "谢谢——已记录", "A technician visit is booked for": "已预约上门维修，时间：",
    "No technician is free in time; a person will arrange it": "暂时没有合适的维修师傅，工作人员会为您安排",
    "Your visit is moved to": "上门时间已改为",
    "Your visit is cancelled. If the problem is still there, a person will contact you.":
        "上门已取消。如果问题仍在，工作人员会联系您。",
    "There is no later time free yet; your visit stays as it is. Talk to a person for help.":
        "暂时没有更晚的空闲时间，上门安排保持不变。需要帮助请联系人工客服。",
}


# Appliance kinds and failure modes as the pages show them ("Refrigerant leak"), in the words the
# notifications use (actions.templates), so a new kind or mode is translated where it is declared.
_ZH.update({texts["en"]: texts["zh"] for texts in APPLIANCE.values()})
_ZH.update({mode.name.replace("_", " ").capitalize(): mode_label(mode.name, "zh")
            for profile in PROFILES.values() for mode in profile.failure_modes})


def translator(language: str) -> Callable[[str], str]:
    """``t(english)`` for one language: the translation, or the English when there is none."""
    if language != "zh":
        return lambda text: text
    return lambda text: _ZH.get(text, text)
