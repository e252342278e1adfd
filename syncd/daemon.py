"""``syncd run``: the long-lived service. APScheduler runs the sync on its schedule; systemd hears
READY, WATCHDOG, STATUS and STOPPING; SIGTERM/SIGINT stop it at the next safe point.

Threads: the main thread runs the scheduler; one executor thread runs syncs (``max_instances=1``);
a pacer thread pings the watchdog and writes the daemon heartbeat. The watchdog is fed only while
the work loop makes progress (or while idle), so a hung sync stops the pings and systemd restarts us.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from syncd import metrics
from syncd.clock import utcnow
from syncd.config import Config
from syncd.context import Progress
from syncd.engine import RunResult
from syncd.errors import StateError, SyncdError
from syncd.http import network_wait_until
from syncd.lock import StateLock
from syncd.notify import Notifier
from syncd.runner import close_state, open_state, run_engine, tune_gc
from syncd.secrets import Secrets
from syncd.store import Store

log = logging.getLogger(__name__)
MAX_BACKOFF = timedelta(hours=1)
HEARTBEAT_EVERY = 5.0
STOP_WAIT = 60.0  # well inside systemd's default 90 s stop timeout
EXIT_STUCK = 1  # the sync did not stop in STOP_WAIT: exited hard, the lock held until the end
INTEGRITY_EVERY = timedelta(hours=24)


class Daemon:
    def __init__(self, config: Config, secrets: Secrets, notifier: Notifier | None = None,
                 now: Callable[[], datetime] = utcnow, stop_wait: float = STOP_WAIT) -> None:
        self.config = config
        self.secrets = secrets
        self.notifier = notifier or Notifier()
        self.now = now
        self.stop_wait = stop_wait
        self.exit_code = 0
        self.stop = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        self.failures = 0
        self.last_progress = time.monotonic()
        self.live = metrics.Live()
        self._store_lock = threading.Lock()
        self._last_status = 0.0
        self._signals = 0
        self.scheduler: BlockingScheduler | None = None
        self.store: Store | None = None

    # -- lifecycle ----------------------------------------------------------------------------------
    def run(self) -> int:
        tune_gc()  # once, at process start (see runner.tune_gc)
        lock = StateLock(self.config.state.path)
        lock.acquire()
        metrics_server = None
        try:
            self.store = open_state(self.config, lock)
            if self.config.metrics.listen:
                host, port = self.config.metrics.address()
                metrics_server = metrics.serve(host, port, self.config.state.path, self.live,
                                               self.config.schedule.longest_gap())
            self.scheduler = self._scheduler()
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
            self._record(pid=os.getpid(), started_at=self.now(), heartbeat_at=self.now(), state="starting",
                         progress=None, last_error=None, stopped_at=None)
            threading.Thread(target=self._pace, name="syncd-pacer", daemon=True).start()
            self.notifier.ready("started; first sync starting")
            log.info("daemon started (pid %d); schedule: %s", os.getpid(), self._schedule_text())
            self.scheduler.start()  # blocks until a signal shuts it down
            if not self.idle.wait(self.stop_wait):
                # The sync thread may still be writing: the lock must not be released under it. Leave
                # at once instead (every step is committed, so the next start resumes); the kernel
                # drops the lock only when this process, and so that thread, is gone.
                log.error("the running sync did not reach a safe point in %gs; exiting without waiting",
                          self.stop_wait)
                self.notifier.stopping()
                logging.shutdown()
                os._exit(EXIT_STUCK)
            log.info("daemon stopped")
            return self.exit_code
        finally:
            self.notifier.stopping()
            if self.store is not None:
                self._record(state="stopped", stopped_at=self.now())
                close_state(self.store, lock)
            if metrics_server is not None:
                metrics_server.shutdown()
            lock.release()

    def _schedule_text(self) -> str:
        s = self.config.schedule
        return f"cron {s.cron!r} ({s.timezone})" if s.cron else f"every {s.interval_seconds}s"

    def _scheduler(self) -> BlockingScheduler:
        s = self.config.schedule
        trigger: Any = (s.cron_trigger() if s.cron
                        else IntervalTrigger(seconds=s.interval_seconds or 300, timezone=timezone.utc))
        scheduler = BlockingScheduler(jobstores={"default": MemoryJobStore()},
                                      executors={"default": ThreadPoolExecutor(1)}, timezone=timezone.utc)
        # The first run starts at once (it resumes whatever was interrupted). A late run is never dropped:
        # no misfire grace limit, and missed runs coalesce into one.
        scheduler.add_job(self._sync_job, trigger, id="sync", name="sync", next_run_time=self.now(),
                          max_instances=1, coalesce=True, misfire_grace_time=None)
        scheduler.add_job(self._integrity_job, IntervalTrigger(seconds=INTEGRITY_EVERY.total_seconds(),
                                                               timezone=timezone.utc),
                          id="integrity", name="integrity", max_instances=1, coalesce=True, misfire_grace_time=None)
        return scheduler

    def _integrity_job(self) -> None:
        """Daily ``quick_check``: a damaged state stops the service with a message, never a quiet run."""
        if self.store is None or self.stop.is_set():
            return
        try:
            with self._store_lock:
                self.store.check_integrity()
        except StateError as e:
            error = str(e)
        else:
            log.info("state integrity check passed")
            return
        log.error("%s; stopping", error)
        self._record(last_error=error)
        self.exit_code = 1
        self.stop.set()
        self._shutdown_scheduler()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            # Safe: every step is committed before the next remote call, so the next start resumes.
            os._exit(128 + signum)
        log.info("%s received: stopping at the next safe point", signal.Signals(signum).name)
        self.stop.set()
        self.notifier.stopping()
        # Not from the handler itself: it runs on the main thread, which may be inside the scheduler's
        # Event.wait holding that event's (non-reentrant) lock; shutdown() sets the event and would wait
        # on it for ever (seen under load: the daemon never exited after SIGTERM).
        threading.Thread(target=self._shutdown_scheduler, name="syncd-stop", daemon=True).start()

    def _shutdown_scheduler(self) -> None:
        """Stop the scheduler if it runs; if it has not started yet, its first job (due at once) does."""
        if self.scheduler is not None and self.scheduler.running:
            with contextlib.suppress(SchedulerNotRunningError):
                self.scheduler.shutdown(wait=False)

    # -- the job ------------------------------------------------------------------------------------
    def _sync_job(self) -> None:
        if self.stop.is_set():  # a signal that came while the scheduler was starting
            self._shutdown_scheduler()
            return
        error: str | None = None
        self.idle.clear()
        self.last_progress = time.monotonic()
        self._record(state="syncing", progress=None)
        try:
            result = run_engine(self.config, self.secrets, on_progress=self._on_progress,
                                should_stop=self.stop.is_set, now=self.now)
        except SyncdError as e:  # state could not be opened, or another fatal outside the run
            result = None
            error = str(e)
        except Exception as e:  # a bug must not kill the service; it is logged with its traceback
            log.exception("sync crashed")
            result, error = None, f"{type(e).__name__}: {e}"
        finally:
            self.idle.set()
        if result is not None:
            error = result.error if not result.ok and result.status != "interrupted" else None
        self._after_run(result, error)

    def _after_run(self, result: RunResult | None, error: str | None) -> None:
        next_run = self._next_run_time()
        if error is None:
            self.failures = 0
        else:
            self.failures += 1
            base = timedelta(seconds=self.config.schedule.interval_seconds or 300)
            backoff = min(base * 2 ** (self.failures - 1), MAX_BACKOFF)
            later = self.now() + backoff
            if next_run is not None and later > next_run and self.scheduler is not None and not self.stop.is_set():
                self.scheduler.modify_job("sync", next_run_time=later)
                next_run = later
            log.warning("run failed (%d in a row): %s; next run at %s", self.failures, error,
                        next_run.isoformat(timespec="seconds") if next_run else "none")
        summary = (f"last run {result.status}: read {result.read}, sent {result.sent}, removed {result.removed}"
                   if result else "last run failed before it started")
        when = next_run.strftime("%H:%M:%S UTC") if next_run else "none"
        self.notifier.status(f"idle; {summary}; next run {when}")
        self._record(state="idle", progress=None, next_run_at=next_run, last_error=error)

    def _next_run_time(self) -> datetime | None:
        if self.scheduler is None:
            return None
        job = self.scheduler.get_job("sync")
        return job.next_run_time if job is not None else None

    def _on_progress(self, p: Progress) -> None:
        self.last_progress = time.monotonic()
        if p.api_usage is not None:
            self.live.api_used, self.live.api_limit = p.api_usage
        if self.last_progress - self._last_status < 1.0:
            return
        self._last_status = self.last_progress
        text = (f"syncing: {p.phase}, read {p.read:,}" + (f"/{p.total:,}" if p.total else "")
                + f", sent {p.sent:,}, removed {p.removed:,}, {p.in_flight} jobs in flight")
        self.notifier.status(text)
        self._record(progress=json.dumps({"phase": p.phase, "read": p.read, "total": p.total, "sent": p.sent,
                                          "removed": p.removed, "in_flight": p.in_flight}))

    # -- liveness -----------------------------------------------------------------------------------
    def _pace(self) -> None:
        """Ping the watchdog while the work loop is alive, and keep the daemon heartbeat fresh."""
        watchdog = self.notifier.watchdog_seconds
        interval = min(HEARTBEAT_EVERY, watchdog / 2) if watchdog else HEARTBEAT_EVERY
        last_beat = 0.0
        while not self.stop.is_set():
            # A sync waiting on a remote is making progress too: every call has a bounded worst case
            # (http.network_wait_until), past which the watchdog may kill it.
            mono = time.monotonic()
            healthy = (self.idle.is_set() or mono - self.last_progress < (watchdog or float("inf"))
                       or network_wait_until() > mono)
            if healthy:
                if watchdog:
                    self.notifier.watchdog()
                if time.monotonic() - last_beat >= HEARTBEAT_EVERY:
                    self._record(heartbeat_at=self.now())
                    last_beat = time.monotonic()
            self.stop.wait(interval)

    def _record(self, **fields: Any) -> None:
        if self.store is None:
            return
        with self._store_lock:
            try:
                self.store.set_daemon(**fields)
            except SyncdError as e:
                log.warning("could not record the daemon state: %s", e)
