"""Operator actions that write state beside a running daemon: replay a job, rewind for a resync.

They take no lock: each is one ``BEGIN IMMEDIATE`` transaction, and the engine re-reads the
outbox and the window at every safe point, so a running daemon picks their effect up.
"""

from __future__ import annotations

import logging
from typing import Any

from syncd.clock import utcnow
from syncd.config import Config
from syncd.cxone import sink_can_remove
from syncd.errors import LockHeld, Refused
from syncd.lock import StateLock
from syncd.outbox import sendable_kinds
from syncd.store import Store

log = logging.getLogger(__name__)


def replay_job(config: Config, ref: str) -> list[tuple[str, str, int]]:
    """Re-queue the leads of a closed batch (by batch id or CXone job id) with their current content."""
    store = Store(config.state.path, create=False)
    try:
        batch = store.find_batch(ref)
        if batch is None:
            raise Refused(f"no batch or CXone job with id {ref!r} (see `syncd jobs`)")
        if batch["state"] in ("staged", "submitted"):
            where = f" as CXone job {batch['job_id']}" if batch["job_id"] else ""
            raise Refused(f"batch {batch['id']} is still in flight ({batch['state']}{where}); "
                          "replay it once it has completed or failed")
        kinds = sendable_kinds(config) if sink_can_remove(config.cxone.api) else ("upsert",)
        staged, unsendable = store.replay(batch["id"], utcnow(), kinds)
        if unsendable and not staged:
            raise Refused(f"batch {batch['id']} holds {unsendable} removal{'s' * (unsendable != 1)}, which the "
                          f"{config.cxone.api} API cannot send; nothing was staged (they stay pending removal, "
                          "see `syncd status`)")
        if not staged:
            raise Refused(f"batch {batch['id']} has no lead left to replay (each is either in flight in "
                          "another batch or no longer tracked)")
        if unsendable:
            log.warning("%d removals of batch %s were not staged: the %s API cannot send them", unsendable,
                        batch["id"], config.cxone.api)
        return staged
    finally:
        store.close()


def replay_parked(config: Config) -> tuple[int, int]:
    """Release every parked lead at once (``replay-job --parked``): the next run sends each as it is now."""
    store = Store(config.state.path, create=False)
    try:
        return store.release_parked()
    finally:
        store.close()


def reset(config: Config) -> dict[str, Any]:
    """Forget the watermark and any open window; acked hashes stay, so a resync sends only what differs.

    With no syncd running, it also accepts what an unclean stop left (the mark that makes the next
    writer check the file, or refuse a missing ``-wal``): reset is the operator saying so.
    """
    lock = StateLock(config.state.path)
    try:
        lock.acquire()
        held = True
    except LockHeld:
        held = False  # a running syncd: it owns the mark, and picks the rewind up at its next safe point
    store = Store(config.state.path, create=False)
    try:
        before = store.sync_state()
        store.rewind()
        if held:
            lock.mark_closed()
        return {"watermark": before.watermark.isoformat() if before.watermark else None,
                "window_open": before.in_window}
    finally:
        store.close()
        if held:
            lock.release()
