"""Read-only views of the state for ``status``, ``jobs`` and ``skipped``: safe beside a running daemon."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from syncd.config import Config
from syncd.store import StateLock, Store, iso


def _open(config: Config) -> Store:
    return Store(config.state.path, readonly=True)


def status(config: Config) -> dict[str, Any]:
    """The object ``syncd status --json`` prints (field names bound by DESIGN.md)."""
    holder = StateLock(config.state.path).held_by_other()
    store = _open(config)
    try:
        st = store.sync_state()
        counts = store.counts()
        last = store.last_run()
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
        "daemon": {"running": holder is not None, "pid": holder if holder and holder > 0 else None,
                   "heartbeat_at": last["heartbeat_at"] if last and holder is not None else None},
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
