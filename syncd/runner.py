"""Wire one sync run together: lock, state, HTTP session, Salesforce client, sink, engine."""

from __future__ import annotations

import gc
from collections.abc import Callable
from datetime import datetime

from syncd.clock import utcnow
from syncd.config import Config
from syncd.context import Progress
from syncd.cxone import make_sink
from syncd.engine import Engine, RunResult
from syncd.http import session_for
from syncd.lock import StateLock
from syncd.salesforce import SalesforceClient
from syncd.secrets import Secrets
from syncd.store import Store


def tune_gc() -> None:
    """Fewer cyclic-GC passes: each page decodes thousands of short-lived dicts that hold no cycles,
    and the default threshold (700) makes the collector run every few records (~15% of sync CPU)."""
    gc.freeze()  # what the imports allocated is never garbage
    gc.set_threshold(50_000, 20, 20)


def run_engine(
    config: Config,
    secrets: Secrets,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    now: Callable[[], datetime] = utcnow,
) -> RunResult:
    """One run, for a caller that already holds the state lock (the daemon)."""
    tune_gc()
    store = Store(config.state.path, busy_timeout=config.state.busy_timeout_seconds)
    session = session_for(config.http)
    try:
        engine = Engine(
            config, store, SalesforceClient(config.salesforce, secrets, session, now),
            make_sink(config, secrets, session, now), now=now, on_progress=on_progress, should_stop=should_stop)
        return engine.run()
    finally:
        session.close()
        store.close()


def sync_once(
    config: Config,
    secrets: Secrets,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    now: Callable[[], datetime] = utcnow,
) -> RunResult:
    """Run one sync under the state lock (``LockHeld`` if another syncd has it)."""
    lock = StateLock(config.state.path)
    lock.acquire()
    try:
        return run_engine(config, secrets, on_progress=on_progress, should_stop=should_stop, now=now)
    finally:
        lock.release()
