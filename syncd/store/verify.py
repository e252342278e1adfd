"""Verification: what CXone's list really holds, compared with the state, and the drift marked.

The downloaded records go into a temporary table a chunk at a time (never whole in memory); the
comparison is set-based SQL in one write transaction. The rules (DESIGN.md, "Verify"):

- a lead acked as present (``acked_hash`` set, in no batch) and still wanted: a record that is
  missing or removed → ``missing``, expired → ``expired`` (both: off the list, so ``acked_hash`` NULL
  and it is sent again); finalized by CXone → ``finalized``, another number → ``wrong`` (both: still
  on the list, so ``acked_hash`` = STALE and it is sent again). ``misses`` counts verifications in a
  row that found it so; found off the list again after that re-send, a record CXone shows removed is
  ``unrestorable`` (re-adding does not re-activate it), one it does not show at all ``rejected``.
- a lead acked as present and no longer wanted, whose record is gone: the removal is confirmed.
- a removal answered as done (``removed_at``) whose record is still active → removed again
  (``removed_again``); still active at the next verification → parked ``unremovable``.
- an active record that syncd never sent (or forgot) → ``unexpected``: reported, never touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from syncd.store.db import Database, from_iso, iso
from syncd.store.leads import STALE

# A record's state as the comparison sees it.
ACTIVE, EXPIRED, REMOVED, FINALIZED = "active", "expired", "removed", "finalized"
UNREMOVABLE = "unremovable: still on the list after removal, twice"
WANTED = "l.acked_hash IS NOT NULL AND l.batch_id IS NULL"
# The record carries another number than the lead's (CXone may show it without the country code).
OTHER_NUMBER = ("v.phone <> replace(l.phone, '+', '') AND NOT (length(v.phone) >= 7 "
                "AND substr(replace(l.phone, '+', ''), -length(v.phone)) = v.phone)")
COUNTS = ("records", "missing", "expired", "finalized", "wrong", "unexpected", "removed_again", "unremovable",
          "unrestorable", "rejected", "replaced", "confirmed")


class VerifyQueries(Database):
    def verify_begin(self) -> None:
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS vrec (id TEXT PRIMARY KEY, phone TEXT, state TEXT, "
                          "expires TEXT) WITHOUT ROWID")
        self.conn.execute("DELETE FROM temp.vrec")

    def verify_add(self, records: Iterable[tuple[str, str, str, str | None]]) -> None:
        """(external id, number, state, expiration day) of downloaded records; the last one wins."""
        with self.transaction() as c:
            c.executemany("INSERT OR REPLACE INTO temp.vrec (id, phone, state, expires) VALUES (?, ?, ?, ?)", records)

    def _replaced(self, c: Any) -> bool:
        """Whether the list looks replaced by the last upload: records acked by earlier uploads are all
        gone while the last upload's are there (forceOverwrite replaces, not upserts)."""
        last = c.execute("SELECT id FROM batches WHERE kind = 'upsert' AND state = 'completed' "
                         "ORDER BY finished_at DESC, id DESC LIMIT 1").fetchone()
        if last is None:
            return False
        row = c.execute(
            f"SELECT coalesce(sum(v.id IS NULL AND l.acked_batch IS NOT ?1), 0),"  # noqa: S608 - fixed SQL
            f" coalesce(sum(v.id IS NOT NULL AND l.acked_batch IS NOT ?1), 0),"
            f" coalesce(sum(v.id IS NOT NULL AND l.acked_batch IS ?1), 0) "
            f"FROM leads l LEFT JOIN temp.vrec v ON v.id = l.id WHERE {WANTED} AND l.acked_hash IS NOT ?2",
            (last[0], STALE)).fetchone()
        return bool(row[0] > 0 and row[1] == 0 and row[2] > 0)

    def verify_finish(self, run_id: int | None, now: datetime, upsert_mode: bool, expire_only: bool) -> dict[str, int]:
        """Compare, mark the drift, record the verification; returns its counts."""
        at = iso(now)
        with self.transaction() as c:
            n: dict[str, int] = dict.fromkeys(COUNTS, 0)
            n["records"] = int(c.execute("SELECT count(*) FROM temp.vrec").fetchone()[0])
            n["replaced"] = int(upsert_mode and self._replaced(c))
            wanted = f"{WANTED} AND l.seen_hash IS NOT NULL"
            # Sent again after the last verification found them off the list, and still off it: a removed
            # record that an upload does not bring back, or a row CXone keeps dropping (invalid to it).
            for label, cond in (("unrestorable", f"v.state = '{REMOVED}'"), ("rejected", "v.id IS NULL")):
                n[label] = int(c.execute(
                    f"SELECT count(*) FROM leads l LEFT JOIN temp.vrec v ON v.id = l.id WHERE {wanted} "  # noqa: S608
                    f"AND l.misses >= 1 AND {cond}").fetchone()[0])
            # Off the list though wanted: sent again.
            for label, cond in (("missing", f"(v.id IS NULL OR v.state = '{REMOVED}')"),
                                ("expired", f"v.state = '{EXPIRED}'")):
                n[label] = c.execute(
                    f"UPDATE leads SET acked_hash = NULL, misses = misses + 1, drift = ?1 WHERE id IN "  # noqa: S608
                    f"(SELECT l.id FROM leads l LEFT JOIN temp.vrec v ON v.id = l.id WHERE {wanted} AND {cond})",
                    (label,)).rowcount
            # On the list, but not as it should be: sent again (unless already due to be).
            for label, cond in (("finalized", f"v.state = '{FINALIZED}' AND l.acked_hash IS NOT ?2"),
                                ("wrong", f"v.state = '{ACTIVE}' AND l.acked_hash = l.seen_hash AND {OTHER_NUMBER}")):
                n[label] = c.execute(
                    f"UPDATE leads SET acked_hash = ?2, misses = misses + 1, drift = ?1 WHERE id IN "  # noqa: S608
                    f"(SELECT l.id FROM leads l JOIN temp.vrec v ON v.id = l.id WHERE {wanted} AND {cond})",
                    (label, STALE)).rowcount
            # As it should be: the drift of earlier verifications is over; the expiration is CXone's.
            c.execute(f"UPDATE leads SET misses = 0, drift = NULL, expires_on = coalesce(v.expires, expires_on) "  # noqa: S608
                      f"FROM temp.vrec v WHERE v.id = leads.id AND v.state = '{ACTIVE}' "
                      "AND leads.acked_hash IS NOT NULL AND leads.batch_id IS NULL "
                      "AND leads.acked_hash = leads.seen_hash "
                      "AND (leads.misses > 0 OR leads.expires_on IS NOT v.expires)")
            # Answered as removed, and gone: removal works on this tenant (what ``removal_proven`` asks).
            n["confirmed"] = int(c.execute(
                "SELECT count(*) FROM leads WHERE removed_at IS NOT NULL AND acked_hash IS NULL "  # noqa: S608
                f"AND batch_id IS NULL AND id NOT IN (SELECT id FROM temp.vrec WHERE state = '{ACTIVE}')"
            ).fetchone()[0])
            # Wanted gone, and gone: the removal (or the expiry) is confirmed.
            gone = f"(v.id IS NULL OR v.state <> '{ACTIVE}')"
            c.execute(f"UPDATE leads SET acked_hash = NULL, misses = 0, removed_at = coalesce(removed_at, ?1) "  # noqa: S608
                      "WHERE id IN "
                      f"(SELECT l.id FROM leads l LEFT JOIN temp.vrec v ON v.id = l.id WHERE {WANTED} "
                      f"AND l.seen_hash IS NULL AND {gone})", (at,))
            c.execute(f"DELETE FROM leads WHERE removed_at IS NOT NULL AND acked_hash IS NULL AND seen_hash IS NULL "  # noqa: S608
                      f"AND batch_id IS NULL AND id NOT IN (SELECT id FROM temp.vrec WHERE state = '{ACTIVE}')")
            # Answered as removed, still active: on the list after all. Removed again; the second time
            # it is found so, parked as unremovable (and reported) instead of tried forever.
            back = (f"SELECT l.id FROM leads l JOIN temp.vrec v ON v.id = l.id WHERE l.removed_at IS NOT NULL "  # noqa: S608
                    f"AND l.acked_hash IS NULL AND l.batch_id IS NULL AND v.state = '{ACTIVE}'")
            c.execute(
                f"UPDATE leads SET acked_hash = ?1, removed_at = NULL, misses = misses + 1, drift = 'unremovable', "  # noqa: S608
                f"parked = ?2, parked_batch = NULL WHERE misses >= 1 AND NOT ?3 AND id IN ({back})",
                (STALE, UNREMOVABLE, expire_only))
            n["removed_again"] = c.execute(
                f"UPDATE leads SET acked_hash = ?1, removed_at = NULL, misses = misses + 1, drift = 'removed_again' "  # noqa: S608
                f"WHERE id IN ({back})", (STALE,)).rowcount
            n["unexpected"] = int(c.execute(
                f"SELECT count(*) FROM temp.vrec v WHERE v.state = '{ACTIVE}' AND NOT EXISTS (SELECT 1 FROM leads l "  # noqa: S608
                "WHERE l.id = v.id AND (l.acked_hash IS NOT NULL OR l.batch_id IS NOT NULL))").fetchone()[0])
            n["unremovable"] = self._unremovable(c)
            columns, marks = ", ".join(COUNTS), ", ".join("?" * len(COUNTS))
            c.execute(f"INSERT INTO verifications (run_id, at, {columns}) VALUES (?, ?, {marks})",  # noqa: S608
                      (run_id, at, *(n[k] for k in COUNTS)))
        self.conn.execute("DELETE FROM temp.vrec")
        return n

    @staticmethod
    def _unremovable(c: Any) -> int:
        """Leads whose record stays on the list however it is removed: parked by verification, or by
        removeProspects failing them ``max_attempts`` times."""
        return int(c.execute("SELECT count(*) FROM leads WHERE parked = ? OR (parked IS NOT NULL AND seen_hash IS NULL "
                             "AND acked_hash IS NOT NULL)", (UNREMOVABLE,)).fetchone()[0])

    def unremovable(self) -> int:
        return self._unremovable(self.conn)

    def removal_proven(self) -> bool:
        """Whether a verification confirmed removals CXone answered as done, and none since found a
        removed record still active: removeProspects is known to work on this list."""
        row = self._one("SELECT max(CASE WHEN confirmed > 0 THEN id END) AS ok, "
                        "max(CASE WHEN removed_again + unremovable > 0 THEN id END) AS bad FROM verifications")
        return bool(row and row["ok"] and row["ok"] > (row["bad"] or 0))

    def last_verification_at(self) -> datetime | None:
        return from_iso(self._value("SELECT max(at) FROM verifications"))

    def last_verification(self) -> dict[str, Any] | None:
        return self._one("SELECT * FROM verifications ORDER BY id DESC LIMIT 1")

    def drifted(self, limit: int = 20) -> list[dict[str, Any]]:
        """Leads the last verifications found wrong, for ``syncd verify`` (ids only: no lead data)."""
        return self._rows("SELECT id, drift, misses FROM leads WHERE drift IS NOT NULL AND drift <> 'expired' "
                          "ORDER BY misses DESC, id LIMIT ?", (limit,))
