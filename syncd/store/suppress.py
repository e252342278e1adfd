"""DNC suppression: the numbers syncd must block (``dnc_links``, from the pages), the ones it added
to the DNC group (``suppressions``), and the difference either way.

Only numbers syncd added are ever expired, and only when no lead links them any more.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from syncd.store.db import Database, iso, json_text

_TO_ADD = ("SELECT DISTINCT k.phone FROM dnc_links k "
           "WHERE NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.phone = k.phone)")
_TO_RELEASE = "SELECT s.phone FROM suppressions s WHERE NOT EXISTS (SELECT 1 FROM dnc_links k WHERE k.phone = s.phone)"


class SuppressQueries(Database):
    def to_suppress(self, limit: int, after: str = "") -> list[str]:
        """The next numbers to add, in order, from just after ``after`` (the last one of the chunk before:
        each chunk reads on from there instead of scanning the ones already added again)."""
        return [r[0] for r in self.conn.execute(_TO_ADD + " AND k.phone > ? ORDER BY k.phone LIMIT ?", (after, limit))]

    def neutral_to_suppress(self, phones: Iterable[str]) -> list[str]:
        """Of these numbers, in order, those still to add that take nothing off the list: no lead linked
        to one is on it or in a batch that may put it there, so the mass-removal guard (which counts a
        listed lead whose own number is blocked) does not count them."""
        return [r[0] for r in self.conn.execute(
            _TO_ADD + " AND k.phone IN (SELECT value FROM json_each(?)) "  # noqa: S608 - fixed SQL
            "AND NOT EXISTS (SELECT 1 FROM dnc_links o JOIN leads l ON l.id = o.lead_id WHERE o.phone = k.phone "
            "AND (l.acked_hash IS NOT NULL OR l.batch_id IS NOT NULL)) ORDER BY k.phone", (json_text(list(phones)),))]

    def to_release(self, limit: int, after: str = "") -> list[str]:
        return [r[0] for r in self.conn.execute(_TO_RELEASE + " AND s.phone > ? ORDER BY s.phone LIMIT ?",
                                                (after, limit))]

    def count_to_suppress(self) -> int:
        return int(self._value(f"SELECT count(*) FROM ({_TO_ADD})"))  # noqa: S608 - fixed SQL

    def suppressed(self, phones: Sequence[str], run_id: int | None, now: datetime) -> None:
        with self.transaction() as c:
            c.executemany("INSERT OR IGNORE INTO suppressions (phone, added_at, run_id) VALUES (?, ?, ?)",
                          [(p, iso(now), run_id) for p in phones])

    def released(self, phones: Sequence[str]) -> None:
        with self.transaction() as c:
            # A number linked again meanwhile stays: it is still needed.
            c.executemany("DELETE FROM suppressions WHERE phone = ? AND NOT EXISTS "
                          "(SELECT 1 FROM dnc_links k WHERE k.phone = suppressions.phone)", [(p,) for p in phones])

    def dnc_exposed(self) -> int:
        """Do Not Call leads CXone may still dial: their record is on the list (not removed, or removed
        and found active since) and a number of theirs is not suppressed."""
        return int(self._value(
            "SELECT count(DISTINCT k.lead_id) FROM dnc_links k JOIN leads l ON l.id = k.lead_id "
            "WHERE (l.acked_hash IS NOT NULL OR l.drift IN ('removed_again', 'unremovable')) "
            "AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.phone = k.phone)"))

    def dnc_removals_unconfirmed(self) -> int:
        """Do Not Call leads whose removal CXone answered as done and no verification has confirmed."""
        return int(self._value(
            "SELECT count(DISTINCT k.lead_id) FROM dnc_links k JOIN leads l ON l.id = k.lead_id "
            "WHERE l.removed_at IS NOT NULL AND l.acked_hash IS NULL"))

    def lead_suppression(self, lead_id: str) -> list[dict[str, object]]:
        return self._rows("SELECT k.phone, k.since, s.added_at FROM dnc_links k LEFT JOIN suppressions s "
                          "ON s.phone = k.phone WHERE k.lead_id = ? ORDER BY k.phone", (lead_id,))
