"""The extraction window as one pure object (the cursor spec, in the manner of dlt's ``Incremental``).

A window is ``start <= SystemModstamp < end`` (``start`` None: the whole org), read in
``(SystemModstamp, Id)`` order; its position is the last ``(SystemModstamp, Id)`` committed.

- **open**: ``end`` = now - lag, to the whole second (SOQL compares seconds), never before the
  watermark; ``start`` = watermark - lookback (rows can appear late with an earlier stamp).
- **resume**: a saved window keeps its bounds; a re-query continues strictly after its position,
  so no committed row is read twice even when more rows share one second than fit on a page.
- **advance**: a page moves the position to its last row that has a usable Id and stamp; a page
  without one leaves it where it was.
- **close** (the store's ``close_window``): the watermark becomes ``end``; it never moves backwards.

No I/O, no clock of its own: everything is passed in.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from syncd.clock import floor_second
from syncd.soql import window_query

log = logging.getLogger(__name__)


# How Salesforce writes every datetime it answers with: checked as strictly as strptime would, then
# read by fromisoformat (ten times faster); strptime stays for any other form it accepts.
_SF_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(?:Z|\+0000)", re.ASCII)


def parse_sf_datetime(value: str) -> datetime:
    """``2024-05-15T10:30:00.000+0000`` (or with ``Z``) to an aware UTC datetime."""
    if _SF_UTC.fullmatch(value):
        return datetime.fromisoformat(value[:23] + "+00:00")
    return datetime.strptime(value.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(timezone.utc)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class Window:
    start: datetime | None
    end: datetime
    pos_ts: str | None = None  # ISO SystemModstamp of the last row committed
    pos_id: str | None = None

    @classmethod
    def open(cls, watermark: datetime | None, now: datetime, *, lookback_seconds: int, lag_seconds: int) -> Window:
        end = floor_second(now - timedelta(seconds=lag_seconds))
        if watermark is None:
            return cls(None, end)
        return cls(watermark - timedelta(seconds=lookback_seconds), max(end, watermark))

    @classmethod
    def resume(cls, start: datetime | None, end: datetime, pos_ts: str | None, pos_id: str | None) -> Window:
        """A saved window: its bounds as they were fixed, its position as committed."""
        return cls(start, end, pos_ts, pos_id)

    @property
    def position(self) -> tuple[str | None, str | None]:
        return self.pos_ts, self.pos_id

    @property
    def after(self) -> tuple[datetime, str] | None:
        """Where a re-query continues: strictly after this (SystemModstamp, Id)."""
        if self.pos_ts and self.pos_id:
            return datetime.fromisoformat(self.pos_ts), self.pos_id
        return None

    def query(self, fields: Iterable[str], until: datetime | None = None, *, ordered: bool = True) -> str:
        """The window's query from its position; ``until`` (before ``end``) reads only a first part of
        it, after Salesforce answered QUERY_TIMEOUT for the whole; ``ordered`` False for a Bulk job."""
        return window_query(fields, self.start, min(until, self.end) if until else self.end, self.after, ordered)

    def advance(self, records: Sequence[Any]) -> Window:
        """The window with its position at the last row of ``records`` that has both keys usable."""
        for record in reversed(records):
            lead_id = record.get("Id") if isinstance(record, dict) else None
            # An Id no UTF-8 text can hold (a lone surrogate) cannot be saved as a position.
            if not isinstance(lead_id, str) or not _encodable(lead_id):
                continue
            stamp = record.get("SystemModstamp")
            if not isinstance(stamp, str):
                continue
            try:
                return replace(self, pos_ts=parse_sf_datetime(stamp).isoformat(), pos_id=record["Id"])
            except ValueError:
                log.warning("a record has an unreadable SystemModstamp; the position skips it")
        return self
