"""Logging for people (text) or for log pipelines (one JSON object per line): `configure_logging(fmt)`."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
NOISY = ("ray", "botocore", "urllib3", "numba", "matplotlib")
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", ...extra fields, "exception"}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        from aei_batch.io.security import redact

        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(data, default=str)


def check_format(fmt: str | None) -> str:
    from aei_batch.errors import ConfigError

    fmt = (fmt or "text").lower()
    if fmt not in LOG_FORMATS:
        raise ConfigError(f"unknown log format {fmt!r}", hint="use --log-format text or json")
    return fmt


def configure_logging(fmt: str | None = "text", *, verbose: bool = False) -> None:
    """Send the root logger's records to stderr as text or JSON lines (INFO with `verbose`, else WARNING).

    Replaces the root logger's handlers (call it once, at the start of a command). Raises ConfigError
    for an unknown format.
    """
    fmt = check_format(fmt)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
