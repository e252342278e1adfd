"""One sync run as a resumable state machine.

Order of work in every run (DESIGN.md, "Resume"): poll jobs left ``submitted``, upload batches left
``staged``, continue the saved window (or open a new one), stage what became dirty, and drain the
outbox. Every boundary is a named failpoint; every step's effect is committed before the next
remote call, so a crash anywhere resumes from the last commit.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from syncd.config import Config
from syncd.cxone import ContactSink
from syncd.errors import (
    AnswerCut,
    ApiLimitReached,
    LocatorExpired,
    ProtocolError,
    RemoteRejected,
    SessionExpired,
    SyncdError,
    TransientError,
)
from syncd.failpoints import failpoint
from syncd.salesforce import Page, SalesforceClient, parse_sf_datetime
from syncd.soql import select_fields, window_query
from syncd.store import Batch, LeadUpdate, Store
from syncd.transform import Contact, Rules, Skip, transform

log = logging.getLogger(__name__)
# A saved nextRecordsUrl older than this is not worth trying: locators may die after 15 idle minutes.
LOCATOR_MAX_AGE = timedelta(minutes=10)
HEARTBEAT_EVERY = 2.0
# Job polling: the first poll after about a second (jobs can be quick), then doubling while every
# job keeps waiting, up to MAX_POLL_GROWTH times cxone.poll_interval_seconds; back to the start when one closes.
FIRST_POLL = 1.0
MAX_POLL_GROWTH = 6.0
# Polling is harmless to repeat, so a garbled or failed poll answer is tried again later in the run;
# only this many in a row (each already retried by the HTTP layer) end the run.
MAX_POLL_FAILURES = 5
# Likewise a garbled page, or one cut short: the window is re-queried from the saved position, this many
# times in a row at most.
MAX_PAGE_FAILURES = 3
# Stage-and-deliver passes at the end of a run: a second one only for leads an ack left dirty.
MAX_DELIVERY_PASSES = 3


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class StopRequested(SyncdError):
    """The daemon asked the run to stop at the next safe point."""


@dataclass
class Progress:
    read: int = 0
    total: int = 0
    sent: int = 0
    removed: int = 0
    in_flight: int = 0
    phase: str = "starting"
    api_usage: tuple[int, int] | None = None  # Salesforce (used, limit) from Sforce-Limit-Info


@dataclass
class RunResult:
    run_id: int
    status: str
    error: str | None
    read: int
    sent: int
    removed: int
    skipped: int
    window_start: str | None
    window_end: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def floor_second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


class Engine:
    def __init__(
        self,
        config: Config,
        store: Store,
        salesforce: SalesforceClient,
        sink: ContactSink,
        *,
        now: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        on_progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.cfg = config
        self.store = store
        self.sf = salesforce
        self.sink = sink
        self.now = now
        self.sleep = sleep
        self.on_progress = on_progress
        self.should_stop = should_stop
        sf = config.salesforce
        self.rules = Rules(frozenset(sf.eligible_statuses), tuple(sf.phone_fields), sf.default_region)
        self.fields = select_fields(sf.phone_fields)
        self.progress = Progress()
        self.run_id = 0
        self._seq = 0
        # Per kind, at most this many leads wait to be staged (absent: unknown). Counting the pending
        # index on every page cost more than the rest of staging; a page adds at most its leads of
        # that kind. A batch that closes (ack, failure, removal) can make leads pending again, so
        # the bounds hold only while the store's count of closed batches stays where it was.
        self._pending_at_most: dict[str, int] = {}
        self._bounds_at_closed = store.batches_closed
        self._last_beat = 0.0
        self._next_poll = 0.0
        self._poll_wait = self._first_poll_wait()
        self._poll_failures = 0

    # -- the run ----------------------------------------------------------------------------------
    def run(self) -> RunResult:
        started = time.monotonic()
        self.run_id = self.store.start_run(os.getpid(), self.now())
        status, error = "ok", None
        try:
            self._phase("resuming")
            self._pump(wait=False)
            stopped: ApiLimitReached | None = None
            try:
                if self._read_window():
                    # That was a window an earlier run left; now read up to the present as well.
                    self._read_window()
            except ApiLimitReached as e:
                # Stop reading at once, but deliver what was already read: CXone is not the one limited.
                log.warning("stopped reading Salesforce: %s", e)
                stopped = e
            self._phase("delivering")
            for _ in range(MAX_DELIVERY_PASSES):
                self._stage(final=True)
                self._pump(wait=True)
                # A job acked in that wait leaves dirty the leads this run read as changed while they
                # were in flight (a killed run's batch): they go now, not a run later. Leads of a
                # failed batch alone start no pass; they go again next run.
                if not self.store.changed_in_flight(self._kinds()):
                    break
            self._report_unremovable()
            if stopped is not None:
                raise stopped
        except StopRequested:
            status, error = "interrupted", "stopped on request; the next start resumes"
        except SyncdError as e:
            status, error = "failed", str(e)
            log.error("run %d failed: %s", self.run_id, e)
        row = self.store.finish_run(self.run_id, status, error, self.now())
        result = RunResult(run_id=self.run_id, status=status, error=error, read=row["read"], sent=row["sent"],
                           removed=row["removed"], skipped=row["skipped"], window_start=row["window_start"],
                           window_end=row["window_end"], seconds=time.monotonic() - started)
        log.info("run %d %s: read=%d sent=%d removed=%d skipped=%d in %.1fs", result.run_id, status,
                 result.read, result.sent, result.removed, result.skipped, result.seconds)
        return result

    def _phase(self, phase: str) -> None:
        self.progress.phase = phase
        self._tick(force=True)

    def _tick(self, force: bool = False) -> None:
        """Heartbeat, progress, and the daemon's stop request: called at every safe point."""
        mono = time.monotonic()
        if force or mono - self._last_beat >= HEARTBEAT_EVERY:
            self.store.heartbeat(self.run_id, self.now())
            self._last_beat = mono
        if self.on_progress is not None:
            self.progress.api_usage = self.sf.api_usage
            self.on_progress(self.progress)
        if self.should_stop():
            raise StopRequested("stop requested")

    # -- extraction -------------------------------------------------------------------------------
    def _open_window(self) -> tuple[datetime | None, datetime, bool]:
        """The saved window (resumed = True), or a new one fixed now and saved before any read."""
        st = self.store.sync_state()
        if st.in_window:
            assert st.window_end is not None
            log.info("resuming window [%s, %s) at %s", st.window_start, st.window_end, st.pos_ts or "its start")
            return st.window_start, st.window_end, True
        sf = self.cfg.salesforce
        end = floor_second(self.now() - timedelta(seconds=sf.lag_seconds))
        start = None
        if st.watermark is not None:
            start = st.watermark - timedelta(seconds=sf.lookback_seconds)
            end = max(end, st.watermark)  # the watermark never moves backwards
        self.store.open_window(start, end, self.run_id)
        return start, end, False

    def _first_page(self, start: datetime | None, end: datetime) -> Page:
        st = self.store.sync_state()
        if st.next_url and st.next_url_at and self.now() - st.next_url_at < LOCATOR_MAX_AGE:
            try:
                return self.sf.next_page(st.next_url)
            except (LocatorExpired, SessionExpired) as e:
                log.info("saved query locator is gone (%s); re-reading from the saved position", e.code or e.status)
        return self._requery(start, end)

    def _requery(self, start: datetime | None, end: datetime) -> Page:
        """The window again, from just after the last (SystemModstamp, Id) committed."""
        st = self.store.sync_state()
        after = (datetime.fromisoformat(st.pos_ts), st.pos_id) if st.pos_ts and st.pos_id else None
        return self.sf.query_all(window_query(self.fields, start, end, self.cfg.salesforce.where, after))

    def _read_window(self) -> bool:
        """Read one window to its end and move the watermark; True if it was a resumed window."""
        start, end, resumed = self._open_window()
        self.store.set_run_window(self.run_id, start, end)
        self._phase("reading")
        page = self._first_page(start, end)
        self.progress.total = page.total_size
        garbled = 0
        while True:
            self._apply(page)
            failpoint("page_committed")
            self._stage(final=False)
            self._pump(wait=False)
            if page.next_url is None:
                break
            if self.sf.usage_exceeded():
                used, limit = self.sf.api_usage or (0, 0)
                raise ApiLimitReached(
                    f"API usage {used}/{limit} passed max_api_usage_percent="
                    f"{self.cfg.salesforce.max_api_usage_percent}; stopped reading, the window resumes next run",
                    remote="salesforce")
            self._tick()
            try:
                page = self.sf.next_page(page.next_url)
                garbled = 0
            except LocatorExpired:
                log.info("query locator expired mid-window; re-reading from the saved position")
                page = self._requery(start, end)
            except (ProtocolError, AnswerCut) as e:
                garbled += 1
                if garbled >= MAX_PAGE_FAILURES:
                    raise
                log.warning("%s; re-reading from the saved position", e)
                page = self._requery(start, end)
        failpoint("before_watermark")
        if not self.store.close_window(end):
            log.warning("the window was reset while this run read it; the watermark stays where reset put it")
        failpoint("after_watermark")
        return resumed

    def _apply(self, page: Page) -> None:
        updates: list[LeadUpdate] = []
        add, render, rules = updates.append, self.sink.render, self.rules
        limit = self.sink.max_record_chars
        for record in page.records:
            outcome = transform(record, rules)
            modstamp = record.get("SystemModstamp") if isinstance(record, dict) else None
            stamp = modstamp if isinstance(modstamp, str) else None
            if type(outcome) is Contact:
                payload = render(outcome)
                if limit is None or len(payload) <= limit:
                    add(LeadUpdate(outcome.external_id, stamp, outcome.content_hash(), payload))
                    continue
                outcome = Skip(outcome.external_id, "too_long", f"{len(payload)} > {limit} characters")
            assert isinstance(outcome, Skip)
            add(LeadUpdate(outcome.lead_id, stamp, reason=outcome.reason, detail=outcome.detail))
        pos_ts, pos_id = self._position(page.records)
        st = self.store.sync_state()
        read, skipped = self.store.apply_page(updates, self.run_id, pos_ts or st.pos_ts, pos_id or st.pos_id,
                                              page.next_url, page.fetched_at if page.next_url else None)
        self.progress.read += read
        # Only an eligible lead can start waiting for an upsert, only a skipped one for a removal.
        for kind, added in (("upsert", read - skipped), ("remove", skipped)):
            if kind in self._pending_at_most:
                self._pending_at_most[kind] += added

    @staticmethod
    def _position(records: list[Any]) -> tuple[str | None, str | None]:
        """(SystemModstamp, Id) of the last row that has both in a usable form: where a re-read resumes."""
        for record in reversed(records):
            if not isinstance(record, dict) or not isinstance(record.get("Id"), str):
                continue
            stamp = record.get("SystemModstamp")
            if not isinstance(stamp, str):
                continue
            try:
                return parse_sf_datetime(stamp).isoformat(), record["Id"]
            except ValueError:
                log.warning("a record has an unreadable SystemModstamp; the position skips it")
        return None, None

    # -- outbox -----------------------------------------------------------------------------------
    def _stage(self, final: bool) -> None:
        size = self.cfg.cxone.batch_size
        kinds = self._kinds()
        if self.store.batches_closed != self._bounds_at_closed:
            self._pending_at_most.clear()
            self._bounds_at_closed = self.store.batches_closed
        for kind in kinds:
            while True:
                if not final and self._pending_at_most.get(kind, size) < size:
                    break
                waiting = self.store.count_pending(kind, up_to=size)
                if waiting < size:
                    self._pending_at_most[kind] = waiting
                if waiting == 0 or (not final and waiting < size):
                    break
                self._pending_at_most.pop(kind, None)
                self._stage_batch(kind, size)

    def _kinds(self) -> tuple[str, ...]:
        return ("upsert", "remove") if self.sink.can_remove else ("upsert",)

    def _stage_batch(self, kind: str, size: int) -> None:
        self._seq += 1
        batch_id = f"{kind[0]}{self.run_id:06d}-{self._seq:04d}"  # runs and their sequence never repeat
        staged = self.store.stage_pending(batch_id, kind, f"syncd-{batch_id}.csv", size, self.run_id, self.now())
        log.debug("staged %s batch %s with %d leads", kind, batch_id, staged)
        failpoint("batch_staged")

    def _pump(self, wait: bool) -> None:
        """Send staged batches while capacity allows and poll jobs; with ``wait``, until all are closed."""
        while True:
            submitted = self.store.batches("submitted")
            capacity = self.cfg.cxone.max_in_flight - len(submitted)
            for batch in self.store.batches("staged"):
                if batch.kind == "remove":
                    self._remove(batch)
                elif capacity > 0:
                    self._upload(batch)
                    capacity -= 1
            submitted = self.store.batches("submitted")
            self.progress.in_flight = len(submitted)
            if submitted and time.monotonic() >= self._next_poll:
                self._poll(submitted)
            if not wait:
                return
            if not self.store.batches("staged", "submitted"):
                return
            self._tick()
            self.sleep(max(0.0, min(self._poll_wait, self._next_poll - time.monotonic())))

    def _upload(self, batch: Batch) -> None:
        rows = self.store.rows(batch.id)
        self.store.count_upload(batch.id)
        failpoint("before_upload")
        try:
            job_id = self.sink.upload(batch.file_name, rows)
        except RemoteRejected as e:
            # A batch CXone refuses must not block everything behind it: park its leads with the reason.
            parked = self.store.fail_batch(batch.id, f"upload rejected: {e}", 1, self.now())
            log.error("batch %s rejected by CXone (%s); %d leads parked", batch.id, e, parked)
            return
        failpoint("upload_accepted")
        self.store.mark_submitted(batch.id, job_id, self.now(), self.run_id)
        self.progress.sent += len(rows)
        log.info("uploaded batch %s (%d leads) as job %s", batch.id, len(rows), job_id)
        failpoint("job_committed")
        if time.monotonic() >= self._next_poll:
            self._poll_wait = self._first_poll_wait()
            self._next_poll = time.monotonic() + self._poll_wait

    def _poll(self, submitted: list[Batch]) -> None:
        failpoint("polling")
        closed = 0
        for batch in submitted:
            assert batch.job_id is not None
            try:
                result = self.sink.job_status(batch.job_id)
            except TransientError as e:
                self._poll_failures += 1
                if self._poll_failures >= MAX_POLL_FAILURES:
                    raise
                log.warning("polling job %s failed (%s); polling again later in this run", batch.job_id, e)
                continue
            self._poll_failures = 0
            if result.state == "completed":
                self.store.ack_batch(batch.id, self.now())
                closed += 1
                failpoint("ack_committed")
            elif result.state == "failed":
                self._fail(batch, f"job {batch.job_id} failed: {result.detail}")
                closed += 1
            elif batch.submitted_at and self.now() - batch.submitted_at > timedelta(
                    seconds=self.cfg.cxone.job_timeout_seconds):
                self._fail(batch, f"job {batch.job_id} did not complete within "
                                  f"{self.cfg.cxone.job_timeout_seconds:g}s")
                closed += 1
        base = self.cfg.cxone.poll_interval_seconds
        self._poll_wait = self._first_poll_wait() if closed else min(self._poll_wait * 2, base * MAX_POLL_GROWTH)
        self._next_poll = time.monotonic() + self._poll_wait

    def _first_poll_wait(self) -> float:
        return min(FIRST_POLL, self.cfg.cxone.poll_interval_seconds)

    def _fail(self, batch: Batch, error: str) -> None:
        parked = self.store.fail_batch(batch.id, error, self.cfg.cxone.max_attempts, self.now())
        log.warning("batch %s: %s; its leads stay dirty%s", batch.id, error,
                    f", {parked} parked after {self.cfg.cxone.max_attempts} attempts" if parked else "")

    def _remove(self, batch: Batch) -> None:
        members = self.store.members(batch.id)
        self.store.count_upload(batch.id)
        failpoint("before_remove")
        removed, failed = self.sink.remove([m.lead_id for m in members])
        self.store.finish_removal(batch.id, removed, failed, self.run_id, self.cfg.cxone.max_attempts, self.now())
        self.progress.removed += len(removed)
        if failed:
            log.warning("batch %s: %d leads not removed; they stay pending removal", batch.id, len(failed))
        failpoint("removal_committed")

    def _report_unremovable(self) -> None:
        if self.sink.can_remove:
            return
        waiting = self.store.count_pending("remove")
        if waiting:
            log.warning("%d leads are no longer callable but the %s API cannot remove them; "
                        "`syncd status` counts them as pending_removal", waiting, self.sink.name)
