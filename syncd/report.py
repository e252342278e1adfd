"""Read-only views of the state for ``status``, ``jobs`` and ``skipped``: safe beside a running daemon."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from syncd.config import Config
from syncd.lock import StateLock
from syncd.store import Store, iso


def _open(config: Config) -> Store:
    return Store(config.state.path, readonly=True)


def _daemon(row: dict[str, Any], holder: int | None, now: datetime) -> dict[str, Any]:
    running = holder is not None and holder == row["pid"] and row["stopped_at"] is None
    beat = datetime.fromisoformat(row["heartbeat_at"]) if running and row["heartbeat_at"] else None
    return {
        "running": running,
        "pid": row["pid"] if running else None,
        "heartbeat_at": row["heartbeat_at"] if running else None,
        "heartbeat_age_seconds": round((now - beat).total_seconds(), 1) if beat else None,
        "state": row["state"] if running else None,
        "progress": json.loads(row["progress"]) if running and row["progress"] else None,
        "next_run_at": row["next_run_at"] if running else None,
        "last_error": row["last_error"],
    }


def status(config: Config, now: datetime | None = None) -> dict[str, Any]:
    """The object ``syncd status --json`` prints (field names bound by DESIGN.md)."""
    holder = StateLock(config.state.path).held_by_other()
    store = _open(config)
    try:
        st = store.sync_state()
        counts = store.counts()
        last = store.last_run()
        daemon = store.daemon()
    finally:
        store.close()
    window = None
    if st.in_window:
        window = {"start": iso(st.window_start), "end": iso(st.window_end),
                  "position": {"SystemModstamp": st.pos_ts, "Id": st.pos_id} if st.pos_ts else None}
    last_run = None
    if last is not None:
        run_status = last["status"]
        if run_status == "running" and holder is None:
            run_status = "interrupted"  # its process is gone: nobody holds the lock
        last_run = {k: last[k] for k in ("id", "started_at", "finished_at", "read", "sent", "removed", "skipped",
                                         "error", "pid", "heartbeat_at")}
        last_run["status"] = run_status
    return {
        "watermark": iso(st.watermark),
        "window": window,
        **counts,
        "last_run": last_run,
        "daemon": _daemon(daemon, holder, now or datetime.now(timezone.utc)),
        "lock_holder": holder if holder and holder > 0 else None,
    }


def jobs(config: Config, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    store = _open(config)
    try:
        return store.list_batches(state, limit)
    finally:
        store.close()


def skipped(config: Config) -> Iterator[dict[str, Any]]:
    store = _open(config)
    try:
        yield from store.skips()
    finally:
        store.close()
