"""``FORESIGHT_LOG_FORMAT=json``: one JSON object per log line, with the traceback and extra fields."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from foresight.logs import JsonFormatter
from foresight.settings import Settings


def test_json_lines_carry_level_logger_message_extra_and_traceback() -> None:
    logger = logging.getLogger("foresight.test")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logger.makeRecord("foresight.test", logging.ERROR, __file__, 1, "batch of %d failed", (500,),
                                   exc_info=sys.exc_info(), extra={"device_id": "rc-1"})
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "ERROR" and line["logger"] == "foresight.test"
    assert line["message"] == "batch of 500 failed" and line["device_id"] == "rc-1"
    assert line["ts"].endswith("Z") and "ValueError: boom" in line["exc"]


def test_log_format_is_a_validated_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORESIGHT_LOG_FORMAT", "json")
    assert Settings().log_format == "json"
    monkeypatch.setenv("FORESIGHT_LOG_FORMAT", "xml")
    with pytest.raises(ValueError):
        Settings()
