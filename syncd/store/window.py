"""The window position in ``sync_state``: watermark, the open window and how far it was read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from syncd.errors import StateError
from syncd.store.db import Database, from_iso, iso

_CLEAR = ("window_start = NULL, window_end = NULL, window_run_id = NULL, pos_ts = NULL, pos_id = NULL, "
          "next_url = NULL, next_url_at = NULL")


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

    @property
    def in_window(self) -> bool:
        return self.window_end is not None


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
                pos_id=r["pos_id"], next_url=r["next_url"], next_url_at=from_iso(r["next_url_at"]))
        except (TypeError, ValueError) as e:
            raise StateError(f"the sync_state row of {self.path} is unreadable ({e}); fix it or run "
                             "`syncd reset` to re-read the whole org") from None

    def open_window(self, start: datetime | None, end: datetime, run_id: int) -> None:
        with self.transaction() as c:
            c.execute(f"UPDATE sync_state SET {_CLEAR}")  # noqa: S608 - fixed text
            c.execute("UPDATE sync_state SET window_start = ?, window_end = ?, window_run_id = ?",
                      (iso(start), iso(end), run_id))

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
            c.execute(f"UPDATE sync_state SET watermark = window_end, {_CLEAR}")  # noqa: S608 - fixed text
        return True

    def rewind(self) -> None:
        """``syncd reset``: forget the watermark and any open window; acked hashes stay."""
        with self.transaction() as c:
            c.execute(f"UPDATE sync_state SET watermark = NULL, {_CLEAR}")  # noqa: S608 - fixed text

    def save_position(self, pos_ts: str | None, pos_id: str | None, next_url: str | None,
                      next_url_at: datetime | None) -> None:
        """Where the window stands (inside the page's transaction, see ``apply_page``)."""
        with self.transaction() as c:
            c.execute("UPDATE sync_state SET pos_ts = ?, pos_id = ?, next_url = ?, next_url_at = ?",
                      (pos_ts, pos_id, next_url, iso(next_url_at)))
