"""Operator actions that write state beside a running daemon: replay a job, rewind for a resync.

They take no lock: each is one ``BEGIN IMMEDIATE`` transaction, and the engine re-reads the
outbox and the window at every safe point, so a running daemon picks their effect up.
"""

from __future__ import annotations

from typing import Any

from syncd.clock import utcnow
from syncd.config import Config
from syncd.errors import Refused
from syncd.store import Store


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
        staged = store.replay(batch["id"], utcnow())
        if not staged:
            raise Refused(f"batch {batch['id']} has no lead left to replay (each is either in flight in "
                          "another batch or no longer tracked)")
        return staged
    finally:
        store.close()


def reset(config: Config) -> dict[str, Any]:
    """Forget the watermark and any open window; acked hashes stay, so a resync sends only what differs."""
    store = Store(config.state.path, create=False)
    try:
        before = store.sync_state()
        store.rewind()
        return {"watermark": before.watermark.isoformat() if before.watermark else None,
                "window_open": before.in_window}
    finally:
        store.close()
