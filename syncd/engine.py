"""One sync run: resume → extract → stage → load → verify, as a resumable state machine.

Order of work in every run (DESIGN.md, "Resume"): poll jobs left ``submitted``, upload batches left
``staged``, mark records that expired or are due their keep-alive, continue the saved window (or open
a new one), pass the mass-removal guard, stage what became dirty, drain the outbox (suppressions and
removals first), and verify the list when it is due (delivering again what verification found wrong).
Every boundary is a named failpoint; every step's effect is committed before the next remote call,
so a crash anywhere resumes from the last commit. Whatever ends a run, it never stays ``running``:
the ``finally`` below records how it ended.
"""

from __future__ import annotations

import logging
import os
import re
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from syncd.clock import Clock, utcnow
from syncd.config import Config
from syncd.context import Progress, RunContext
from syncd.cxone import ContactSink
from syncd.diff import page_updates
from syncd.errors import ApiLimitReached, ReadingMismatch, StopRequested, SyncdError
from syncd.extract import Extractor
from syncd.load import Loader
from syncd.logs import run_scope
from syncd.outbox import Outbox
from syncd.salesforce import Page, SalesforceClient
from syncd.soql import select_fields
from syncd.store import Store
from syncd.transform import rules_for
from syncd.verify import Verifier, mismatch
from syncd.window import Window

__all__ = ["Engine", "Progress", "RunResult", "utcnow"]

log = logging.getLogger(__name__)
HEARTBEAT_EVERY = 2.0
QUOTED = re.compile(r"'[^']{12,}'|\"[^\"]{12,}\"")
# Stage-and-deliver passes at the end of a run beyond cxone.max_attempts: one more for leads an ack
# left dirty (changed while in flight), and a spare.
EXTRA_DELIVERY_PASSES = 2


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
    verify: dict[str, Any] | None = None
    plan: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def unexpected(e: BaseException, secrets: Iterable[str] = ()) -> str:
    """An unexpected error as one line for the runs table: its type, where it was raised, and its
    message with every known secret redacted and without quoted values (they may hold lead data)."""
    frame = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
    where = f" at {Path(frame.filename).name}:{frame.lineno}" if frame else ""
    message = str(e)
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            message = message.replace(secret, "[REDACTED]")
    message = QUOTED.sub("'…'", message)[:200]
    return f"unexpected {type(e).__name__}{where}: {message} (a bug: please report it)"


