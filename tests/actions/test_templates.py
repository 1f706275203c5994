"""Every message renders in every language, in plain words: what was noticed, what to do, by when."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from actions.templates import LANGUAGES, MODE_TEXT, TEMPLATES, format_when, render
from ingest.contract import PROFILES

WHEN = datetime(2026, 3, 5, 6, 0, tzinfo=UTC)
VALUES = dict(by_when="Thu 5 Mar 14:00", ttf_h="80", ttf_low_h="60", ttf_high_h="110", technician="Anna",
              start="Thu 5 Mar 14:00", end="Thu 5 Mar 16:00", why="technician ill", code="E2",
              meaning="the lid is open.", message="All good.")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_template_renders_for_every_mode(template: str, language: str) -> None:
    for profile in PROFILES.values():
        for mode in profile.failure_modes:
            title, body = render(template, language, kind=profile.kind, mode=mode.name, **VALUES)
            assert title and body and "{" not in title + body
            if language == "zh":
                assert any("\u4e00" <= ch <= "\u9fff" for ch in title + body)


@pytest.mark.parametrize("language", LANGUAGES)
def test_prediction_alerts_say_what_what_to_do_and_by_when(language: str) -> None:
    for (kind, mode), texts in MODE_TEXT.items():
        _, body = render("prediction_fix", language, kind=kind, mode=mode, **VALUES)
        assert texts[language].noticed in body and texts[language].todo in body and VALUES["by_when"] in body


def test_every_failure_mode_has_homeowner_texts() -> None:
    declared = {(p.kind, m.name) for p in PROFILES.values() for m in p.failure_modes}
    assert declared == set(MODE_TEXT)
    assert all(set(LANGUAGES) <= set(texts) for texts in MODE_TEXT.values())


def test_times_read_in_the_households_zone_and_language() -> None:
    assert format_when(WHEN, timezone="Asia/Shanghai", language="zh") == "3月5日（周四）14:00"
    assert format_when(WHEN, timezone="Europe/London", language="en") == "Thu 5 Mar 06:00"


def test_an_unknown_language_falls_back_to_english_and_a_missing_value_is_named() -> None:
    title, _ = render("agent_message", "fr", kind="rice_cooker", message="ok")
    assert title == "Rice cooker: a message from our service team"
    with pytest.raises(KeyError, match="technician"):
        render("booking_booked", "en", kind="rice_cooker", mode="scale_buildup", start="x", end="y")


@pytest.mark.parametrize(("mode", "en", "zh"), [
    ("scale_buildup", "scale build-up", "水垢堆积"),
    ("error:E7", "error E7", "故障代码 E7"),
    ("safety:overheating", "overheating", "过热"),
    ("some_new_mode", "some new mode", "some new mode"),
])
def test_mode_labels_are_plain_words(mode: str, en: str, zh: str) -> None:
    from actions.templates import mode_label

    assert (mode_label(mode, "en"), mode_label(mode, "zh")) == (en, zh)
