"""The homeowner pages' Chinese: every appliance kind and failure mode the pages name has its words."""

from __future__ import annotations

from foresight.web.i18n import translator
from ingest.contract import PROFILES


def test_every_kind_and_mode_reads_in_chinese() -> None:
    t = translator("zh")
    for profile in PROFILES.values():
        kind = profile.kind.replace("_", " ").capitalize()
        assert t(kind) != kind, kind
        for mode in profile.failure_modes:
            words = mode.name.replace("_", " ").capitalize()
            assert t(words) != words and not t(words).isascii(), words
    assert t("Refrigerant leak") == "制冷剂泄漏" and t("Water purifier") == "净水器"
    assert translator("en")("Refrigerant leak") == "Refrigerant leak"
