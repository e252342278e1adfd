"""Leads and the skip audit: a page's effects, and the SQL form of the rules in ``syncd/diff.py``.

The predicates below are the SQL twins of ``diff.is_dirty``, ``diff.is_pending_upsert`` and
``diff.is_pending_removal``; ``tests/test_diff.py`` holds each pair equal on every state.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from syncd.store.db import json_text
from syncd.store.window import WindowQueries

DIRTY = "seen_hash IS NOT acked_hash"
# An acked hash that no content has: CXone holds a record of the lead, but not one to keep as it is
# (due for its keep-alive, finalized, another number). The lead is dirty, and still on the list.
STALE = b"\x00"
# Leads waiting to be staged (fixed SQL; the prefix matches the partial index leads_pending, which
# covers every column named here (m006) and is ordered as staging takes them, by seq (m011)).
_PENDING = DIRTY + " AND batch_id IS NULL AND parked IS NULL"
PENDING = {"upsert": _PENDING + " AND seen_hash IS NOT NULL", "remove": _PENDING + " AND seen_hash IS NULL"}


# One lead's outcome from a page: an eligible contact (hash + rendered row) or a skip.
class LeadUpdate(NamedTuple):
    lead_id: str
    modstamp: str | None
    hash: bytes | None = None
    payload: str | None = None
    reason: str | None = None
    detail: str = ""
    phone: str | None = None  # the eligible contact's E.164 number
    dnc: tuple[str, ...] = ()  # a Do Not Call lead's valid numbers (what suppression must block)
    keep_dnc: bool = False  # gone from Salesforce unseen (the delete log): what it needed blocked stays blocked


def existing(c: sqlite3.Connection, table: str, key: str, ids: list[str]) -> set[str]:
    if not ids:
        return set()
    sql = f"SELECT {key} FROM {table} WHERE {key} IN (SELECT value FROM json_each(?))"  # noqa: S608 - fixed names
    return {row[0] for row in c.execute(sql, (json_text(ids),))}


def _unchanged(c: sqlite3.Connection, eligible: list[LeadUpdate], skipped: list[LeadUpdate],
               ) -> tuple[set[str], set[str]]:
    """The page's leads whose row already holds what the update would write, and its skipped leads
    whose skip already says why. A lead the page shows twice is written as before, in page order."""
    skipped_ids = [u.lead_id for u in skipped]
    page_ids = [u.lead_id for u in eligible] + skipped_ids
    rows = {r[0]: r[1:] for r in c.execute("SELECT id, seen_hash, modstamp, phone FROM leads "
                                           "WHERE id IN (SELECT value FROM json_each(?))", (json_text(page_ids),))}
    same = {u.lead_id for u in eligible if rows.get(u.lead_id) == (u.hash, u.modstamp, u.phone)}
    same.update(u.lead_id for u in skipped if (row := rows.get(u.lead_id)) is not None and row[0] is None
                and row[1] == u.modstamp)
    skips = {r[0]: r[1:] for r in c.execute("SELECT lead_id, reason, detail, modstamp FROM skips "
                                            "WHERE lead_id IN (SELECT value FROM json_each(?))",
                                            (json_text(skipped_ids),))}
    same_skips = {u.lead_id for u in skipped if skips.get(u.lead_id) == (u.reason, u.detail, u.modstamp)}
    if len(set(page_ids)) < len(page_ids):
        twice = {i for i, n in Counter(page_ids).items() if n > 1}
        same -= twice
        same_skips -= twice
    return same, same_skips


class LeadQueries(WindowQueries):
    def apply_page(self, updates: Iterable[LeadUpdate], run_id: int, pos_ts: str | None, pos_id: str | None,
                   next_url: str | None, next_url_at: datetime | None, window_id: int | None = None,
                   keep_unchanged: bool = False) -> tuple[int, int]:
        """A page's effects and the position it reached, in one transaction. Returns (read, skipped)."""
        with self.transaction() as c:
            counts = self._apply(c, updates, run_id, window_id, keep_unchanged)
            self.save_position(pos_ts, pos_id, next_url, next_url_at)
        return counts

    def apply_rows(self, updates: Iterable[LeadUpdate], run_id: int, window_id: int | None = None,
                   keep_unchanged: bool = False) -> tuple[int, int]:
        """Leads read outside the window's order (by id, or from the delete log): the position stays."""
        with self.transaction() as c:
            return self._apply(c, updates, run_id, window_id, keep_unchanged)

    def _apply(self, c: sqlite3.Connection, updates: Iterable[LeadUpdate], run_id: int,
               window_id: int | None, keep_unchanged: bool) -> tuple[int, int]:
        """The rules of ``diff.observe``: new content resets the lead's attempts and releases it from
        parking; the same content keeps both. ``seen_window`` marks each lead the window returned.

        With ``keep_unchanged`` (a window that is not a full read: only a full window's mark is ever
        asked for) a lead read again exactly as its row holds it (hash, SystemModstamp, number; a skip's
        reason, detail and SystemModstamp) is not written again: every incremental window re-reads its
        lookback, and each such write would dirty a page of the state for nothing. Its skip keeps the
        run that first read it so."""
        eligible: list[LeadUpdate] = []
        skipped: list[LeadUpdate] = []
        for u in updates:
            (eligible if u.hash is not None else skipped).append(u)
        self._link_dnc(c, eligible + skipped)
        counts = len(eligible) + len(skipped), len(skipped)
        same, same_skips = _unchanged(c, eligible, skipped) if keep_unchanged else (set(), set())
        # Most leads of a page have no skip row (eligible ones) or no lead row (skipped ones):
        # one lookup for the page instead of a statement per lead that finds nothing.
        skipped_before = existing(c, "skips", "lead_id", [u.lead_id for u in eligible])
        c.executemany(
            "INSERT INTO leads (id, seen_hash, payload, modstamp, phone, seen_window) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET "
            " attempts = CASE WHEN seen_hash IS excluded.seen_hash THEN attempts ELSE 0 END,"
            " parked = CASE WHEN seen_hash IS excluded.seen_hash THEN parked ELSE NULL END,"
            " seen_hash = excluded.seen_hash, payload = excluded.payload, modstamp = excluded.modstamp,"
            " phone = excluded.phone, seen_window = excluded.seen_window",
            [(u.lead_id, u.hash, u.payload, u.modstamp, u.phone, window_id) for u in eligible
             if u.lead_id not in same])
        c.executemany("DELETE FROM skips WHERE lead_id = ?", [(i,) for i in skipped_before])
        tracked = existing(c, "leads", "id", [u.lead_id for u in skipped])  # after the upsert, as before
        c.executemany(
            "UPDATE leads SET attempts = CASE WHEN seen_hash IS NULL THEN attempts ELSE 0 END,"
            " parked = CASE WHEN seen_hash IS NULL THEN parked ELSE NULL END,"
            " seen_hash = NULL, payload = NULL, modstamp = ?, seen_window = ? WHERE id = ?",
            [(u.modstamp, window_id, u.lead_id) for u in skipped if u.lead_id in tracked and u.lead_id not in same])
        # A lead that is neither wanted nor on the list needs no row: the skip audit keeps it (a
        # removal that verification has not confirmed yet keeps its row).
        c.executemany("DELETE FROM leads WHERE id = ? AND seen_hash IS NULL AND acked_hash IS NULL "
                      "AND batch_id IS NULL AND removed_at IS NULL", [(i,) for i in tracked])
        # In place (its seq kept): a full refresh rewrites each skip where the initial read appended it.
        c.executemany(
            "INSERT INTO skips (lead_id, reason, detail, run_id, modstamp) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (lead_id) DO UPDATE SET reason = excluded.reason, detail = excluded.detail, "
            "run_id = excluded.run_id, modstamp = excluded.modstamp",
            [(u.lead_id, u.reason, u.detail, run_id, u.modstamp) for u in skipped if u.lead_id not in same_skips])
        c.execute("UPDATE runs SET read = read + ?, skipped = skipped + ? WHERE id = ?", (*counts, run_id))
        return counts

    def unseen_since(self, window_id: int) -> list[str]:
        """Tracked leads the window ``window_id`` did not return (a full refresh's candidates for deletion)."""
        return [r["id"] for r in self._rows("SELECT id FROM leads WHERE seen_window IS NOT ? ORDER BY id",
                                             (window_id,))]

    def known_modstamps(self, ids: list[str]) -> dict[str, str | None]:
        """Lead id -> the SystemModstamp syncd last read, for ids it tracks or audited as skipped."""
        if not ids:
            return {}
        out: dict[str, str | None] = {}
        for table, key in (("skips", "lead_id"), ("leads", "id")):
            sql = f"SELECT {key}, modstamp FROM {table} WHERE {key} IN (SELECT value FROM json_each(?))"  # noqa: S608
            out.update({r[key]: r["modstamp"] for r in self._rows(sql, (json_text(ids),))})
        return out

    @staticmethod
    def _link_dnc(c: sqlite3.Connection, ups: list[LeadUpdate]) -> None:
        """Which leads need which numbers suppressed, from what this page shows (``diff`` rules).

        A lead flagged Do Not Call needs each of its valid numbers blocked, and the number it was last
        callable on while CXone may still hold a record of it (acked, or in a batch). A lead the page
        shows without Do Not Call needs none; one whose numbers changed needs only the new ones.
        """
        dnc = {u.lead_id: u for u in ups if u.dnc}
        ids = [u.lead_id for u in ups if not u.dnc and not u.keep_dnc] + list(dnc)
        have = set(c.execute("SELECT phone, lead_id, since FROM dnc_links WHERE lead_id IN "
                             "(SELECT value FROM json_each(?))", (json_text(ids),)).fetchall()) if ids else set()
        want: set[tuple[str, str, str | None]] = set()
        if dnc:
            last = dict(c.execute("SELECT id, phone FROM leads WHERE id IN (SELECT value FROM json_each(?)) "
                                  "AND phone IS NOT NULL AND (acked_hash IS NOT NULL OR batch_id IS NOT NULL)",
                                  (json_text(list(dnc)),)).fetchall())
            want = {(phone, lead_id, u.modstamp) for lead_id, u in dnc.items()
                    for phone in set(u.dnc) | ({last[lead_id]} if lead_id in last else set())}
        # Only what differs is written: a lead read again as it was (every window's lookback) keeps its links.
        c.executemany("DELETE FROM dnc_links WHERE phone = ? AND lead_id = ?",
                      sorted((phone, lead_id) for phone, lead_id, _ in have - want))
        c.executemany("INSERT OR IGNORE INTO dnc_links (phone, lead_id, since) VALUES (?, ?, ?)", sorted(want - have))

    def expire_and_refresh(self, today: str, refresh_until: str) -> tuple[int, int]:
        """Records whose expiration day has passed are off the list; those expiring by ``refresh_until``
        are due their keep-alive (dirty, still on the list). Returns (expired, due)."""
        with self.transaction() as c:
            expired = c.execute("UPDATE leads SET acked_hash = NULL, drift = 'expired' WHERE expires_on < ? "
                                "AND acked_hash IS NOT NULL AND batch_id IS NULL", (today,)).rowcount
            c.execute("DELETE FROM leads WHERE expires_on < ? AND seen_hash IS NULL AND acked_hash IS NULL "
                      "AND batch_id IS NULL", (today,))
            due = c.execute("UPDATE leads SET acked_hash = ? WHERE expires_on <= ? AND acked_hash = seen_hash "
                            "AND batch_id IS NULL", (STALE, refresh_until)).rowcount
        return int(expired), int(due)

    def lead(self, lead_id: str) -> dict[str, object] | None:
        """One lead's row (hashes as bytes), or None when syncd does not track it."""
        return self._one("SELECT * FROM leads WHERE id = ?", (lead_id,))

    def lead_ids(self) -> list[str]:
        return [r["id"] for r in self._rows("SELECT id FROM leads ORDER BY id")]

    def pending_ids(self, kind: str) -> list[str]:
        return [r["id"] for r in self._rows(f"SELECT id FROM leads WHERE {PENDING[kind]} ORDER BY id")]  # noqa: S608

    def confirmed_rows(self) -> dict[str, str]:
        """Lead id → the exact row CXone confirmed, for every lead whose confirmed content is current."""
        return {r["id"]: r["payload"] for r in self._rows(
            "SELECT id, payload FROM leads WHERE acked_hash = seen_hash AND payload IS NOT NULL")}

    def skip_reasons(self) -> dict[str, str]:
        return {r["lead_id"]: r["reason"] for r in self._rows("SELECT lead_id, reason FROM skips")}
