"""The job pump: suppressions and removals first, then uploads up to ``max_in_flight``, polled in one
loop; ack or fail.

Every step is committed before the next remote call: the upload attempt before the upload, the
job id the moment CXone returns it, the ack (members' acked hash = exactly what was sent) in one
transaction with the batch's close. An upload whose answer is lost (cut, garbled) may have been
taken: the same batch (same file name, same rows) goes again in the same run, and verification
settles what CXone holds.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from syncd.context import RunContext
from syncd.cxone.setup import all_refused, setup_problem
from syncd.errors import (
    AnswerCut,
    ProtocolError,
    RemoteRejected,
    RemoteUnavailable,
    SessionExpired,
    SetupRejected,
    TransientError,
)
from syncd.failpoints import failpoint
from syncd.outbox import sendable_kinds
from syncd.store import Batch
from syncd.suppress import Suppressor

log = logging.getLogger(__name__)
# Job polling: the first poll after about a second (jobs can be quick), then doubling while every
# job keeps waiting, up to MAX_POLL_GROWTH times cxone.poll_interval_seconds; back to the start when one closes.
FIRST_POLL = 1.0
MAX_POLL_GROWTH = 6.0
# Polling is harmless to repeat, so a garbled or failed poll answer is tried again later in the run;
# only this many in a row (each already retried by the HTTP layer) end the run.
MAX_POLL_FAILURES = 5
# An upload whose answer was lost is sent again in the same run this many times before the run ends
# (the batch stays staged: an outage is not a failed job, and parks nobody).
MAX_LOST_ANSWERS = 3
# Assume the upload happened this long before its job id was committed (the expiration day it carried
# is the upload's: erring early only re-sends a keep-alive sooner).
UPLOAD_SLACK = timedelta(hours=1)


class Loader:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._next_poll = 0.0
        self._poll_wait = self._first_poll_wait()
        self._poll_failures = 0
        self._lost: dict[str, int] = {}
        self.answer_lost = False  # an upload answer was lost this run: verification should settle it
        self.suppressor = Suppressor(ctx)
        # Removals and suppressions wait until the run has passed the mass-removal guard.
        self.removals_cleared = False
        # Uploads refused with a status that may be about the batch, held (staged, not parked) until
        # another upload of this run is accepted: then they are the batches' fault, else the setup's.
        self._refused: dict[str, str] = {}
        self._accepted = False

    def pump(self, wait: bool) -> None:
        """Send staged batches while capacity allows and poll jobs; with ``wait``, until all are closed."""
        ctx = self.ctx
        store = ctx.store
        while True:
            submitted = store.batches("submitted")
            capacity = ctx.cfg.cxone.max_in_flight - len(submitted)
            if self.removals_cleared:
                self.suppressor.pump()
            for batch in store.batches("staged"):
                if batch.id in self._refused:
                    continue
                if batch.kind == "remove":
                    self._remove(batch)
                elif capacity > 0:
                    self._upload(batch)
                    capacity -= 1
            submitted = store.batches("submitted")
            ctx.progress.in_flight = len(submitted)
            if submitted and time.monotonic() >= self._next_poll:
                self._poll(submitted)
            if not wait:
                return
            if not [b for b in store.batches("staged", "submitted") if b.id not in self._refused]:
                if self._refused:
                    last = list(self._refused.values())[-1]
                    raise SetupRejected(all_refused(ctx.cfg, len(self._refused), last))
                return
            ctx.tick()
            ctx.sleep(max(0.0, min(self._poll_wait, self._next_poll - time.monotonic())))

    def _upload(self, batch: Batch) -> None:
        ctx = self.ctx
        rows = ctx.store.rows(batch.id)
        ctx.store.count_upload(batch.id)
        failpoint("before_upload")
        try:
            job_id = ctx.sink.upload(batch.file_name, rows)
        except (RemoteRejected, SessionExpired) as e:  # a 401 here came back after a fresh token
            problem = setup_problem(ctx.cfg, e)
            if problem is not None or isinstance(e, SessionExpired):
                raise SetupRejected.naming(problem or str(e), e) from e
            self._refused[batch.id] = str(e)
            if self._accepted:
                self._park_refused()
            else:
                log.warning("batch %s refused by CXone (%s); it stays staged until another upload shows whether the "
                            "batch or the setup is at fault", batch.id, e)
            return
        except (AnswerCut, ProtocolError, RemoteUnavailable) as e:
            # CXone may have taken it. The same file goes again (an upsert of the same rows is harmless),
            # a few times in this run; then the run ends and the next one sends it.
            self.answer_lost = True
            self._lost[batch.id] = self._lost.get(batch.id, 0) + 1
            if self._lost[batch.id] >= MAX_LOST_ANSWERS:
                raise
            log.warning("upload of batch %s: %s; sending the same batch again", batch.id, e)
            return
        failpoint("upload_accepted")
        ctx.store.mark_submitted(batch.id, job_id, ctx.now(), ctx.run_id)
        self._accepted = True
        self._park_refused()
        ctx.progress.sent += len(rows)
        log.info("uploaded batch %s (%d leads) as job %s", batch.id, len(rows), job_id,
                 extra={"event": "batch_uploaded", "batch_id": batch.id, "job_id": job_id,
                        "counts": {"rows": len(rows)}})
        failpoint("job_committed")
        if time.monotonic() >= self._next_poll:
            self._poll_wait = self._first_poll_wait()
            self._next_poll = time.monotonic() + self._poll_wait

    def _park_refused(self) -> None:
        """Another upload went through: the refused batches are refused for what they hold. A batch CXone
        refuses must not block everything behind it, so its leads are parked with the reason."""
        for batch_id, error in self._refused.items():
            parked = self.ctx.store.fail_batch(batch_id, f"upload rejected: {error}", 1, self.ctx.now())
            log.error("batch %s rejected by CXone (%s) while other uploads were accepted; %d leads parked",
                      batch_id, error, parked, extra={"event": "batch_parked", "batch_id": batch_id, "error": error,
                                                      "counts": {"parked": parked}})
        self._refused.clear()

    def _poll(self, submitted: list[Batch]) -> None:
        ctx = self.ctx
        failpoint("polling")
        closed = 0
        timeout = timedelta(seconds=ctx.cfg.cxone.job_timeout_seconds)
        for batch in submitted:
            assert batch.job_id is not None
            overdue = batch.submitted_at is not None and ctx.now() - batch.submitted_at > timeout
            try:
                result = ctx.sink.job_status(batch.job_id)
            except RemoteRejected as e:
                if e.status != 404:
                    raise
                # CXone forgot the job (expired, purged): its leads go again, they are not stuck behind it.
                self._fail(batch, f"CXone no longer knows job {batch.job_id} (404)")
                closed += 1
                continue
            except TransientError as e:
                if overdue:
                    self._fail(batch, f"job {batch.job_id} could not be polled within "
                                      f"{ctx.cfg.cxone.job_timeout_seconds:g}s (job_timeout_seconds): {e}")
                    closed += 1
                    continue
                self._poll_failures += 1
                if self._poll_failures >= MAX_POLL_FAILURES:
                    raise
                log.warning("polling job %s failed (%s); polling again later in this run", batch.job_id, e)
                continue
            self._poll_failures = 0
            if result.state == "completed":
                sent = (batch.submitted_at or ctx.now()) - UPLOAD_SLACK
                ctx.store.ack_batch(batch.id, ctx.now(), ctx.sink.expires_on(sent))
                log.info("job %s of batch %s completed", batch.job_id, batch.id,
                         extra={"event": "batch_acked", "batch_id": batch.id, "job_id": batch.job_id})
                closed += 1
                failpoint("ack_committed")
            elif result.state == "failed":
                self._fail(batch, f"job {batch.job_id} failed: {result.detail}")
                closed += 1
            elif overdue:
                self._fail(batch, f"job {batch.job_id} did not complete within "
                                  f"{ctx.cfg.cxone.job_timeout_seconds:g}s")
                closed += 1
        base = ctx.cfg.cxone.poll_interval_seconds
        self._poll_wait = self._first_poll_wait() if closed else min(self._poll_wait * 2, base * MAX_POLL_GROWTH)
        self._next_poll = time.monotonic() + self._poll_wait

    def _first_poll_wait(self) -> float:
        return min(FIRST_POLL, self.ctx.cfg.cxone.poll_interval_seconds)

    def _fail(self, batch: Batch, error: str) -> None:
        ctx = self.ctx
        parked = ctx.store.fail_batch(batch.id, error, ctx.cfg.cxone.max_attempts, ctx.now())
        log.warning("batch %s: %s; its leads stay dirty%s", batch.id, error,
                    f", {parked} parked after {ctx.cfg.cxone.max_attempts} attempts" if parked else "",
                    extra={"event": "batch_failed", "batch_id": batch.id, "job_id": batch.job_id, "error": error,
                           "counts": {"parked": parked}})

    def _remove(self, batch: Batch) -> None:
        ctx = self.ctx
        if not ctx.sink.can_remove:
            # Staged by an older syncd, or before cxone.api changed: never sent, never wedging the outbox.
            ctx.store.abandon_batch(batch.id, f"the {ctx.sink.name} API cannot remove leads", ctx.now())
            log.warning("batch %s: the %s API cannot remove leads; they stay pending removal",
                        batch.id, ctx.sink.name)
            return
        if "remove" not in sendable_kinds(ctx.cfg):
            # Staged before removal = "expire-only" (or snapshot mode) was set: their records expire instead.
            ctx.store.abandon_batch(batch.id, "not sent: the configuration lets records expire instead", ctx.now())
            log.warning("batch %s: removals are off in this configuration; its leads' records expire instead",
                        batch.id)
            return
        members = ctx.store.members(batch.id)
        ctx.store.count_upload(batch.id)
        failpoint("before_remove")
        try:
            removed, failed = ctx.sink.remove([m.lead_id for m in members])
        except RemoteRejected as e:
            problem = setup_problem(ctx.cfg, e, removal=True)
            if problem is None:
                raise
            raise SetupRejected.naming(problem, e) from e
        ctx.store.finish_removal(batch.id, removed, failed, ctx.run_id, ctx.cfg.cxone.max_attempts, ctx.now(),
                                 keep_removed=ctx.cfg.cxone.verify_every_hours > 0)
        ctx.progress.removed += len(removed)
        if failed:
            log.warning("batch %s: %d leads not removed; they stay pending removal", batch.id, len(failed))
        failpoint("removal_committed")
