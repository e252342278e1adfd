"""Logging setup: readable lines on a terminal or JSON lines for journald and log shippers, and every
secret in play redacted from every record before any formatter sees it."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any, ClassVar

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


# What a record may carry as structured fields (``log.info(..., extra={"event": ..., "batch_id": ...})``).
FIELDS = ("event", "run_id", "batch_id", "job_id", "counts", "error")
# syslog priorities, as journald reads them from a "<N>" line prefix (SyslogLevelPrefix=yes, the default).
PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
_run: ContextVar[int | None] = ContextVar("syncd_run_id", default=None)


@contextmanager
def run_scope(run_id: int) -> Iterator[None]:
    """Every record logged inside carries ``run_id`` (the engine opens one per run)."""
    token = _run.set(run_id)
    try:
        yield
    finally:
        _run.reset(token)


class RunId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "run_id", None) is None:
            record.run_id = _run.get()
        return True


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, logger, message, pid, ``event`` (the record's, else
    ``log``) and whichever of run_id, batch_id, job_id, counts and error it carries (and the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or "log",
            "message": record.getMessage(),
            "pid": os.getpid(),
        }
        for name in FIELDS[1:]:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


class Priority(logging.Formatter):
    """Prefixes each line with its syslog priority for journald, so ``journalctl -p err`` finds errors."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)}>"
        return prefix + self.inner.format(record).replace("\n", "\n" + prefix)


class ConsoleLines(logging.Handler):
    """Writes through the Rich console that draws the progress bar, so a line never overwrites the bar
    (and colour follows the console: none under NO_COLOR or without a terminal)."""

    STYLES: ClassVar[dict[int, str]] = {logging.WARNING: "yellow", logging.ERROR: "bold red",
                                        logging.CRITICAL: "bold red"}

    def __init__(self, console: Any) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            self.console.print(line, style=self.STYLES.get(record.levelno), markup=False, highlight=False,
                               soft_wrap=True)
        except Exception:  # a logging failure must never end a run
            self.handleError(record)


def under_journald(stream: Any = None, env: dict[str, str] | None = None) -> bool:
    """``$JOURNAL_STREAM`` names the stream systemd connected to the journal: is it this one?"""
    found = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return found == f"{st.st_dev}:{st.st_ino}"


def setup(level: int = logging.INFO, secrets: Iterable[str] = (), fmt: str = "text", console: Any = None) -> None:
    """``console``: a Rich console to write text lines through (the terminal's, beside a progress bar)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    formatter: logging.Formatter = JsonLines() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    handler: logging.Handler
    if console is not None and fmt == "text":
        handler = ConsoleLines(console)
    else:
        handler = logging.StreamHandler(sys.stderr)
        if under_journald():
            formatter = Priority(formatter)
    handler.setFormatter(formatter)
    handler.addFilter(RedactSecrets(secrets))
    handler.addFilter(RunId())
    root.addHandler(handler)
    root.setLevel(level)
    # urllib3 logs full URLs at DEBUG (query strings hold SOQL), and its own retry warnings; syncd logs
    # each retry itself (syncd.http), so only urllib3's errors pass.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    # APScheduler logs every job start and end at INFO; syncd logs its own one-line run summary.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def add_secrets(secrets: Iterable[str]) -> None:
    """Extend redaction to secrets learnt after setup (e.g. once the configuration is read)."""
    for handler in logging.getLogger().handlers:
        for f in handler.filters:
            if isinstance(f, RedactSecrets):
                f.secrets = sorted(set(f.secrets) | {s for s in secrets if len(s) >= 4}, key=len, reverse=True)
