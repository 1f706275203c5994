"""Recorded bad payloads (tests/fixtures/bad_payloads.json) made concrete for a given clock."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ingest.contract import format_ts

FIXTURE = Path(__file__).parent / "fixtures" / "bad_payloads.json"


@dataclass(frozen=True)
class BadPayload:
    name: str
    topic: str
    payload: bytes
    reason: str


def bad_payloads(now: datetime) -> list[BadPayload]:
    """Every recorded malformed message, with ``{TS}`` set to ``now``."""
    out = []
    for case in json.loads(FIXTURE.read_text()):
        if "payload_hex" in case:
            payload = bytes.fromhex(case["payload_hex"])
        else:
            payload = case["payload"].replace("{TS}", format_ts(now)).encode()
        out.append(BadPayload(case["name"], case["topic"], payload, case["reason"]))
    return out
