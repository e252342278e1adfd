"""Read-only reports over the state: counts for ``status`` and the metrics, the skip audit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from syncd.store.db import Database


class ReportQueries(Database):
    def counts(self) -> dict[str, Any]:
        # A row kept only until verification confirms its removal is not a tracked lead.
        leads = self._rows(
            "SELECT coalesce(sum(seen_hash IS NOT NULL OR acked_hash IS NOT NULL OR batch_id IS NOT NULL), 0)"
            " AS tracked,"
            " coalesce(sum(seen_hash IS NOT acked_hash), 0) AS dirty,"
            " coalesce(sum(parked IS NOT NULL), 0) AS parked,"
            " coalesce(sum(seen_hash IS NULL AND acked_hash IS NOT NULL), 0) AS pending_removal,"
            " coalesce(sum(acked_hash IS NOT NULL), 0) AS on_list,"
            " coalesce(sum(removed_at IS NOT NULL AND acked_hash IS NULL), 0) AS removal_unverified,"
            " coalesce(sum(parked IS NOT NULL AND seen_hash IS NULL AND acked_hash IS NOT NULL), 0) AS unremovable"
            " FROM leads")[0]
        leads["removed"] = int(self._value("SELECT coalesce(sum(removed), 0) FROM runs"))
        leads["suppressed"] = int(self._value("SELECT count(*) FROM suppressions"))
        batches = dict.fromkeys(("staged", "submitted", "completed", "failed"), 0)
        for r in self._rows("SELECT state, count(*) AS n FROM batches GROUP BY state"):
            batches[r["state"]] = r["n"]
        skipped = {r["reason"]: r["n"] for r in
                   self._rows("SELECT reason, count(*) AS n FROM skips GROUP BY reason ORDER BY n DESC, reason")}
        return {"leads": leads, "batches": batches, "skipped": skipped}

    def skips(self, reason: str | None = None) -> Iterator[dict[str, Any]]:
        yield from self._iter("SELECT lead_id, reason, detail, run_id, modstamp FROM skips "
                              "WHERE ? IS NULL OR reason = ? ORDER BY reason, lead_id", (reason, reason))

    def totals(self) -> dict[str, int]:
        """Leads read, sent and removed over every run (the metrics' counters)."""
        row = self._one("SELECT coalesce(sum(read), 0) AS read, coalesce(sum(sent), 0) AS sent, "
                        "coalesce(sum(removed), 0) AS removed FROM runs")
        return {k: int(v) for k, v in (row or {}).items()}

    def last_success(self) -> str | None:
        """When the last run that ended ``ok`` finished (ISO), or None."""
        value = self._value("SELECT max(finished_at) FROM runs WHERE status = 'ok'")
        return str(value) if value else None

    def lead_history(self, lead_id: str) -> dict[str, Any]:
        """Everything the state knows of one lead, for ``syncd lead``."""
        return {
            "lead": self._one("SELECT id, hex(seen_hash) AS seen_hash, hex(acked_hash) AS acked_hash, phone, modstamp, "
                              "batch_id, attempts, parked, parked_batch, expires_on, acked_batch, removed_at, misses, "
                              "drift FROM leads WHERE id = ?", (lead_id,)),
            "skip": self._one("SELECT reason, detail, run_id, modstamp FROM skips WHERE lead_id = ?", (lead_id,)),
            "batches": self._rows(
                "SELECT b.id, b.kind, b.state, b.job_id, b.snapshot, b.created_at, b.submitted_at, b.finished_at, "
                "b.error, hex(m.hash) AS hash FROM batch_members m JOIN batches b ON b.id = m.batch_id "
                "WHERE m.lead_id = ? ORDER BY b.created_at, b.id", (lead_id,)),
            "suppression": self._rows(
                "SELECT k.phone, k.since, s.added_at FROM dnc_links k LEFT JOIN suppressions s ON s.phone = k.phone "
                "WHERE k.lead_id = ? ORDER BY k.phone", (lead_id,)),
            "last_verification": self._one("SELECT at, run_id FROM verifications ORDER BY id DESC LIMIT 1"),
        }
