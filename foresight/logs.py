"""Process logging set-up: human-readable text (default) or one JSON object per line.

``FORESIGHT_LOG_FORMAT=json`` gives structured logs for a log shipper: ``ts`` (RFC 3339 UTC),
``level``, ``logger``, ``message``, ``exc`` when there is a traceback, and any ``extra=`` fields.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

__all__ = ["JsonFormatter", "configure_logging"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: Attributes every ``LogRecord`` has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:  # formatted where it was raised: a record the writer process shipped
            body["exc"] = record.exc_text
        if record.stack_info:
            body["stack"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in body:
                body[key] = value
        return json.dumps(body, default=str, ensure_ascii=False)


def configure_logging(*, level: int, fmt: str = "text") -> None:
    """Configure the root logger once for this process (``fmt``: ``text`` or ``json``)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
