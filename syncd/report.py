"""Read-only views of the state for ``status``, ``jobs`` and ``skipped``: safe beside a running daemon."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from rich.table import Table

from syncd import __version__
from syncd.config import Config
from syncd.lock import StateLock
from syncd.store import Store, iso
from syncd.store.window import SyncState


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
        checked = store.last_verification()
        schema = store.schema_version()
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
    cl = config.cxone.call_lists
    lets_expire = config.cxone.api == "call-lists" and cl is not None and (
        cl.removal == "expire-only" or cl.upload_mode == "snapshot")
    counts["leads"]["expiring"] = counts["leads"]["pending_removal"] if lets_expire else 0
    verify = None
    if checked is not None:
        verify = {k: checked[k] for k in ("at", "records", "missing", "expired", "finalized", "wrong", "unexpected",
                                          "removed_again", "unremovable", "unrestorable", "rejected", "replaced")}
        verify["unremovable"] = counts["leads"]["unremovable"]  # as it stands now, not only when last checked
    return {
        "version": __version__,
        "state_path": str(config.state.path),
        "schema_version": schema,
        "watermark": iso(st.watermark),
        "window": window,
        **counts,
        "verify": verify,
        "last_full_refresh": iso(st.last_full_refresh),
        "full_refresh": _full_refresh(config, st),
        # The open window's Bulk API job: its results are read with the API version it was made with.
        "bulk_job": {"id": st.bulk_job_id, "api_version": st.bulk_api_version,
                     "next_chunk": "none (all applied)" if st.bulk_locator == "null" else st.bulk_locator or "first"}
        if st.bulk_job_id else None,
        "salesforce_clock_skew_seconds": st.sf_skew_seconds,
        "last_run": last_run,
        "daemon": _daemon(daemon, holder, now or datetime.now(timezone.utc)),
        "lock_holder": holder if holder and holder > 0 else None,
    }


def _full_refresh(config: Config, st: SyncState) -> dict[str, Any]:
    """When the next full refresh comes, and why: a reset or a delete-log gap says so at once."""
    days = config.schedule.full_refresh_days
    if st.window_is_full:
        return {"running": True, "due_at": None, "reason": st.refresh_reason or "in progress"}
    if st.watermark is None:
        return {"running": False, "due_at": None, "reason": "first run (or after syncd reset): the whole org"}
    if st.refresh_reason:
        return {"running": False, "due_at": None, "reason": st.refresh_reason}
    return {"running": False, "due_at": iso(st.full_refresh_due_at(days)),
            "reason": f"every {days:g} days" if days > 0 else None}


def jobs(config: Config, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    store = _open(config)
    try:
        return store.list_batches(state, limit)
    finally:
        store.close()


def skipped(config: Config, reason: str | None = None) -> Iterator[dict[str, Any]]:
    store = _open(config)
    try:
        yield from store.skips(reason)
    finally:
        store.close()


def status_table(s: dict[str, Any]) -> Table:
    t = Table(title="syncd status", show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    d = s["daemon"]
    if d["running"]:
        t.add_row("daemon", f"running (pid {d['pid']}), {d['state']}, heartbeat {d['heartbeat_age_seconds']}s ago")
        if d["progress"]:
            p = d["progress"]
            t.add_row("", f"{p['phase']}: read {p['read']:,}" + (f"/{p['total']:,}" if p["total"] else "")
                      + f", sent {p['sent']:,}, removed {p['removed']:,}, {p['in_flight']} jobs in flight")
        if d["next_run_at"]:
            t.add_row("next run", str(d["next_run_at"]))
    else:
        t.add_row("daemon", "not running" + (f" (a sync, pid {s['lock_holder']}, holds the lock)"
                                             if s["lock_holder"] else ""))
    if d["last_error"]:
        t.add_row("daemon error", str(d["last_error"]))
    t.add_row("state", f"{s['state_path']} (schema {s['schema_version']}, syncd {s['version']})")
    t.add_row("watermark", s["watermark"] or "none (the next run reads the whole org)")
    fr = s["full_refresh"]
    if fr["running"]:
        upcoming = "running now"
    elif fr["due_at"]:
        upcoming = f"next {fr['due_at']}"
    else:
        upcoming = "next run" if fr["reason"] else "only after `syncd reset` (full_refresh_days = 0)"
    t.add_row("full refresh", f"last {s['last_full_refresh'] or 'never'}; {upcoming}"
              + (f" ({fr['reason']})" if fr["reason"] else ""))
    if s["salesforce_clock_skew_seconds"] is not None and abs(s["salesforce_clock_skew_seconds"]) >= 2:
        t.add_row("salesforce clock", f"{s['salesforce_clock_skew_seconds']:+.0f} s from this host's")
    w = s["window"]
    if w:
        pos = w["position"]
        t.add_row("open window", f"[{w['start'] or 'beginning'}, {w['end']})"
                  + (f" at {pos['SystemModstamp']} / {pos['Id']}" if pos else ""))
    if s["bulk_job"]:
        b = s["bulk_job"]
        t.add_row("bulk job", f"{b['id']} (API v{b['api_version']}), next chunk: {b['next_chunk']}")
    lr = s["last_run"]
    if lr:
        t.add_row("last run", f"#{lr['id']} {lr['status']} started {lr['started_at']}"
                  + (f", finished {lr['finished_at']}" if lr["finished_at"] else ""))
        t.add_row("", f"read {lr['read']:,} · sent {lr['sent']:,} · removed {lr['removed']:,} · "
                      f"skipped {lr['skipped']:,}")
        if lr["error"]:
            t.add_row("last error", str(lr["error"]))
    le = s["leads"]
    t.add_row("leads", f"tracked {le['tracked']:,} · on list {le['on_list']:,} · dirty {le['dirty']:,} · "
                       f"pending removal {le['pending_removal']:,} · parked {le['parked']:,} · "
                       f"removed {le['removed']:,}")
    if le["suppressed"] or le["expiring"] or le["unremovable"]:
        t.add_row("", f"suppressed {le['suppressed']:,} · expiring {le['expiring']:,} · "
                      f"unremovable {le['unremovable']:,}")
    v = s["verify"]
    t.add_row("verified", "never (see `syncd verify`)" if v is None else
              f"{v['at']}: {v['records']:,} records · missing {v['missing']:,} · expired {v['expired']:,} · "
              f"wrong {v['wrong'] + v['finalized']:,} · unexpected {v['unexpected']:,} · "
              f"unremovable {v['unremovable']:,}")
    b = s["batches"]
    t.add_row("batches", " · ".join(f"{k} {v:,}" for k, v in b.items()))
    t.add_row("skipped", " · ".join(f"{k} {v:,}" for k, v in s["skipped"].items()) or "none")
    return t


def lead_story(config: Config, lead_id: str) -> dict[str, Any]:
    """One lead's story: what Salesforce said, what was sent when (batch, job), acked, verified, skipped."""
    store = _open(config)
    try:
        return {"id": lead_id, **store.lead_history(lead_id)}
    finally:
        store.close()


