"""Two facts about a window that come from Salesforce, not from the host: what time it is, and how much
of the window one query may ask for.

- **Salesforce's time.** A window ends at Salesforce's clock minus the lag (from the ``Date`` header of
  its answers). A host clock a day fast would otherwise put the watermark a day ahead and lose every
  change made before the clock is fixed; a Salesforce clock behind the host would lose the changes of
  the difference. A saved watermark ahead of Salesforce's time is refused, naming both times.
- **Parts.** ``QUERY_TIMEOUT`` on a large org halves the span asked for (from the committed position to
  the part's end, as tap-salesforce does); when a part is read, the next one of the same length
  follows, until the window's end. Nothing of a part is saved but the position, so a resumed run asks
  for the rest of the window again and splits again only if Salesforce times out again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from syncd.clock import floor_second
from syncd.context import RunContext
from syncd.errors import QueryTimeout, StateError
from syncd.salesforce import Page, SalesforceClient
from syncd.window import Window

log = logging.getLogger(__name__)
# A whole-org read has no lower bound: halving starts from a time before any org existed.
EPOCH = datetime(1999, 1, 1, tzinfo=timezone.utc)
# The Date header is whole seconds: a smaller difference between the clocks is not a measurement.
CLOCK_RESOLUTION = timedelta(seconds=2)
SKEW_WARNING = timedelta(seconds=60)


def salesforce_now(ctx: RunContext, sf: SalesforceClient, watermark: datetime | None) -> datetime:
    """Salesforce's time now (authenticating first, whose answer tells it), the skew noted in the state."""
    if sf.clock_offset is None:
        sf.ensure_session()
    host = ctx.now()
    offset = sf.clock_offset or timedelta(0)
    if abs(offset) < CLOCK_RESOLUTION:
        offset = timedelta(0)
    now = host + offset
    ctx.store.note_skew(offset.total_seconds(), host)
    if abs(offset) >= SKEW_WARNING:
        log.warning("Salesforce's clock is %+.0f s from this host's; windows follow Salesforce's (fix the host's "
                    "clock: NTP)", offset.total_seconds())
    if watermark is not None and watermark > now + CLOCK_RESOLUTION:
        raise StateError(
            f"the saved watermark {watermark.isoformat()} is ahead of Salesforce's time {now.isoformat()} (this "
            f"host says {host.isoformat()}): it was saved by a run whose clock was ahead, and reading from it "
            "would skip every change made before then. Run `syncd reset` to re-read the whole org (only what "
            "differs is sent)")
    return now


class Parts:
    """The end of the part of the window being read, after QUERY_TIMEOUT (None: the whole window)."""

    def __init__(self) -> None:
        self.until: datetime | None = None
        self.span: timedelta | None = None
        self.floor: datetime | None = None  # the end of the last part read: all before it is read

    def query(self, sf: SalesforceClient, window: Window, fields: list[str]) -> Page:
        """The window from its position up to the part's end, halving that end on every QUERY_TIMEOUT."""
        while True:
            try:
                return sf.query_all(window.query(fields, self.until))
            except QueryTimeout:
                after = window.after
                lower = max(t for t in (after[0] if after else None, self.floor, window.start, EPOCH) if t is not None)
                upper = self.until or window.end
                middle = floor_second(lower + (upper - lower) / 2)
                if middle <= lower:
                    raise QueryTimeout(f"Salesforce timed out a query of one second of changes ({lower.isoformat()}); "
                                       "it cannot be split further: ask Salesforce support about the org's query "
                                       "performance", remote="salesforce", code="QUERY_TIMEOUT") from None
                log.warning("salesforce: QUERY_TIMEOUT; reading the window in parts, up to %s first",
                            middle.isoformat())
                self.until, self.span = middle, middle - lower

    def next_part(self, window: Window) -> bool:
        """After a part is read: True (and the next part set) while the window has more; False at its end."""
        if self.until is None or self.until >= window.end:
            self.until = None
            return False
        assert self.span is not None
        self.floor = self.until
        self.until = min(window.end, self.until + self.span)
        return True
