"""JSON-lines logging for the handler, with the request id on every request's line.

The handler logs through its own ``resnet50`` logger with its own stdout stream, never
through the root logger: TorchServe's worker reads ``[METRICS]`` lines from the root
logger's plain output, and that format must stay untouched.
"""

from __future__ import annotations

import json
import logging
import sys
import time

LOGGER_NAME = "resnet50"
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """Human-readable variant for development (LOG_FORMAT=text)."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _RESERVED)
        base = f"{self.formatTime(record)} {record.levelname:<8} {record.name}: {record.getMessage()}"
        return f"{base} {extras}".rstrip()


def configure_logging(level: str = "INFO", fmt: str = "json") -> logging.Logger:
    """Set up (idempotently) the handler's logger and return it."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level.upper())
    logger.propagate = False
    for existing in list(logger.handlers):
        logger.removeHandler(existing)
    stream = logging.StreamHandler(sys.stdout)
    stream.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    logger.addHandler(stream)
    return logger