def story_lines(s: dict[str, Any]) -> list[str]:
    lead, skip = s["lead"], s["skip"]
    lines = [f"lead {s['id']}"]
    if lead is None and skip is None and not s["batches"]:
        return [*lines, "  syncd has never read this lead (or it was never callable and left no trace)"]
    if skip is not None:
        lines.append(f"  salesforce: not callable ({skip['reason']}{': ' + skip['detail'] if skip['detail'] else ''}),"
                     f" read in run {skip['run_id']} at SystemModstamp {skip['modstamp']}")
    if lead is not None:
        if lead["seen_hash"]:
            lines.append(f"  salesforce: callable on {lead['phone']}, SystemModstamp {lead['modstamp']}")
        stale = lead["acked_hash"] == "00"
        on = "CXone confirmed it" + (", due to be sent again" if stale else
                                     "" if lead["acked_hash"] == lead["seen_hash"] else ", with older content")
        lines.append(f"  cxone: {on if lead['acked_hash'] else 'not on the list'}"
                     + (f" (batch {lead['acked_batch']}, record expires {lead['expires_on']})"
                        if lead["acked_hash"] else "")
                     + (f"; removal answered at {lead['removed_at']}, not yet verified" if lead["removed_at"] else ""))
        if lead["batch_id"]:
            lines.append(f"  in flight in batch {lead['batch_id']}")
        if lead["parked"]:
            lines.append(f"  parked after {lead['attempts']} attempts: {lead['parked']} (batch {lead['parked_batch']})")
        if lead["drift"]:
            lines.append(f"  verification found it {lead['drift']} ({lead['misses']} time(s) in a row)")
    for b in s["batches"]:
        job = f" as job {b['job_id']}" if b["job_id"] else ""
        lines.append(f"  {b['created_at']}: {'snapshot' if b['snapshot'] else b['kind']} batch {b['id']}{job}, "
                     f"{b['state']}" + (f" at {b['finished_at']}" if b["finished_at"] else "")
                     + (f" ({b['error']})" if b["error"] else ""))
    for p in s["suppression"]:
        lines.append(f"  do not call: {p['phone']} " + (f"suppressed since {p['added_at']}" if p["added_at"]
                                                         else "waiting to be suppressed"))
    v = s["last_verification"]
    if v is not None and lead is not None and not lead["drift"]:
        lines.append(f"  last verification {v['at']}: nothing wrong with it")
    return lines
