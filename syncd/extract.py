"""Read one window of Lead changes page by page, with the retry-from-position policy.

Only an applied page's position is ever committed. Whatever goes wrong with the next page (a dead
locator, a garbled or cut answer, a page that says more follows but names no next page) is answered
by re-querying the window from the committed position; a saved ``nextRecordsUrl`` is tried first on
resume while it is young enough to be alive.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from syncd.context import RunContext
from syncd.errors import AnswerCut, ApiLimitReached, LocatorExpired, ProtocolError, SessionExpired
from syncd.failpoints import failpoint
from syncd.salesforce import Page, SalesforceClient
from syncd.window import Window

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

    def open(self) -> tuple[Window, bool]:
        """The saved window (resumed = True), or a new one fixed now and saved before any read."""
        st = self.ctx.store.sync_state()
        if st.in_window:
            assert st.window_end is not None
            log.info("resuming window [%s, %s) at %s", st.window_start, st.window_end, st.pos_ts or "its start")
            return Window.resume(st.window_start, st.window_end, st.pos_ts, st.pos_id), True
        sf = self.ctx.cfg.salesforce
        window = Window.open(st.watermark, self.ctx.now(), lookback_seconds=sf.lookback_seconds,
                             lag_seconds=sf.lag_seconds)
        self.ctx.store.open_window(window.start, window.end, self.ctx.run_id)
        return window, False

    def _saved(self, window: Window) -> Window:
        st = self.ctx.store.sync_state()
        return Window.resume(window.start, window.end, st.pos_ts, st.pos_id)

    def _requery(self, window: Window) -> Page:
        """The window again, from just after the last (SystemModstamp, Id) committed."""
        return self.sf.query_all(self._saved(window).query(self.fields, self.ctx.cfg.salesforce.where))

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

    def read(self, apply: Callable[[Page, Window], Window], after_page: Callable[[], None]) -> bool:
        """Read one window to its end and move the watermark; True if it was a resumed window.

        ``apply`` commits a page's effects with the position it reached and returns the window there;
        ``after_page`` then runs (staging and delivery between pages).
        """
        ctx = self.ctx
        window, resumed = self.open()
        ctx.store.set_run_window(ctx.run_id, window.start, window.end)
        page = self._first_page(window)
        ctx.progress.total = page.total_size
        while True:
            window = apply(page, window)
            failpoint("page_committed")
            after_page()
            if page.next_url is None:
                break
            if self.sf.usage_exceeded():
                used, limit = self.sf.api_usage or (0, 0)
                raise ApiLimitReached(
                    f"API usage {used}/{limit} passed max_api_usage_percent="
                    f"{ctx.cfg.salesforce.max_api_usage_percent}; stopped reading, the window resumes next run",
                    remote="salesforce")
            ctx.tick()
            page = self._fetch(window, page.next_url)
        failpoint("before_watermark")
        if not ctx.store.close_window(window.end):
            log.warning("the window was reset while this run read it; the watermark stays where reset put it")
        failpoint("after_watermark")
        return resumed
