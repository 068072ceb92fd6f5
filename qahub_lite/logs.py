"""Logging set-up: human-readable lines by default, JSON lines with `--log-format json`."""

from __future__ import annotations

import json
import logging
import sys
import time


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("method", "path", "status", "duration_ms", "key_id", "client"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    adopt_granian_loggers()


# granian names its loggers after its Rust module; "granian" is the Python package's.
_GRANIAN_LOGGERS = ("_granian", "granian", "granian.access")


class _KnownGranianNotices(logging.Filter):
    """Drops granian's start-up warning about its embedded server: server.py says why we chose
    it, and a warning on every start would teach operators to ignore warnings."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Embedded server is experimental")


def adopt_granian_loggers() -> None:
    """Route granian's log lines through our handler, so that they follow --log-format too.

    Call it again after creating granian's Server: its constructor runs logging.dictConfig,
    which gives its loggers their own plain-text stdout handler and a fixed level."""
    for name in _GRANIAN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
        logger.setLevel(logging.NOTSET)  # the root's level (--log-level) decides
        if not any(isinstance(f, _KnownGranianNotices) for f in logger.filters):
            logger.addFilter(_KnownGranianNotices())
