"""Runs and the daemon row: what each sync did, and what ``syncd run`` is doing now."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from syncd.store.db import Database, from_iso, iso


class RunQueries(Database):
    def start_run(self, pid: int, now: datetime) -> int:
        with self.transaction() as c:
            # We hold the lock, so a run still marked running died with its process.
            c.execute("UPDATE runs SET status = 'interrupted', finished_at = heartbeat_at "
                      "WHERE status = 'running'")
            cur = c.execute("INSERT INTO runs (status, pid, started_at, heartbeat_at) VALUES ('running', ?, ?, ?)",
                            (pid, iso(now), iso(now)))
            return int(cur.lastrowid or 0)

    def first_run_at(self) -> datetime | None:
        return from_iso(self._value("SELECT min(started_at) FROM runs"))

    def heartbeat(self, run_id: int, now: datetime) -> None:
        with self.transaction() as c:
            c.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", (iso(now), run_id))

    def set_run_window(self, run_id: int, start: datetime | None, end: datetime | None) -> None:
        with self.transaction() as c:
            c.execute("UPDATE runs SET window_start = ?, window_end = ? WHERE id = ?", (iso(start), iso(end), run_id))

    def finish_run(self, run_id: int, status: str, error: str | None, now: datetime) -> dict[str, Any]:
        with self.transaction() as c:
            c.execute("UPDATE runs SET status = ?, error = ?, finished_at = ?, heartbeat_at = ? WHERE id = ?",
                      (status, error, iso(now), iso(now), run_id))
        return self.run(run_id) or {}

    def run(self, run_id: int) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM runs WHERE id = ?", (run_id,))
        return rows[0] if rows else None

    def last_run(self) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM runs ORDER BY id DESC LIMIT 1")
        return rows[0] if rows else None

    def last_finished_run(self) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM runs WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1")
        return rows[0] if rows else None

    # -- daemon ---------------------------------------------------------------------------------
    DAEMON_FIELDS = frozenset({"pid", "started_at", "heartbeat_at", "state", "progress", "next_run_at", "last_error",
                               "stopped_at"})

    def set_daemon(self, **fields: Any) -> None:
        unknown = set(fields) - self.DAEMON_FIELDS
        if unknown:
            raise ValueError(f"unknown daemon fields {sorted(unknown)}")
        values = {k: iso(v) if isinstance(v, datetime) else v for k, v in fields.items()}
        assignments = ", ".join(f"{k} = ?" for k in values)  # names checked against DAEMON_FIELDS above
        with self.transaction() as c:
            c.execute(f"UPDATE daemon SET {assignments} WHERE id = 1", list(values.values()))  # noqa: S608

    def daemon(self) -> dict[str, Any]:
        return self._rows("SELECT * FROM daemon WHERE id = 1")[0]
