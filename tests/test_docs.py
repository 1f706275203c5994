"""The docs describe the code that exists: every appliance kind and metric is in the wire protocol."""

from __future__ import annotations

from pathlib import Path

from ingest.contract import PROFILES, Reason

ROOT = Path(__file__).parents[1]


def test_wire_protocol_lists_every_kind_metric_mode_and_reason() -> None:
    text = (ROOT / "docs" / "wire-protocol.md").read_text()
    for profile in PROFILES.values():
        assert f"`{profile.kind}`" in text
        for metric in profile.metrics:
            assert f"`{metric.name}`" in text, metric.name
        for mode in profile.failure_modes:
            assert f"`{mode.name}`" in text, mode.name
    for reason in Reason:
        assert f"`{reason.value}`" in text, reason.value


def test_readme_names_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