class Engine:
    def __init__(
        self,
        config: Config,
        store: Store,
        salesforce: SalesforceClient,
        sink: ContactSink,
        *,
        now: Clock = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        on_progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        allow_mass_removal: bool = False,
        dry_run: bool = False,
    ) -> None:
        self.cfg = config
        self.allow_mass_removal = allow_mass_removal
        self.dry_run = dry_run
        self.verified: dict[str, Any] | None = None
        self.plan: dict[str, Any] = {}
        self.store = store
        self.sf = salesforce
        self.sink = sink
        self.now = now
        self.on_progress = on_progress
        self.should_stop = should_stop
        sf = config.salesforce
        self.rules = rules_for(config)
        self.ctx = RunContext(config, store, sink, now, self._tick, sleep)
        salesforce.sleep = sleep  # its ConcurrentRequests backoff waits as the run does
        self.extractor = Extractor(self.ctx, salesforce, select_fields(sf.phone_fields, self.rules.reads))
        self.outbox = Outbox(self.ctx)
        self.loader = Loader(self.ctx)
        self.verifier = Verifier(self.ctx)
        self._last_beat = 0.0

    @property
    def progress(self) -> Progress:
        return self.ctx.progress

    @property
    def run_id(self) -> int:
        return self.ctx.run_id

    @run_id.setter
    def run_id(self, value: int) -> None:
        self.ctx.run_id = value

    def read_window(self) -> bool:
        """Read one window (the saved one, or a new one) to its end; True if it was a resumed one."""
        return self.extractor.read(self._apply, self._between_pages)

    # -- the run ----------------------------------------------------------------------------------
    def run(self) -> RunResult:
        started = time.monotonic()
        self.ctx.run_id = self.store.start_run(os.getpid(), self.now())
        with run_scope(self.run_id):
            return self._run(started)

    def _run(self, started: float) -> RunResult:
        status: str = "failed"
        error: str | None = "the run ended without recording why"
        try:
            self._work()
            status, error = "ok", None
        except StopRequested:
            status, error = "interrupted", "stopped on request; the next start resumes"
        except SyncdError as e:
            status, error = "failed", str(e)
            log.error("run %d failed: %s", self.run_id, e, extra={"event": "run_failed", "error": error})
        except Exception as e:
            # A bug must not leave the run "running" and repeat every run unnoticed: it is recorded as
            # a failed run with its type and where it happened; the traceback (which may hold lead
            # data) is logged at DEBUG only.
            status, error = "failed", unexpected(e, self.sf.secrets.values())
            log.error("run %d failed: %s", self.run_id, error, extra={"event": "run_failed", "error": error})
            log.debug("traceback of run %d", self.run_id, exc_info=True)
        except BaseException:
            status, error = "interrupted", "interrupted; the next start resumes"
            raise
        finally:
            self.loader.close()
            row = self.store.finish_run(self.run_id, status, error, self.now())
        result = RunResult(run_id=self.run_id, status=status, error=error, read=row["read"], sent=row["sent"],
                           removed=row["removed"], skipped=row["skipped"], window_start=row["window_start"],
                           window_end=row["window_end"], seconds=time.monotonic() - started,
                           verify=self.verified, plan=self.plan)
        counts = {"read": result.read, "sent": result.sent, "removed": result.removed, "skipped": result.skipped,
                  "seconds": round(result.seconds, 3)}
        log.info("run %d %s: read=%d sent=%d removed=%d skipped=%d in %.1fs", result.run_id, status,
                 result.read, result.sent, result.removed, result.skipped, result.seconds,
                 extra={"event": "run_finished", "counts": {"status": status, **counts}, "error": error})
        return result

    def _work(self) -> None:
        self._phase("resuming")
        if not self.dry_run:
            self.loader.pump(wait=False)
        self._expire_and_refresh()
        stopped: ApiLimitReached | None = None
        try:
            self._phase("reading")
            if self.read_window():
                # That was a window an earlier run left; now read up to the present as well.
                self.read_window()
        except ApiLimitReached as e:
            # Stop reading at once, but deliver what was already read: CXone is not the one limited.
            log.warning("stopped reading Salesforce: %s", e)
            stopped = e
        if self.dry_run:
            self.plan = self.store.plan(self.outbox.kinds(), self._suppressing)
            return
        self.outbox.guard(self.allow_mass_removal)
        self.loader.removals_cleared = True
        self._phase("delivering")
        self._deliver()
        if self.verifier.due() or (self.verifier.possible and (self.loader.answer_lost or self._dnc_unconfirmed())):
            self._phase("verifying")
            self.verified = self.verifier.run()
            if self.verified.get("replaced"):
                # Sending the missing leads in batches would wipe the list again: stop here; they wait
                # (dirty) for the run after upload_mode is changed.
                self._check_closed_loop()
            self._phase("delivering")
            self._deliver()  # what verification found missing or wrong goes now
        self._report_unremovable()
        if stopped is not None:
            raise stopped
        self._check_closed_loop()

    def _deliver(self) -> None:
        for _ in range(self.cfg.cxone.max_attempts + EXTRA_DELIVERY_PASSES):
            self.outbox.stage(final=True)
            self.loader.pump(wait=True)
            # A job acked in that wait leaves dirty the leads this run read as changed while they
            # were in flight (a killed run's batch), and a failed or cancelled job puts its leads back:
            # they go now, not a run later. Each failure counts an attempt and parks a lead at
            # max_attempts, so this ends; an ok run leaves nothing retryable undelivered.
            if not self.outbox.waiting(retries=True):
                break

    def _dnc_unconfirmed(self) -> bool:
        """A Do Not Call lead that no DNC group blocks is verified off the list in the run that removed
        it, not a day later, until a verification has proven that removal works on this list:
        removeProspects' answer alone proves nothing."""
        return (not self._suppressing and self.store.dnc_removals_unconfirmed() > 0
                and not self.store.removal_proven())

    @property
    def _suppressing(self) -> bool:
        cl = self.cfg.cxone.call_lists
        return self.loader.suppressor.group is not None and cl is not None and cl.dnc_group_id > 0

    def _expire_and_refresh(self) -> None:
        """Records past their expiration are off the list; those near it are due a keep-alive."""
        now = self.now()
        if self.sink.expires_on(now) is None:
            return
        cl = self.cfg.cxone.call_lists
        ahead = timedelta(days=cl.refresh_before_days if cl else 0)
        expired, due = self.store.expire_and_refresh(now.date().isoformat(), (now + ahead).date().isoformat())
        if expired or due:
            log.info("%d records expired; %d leads are due their keep-alive re-send", expired, due)

    def _check_closed_loop(self) -> None:
        """End the run failed, with the setting to change, when CXone does not behave as configured or a
        Do Not Call lead may still be dialled: an alert, never a quiet park."""
        cl = self.cfg.cxone.call_lists
        if cl is None or self.cfg.cxone.api != "call-lists":
            return
        found = dict(self.verified or {})
        found["unremovable"] = self.store.unremovable()
        problem = mismatch(found, cl.removal)
        if problem is not None:
            raise problem
        exposed = self.store.dnc_exposed()
        if exposed:
            hint = ("set cxone.call_lists.dnc_group_id to a DNC group that scrubs skill_id" if not cl.dnc_group_id
                    else "the DNC group refused their numbers (see the log)")
            raise ReadingMismatch(f"{exposed} Do Not Call leads may still be dialled: their record is on the list "
                                  f"and their number is not suppressed; {hint}")

    def _apply(self, page: Page, window: Window | None) -> Window | None:
        """A page's effects with the position it reached; with no window (leads read by id) the
        position stays where it is."""
        updates = page_updates(page.records, self.rules, self.sink.render, self.sink.max_record_chars)
        seen_in, keep = self.extractor.window_id, not self.extractor.full  # see Store._apply
        if window is None:
            read, skipped = self.store.apply_rows(updates, self.run_id, seen_in, keep)
            reached = None
        else:
            reached = window.advance(page.records)  # where it stood, when no row of the page is usable
            read, skipped = self.store.apply_page(updates, self.run_id, reached.pos_ts, reached.pos_id,
                                                  page.next_url, page.fetched_at if page.next_url else None, seen_in,
                                                  keep)
        self.progress.read += read
        self.outbox.added(read - skipped, skipped)
        self.loader.suppressor.noted(phone for u in updates for phone in u.dnc)
        return reached

    def _between_pages(self) -> None:
        if self.dry_run:
            return
        self.outbox.stage(final=False)
        self.loader.pump(wait=False)

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

    def _report_unremovable(self) -> None:
        if self.sink.can_remove:
            return
        waiting = self.store.count_pending("remove")
        if waiting:
            log.warning("%d leads are no longer callable but the %s API cannot remove them; "
                        "`syncd status` counts them as pending_removal", waiting, self.sink.name)

