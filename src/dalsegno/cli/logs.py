"""The manager's log: lines for people (`text`) or one JSON object a line for log shippers.

Every logger of the process writes through one handler on stderr: dalsegno's own
(`dalsegno.manager`: claims, takeovers, ends; `dalsegno.store`: outages), uvicorn's
errors, and, when `--access-log` is on, one line per HTTP request (`dalsegno.access`).
Fields a line carries beyond its message (`execution_id`, `status`, ...) are keys of the
JSON object, and `key=value` pairs after the text message.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

FORMATS = ("text", "json")
ACCESS_LOGGER = "dalsegno.access"
# What a LogRecord always has: anything else on a record was passed in `extra`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra` fields of a record."""
    return {key: value for key, value in vars(record).items() if key not in _STANDARD}


class TextFormatter(logging.Formatter):
    """`2026-11-27T03:40:12.123Z INFO dalsegno.manager claimed execution 3f2a… status=...`"""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
        line = f"{stamp}.{int(record.msecs):03d}Z {record.levelname} {record.name} "
        line += record.getMessage()
        extra = fields_of(record)
        if extra:
            line += " " + " ".join(f"{key}={value}" for key, value in extra.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """`{"time": "...Z", "level": "INFO", "logger": "...", "message": "...", ...fields}`"""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
        document: dict[str, Any] = {
            "time": stamp.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            document.setdefault(key, value)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def configure(log_format: str, level: int = logging.INFO) -> None:
    """One stderr handler with the chosen format for every logger of the process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # uvicorn's own loggers: errors through ours; its access log is replaced by
    # `dalsegno.access`, which has the request's fields.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers = []
        uvicorn_logger.propagate = name != "uvicorn.access"
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
