"""Wire one sync run together: lock, state, HTTP session, Salesforce client, sink, engine."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from syncd.clock import utcnow
from syncd.config import Config
from syncd.context import Progress
from syncd.cxone import make_sink
from syncd.engine import Engine, RunResult
from syncd.errors import Refused, StateError
from syncd.http import session_for
from syncd.lock import StateLock
from syncd.salesforce import SalesforceClient
from syncd.salesforce.tokens import token_file_for
from syncd.secrets import Secrets
from syncd.store import Store
from syncd.store.db import no_state

log = logging.getLogger(__name__)
_gc_tuned = False


def tune_gc() -> None:
    """Fewer cyclic-GC passes: each page decodes thousands of short-lived dicts that hold no cycles,
    and the default threshold (700) makes the collector run every few records (~15% of sync CPU).

    Once per process, at its start: what is alive then (the imports) is frozen out of the
    collector's sight. Freezing again later would pin each run's leftover garbage for good.
    """
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def open_state(config: Config, lock: StateLock) -> Store:
    """Open the state for the lock's holder; after an unclean stop, check it before any use.

    A missing ``-wal`` after an unclean stop means the last committed changes are gone with it:
    that is said, never silently rolled back. A file that fails ``quick_check`` stops syncd.
    """
    path = config.state.path
    wal = Path(f"{path}-wal")
    if lock.unclean and path.exists() and path.stat().st_size > 0 and not wal.exists():
        raise StateError(f"the state database {path} was not closed cleanly and its write-ahead log {wal} is "
                         "missing: the changes committed last are lost with it. Restore the .db and its -wal "
                         "together from one backup, or accept the loss with `syncd reset` (a full re-read "
                         "that sends only what CXone lacks)")
    store = Store(path, busy_timeout=config.state.busy_timeout_seconds)
    try:
        if lock.unclean:
            log.info("the last writer of %s stopped uncleanly; checking the file's integrity", path)
            store.check_integrity()
        lock.mark_open()
    except BaseException:
        store.close()
        raise
    return store


def close_state(store: Store, lock: StateLock) -> None:
    lock.mark_closed()
    store.close()


def run_engine(
    config: Config,
    secrets: Secrets,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    now: Callable[[], datetime] = utcnow,
    store: Store | None = None,
    allow_mass_removal: bool = False,
    dry_run: bool = False,
    salesforce_sleep: Callable[[float], None] | None = None,
    token_file: Path | None = None,
) -> RunResult:
    """One run, for a caller that already holds the state lock (the daemon), on ``store`` or its own.
    ``token_file``: where a rotated refresh token is kept (default: beside ``config.state.path``).
    ``salesforce_sleep`` replaces the waits of Salesforce's ConcurrentRequests backoff (tests)."""
    tune_gc()
    own = store is None
    run_store = Store(config.state.path, busy_timeout=config.state.busy_timeout_seconds) if store is None else store
    session = session_for(config.http)
    try:
        engine = Engine(
            config, run_store, SalesforceClient(config.salesforce, secrets, session, now,
                                                  token_file or token_file_for(config.state.path)),
            make_sink(config, secrets, session, now), now=now, on_progress=on_progress, should_stop=should_stop,
            allow_mass_removal=allow_mass_removal, dry_run=dry_run)
        if salesforce_sleep is not None:
            engine.sf.sleep = salesforce_sleep
        return engine.run()
    finally:
        session.close()
        if own:
            run_store.close()


def sync_once(
    config: Config,
    secrets: Secrets,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    now: Callable[[], datetime] = utcnow,
    allow_mass_removal: bool = False,
    salesforce_sleep: Callable[[float], None] | None = None,
) -> RunResult:
    """Run one sync under the state lock (``LockHeld`` if another syncd has it)."""
    lock = StateLock(config.state.path)
    lock.acquire()
    try:
        store = open_state(config, lock)
        try:
            return run_engine(config, secrets, on_progress=on_progress, should_stop=should_stop, now=now,
                              store=store, allow_mass_removal=allow_mass_removal, salesforce_sleep=salesforce_sleep)
        finally:
            close_state(store, lock)
    finally:
        lock.release()



def verify_now(config: Config, secrets: Secrets, now: Callable[[], datetime] = utcnow) -> dict[str, Any]:
    """``syncd verify``: download the list, compare, mark the drift (the next run heals it). Returns the
    counts, and ``problem``: the setting this tenant contradicts, if any."""
    from syncd.context import RunContext
    from syncd.verify import Verifier, mismatch

    if config.cxone.api != "call-lists" or config.cxone.call_lists is None:
        raise Refused("the contacts-batch API offers no way to read the contacts back; nothing to verify")
    if not config.state.path.exists():
        # Never a fresh state just to compare with (every record would read as unexpected), and never a
        # second state beside a service whose configuration was not the one given.
        raise StateError(no_state(config.state.path))
    lock = StateLock(config.state.path)
    lock.acquire()
    try:
        store = open_state(config, lock)
        session = session_for(config.http)
        try:
            ctx = RunContext(config, store, make_sink(config, secrets, session, now), now, lambda: None)
            found = Verifier(ctx).run()
            found["unremovable"] = store.unremovable()
            problem = mismatch(found, config.cxone.call_lists.removal)
            return {"at": now().isoformat(), **found, "problem": str(problem) if problem else None}
        finally:
            session.close()
            close_state(store, lock)
    finally:
        lock.release()


def dry_run(config: Config, secrets: Secrets, now: Callable[[], datetime] = utcnow) -> RunResult:
    """``syncd sync --dry-run``: read Salesforce into a copy of the state and say what a run would send.
    Neither CXone nor the state is touched (the copy is taken with SQLite's backup API and dropped)."""
    import sqlite3
    import tempfile

    with tempfile.TemporaryDirectory(prefix="syncd-dry-run-") as tmp:
        copy = Path(tmp) / "syncd.db"
        if config.state.path.exists():
            source = Store(config.state.path, readonly=True)
            try:
                target = sqlite3.connect(copy)
                source.conn.backup(target)
                target.close()
            finally:
                source.close()
        scratch = config.model_copy(update={"state": config.state.model_copy(update={"path": copy})})
        store = Store(copy)
        try:
            # A refresh token rotated while reading is kept beside the real state, not the throwaway copy.
            return run_engine(scratch, secrets, now=now, store=store, dry_run=True,
                              token_file=token_file_for(config.state.path))
        finally:
            store.close()
