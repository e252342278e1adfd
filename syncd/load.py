"""The job pump: suppressions and removals first, then uploads up to ``max_in_flight``, polled in one
loop; ack or fail.

While pages are read (``pump(wait=False)``) the pump's CXone call, an upload, a round of polls or a
chunk of numbers the guard does not count (``syncd/suppress.py``), runs on a background thread
(``Ahead``) and its answer is taken, and committed, at the next pump: reading never waits on CXone.
An accepted upload's job id and the numbers a DNC group took are the exception: the background
thread commits them on a connection of its own the moment CXone returns them, as the call made in
line would. One such call is in flight at most, and the main thread makes no CXone call while it is,
so the sink's session and token have one user at a time. The answer is handled exactly as if the
call had been made in line; a run that ends with one in flight takes its answer first.

Every step is committed before the next remote call: the upload attempt before the upload, the
job id the moment CXone returns it, the ack (members' acked hash = exactly what was sent) in one
transaction with the batch's close. An upload whose answer is lost (cut, garbled) may have been
taken: the same batch (same file name, same rows) goes again in the same run, and verification
settles what CXone holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from syncd.ahead import Ahead
from syncd.context import RunContext
from syncd.cxone import JobResult
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
from syncd.polls import PollSchedule
from syncd.store import Batch, Store
from syncd.suppress import Suppressor

log = logging.getLogger(__name__)
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
        self.polls = PollSchedule(ctx.cfg.cxone.poll_interval_seconds)
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
        self.courier = Ahead("syncd-cxone", landed="cxone_answered")
        self._errand: Callable[[], None] | None = None  # takes and commits the answer of the call in flight
        self._store: Store | None = None  # the courier's connection to the state

    def pump(self, wait: bool) -> None:
        """Send staged batches while capacity allows and poll jobs; with ``wait``, until all are closed.

        Without ``wait`` one CXone call (an upload, else a round of polls, else a chunk of numbers to
        suppress early) is begun in the background and this returns; while it is in flight nothing
        else is sent."""
        ctx = self.ctx
        store = ctx.store
        if self.courier.busy and not wait:
            return
        self._land()
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
                    self._upload(batch, background=not wait)
                    if self._errand is not None:
                        return
                    capacity -= 1
            submitted = store.batches("submitted")
            ctx.progress.in_flight = len(submitted)
            due = self.polls.due(submitted)
            if due:
                if not wait:
                    self._poll_in_background(due)
                    return
                self._poll(due)
                if self._freed(submitted):
                    continue  # a job closed: the next batch goes now, not at the next job's poll
            if not wait:
                self._suppress_early()  # when nothing else needs the call
                return
            if not [b for b in store.batches("staged", "submitted") if b.id not in self._refused]:
                if self._refused:
                    last = list(self._refused.values())[-1]
                    raise SetupRejected(all_refused(ctx.cfg, len(self._refused), last))
                return
            ctx.tick()
            ctx.sleep(self.polls.wait())

    def _freed(self, submitted: list[Batch]) -> bool:
        """Fewer jobs are open than before the poll, and a batch is staged for the room it left."""
        store = self.ctx.store
        return len(store.batches("submitted")) < len(submitted) and any(
            b.kind != "remove" and b.id not in self._refused for b in store.batches("staged"))

    def _suppress_early(self) -> None:
        """While pages are read: a chunk of numbers the guard does not count goes in the background."""
        phones = self.suppressor.early()
        if phones:
            future = self.courier.start(lambda: self.suppressor.add(phones, self._courier_store()))
            self._errand = lambda: self.suppressor.added_early(lambda: self.courier.take(future))

    def _land(self) -> None:
        """Take the answer of the call in flight (waiting for it) and commit what it says."""
        errand, self._errand = self._errand, None
        if errand is not None:
            errand()

    def close(self) -> None:
        """End of the run: an answer still in flight is taken, so an accepted upload keeps its job id; a
        failure there is only logged (the run has already ended, and the batch stays staged)."""
        try:
            self._land()
        except Exception as e:
            log.warning("the last CXone call of the run failed: %s", e)
        finally:
            self.courier.close()
            if self._store is not None:
                self._store.close()
                self._store = None

    def _upload(self, batch: Batch, background: bool = False) -> None:
        ctx = self.ctx
        rows = ctx.store.rows(batch.id)
        ctx.store.count_upload(batch.id)
        failpoint("before_upload")
        if background:
            future = self.courier.start(self._send, batch, rows)
            self._errand = lambda: self._uploaded(batch, rows, lambda: self.courier.take(future), committed=True)
            return
        self._uploaded(batch, rows, lambda: ctx.sink.upload(batch.file_name, rows))

    def _send(self, batch: Batch, rows: list[str]) -> str:
        """The background upload: CXone's job id is committed the moment it comes back, on the courier's
        own connection, so a crash before the main thread takes the answer does not send the batch again."""
        job_id = self.ctx.sink.upload(batch.file_name, rows)
        self._submitted(batch, job_id, self._courier_store())
        return job_id

    def _courier_store(self) -> Store:
        if self._store is None:  # opened on the courier's thread, which alone uses it
            main = self.ctx.store
            self._store = Store(main.path, create=False, busy_timeout=main.busy_timeout)
        return self._store

    def _submitted(self, batch: Batch, job_id: str, store: Store) -> None:
        failpoint("upload_accepted")
        store.mark_submitted(batch.id, job_id, self.ctx.now(), self.ctx.run_id)
        failpoint("job_committed")

    def _uploaded(self, batch: Batch, rows: list[str], answer: Callable[[], str], committed: bool = False) -> None:
        """Commit an upload's answer (``answer`` returns its job id, or raises its failure); with
        ``committed`` the courier has saved the job id already."""
        ctx = self.ctx
        try:
            job_id = answer()
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
        if not committed:
            self._submitted(batch, job_id, ctx.store)
        self._accepted = True
        self._park_refused()
        ctx.progress.sent += len(rows)
        log.info("uploaded batch %s (%d leads) as job %s", batch.id, len(rows), job_id,
                 extra={"event": "batch_uploaded", "batch_id": batch.id, "job_id": job_id,
                        "counts": {"rows": len(rows)}})
        self.polls.submitted(batch.id)

    def _park_refused(self) -> None:
        """Another upload went through: the refused batches are refused for what they hold. A batch CXone
        refuses must not block everything behind it, so its leads are parked with the reason."""
        for batch_id, error in self._refused.items():
            parked = self.ctx.store.fail_batch(batch_id, f"upload rejected: {error}", 1, self.ctx.now())
            log.error("batch %s rejected by CXone (%s) while other uploads were accepted; %d leads parked",
                      batch_id, error, parked, extra={"event": "batch_parked", "batch_id": batch_id, "error": error,
                                                      "counts": {"parked": parked}})
        self._refused.clear()

    def _statuses(self, submitted: list[Batch]) -> list[JobResult | Exception]:
        """Each job's state, or the failure of its poll (raised where the answers are taken)."""
        out: list[JobResult | Exception] = []
        for batch in submitted:
            assert batch.job_id is not None
            try:
                out.append(self.ctx.sink.job_status(batch.job_id))
            except Exception as e:
                out.append(e)
        return out

    def _poll_in_background(self, submitted: list[Batch]) -> None:
        future = self.courier.start(self._statuses, submitted)
        self._errand = lambda: self._poll(submitted, self.courier.take(future))

    def _poll(self, submitted: list[Batch], answers: list[JobResult | Exception] | None = None) -> None:
        """Poll each job (or take ``answers``, its polls made in the background) and close those done."""
        ctx = self.ctx
        failpoint("polling")
        if answers is None:
            answers = self._statuses(submitted)
        timeout = timedelta(seconds=ctx.cfg.cxone.job_timeout_seconds)
        for batch, answer in zip(submitted, answers, strict=True):
            assert batch.job_id is not None
            overdue = batch.submitted_at is not None and ctx.now() - batch.submitted_at > timeout
            try:
                result = _outcome(answer)
            except RemoteRejected as e:
                if e.status != 404:
                    raise
                # CXone forgot the job (expired, purged): its leads go again, they are not stuck behind it.
                self._fail(batch, f"CXone no longer knows job {batch.job_id} (404)")
                continue
            except TransientError as e:
                if overdue:
                    self._fail(batch, f"job {batch.job_id} could not be polled within "
                                      f"{ctx.cfg.cxone.job_timeout_seconds:g}s (job_timeout_seconds): {e}")
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
                failpoint("ack_committed")
            elif result.state == "failed":
                self._fail(batch, f"job {batch.job_id} failed: {result.detail}")
            elif overdue:
                self._fail(batch, f"job {batch.job_id} did not complete within "
                                  f"{ctx.cfg.cxone.job_timeout_seconds:g}s")
        self.polls.polled(submitted)

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


def _outcome(answer: JobResult | Exception) -> JobResult:
    if isinstance(answer, Exception):
        raise answer
    return answer
