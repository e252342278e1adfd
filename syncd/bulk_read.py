"""Read a window with a Bulk API 2.0 ``queryAll`` job instead of REST pages (``salesforce.read_api``).

A Bulk read is a set, not a sequence: its position is the job and the locator of the next results
chunk, saved in ``sync_state`` (with the API version the job was made with). The order of work:

1. the job is made from the window's query (from the committed position, without ORDER BY) and its id
   saved before anything else; a crash before the save makes a new job next time (the orphan expires);
2. its state is polled (waits growing to 10 s, the run's heartbeat and stop request between);
3. each chunk is fetched (the next one ahead, in the background) and applied page by page through the
   same path as REST pages, each page in its transaction; the next chunk's locator is saved once the
   whole chunk is applied. A crash anywhere re-reads at most the chunk it was in (applying a page
   twice changes nothing); ``null`` saved as the locator means every chunk was applied.

The window's (SystemModstamp, Id) position does not move while a job is read, so a job that fails, is
aborted, or whose results expired (or would need another API version) is forgotten and the window
read by REST from that saved position: rows already applied from the job are read again and
change nothing. A chunk that arrives garbled or cut is fetched again, three times in a row at most.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from syncd.ahead import Ahead
from syncd.context import RunContext
from syncd.errors import AnswerCut, ApiLimitReached, BulkJobLost, ProtocolError
from syncd.failpoints import failpoint
from syncd.leave import Apply, Leavers
from syncd.salesforce import Page, SalesforceClient
from syncd.salesforce.bulk import POLL_WAITS, Job
from syncd.window import Window

log = logging.getLogger(__name__)
DONE = "null"  # the locator Salesforce names after the last chunk: saved, every chunk was applied
# A job still not complete after this long is given up, and the window read by REST.
JOB_TIMEOUT_SECONDS = 4 * 3600.0
MAX_CHUNK_FAILURES = 3


class BulkRead:
    def __init__(self, ctx: RunContext, sf: SalesforceClient, fields: list[str], ahead: Ahead) -> None:
        self.ctx = ctx
        self.sf = sf
        self.fields = fields
        self.ahead = ahead

    def read(self, window: Window, apply: Apply, after_page: Callable[[], None], leavers: Leavers) -> bool:
        """Apply the window's rows from a Bulk job; False (the job forgotten) when it was lost."""
        try:
            job, locator = self._job(window)
            if locator != DONE:
                self._wait(job)
                self._chunks(job, locator, apply, after_page, leavers)
            return True
        except BulkJobLost as e:
            log.warning("%s; reading the window by REST from its saved position instead", e)
            self.ahead.drop()
            self.ctx.store.save_bulk(None, None, None)
            return False

    def _job(self, window: Window) -> tuple[Job, str | None]:
        st = self.ctx.store.sync_state()
        if st.bulk_job_id and st.bulk_api_version:
            log.info("resuming Bulk API job %s at %s", st.bulk_job_id,
                     "its end" if st.bulk_locator == DONE else "its next chunk" if st.bulk_locator else "its start")
            return Job(st.bulk_job_id, st.bulk_api_version), st.bulk_locator
        job = self.sf.bulk.create(window.query(self.fields, ordered=False))
        self.ctx.store.save_bulk(job.id, job.version, None)
        log.info("reading the window with Bulk API job %s", job.id)
        failpoint("bulk_job_saved")
        return job, None

    def _wait(self, job: Job) -> None:
        waits, started = list(POLL_WAITS), time.monotonic()
        while True:
            state, count = self.sf.bulk.state(job)
            if state == "JobComplete":
                if count is not None:
                    self.ctx.progress.total = count
                return
            if time.monotonic() - started > JOB_TIMEOUT_SECONDS:
                raise BulkJobLost(f"the Bulk API job {job.id} is still {state} after {JOB_TIMEOUT_SECONDS / 3600:.0f} "
                                  "hours", remote="salesforce")
            self.ctx.tick()
            self.ctx.sleep(waits.pop(0) if len(waits) > 1 else waits[0])

    def _chunks(self, job: Job, locator: str | None, apply: Apply, after_page: Callable[[], None],
                leavers: Leavers) -> None:
        ctx, types, failures = self.ctx, self.sf.bulk.types(), 0
        pending = self.ahead.start(self.sf.bulk.chunk, job, locator)
        while True:
            try:
                chunk = self.ahead.take(pending)
                nxt = chunk.next_locator
                # The next chunk comes while this one is applied (unless the usage share is spent).
                ahead = self.ahead.start(self.sf.bulk.chunk, job, nxt) if nxt and not self.sf.usage_exceeded() else None
                for records in chunk.pages(self.fields, types, ctx.cfg.salesforce.page_size):
                    leavers.note(records)
                    apply(Page(records, None, ctx.progress.total, chunk.fetched_at), None)
                    failpoint("page_committed")
                    after_page()
                    ctx.tick()
            except (ProtocolError, AnswerCut) as e:
                failures += 1
                if failures >= MAX_CHUNK_FAILURES:
                    raise
                log.warning("%s; fetching that Bulk results chunk again", e)
                self.ahead.drop()
                pending = self.ahead.start(self.sf.bulk.chunk, job, locator)
                continue
            failures = 0
            ctx.store.save_bulk(job.id, job.version, nxt or DONE)
            failpoint("bulk_chunk_committed")
            if ahead is None:
                if nxt is None:
                    return
                used, limit = self.sf.api_usage or (0, 0)
                raise ApiLimitReached(
                    f"API usage {used}/{limit} passed max_api_usage_percent="
                    f"{ctx.cfg.salesforce.max_api_usage_percent}; stopped reading, the Bulk job resumes at its "
                    "next chunk next run", remote="salesforce")
            pending, locator = ahead, nxt
