"""Logging setup: readable lines on a terminal or JSON lines for journald and log shippers, and every
secret in play redacted from every record before any formatter sees it."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable
from datetime import datetime, timezone

REDACTED = "[REDACTED]"


class RedactSecrets(logging.Filter):
    """Replaces each known secret in a record's final message (and drops its args)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            # Render the traceback now so it can be redacted too.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        for secret in self.secrets:
            message = message.replace(secret, REDACTED)
            if record.exc_text:
                record.exc_text = record.exc_text.replace(secret, REDACTED)
        record.msg, record.args = message, None
        return True


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, logger, message, pid (and the traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": os.getpid(),
        }
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def setup(level: int = logging.INFO, secrets: Iterable[str] = (), fmt: str = "text") -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(RedactSecrets(secrets))
    root.addHandler(handler)
    root.setLevel(level)
    # urllib3 logs full URLs at DEBUG (query strings hold SOQL); keep it at WARNING.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    # APScheduler logs every job start and end at INFO; syncd logs its own one-line run summary.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def add_secrets(secrets: Iterable[str]) -> None:
    """Extend redaction to secrets learnt after setup (e.g. once the configuration is read)."""
    for handler in logging.getLogger().handlers:
        for f in handler.filters:
            if isinstance(f, RedactSecrets):
                f.secrets = sorted(set(f.secrets) | {s for s in secrets if len(s) >= 4}, key=len, reverse=True)
