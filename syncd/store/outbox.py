"""The outbox: batches (staged → submitted → completed | failed), their members and exact rows."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from syncd.errors import StateError
from syncd.store.db import from_iso, iso, json_value
from syncd.store.leads import PENDING, LeadQueries


@dataclass(frozen=True)
class Batch:
    id: str
    kind: str
    state: str
    file_name: str
    rows: int
    job_id: str | None
    uploads: int
    submitted_at: datetime | None
    error: str | None


@dataclass(frozen=True)
class Member:
    lead_id: str
    hash: bytes | None
    payload: str | None


class OutboxQueries(LeadQueries):
    def count_pending(self, kind: str, up_to: int | None = None) -> int:
        """How many leads wait to be staged; with ``up_to``, counting stops there (cheap per page)."""
        if up_to is None:
            return int(self._value(f"SELECT count(*) FROM leads WHERE {PENDING[kind]}"))  # noqa: S608
        sql = f"SELECT count(*) FROM (SELECT 1 FROM leads WHERE {PENDING[kind]} LIMIT ?)"  # noqa: S608
        return int(self._value(sql, (up_to,)))

    def plan(self, kinds: Sequence[str], suppressing: bool, first: int = 10) -> dict[str, Any]:
        """What a run would send now (for ``sync --dry-run``): counts and the first lead ids of each."""
        def part(where: str) -> dict[str, Any]:
            n = int(self._value(f"SELECT count(*) FROM leads WHERE {where}"))  # noqa: S608 - fixed SQL
            ids = [r["id"] for r in self._rows(f"SELECT id FROM leads WHERE {where} ORDER BY id LIMIT ?",  # noqa: S608
                                                (first,))]
            return {"count": n, "first_ids": ids}
        staged = " OR batch_id IN (SELECT id FROM batches WHERE state = 'staged' AND kind = '{}')"
        out = {"upload": part(f"({PENDING['upsert']}){staged.format('upsert')}"),
               "remove": part(f"({PENDING['remove']}){staged.format('remove')}") if "remove" in kinds else
               {"count": 0, "first_ids": []},
               "expire": part(PENDING["remove"]) if "remove" not in kinds else {"count": 0, "first_ids": []}}
        unsuppressed = "FROM dnc_links k WHERE NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.phone = k.phone)"
        out["suppress"] = {"count": 0, "first_ids": []}
        if suppressing:
            out["suppress"] = {
                "count": int(self._value(f"SELECT count(*) {unsuppressed}")),
                "first_ids": [r["lead_id"] for r in self._rows(
                    f"SELECT DISTINCT lead_id {unsuppressed} ORDER BY lead_id LIMIT ?", (first,))]}
        return out

    def count_leaving(self, removals: bool, suppressing: bool) -> int:
        """Leads on the list that this run takes off: pending removal, or (with suppression) one whose
        own Do Not Call number is about to be blocked. A Do Not Call lead that was never on the list
        takes nothing off it. Both parts walk what the cheap counts walk (an index, the DNC links)."""
        parts = [f"SELECT id FROM leads WHERE {PENDING['remove']}"] if removals else []  # noqa: S608
        if suppressing:
            parts.append("SELECT k.lead_id FROM dnc_links k JOIN leads l ON l.id = k.lead_id "
                         "WHERE l.acked_hash IS NOT NULL "
                         "AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.phone = k.phone)")
        if not parts:
            return 0
        return int(self._value(f"SELECT count(*) FROM ({' UNION '.join(parts)})"))  # noqa: S608 - fixed SQL

    def on_list(self) -> int:
        """Leads CXone holds a record of (as far as syncd knows)."""
        return int(self._value("SELECT count(*) FROM leads WHERE acked_hash IS NOT NULL"))

    def changed_in_flight(self, kinds: Sequence[str], retries: bool = False) -> bool:
        """Whether a lead waits for a batch of these kinds that no failure put back (its batch was
        acked, but it had changed meanwhile); with ``retries``, also one a failure put back."""
        waiting = " OR ".join(f"({PENDING[kind]})" for kind in kinds)
        fresh = "" if retries else " AND attempts = 0"
        return bool(self._value(f"SELECT EXISTS (SELECT 1 FROM leads WHERE ({waiting}){fresh})"))  # noqa: S608

    def stage_pending(self, batch_id: str, kind: str, file_name: str, limit: int, run_id: int | None,
                      now: datetime) -> int:
        """Stage up to ``limit`` pending leads (in the order first stored: a run of rows) as one batch;
        returns how many (0: no batch).

        Members, body and marks are copied inside SQLite: the leads' rows never travel through Python.
        """
        with self.transaction() as c:
            self._new_batch(c, batch_id, kind, file_name, 0, run_id, None, now)  # rows set once chosen
            staged = c.execute(
                f"INSERT INTO batch_members (batch_id, lead_id, hash) SELECT ?, id, seen_hash FROM leads "  # noqa: S608
                f"WHERE {PENDING[kind]} ORDER BY seq LIMIT ?", (batch_id, limit)).rowcount
            if staged <= 0:
                c.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
                return 0
            c.execute("UPDATE batches SET rows = ? WHERE id = ?", (staged, batch_id))
            if kind == "upsert":
                # The body in member (lead id) order; a member without a row leaves the body short,
                # which rows() reports as damage instead of sending a short file.
                c.execute("INSERT INTO batch_bodies (batch_id, rows) SELECT ?1, json_group_object(lead_id, payload) "
                          "FROM (SELECT m.lead_id, l.payload FROM batch_members AS m JOIN leads AS l "
                          "ON l.id = m.lead_id WHERE m.batch_id = ?1 AND l.payload IS NOT NULL ORDER BY m.lead_id)",
                          (batch_id,))
            self._mark_members(c, batch_id)
        return int(staged)

    @staticmethod
    def _new_batch(c: sqlite3.Connection, batch_id: str, kind: str, file_name: str, rows: int, run_id: int | None,
                   replay_of: str | None, now: datetime) -> None:
        c.execute("INSERT INTO batches (id, kind, state, file_name, rows, run_id, replay_of, created_at) "
                  "VALUES (?, ?, 'staged', ?, ?, ?, ?, ?)",
                  (batch_id, kind, file_name, rows, run_id, replay_of, iso(now)))

    @staticmethod
    def _mark_members(c: sqlite3.Connection, batch_id: str) -> None:
        c.execute("UPDATE leads SET batch_id = ?1 "
                  "WHERE id IN (SELECT lead_id FROM batch_members WHERE batch_id = ?1)", (batch_id,))

    def stage(self, batch_id: str, kind: str, file_name: str, members: Sequence[Member], run_id: int | None,
              now: datetime, replay_of: str | None = None) -> None:
        """Stage exactly these members (a replay): rows as given, not as the leads hold them now."""
        with self.transaction() as c:
            self._new_batch(c, batch_id, kind, file_name, len(members), run_id, replay_of, now)
            c.executemany("INSERT INTO batch_members (batch_id, lead_id, hash) VALUES (?, ?, ?)",
                          [(batch_id, m.lead_id, m.hash) for m in members])
            body = {m.lead_id: m.payload for m in members if m.payload is not None}
            if body:
                c.execute("INSERT INTO batch_bodies (batch_id, rows) VALUES (?, ?)", (batch_id, json.dumps(body)))
            self._mark_members(c, batch_id)

    def batches(self, *states: str) -> list[Batch]:
        marks = ",".join("?" * len(states))
        sql = f"SELECT * FROM batches WHERE state IN ({marks}) ORDER BY created_at, id"  # noqa: S608 - placeholders
        rows = self._rows(sql, states)
        return [Batch(id=r["id"], kind=r["kind"], state=r["state"], file_name=r["file_name"], rows=r["rows"],
                      job_id=r["job_id"], uploads=r["uploads"], submitted_at=from_iso(r["submitted_at"]),
                      error=r["error"]) for r in rows]

    def members(self, batch_id: str) -> list[Member]:
        """A batch's leads in id order, each with the exact row staged for it (None once it closed)."""
        rows = self.conn.execute("SELECT lead_id, hash FROM batch_members WHERE batch_id = ? ORDER BY lead_id",
                                 (batch_id,)).fetchall()
        body = self.conn.execute("SELECT rows FROM batch_bodies WHERE batch_id = ?", (batch_id,)).fetchone()
        payloads: dict[str, str] = json_value(body[0]) if body else {}
        return [Member(lead_id, hash_, payloads.get(lead_id)) for lead_id, hash_ in rows]

    def rows(self, batch_id: str) -> list[str]:
        """An open upsert batch's exact rows, in the order staged (lead id), without reading its members."""
        body = self.conn.execute("SELECT b.rows, s.rows FROM batches s LEFT JOIN batch_bodies b ON b.batch_id = s.id "
                                 "WHERE s.id = ?", (batch_id,)).fetchone()
        rows: list[str] = list(json_value(body[0]).values()) if body and body[0] is not None else []
        if body is None or len(rows) != body[1]:
            raise StateError(f"batch {batch_id} should hold {body[1] if body else '?'} rows but its body has "
                             f"{len(rows)}; the state is damaged")
        return rows

    def count_upload(self, batch_id: str) -> None:
        """Recorded before the call, so a crash after CXone accepted still counts the attempt."""
        with self.transaction() as c:
            c.execute("UPDATE batches SET uploads = uploads + 1 WHERE id = ?", (batch_id,))

    def mark_submitted(self, batch_id: str, job_id: str, now: datetime, run_id: int) -> None:
        with self.transaction() as c:
            c.execute("UPDATE batches SET state = 'submitted', job_id = ?, submitted_at = ? "
                      "WHERE id = ? AND state = 'staged'", (job_id, iso(now), batch_id))
            c.execute("UPDATE runs SET sent = sent + (SELECT rows FROM batches WHERE id = ?) WHERE id = ?",
                      (batch_id, run_id))

    def ack_batch(self, batch_id: str, now: datetime, expires_on: str | None = None) -> None:
        """CXone confirmed the batch: each member's acked hash becomes exactly what was sent, with the
        day its record expires. A snapshot replaced the whole list: a lead on it but not in the file is
        off the list (verification confirms it like a removal)."""
        with self.transaction() as c:
            c.execute("UPDATE leads SET acked_hash = m.hash, batch_id = NULL, attempts = 0, acked_batch = ?1, "
                      "expires_on = ?2, removed_at = NULL, drift = NULL "
                      "FROM batch_members AS m WHERE m.batch_id = ?1 AND leads.id = m.lead_id "
                      "AND leads.batch_id = ?1", (batch_id, expires_on))
            if c.execute("SELECT snapshot FROM batches WHERE id = ?", (batch_id,)).fetchone()[0]:
                c.execute("UPDATE leads SET acked_hash = NULL, removed_at = ?2 WHERE acked_hash IS NOT NULL "
                          "AND batch_id IS NULL AND id NOT IN (SELECT lead_id FROM batch_members WHERE batch_id = ?1)",
                          (batch_id, iso(now)))
            self._close(c, batch_id, "completed", None, now)

    def stage_snapshot(self, batch_id: str, file_name: str, limit: int, run_id: int | None, now: datetime) -> int:
        """Stage every eligible lead as one batch (for a tenant where an upload replaces the list).
        Returns how many; more than ``limit`` stages nothing and returns the count."""
        with self.transaction() as c:
            eligible = int(c.execute("SELECT count(*) FROM leads WHERE seen_hash IS NOT NULL").fetchone()[0])
            if eligible > limit or eligible == 0:
                return eligible
            self._new_batch(c, batch_id, "upsert", file_name, eligible, run_id, None, now)
            c.execute("UPDATE batches SET snapshot = 1 WHERE id = ?", (batch_id,))
            c.execute("INSERT INTO batch_members (batch_id, lead_id, hash) SELECT ?, id, seen_hash FROM leads "
                      "WHERE seen_hash IS NOT NULL ORDER BY id", (batch_id,))
            c.execute("INSERT INTO batch_bodies (batch_id, rows) SELECT ?1, json_group_object(id, payload) "
                      "FROM (SELECT id, payload FROM leads WHERE seen_hash IS NOT NULL ORDER BY id)", (batch_id,))
            self._mark_members(c, batch_id)
        return eligible

    def fail_batch(self, batch_id: str, error: str, max_attempts: int, now: datetime) -> int:
        """The job failed: members stay dirty; those out of attempts are parked. Returns parked count."""
        with self.transaction() as c:
            c.execute("UPDATE leads SET batch_id = NULL, attempts = attempts + 1 WHERE batch_id = ?", (batch_id,))
            parked = c.execute(
                "UPDATE leads SET parked = ?, parked_batch = ? WHERE id IN "
                "(SELECT lead_id FROM batch_members WHERE batch_id = ?) "
                "AND attempts >= ? AND parked IS NULL AND seen_hash IS NOT acked_hash",
                (error[:300], batch_id, batch_id, max_attempts)).rowcount
            # A member that stopped being callable while in flight, and was never on the list, needs no row.
            c.execute("DELETE FROM leads WHERE id IN (SELECT lead_id FROM batch_members WHERE batch_id = ?) "
                      "AND seen_hash IS NULL AND acked_hash IS NULL AND batch_id IS NULL", (batch_id,))
            self._close(c, batch_id, "failed", error, now)
        return int(parked)

    def finish_removal(self, batch_id: str, removed: Sequence[str], failed: Sequence[str], run_id: int,
                       max_attempts: int, now: datetime, keep_removed: bool = True) -> None:
        """removeProspects answered: removed leads are off the list; failed ones stay pending.

        Believed off the list is not known to be: with ``keep_removed`` (verification on) the row stays,
        marked ``removed_at``, until a verification agrees; without it the row goes as before.
        """
        with self.transaction() as c:
            c.executemany("UPDATE leads SET acked_hash = NULL, batch_id = NULL, attempts = 0, removed_at = ? "
                          "WHERE id = ? AND batch_id = ?", [(iso(now), lead, batch_id) for lead in removed])
            if not keep_removed:
                c.executemany("DELETE FROM leads WHERE id = ? AND seen_hash IS NULL AND acked_hash IS NULL "
                              "AND batch_id IS NULL", [(lead,) for lead in removed])
            c.executemany("UPDATE leads SET batch_id = NULL, attempts = attempts + 1, "
                          "parked = CASE WHEN attempts + 1 >= ? AND parked IS NULL AND seen_hash IS NOT acked_hash "
                          "THEN 'CXone did not confirm the removal' ELSE parked END, "
                          "parked_batch = CASE WHEN attempts + 1 >= ? AND parked IS NULL "
                          "AND seen_hash IS NOT acked_hash THEN ? ELSE parked_batch END "
                          "WHERE id = ? AND batch_id = ?",
                          [(max_attempts, max_attempts, batch_id, lead, batch_id) for lead in failed])
            c.execute("UPDATE runs SET removed = removed + ? WHERE id = ?", (len(removed), run_id))
            error = f"{len(failed)} of {len(removed) + len(failed)} not removed" if failed else None
            self._close(c, batch_id, "completed", error, now)

    def abandon_batch(self, batch_id: str, error: str, now: datetime) -> None:
        """Close a batch that cannot be sent: its members wait again, no attempt counted."""
        with self.transaction() as c:
            c.execute("UPDATE leads SET batch_id = NULL WHERE batch_id = ?", (batch_id,))
            self._close(c, batch_id, "failed", error, now)

    def _close(self, c: sqlite3.Connection, batch_id: str, state: str, error: str | None, now: datetime) -> None:
        self.batches_closed += 1  # may overcount on a rollback: a reader only re-counts what it cached
        c.execute("UPDATE batches SET state = ?, error = ?, finished_at = ? WHERE id = ?",
                  (state, error, iso(now), batch_id))
        # The rows were needed only while the batch could be sent again.
        c.execute("DELETE FROM batch_bodies WHERE batch_id = ?", (batch_id,))

    def find_batch(self, ref: str) -> dict[str, Any] | None:
        """A batch by its id or by the CXone job id it was submitted as (the latest such batch)."""
        rows = self._rows("SELECT * FROM batches WHERE id = ? OR job_id = ? ORDER BY id = ? DESC, created_at DESC "
                          "LIMIT 1", (ref, ref, ref))
        return rows[0] if rows else None

    def replay(self, source: str, now: datetime,
               kinds: Sequence[str] = ("upsert", "remove")) -> tuple[list[tuple[str, str, int]], int]:
        """Re-queue a closed batch's leads with their current content as new batches.

        Parked members are released; members already in an open batch, or no longer tracked,
        are left alone, and so are removals when ``kinds`` (what the sink can send) lacks them.
        Returns the (batch id, kind, rows) staged, in one transaction, and how many removals were left.
        """
        staged: list[tuple[str, str, int]] = []
        with self.transaction() as c:
            rows = c.execute(
                "SELECT l.id, l.seen_hash, l.acked_hash, l.payload FROM batch_members m JOIN leads l "
                "ON l.id = m.lead_id WHERE m.batch_id = ? AND l.batch_id IS NULL ORDER BY l.id",
                (source,)).fetchall()
            prior = c.execute("SELECT count(*) FROM batches WHERE replay_of = ?", (source,)).fetchone()[0]
            upserts = [Member(i, s, p) for i, s, a, p in rows if s is not None]
            removals = [Member(i, None, None) for i, s, a, p in rows if s is None and a is not None]
            unsendable = 0
            if "remove" not in kinds:
                unsendable, removals = len(removals), []  # they stay pending removal, never staged
            for kind, members in (("upsert", upserts), ("remove", removals)):
                if not members:
                    continue
                batch_id = f"replay{prior + 1}-{kind[0]}-{source}"
                self.stage(batch_id, kind, f"syncd-{batch_id}.csv", members, None, now, replay_of=source)
                staged.append((batch_id, kind, len(members)))
            c.executemany("UPDATE leads SET parked = NULL, parked_batch = NULL, attempts = 0 WHERE id = ?",
                          [(m.lead_id,) for m in upserts + removals])
        return staged, unsendable

    def release_parked(self) -> tuple[int, int]:
        """Every parked lead becomes dirty (or pending removal) again with a fresh attempt count, so the
        next run stages it with its current content. Returns (leads, batches they were parked by)."""
        with self.transaction() as c:
            leads, batches = c.execute("SELECT count(*), count(DISTINCT parked_batch) FROM leads "
                                       "WHERE parked IS NOT NULL").fetchone()
            c.execute("UPDATE leads SET parked = NULL, parked_batch = NULL, attempts = 0 WHERE parked IS NOT NULL")
        return int(leads), int(batches)

    def list_batches(self, state: str | None, limit: int) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT b.id, b.kind, b.state, b.job_id, b.rows, b.uploads, b.error, b.replay_of, b.created_at, "
            "b.submitted_at, b.finished_at, (SELECT count(*) FROM leads l WHERE l.parked_batch = b.id) AS parked "
            "FROM batches b WHERE ? IS NULL OR b.state = ? ORDER BY b.created_at DESC, b.id DESC LIMIT ?",
            (state, state, limit))
