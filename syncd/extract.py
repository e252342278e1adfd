"""Read one window of Lead changes page by page, with the retry-from-position policy.

Only an applied page's position is ever committed. Whatever goes wrong with the next page (a dead
locator, a garbled or cut answer, a page that says more follows but names no next page) is answered
by re-querying the window from the committed position; a saved ``nextRecordsUrl`` is tried first on
resume while it is young enough to be alive. ``QUERY_TIMEOUT`` halves the part of the window asked
for (``syncd/window_parts.py``). A window's ends come from Salesforce's clock, never the host's.

What the window query cannot show is read when its pages are done (``syncd/leave.py``): the delete
log for its span, the masters of merged leads, and on a full refresh every tracked lead it did not
return, looked up by id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from syncd.context import RunContext
from syncd.errors import AnswerCut, ApiLimitReached, LocatorExpired, ProtocolError, SessionExpired
from syncd.failpoints import failpoint
from syncd.leave import Apply, Leavers
from syncd.salesforce import Page, SalesforceClient
from syncd.window import Window
from syncd.window_parts import Parts, salesforce_now

log = logging.getLogger(__name__)
# A saved nextRecordsUrl older than this is not worth trying: locators may die after 15 idle minutes.
LOCATOR_MAX_AGE = timedelta(minutes=10)
# A garbled page, or one cut short: the window is re-queried from the saved position, this many
# times in a row at most.
MAX_PAGE_FAILURES = 3


class Extractor:
    def __init__(self, ctx: RunContext, sf: SalesforceClient, fields: list[str]) -> None:
        self.ctx = ctx
        self.sf = sf
        self.fields = fields
        self._failures = 0  # garbled or cut pages in a row
        self.parts = Parts()
        self.window_id: int | None = None  # the run that opened the window being read
        self.full = False  # that window is a full refresh

    def open(self) -> tuple[Window, bool]:
        """The saved window (resumed = True), or a new one fixed now and saved before any read.

        A new window ends at Salesforce's time minus the lag. It is a full refresh (no lower bound) on
        the first run, after ``syncd reset`` or a gap in the delete log, and every
        ``schedule.full_refresh_days``.
        """
        st = self.ctx.store.sync_state()
        if st.in_window:
            assert st.window_end is not None
            log.info("resuming %s [%s, %s) at %s", "full refresh" if st.window_full else "window", st.window_start,
                     st.window_end, st.pos_ts or "its start")
            self.window_id, self.full = st.window_run_id, st.window_is_full
            return Window.resume(st.window_start, st.window_end, st.pos_ts, st.pos_id), True
        sf = self.ctx.cfg.salesforce
        now = salesforce_now(self.ctx, self.sf, st.watermark)
        days = self.ctx.cfg.schedule.full_refresh_days
        if st.last_full_refresh is None and st.watermark is not None:
            self.ctx.store.start_refresh_clock(now)
        due_at = st.full_refresh_due_at(days)
        due = due_at is not None and now >= due_at
        self.full = st.watermark is None or st.refresh_reason is not None or due
        window = Window.open(st.watermark, now, lookback_seconds=sf.lookback_seconds, lag_seconds=sf.lag_seconds)
        if self.full:
            window = replace(window, start=None)
            log.info("full refresh of the org (%s)", st.refresh_reason or ("first run" if st.watermark is None
                                                                             else f"every {days:g} days"))
        self.window_id = self.ctx.run_id
        self.ctx.store.open_window(window.start, window.end, self.ctx.run_id, self.full)
        return window, False

    def _saved(self, window: Window) -> Window:
        st = self.ctx.store.sync_state()
        return Window.resume(window.start, window.end, st.pos_ts, st.pos_id)

    def _requery(self, window: Window) -> Page:
        """The window again, from just after the last (SystemModstamp, Id) committed (in parts after
        QUERY_TIMEOUT)."""
        return self.parts.query(self.sf, self._saved(window), self.fields)

    def _first_page(self, window: Window) -> Page:
        st = self.ctx.store.sync_state()
        if st.next_url and st.next_url_at and self.ctx.now() - st.next_url_at < LOCATOR_MAX_AGE:
            try:
                return self.sf.next_page(st.next_url)
            except (LocatorExpired, SessionExpired, ProtocolError, AnswerCut) as e:
                log.info("saved query locator is not usable (%s); re-reading from the saved position",
                         e.code or e.status or type(e).__name__)
        return self._fetch(window, None)

    def _fetch(self, window: Window, next_url: str | None) -> Page:
        """The next page (or the window from the saved position), re-querying on the failures above.

        Failures count across re-queries until a next page reads whole: a window whose pages keep
        coming back garbled ends the run after ``MAX_PAGE_FAILURES`` in a row.
        """
        while True:
            try:
                page = self.sf.next_page(next_url) if next_url else self._requery(window)
            except LocatorExpired:
                log.info("query locator expired mid-window; re-reading from the saved position")
                next_url = None
                continue
            except (ProtocolError, AnswerCut) as e:
                self._failures += 1
                if self._failures >= MAX_PAGE_FAILURES:
                    raise
                log.warning("%s; re-reading from the saved position", e)
                next_url = None
                continue
            if next_url:
                self._failures = 0
            return page

    def read(self, apply: Apply, after_page: Callable[[], None]) -> bool:
        """Read one window to its end and move the watermark; True if it was a resumed window.

        ``apply`` commits a page's effects with the position it reached and returns the window there
        (with no window: rows read by id, the position stays); ``after_page`` then runs (staging and
        delivery between pages).
        """
        ctx = self.ctx
        window, resumed = self.open()
        ctx.store.set_run_window(ctx.run_id, window.start, window.end)
        leavers = Leavers(ctx, self.sf, self.fields, apply)
        self.parts = Parts()
        page = self._first_page(window)
        ctx.progress.total = page.total_size
        while True:
            leavers.note(page.records)
            # Inside a part, a page's nextRecordsUrl is not saved: a resumed run must not take the part's
            # end for the window's.
            reached = apply(replace(page, next_url=None) if self.parts.until else page, window)
            assert reached is not None
            window = reached
            failpoint("page_committed")
            after_page()
            if page.next_url is None:
                if not self.parts.next_part(window):
                    break
                page = self._fetch(window, None)
                continue
            if self.sf.usage_exceeded():
                used, limit = self.sf.api_usage or (0, 0)
                raise ApiLimitReached(
                    f"API usage {used}/{limit} passed max_api_usage_percent="
                    f"{ctx.cfg.salesforce.max_api_usage_percent}; stopped reading, the window resumes next run",
                    remote="salesforce")
            ctx.tick()
            page = self._fetch(window, page.next_url)
        leavers.finish(window, self.full, self.window_id)
        after_page()
        failpoint("before_watermark")
        if not ctx.store.close_window(window.end):
            log.warning("the window was reset while this run read it; the watermark stays where reset put it")
        failpoint("after_watermark")
        return resumed
