"""The window position in ``sync_state``: watermark, the open window and how far it was read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from syncd.errors import StateError
from syncd.store.db import Database, from_iso, iso

_CLEAR = ("window_start = NULL, window_end = NULL, window_run_id = NULL, pos_ts = NULL, pos_id = NULL, "
          "next_url = NULL, next_url_at = NULL, window_full = 0, bulk_job_id = NULL, bulk_api_version = NULL, "
          "bulk_locator = NULL")


@dataclass(frozen=True)
class SyncState:
    watermark: datetime | None
    window_start: datetime | None
    window_end: datetime | None
    window_run_id: int | None
    pos_ts: str | None
    pos_id: str | None
    next_url: str | None
    next_url_at: datetime | None
    window_full: bool = False  # the open window is a full refresh
    refresh_reason: str | None = None  # why the next window must be a full refresh
    last_full_refresh: datetime | None = None  # the end of the last full refresh completed
    sf_skew_seconds: float | None = None  # Salesforce's clock minus the host's, when last measured
    bulk_job_id: str | None = None  # the open window's Bulk API query job
    bulk_api_version: str | None = None  # the API version it was made with
    bulk_locator: str | None = None  # its next chunk to apply (None: the first)

    @property
    def in_window(self) -> bool:
        return self.window_end is not None

    @property
    def window_is_full(self) -> bool:
        """The open window reads the whole org (a full refresh, or the first run)."""
        return self.window_full or (self.in_window and self.window_start is None)

    def full_refresh_due_at(self, days: float) -> datetime | None:
        """When the interval ``schedule.full_refresh_days`` next asks for a full refresh (None: it does not)."""
        if days <= 0 or self.last_full_refresh is None:
            return None
        return self.last_full_refresh + timedelta(days=days)


class WindowQueries(Database):
    def sync_state(self) -> SyncState:
        r = self._one("SELECT * FROM sync_state WHERE id = 1")
        if r is None:
            raise StateError(f"the state database {self.path} lacks its sync_state row; restore it from a "
                             "backup, or move it away so the next run starts a fresh state")
        try:
            return SyncState(
                watermark=from_iso(r["watermark"]), window_start=from_iso(r["window_start"]),
                window_end=from_iso(r["window_end"]), window_run_id=r["window_run_id"], pos_ts=r["pos_ts"],
                pos_id=r["pos_id"], next_url=r["next_url"], next_url_at=from_iso(r["next_url_at"]),
                window_full=bool(r["window_full"]), refresh_reason=r["refresh_reason"],
                last_full_refresh=from_iso(r["last_full_refresh"]), sf_skew_seconds=r["sf_skew_seconds"],
                bulk_job_id=r["bulk_job_id"], bulk_api_version=r["bulk_api_version"], bulk_locator=r["bulk_locator"])
        except (TypeError, ValueError) as e:
            raise StateError(f"the sync_state row of {self.path} is unreadable ({e}); fix it or run "
                             "`syncd reset` to re-read the whole org") from None

    def open_window(self, start: datetime | None, end: datetime, run_id: int, full: bool = False) -> None:
        with self.transaction() as c:
            c.execute(f"UPDATE sync_state SET {_CLEAR}")  # noqa: S608 - fixed text
            c.execute("UPDATE sync_state SET window_start = ?, window_end = ?, window_run_id = ?, window_full = ?",
                      (iso(start), iso(end), run_id, int(full)))

    def request_refresh(self, reason: str) -> None:
        """The next window is a full refresh (unless one is open: then that one answers it)."""
        with self.transaction() as c:
            c.execute("UPDATE sync_state SET refresh_reason = ? WHERE refresh_reason IS NULL", (reason[:300],))

    def start_refresh_clock(self, at: datetime) -> None:
        """A state from before full refreshes existed: count their interval from now, not at once."""
        with self.transaction() as c:
            c.execute("UPDATE sync_state SET last_full_refresh = ? WHERE last_full_refresh IS NULL", (iso(at),))

    def note_skew(self, seconds: float, at: datetime) -> None:
        with self.transaction() as c:
            c.execute("UPDATE sync_state SET sf_skew_seconds = ?, sf_clock_at = ?", (round(seconds, 1), iso(at)))

    def close_window(self, end: datetime) -> bool:
        """The whole window ending at ``end`` was read: the watermark moves there, never backwards.

        Returns False (and changes nothing) when that window is no longer the open one, which
        happens when an operator ran ``syncd reset`` while the run was reading.
        """
        with self.transaction() as c:
            st = self.sync_state()
            if st.window_end != end:
                return False
            if st.watermark is not None and st.window_end < st.watermark:
                raise StateError(f"window end {st.window_end} is before the watermark {st.watermark}")
            if st.window_is_full:
                c.execute("UPDATE sync_state SET last_full_refresh = window_end, refresh_reason = NULL")
            c.execute(f"UPDATE sync_state SET watermark = window_end, {_CLEAR}")  # noqa: S608 - fixed text
        return True

    def rewind(self) -> None:
        """``syncd reset``: forget the watermark and any open window; acked hashes stay. The next window
        is a full refresh: every tracked lead it does not return is looked up, and gone if deleted."""
        with self.transaction() as c:
            c.execute(f"UPDATE sync_state SET watermark = NULL, refresh_reason = 'syncd reset', "  # noqa: S608
                      f"{_CLEAR}")

    def save_bulk(self, job_id: str | None, api_version: str | None, locator: str | None) -> None:
        """The open window's Bulk job and the next chunk to apply (all None: the job is forgotten)."""
        with self.transaction() as c:
            c.execute("UPDATE sync_state SET bulk_job_id = ?, bulk_api_version = ?, bulk_locator = ?",
                      (job_id, api_version, locator))

    def save_position(self, pos_ts: str | None, pos_id: str | None, next_url: str | None,
                      next_url_at: datetime | None) -> None:
        """Where the window stands (inside the page's transaction, see ``apply_page``)."""
        with self.transaction() as c:
            c.execute("UPDATE sync_state SET pos_ts = ?, pos_id = ?, next_url = ?, next_url_at = ?",
                      (pos_ts, pos_id, next_url, iso(next_url_at)))
