"""Read one window of Lead changes page by page, with the retry-from-position policy.

Only an applied page's position is ever committed. Whatever goes wrong with the next page (a dead
locator, a garbled or cut answer, a page that says more follows but names no next page) is answered
by re-querying the window from the committed position; a saved ``nextRecordsUrl`` is tried first on
resume while it is young enough to be alive. ``QUERY_TIMEOUT`` halves the part of the window asked
for (``syncd/window_parts.py``). A window's ends come from Salesforce's clock, never the host's.

The next page is fetched while the current one is applied (``syncd/ahead.py``): one fetch in flight,
each begun as the page before lands, its outcome taken as that page's first attempt.
``salesforce.read_api`` may have a Bulk API job read the window instead (``syncd/bulk_read.py``):
``bulk`` always, ``auto`` on a full refresh or when the first REST page counts more rows than
``bulk_threshold``; a job that is lost leaves the REST path to read the window from its saved position.

What the window query cannot show is read when its pages are done (``syncd/leave.py``): the delete
log for its span, the masters of merged leads, and on a full refresh every tracked lead it did not
return, looked up by id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from datetime import timedelta

from syncd.ahead import Ahead
from syncd.bulk_read import BulkRead
from syncd.context import RunContext
from syncd.errors import AnswerCut, ApiLimitReached, LocatorExpired, ProtocolError, SessionExpired
from syncd.failpoints import failpoint
from syncd.leave import Apply, Leavers
from syncd.salesforce import Page, SalesforceClient
from syncd.salesforce.client import Fetched
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
        self.ahead = Ahead()  # the next page, fetched while this one is applied
        # The page after the one taken last, begun before that one was parsed, from the URL its bytes
        # named; used once the parsed page confirms the URL.
        self._guess: tuple[str, Future[Fetched]] | None = None
        self._taken: Future[Fetched] | None = None  # the fetch of the page taken last, until it is settled

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

    def _fetch(self, window: Window, next_url: str | None, ahead: Future[Fetched] | None = None) -> Page:
        """The next page (or the window from the saved position), re-querying on the failures above.

        ``ahead`` is that next page's fetch, begun while the page before was applied: its outcome is
        taken as the first attempt's. Failures count across re-queries until a next page reads whole:
        a window whose pages keep coming back garbled ends the run after ``MAX_PAGE_FAILURES`` in a row.
        """
        while True:
            try:
                if ahead is not None:
                    taken, ahead = ahead, None
                    page = self._parse(taken)
                else:
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

    def _parse(self, taken: Future[Fetched]) -> Page:
        """A page fetched ahead, parsed here. The fetch of the page after it, from the URL its bytes name,
        is the one the chain began when it landed, or is begun now, before the parse: the parse (the
        next URL is inside the page) is not in the chain of calls."""
        fetched = self.ahead.take(taken)
        self._taken = taken
        if fetched.peeked is not None:
            follow = self.ahead.followed(taken)
            if follow is None and self._next_of(fetched):
                follow = self._chain(fetched.peeked)
            if follow is not None:
                self._guess = (fetched.peeked, follow)
        try:
            return self.sf.page_of(fetched)
        except Exception:
            self._forget_guess()
            raise

    def _ahead_of(self, page: Page) -> Future[Fetched] | None:
        """The fetch of the page after ``page``: the one begun from its peeked URL if that is the URL,
        else one begun now (None: there is no next page, or the usage share is spent)."""
        guess, self._guess = self._guess, None
        taken, self._taken = self._taken, None
        if guess is not None and guess[0] != page.next_url:
            log.debug("the next URL a page's bytes named was not its nextRecordsUrl; fetching the right one")
            self.ahead.drop()  # before the page is settled: the chain must not go on from the wrong page
            guess = None
        if taken is not None:
            self.ahead.settled(taken)
        if guess is not None:
            return guess[1]
        if page.next_url and not self.sf.usage_exceeded():
            return self._chain(page.next_url)
        return None

    def _chain(self, url: str) -> Future[Fetched]:
        return self.ahead.chain(self.sf.fetch_next, url, self._next_of)

    def _next_of(self, fetched: Fetched) -> str | None:
        """The URL a fetched page's bytes name, to fetch next (None: the last page, or the usage share
        is spent)."""
        return fetched.peeked if fetched.peeked and not self.sf.usage_exceeded() else None

    def _forget_guess(self) -> None:
        """The page is read again: no call may be in flight meanwhile, and the chain starts afresh (a
        page taken and never settled would otherwise hold it back for the rest of the window)."""
        self._guess = self._taken = None
        self.ahead.drop()

    def _bulk_first(self) -> bool:
        """Read this window with a Bulk job before any REST page: ``bulk``, a saved job, or ``auto`` on a
        full refresh (the first run included)."""
        api = self.ctx.cfg.salesforce.read_api
        return api == "bulk" or (api == "auto" and (self.full or self.ctx.store.sync_state().bulk_job_id is not None))

    def _too_big(self, page: Page) -> bool:
        """``auto``: a window whose first REST page says it holds more rows than ``bulk_threshold``."""
        sf = self.ctx.cfg.salesforce
        if sf.read_api != "auto" or page.next_url is None or page.total_size <= sf.bulk_threshold:
            return False
        log.info("the window holds %d rows, more than salesforce.bulk_threshold=%d: reading it with Bulk API 2.0",
                 page.total_size, sf.bulk_threshold)
        return True

    def read(self, apply: Apply, after_page: Callable[[], None]) -> bool:
        """Read one window to its end and move the watermark; True if it was a resumed window.

        ``apply`` commits a page's effects with the position it reached and returns the window there
        (with no window: rows read by id or from a Bulk job, the position stays); ``after_page`` then
        runs (staging and delivery between pages).
        """
        ctx = self.ctx
        window, resumed = self.open()
        ctx.store.set_run_window(ctx.run_id, window.start, window.end)
        leavers = Leavers(ctx, self.sf, self.fields, apply)
        self.parts = Parts()
        self._guess = self._taken = None
        with Ahead() as self.ahead:
            bulk = BulkRead(ctx, self.sf, self.fields, self.ahead)
            st = ctx.store.sync_state()
            if st.bulk_job_id is not None and ctx.cfg.salesforce.read_api == "rest":
                ctx.store.save_bulk(None, None, None)  # read_api changed since the job was made
            if not (self._bulk_first() and bulk.read(window, apply, after_page, leavers)):
                page = self._first_page(window)
                # A Bulk job lost after this page leaves it still good to apply (its locator may have died).
                if not (self._too_big(page) and bulk.read(window, apply, after_page, leavers)):
                    window = self._pages(window, page, apply, after_page, leavers)
        leavers.finish(window, self.full, self.window_id)
        after_page()
        failpoint("before_watermark")
        if not ctx.store.close_window(window.end):
            log.warning("the window was reset while this run read it; the watermark stays where reset put it")
        failpoint("after_watermark")
        return resumed

    def _pages(self, window: Window, page: Page, apply: Apply, after_page: Callable[[], None],
               leavers: Leavers) -> Window:
        """Apply REST pages to the window's end, each next page fetched while the one before is applied."""
        ctx = self.ctx
        ctx.progress.total = page.total_size
        while True:
            leavers.note(page.records)
            # The next page comes while this one is applied, unless the usage share is spent.
            ahead = self._ahead_of(page)
            # Inside a part, a page's nextRecordsUrl is not saved: a resumed run must not take the part's
            # end for the window's.
            reached = apply(replace(page, next_url=None) if self.parts.until else page, window)
            assert reached is not None
            window = reached
            failpoint("page_committed")
            after_page()
            if page.next_url is None:
                if not self.parts.next_part(window):
                    return window
                page = self._fetch(window, None)
                continue
            if ahead is None:
                used, limit = self.sf.api_usage or (0, 0)
                raise ApiLimitReached(
                    f"API usage {used}/{limit} passed max_api_usage_percent="
                    f"{ctx.cfg.salesforce.max_api_usage_percent}; stopped reading, the window resumes next run",
                    remote="salesforce")
            ctx.tick()
            page = self._fetch(window, page.next_url, ahead)
