"""Logging: readable lines on a terminal, one JSON object per line otherwise.

Log records may carry `extra={"action": ...}` (and any other fields); the JSON
form keeps them as keys so log pipelines can filter on them.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

# uvicorn's `color_message` repeats the message with ANSI colour escapes: not for files.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(level: str = "INFO", *, json_lines: bool | None = None) -> None:
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # One line per HTTP request or per embedded-server command is noise at INFO.
    for chatty in ("httpx", "httpcore", "pgserver"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
