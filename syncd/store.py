"""SQLite state: connection discipline, the write-transaction helper, typed queries.

Only this module (with its schema, ``syncd/schema.py``) knows SQL. The tables are documented in
``state/README.md``.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import sqlite_utils

from syncd.errors import StateError
from syncd.schema import APPLICATION_ID, migrations

SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 10_000

# Leads waiting to be staged (fixed SQL; the prefix matches the partial index leads_pending, which
# covers every column named here: m006).
_PENDING = "seen_hash IS NOT acked_hash AND batch_id IS NULL AND parked IS NULL"
PENDING = {"upsert": _PENDING + " AND seen_hash IS NOT NULL", "remove": _PENDING + " AND seen_hash IS NULL"}


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# SQLite's page cache for the state, in KiB (SQLite's default is 2 MiB). With the default, a large
# sync re-reads most pages it writes from the OS; 64 MiB is a bounded cost in memory (peak RSS ~160 MB
# at 1M leads) that measured ~5% less CPU per lead than 32 MiB at 1M leads.
CACHE_KIB = 64 * 1024


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


# One lead's outcome from a page: an eligible contact (hash + rendered row) or a skip.
class LeadUpdate(NamedTuple):
    lead_id: str
    modstamp: str | None
    hash: bytes | None = None
    payload: str | None = None
    reason: str | None = None
    detail: str = ""


def _check_file(path: Path) -> None:
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as e:
        raise StateError(f"state file {path} cannot be read ({e.strerror})") from None
    if head and head != SQLITE_MAGIC:
        raise StateError(f"{path} is not a SQLite database; refusing to touch it "
                         "(point state.path elsewhere, or move the file away)")


class Store:
    def __init__(self, path: Path, *, readonly: bool = False, create: bool = True,
                 busy_timeout: float = BUSY_TIMEOUT_MS / 1000) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.batches_closed = 0  # by this connection: leads may have become pending again since a reader counted
        self.readonly = readonly
        exists = path.exists() and path.stat().st_size > 0
        if exists:
            _check_file(path)
        elif readonly or not create:
            raise StateError(f"no state at {path} yet: run `syncd sync` first")
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            except OSError as e:
                raise StateError(f"cannot create the state file {path} ({e.strerror})") from None
        uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
        try:
            self.conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=busy_timeout,
                                        check_same_thread=False)
            self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self.db = sqlite_utils.Database(self.conn)
            # Identify the file before anything can write to it (even switching to WAL rewrites its header).
            self._check_identity()
            if not readonly:
                self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = FULL")
            self.conn.execute(f"PRAGMA cache_size = {-CACHE_KIB}")
            self.conn.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                self._migrate()
        except sqlite3.DatabaseError as e:
            self.conn.close()
            raise StateError(f"state file {path} is unusable: {e}") from None
        except StateError:
            self.conn.close()
            raise

    def _check_identity(self) -> None:
        app_id = self.conn.execute("PRAGMA application_id").fetchone()[0]
        has_tables = self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and has_tables):
            raise StateError(f"{self.path} is a SQLite database but not syncd's; refusing to touch it")
        known = {m.name for m in migrations._migrations}
        unknown = [m.name for m in migrations.applied(self.db) if m.name not in known]
        if unknown:
            raise StateError(f"{self.path} was written by a newer syncd (schema {unknown[-1]}); "
                             "upgrade syncd to use it")

    def _migrate(self) -> None:
        if not migrations.pending(self.db):
            return
        with self.transaction():
            if self.conn.execute("PRAGMA application_id").fetchone()[0] == 0:
                self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            migrations.apply(self.db)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The one way to write: ``BEGIN IMMEDIATE`` (the write lock up front), commit or roll back."""
        if self.conn.in_transaction:
            yield self.conn
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise self._locked(e) from None
        try:
            yield self.conn
        except sqlite3.OperationalError as e:
            self.conn.execute("ROLLBACK")
            raise self._locked(e) from None
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.OperationalError as e:
            self.conn.execute("ROLLBACK")
            raise self._locked(e) from None

    def _locked(self, e: sqlite3.OperationalError) -> StateError:
        if "locked" in str(e) or "busy" in str(e):
            return StateError(f"the state database {self.path} is locked by another process; gave up after "
                              f"{self.busy_timeout:g}s (state.busy_timeout_seconds). Nothing was changed.")
        return StateError(f"the state database {self.path} failed: {e}")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return list(self.db.query(sql, params))

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    # -- window ---------------------------------------------------------------------------------
    def sync_state(self) -> SyncState:
        r = self.query("SELECT * FROM sync_state WHERE id = 1")[0]
        return SyncState(
            watermark=from_iso(r["watermark"]), window_start=from_iso(r["window_start"]),
            window_end=from_iso(r["window_end"]), window_run_id=r["window_run_id"], pos_ts=r["pos_ts"],
            pos_id=r["pos_id"], next_url=r["next_url"], next_url_at=from_iso(r["next_url_at"]))

    def open_window(self, start: datetime | None, end: datetime, run_id: int) -> None:
        with self.transaction() as c:
            c.execute("UPDATE sync_state SET window_start = ?, window_end = ?, window_run_id = ?, "
                      "pos_ts = NULL, pos_id = NULL, next_url = NULL, next_url_at = NULL",
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
            c.execute("UPDATE sync_state SET watermark = window_end, window_start = NULL, window_end = NULL, "
                      "window_run_id = NULL, pos_ts = NULL, pos_id = NULL, next_url = NULL, next_url_at = NULL")
        return True

    def rewind(self) -> None:
        """``syncd reset``: forget the watermark and any open window; acked hashes stay."""
        with self.transaction() as c:
            c.execute("UPDATE sync_state SET watermark = NULL, window_start = NULL, window_end = NULL, "
                      "window_run_id = NULL, pos_ts = NULL, pos_id = NULL, next_url = NULL, next_url_at = NULL")

    def apply_page(self, updates: Iterable[LeadUpdate], run_id: int, pos_ts: str | None, pos_id: str | None,
                   next_url: str | None, next_url_at: datetime | None) -> tuple[int, int]:
        """A page's effects and the position it reached, in one transaction. Returns (read, skipped)."""
        eligible: list[LeadUpdate] = []
        skipped: list[LeadUpdate] = []
        for u in updates:
            (eligible if u.hash is not None else skipped).append(u)
        with self.transaction() as c:
            # Most leads of a page have no skip row (eligible ones) or no lead row (skipped ones):
            # one lookup for the page instead of a statement per lead that finds nothing.
            skipped_before = self._existing(c, "skips", "lead_id", [u.lead_id for u in eligible])
            c.executemany(
                "INSERT INTO leads (id, seen_hash, payload, modstamp) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET "
                " attempts = CASE WHEN seen_hash IS excluded.seen_hash THEN attempts ELSE 0 END,"
                " parked = CASE WHEN seen_hash IS excluded.seen_hash THEN parked ELSE NULL END,"
                " seen_hash = excluded.seen_hash, payload = excluded.payload, modstamp = excluded.modstamp",
                [(u.lead_id, u.hash, u.payload, u.modstamp) for u in eligible])
            c.executemany("DELETE FROM skips WHERE lead_id = ?", [(i,) for i in skipped_before])
            tracked = self._existing(c, "leads", "id", [u.lead_id for u in skipped])  # after the upsert, as before
            c.executemany(
                "UPDATE leads SET attempts = CASE WHEN seen_hash IS NULL THEN attempts ELSE 0 END,"
                " parked = CASE WHEN seen_hash IS NULL THEN parked ELSE NULL END,"
                " seen_hash = NULL, payload = NULL, modstamp = ? WHERE id = ?",
                [(u.modstamp, u.lead_id) for u in skipped if u.lead_id in tracked])
            # A lead that is neither wanted nor on the list needs no row: the skip audit keeps it.
            c.executemany("DELETE FROM leads WHERE id = ? AND seen_hash IS NULL AND acked_hash IS NULL "
                          "AND batch_id IS NULL", [(i,) for i in tracked])
            c.executemany(
                "INSERT OR REPLACE INTO skips (lead_id, reason, detail, run_id, modstamp) VALUES (?, ?, ?, ?, ?)",
                [(u.lead_id, u.reason, u.detail, run_id, u.modstamp) for u in skipped])
            c.execute("UPDATE sync_state SET pos_ts = ?, pos_id = ?, next_url = ?, next_url_at = ?",
                      (pos_ts, pos_id, next_url, iso(next_url_at)))
            c.execute("UPDATE runs SET read = read + ?, skipped = skipped + ? WHERE id = ?",
                      (len(eligible) + len(skipped), len(skipped), run_id))
        return len(eligible) + len(skipped), len(skipped)

    @staticmethod
    def _existing(c: sqlite3.Connection, table: str, key: str, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        sql = f"SELECT {key} FROM {table} WHERE {key} IN (SELECT value FROM json_each(?))"  # noqa: S608 - fixed names
        return {row[0] for row in c.execute(sql, (json.dumps(ids),))}

    # -- outbox ---------------------------------------------------------------------------------
    def count_pending(self, kind: str, up_to: int | None = None) -> int:
        """How many leads wait to be staged; with ``up_to``, counting stops there (cheap per page)."""
        if up_to is None:
            return int(self.scalar(f"SELECT count(*) FROM leads WHERE {PENDING[kind]}"))  # noqa: S608
        sql = f"SELECT count(*) FROM (SELECT 1 FROM leads WHERE {PENDING[kind]} LIMIT ?)"  # noqa: S608
        return int(self.scalar(sql, (up_to,)))

    def changed_in_flight(self, kinds: Sequence[str]) -> bool:
        """Whether a lead waits for a batch of these kinds that no failure put back: its batch was
        acked, but it had changed meanwhile."""
        waiting = " OR ".join(f"({PENDING[kind]})" for kind in kinds)
        return bool(self.scalar(f"SELECT EXISTS (SELECT 1 FROM leads WHERE ({waiting}) AND attempts = 0)"))  # noqa: S608

    def stage_pending(self, batch_id: str, kind: str, file_name: str, limit: int, run_id: int | None,
                      now: datetime) -> int:
        """Stage up to ``limit`` pending leads (in id order) as one batch; returns how many (0: no batch).

        Members, body and marks are copied inside SQLite: the leads' rows never travel through Python.
        """
        with self.transaction() as c:
            self._new_batch(c, batch_id, kind, file_name, 0, run_id, None, now)  # rows set once chosen
            staged = c.execute(
                f"INSERT INTO batch_members (batch_id, lead_id, hash) SELECT ?, id, seen_hash FROM leads "  # noqa: S608
                f"WHERE {PENDING[kind]} ORDER BY id LIMIT ?", (batch_id, limit)).rowcount
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
        rows = self.query(sql, states)
        return [Batch(id=r["id"], kind=r["kind"], state=r["state"], file_name=r["file_name"], rows=r["rows"],
                      job_id=r["job_id"], uploads=r["uploads"], submitted_at=from_iso(r["submitted_at"]),
                      error=r["error"]) for r in rows]

    def members(self, batch_id: str) -> list[Member]:
        """A batch's leads in id order, each with the exact row staged for it (None once it closed)."""
        rows = self.conn.execute("SELECT lead_id, hash FROM batch_members WHERE batch_id = ? ORDER BY lead_id",
                                 (batch_id,)).fetchall()
        body = self.conn.execute("SELECT rows FROM batch_bodies WHERE batch_id = ?", (batch_id,)).fetchone()
        payloads: dict[str, str] = json.loads(body[0]) if body else {}
        return [Member(lead_id, hash_, payloads.get(lead_id)) for lead_id, hash_ in rows]

    def rows(self, batch_id: str) -> list[str]:
        """An open upsert batch's exact rows, in the order staged (lead id), without reading its members."""
        body = self.conn.execute("SELECT b.rows, s.rows FROM batches s LEFT JOIN batch_bodies b ON b.batch_id = s.id "
                                 "WHERE s.id = ?", (batch_id,)).fetchone()
        rows: list[str] = list(json.loads(body[0]).values()) if body and body[0] is not None else []
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

    def ack_batch(self, batch_id: str, now: datetime) -> None:
        """CXone confirmed the batch: each member's acked hash becomes exactly what was sent."""
        with self.transaction() as c:
            c.execute("UPDATE leads SET acked_hash = m.hash, batch_id = NULL, attempts = 0 "
                      "FROM batch_members AS m WHERE m.batch_id = ? AND leads.id = m.lead_id "
                      "AND leads.batch_id = ?", (batch_id, batch_id))
            self._close(c, batch_id, "completed", None, now)

    def fail_batch(self, batch_id: str, error: str, max_attempts: int, now: datetime) -> int:
        """The job failed: members stay dirty; those out of attempts are parked. Returns parked count."""
        with self.transaction() as c:
            c.execute("UPDATE leads SET batch_id = NULL, attempts = attempts + 1 WHERE batch_id = ?", (batch_id,))
            parked = c.execute(
                "UPDATE leads SET parked = ?, parked_batch = ? WHERE id IN "
                "(SELECT lead_id FROM batch_members WHERE batch_id = ?) "
                "AND attempts >= ? AND parked IS NULL AND seen_hash IS NOT acked_hash",
                (error[:300], batch_id, batch_id, max_attempts)).rowcount
            self._close(c, batch_id, "failed", error, now)
        return int(parked)

    def finish_removal(self, batch_id: str, removed: Sequence[str], failed: Sequence[str], run_id: int,
                       max_attempts: int, now: datetime) -> None:
        """removeProspects answered: removed leads are off the list; failed ones stay pending."""
        with self.transaction() as c:
            c.executemany("UPDATE leads SET acked_hash = NULL, batch_id = NULL WHERE id = ? AND batch_id = ?",
                          [(lead, batch_id) for lead in removed])
            c.executemany("DELETE FROM leads WHERE id = ? AND seen_hash IS NULL AND acked_hash IS NULL "
                          "AND batch_id IS NULL", [(lead,) for lead in removed])
            c.executemany("UPDATE leads SET batch_id = NULL, attempts = attempts + 1, "
                          "parked = CASE WHEN attempts + 1 >= ? THEN 'CXone did not confirm the removal' "
                          "ELSE parked END, parked_batch = CASE WHEN attempts + 1 >= ? THEN ? ELSE parked_batch END "
                          "WHERE id = ? AND batch_id = ?",
                          [(max_attempts, max_attempts, batch_id, lead, batch_id) for lead in failed])
            c.execute("UPDATE runs SET removed = removed + ? WHERE id = ?", (len(removed), run_id))
            error = f"{len(failed)} of {len(removed) + len(failed)} not removed" if failed else None
            self._close(c, batch_id, "completed", error, now)

    def _close(self, c: sqlite3.Connection, batch_id: str, state: str, error: str | None, now: datetime) -> None:
        self.batches_closed += 1  # may overcount on a rollback: a reader only re-counts what it cached
        c.execute("UPDATE batches SET state = ?, error = ?, finished_at = ? WHERE id = ?",
                  (state, error, iso(now), batch_id))
        # The rows were needed only while the batch could be sent again.
        c.execute("DELETE FROM batch_bodies WHERE batch_id = ?", (batch_id,))

    def find_batch(self, ref: str) -> dict[str, Any] | None:
        """A batch by its id or by the CXone job id it was submitted as (the latest such batch)."""
        rows = self.query("SELECT * FROM batches WHERE id = ? OR job_id = ? ORDER BY id = ? DESC, created_at DESC "
                          "LIMIT 1", (ref, ref, ref))
        return rows[0] if rows else None

    def replay(self, source: str, now: datetime) -> list[tuple[str, str, int]]:
        """Re-queue a closed batch's leads with their current content as new batches.

        Parked members are released; members already in an open batch, or no longer tracked,
        are left alone. Returns the (batch id, kind, rows) staged, in one transaction.
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
            for kind, members in (("upsert", upserts), ("remove", removals)):
                if not members:
                    continue
                batch_id = f"replay{prior + 1}-{kind[0]}-{source}"
                self.stage(batch_id, kind, f"syncd-{batch_id}.csv", members, None, now, replay_of=source)
                staged.append((batch_id, kind, len(members)))
            c.executemany("UPDATE leads SET parked = NULL, parked_batch = NULL, attempts = 0 WHERE id = ?",
                          [(m.lead_id,) for m in upserts + removals])
        return staged

    def list_batches(self, state: str | None, limit: int) -> list[dict[str, Any]]:
        return self.query(
            "SELECT b.id, b.kind, b.state, b.job_id, b.rows, b.uploads, b.error, b.replay_of, b.created_at, "
            "b.submitted_at, b.finished_at, (SELECT count(*) FROM leads l WHERE l.parked_batch = b.id) AS parked "
            "FROM batches b WHERE ? IS NULL OR b.state = ? ORDER BY b.created_at DESC, b.id DESC LIMIT ?",
            (state, state, limit))

    # -- runs -----------------------------------------------------------------------------------
    def start_run(self, pid: int, now: datetime) -> int:
        with self.transaction() as c:
            # We hold the lock, so a run still marked running died with its process.
            c.execute("UPDATE runs SET status = 'interrupted', finished_at = heartbeat_at "
                      "WHERE status = 'running'")
            cur = c.execute("INSERT INTO runs (status, pid, started_at, heartbeat_at) VALUES ('running', ?, ?, ?)",
                            (pid, iso(now), iso(now)))
            return int(cur.lastrowid or 0)

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
        rows = self.query("SELECT * FROM runs WHERE id = ?", (run_id,))
        return rows[0] if rows else None

    def last_run(self) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM runs ORDER BY id DESC LIMIT 1")
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
        return self.query("SELECT * FROM daemon WHERE id = 1")[0]

    # -- reports --------------------------------------------------------------------------------
    def counts(self) -> dict[str, Any]:
        leads = self.query(
            "SELECT count(*) AS tracked,"
            " coalesce(sum(seen_hash IS NOT acked_hash), 0) AS dirty,"
            " coalesce(sum(parked IS NOT NULL), 0) AS parked,"
            " coalesce(sum(seen_hash IS NULL AND acked_hash IS NOT NULL), 0) AS pending_removal,"
            " coalesce(sum(acked_hash IS NOT NULL), 0) AS on_list FROM leads")[0]
        leads["removed"] = int(self.scalar("SELECT coalesce(sum(removed), 0) FROM runs"))
        batches = dict.fromkeys(("staged", "submitted", "completed", "failed"), 0)
        for r in self.query("SELECT state, count(*) AS n FROM batches GROUP BY state"):
            batches[r["state"]] = r["n"]
        skipped = {r["reason"]: r["n"] for r in
                   self.query("SELECT reason, count(*) AS n FROM skips GROUP BY reason ORDER BY n DESC, reason")}
        return {"leads": leads, "batches": batches, "skipped": skipped}

    def skips(self) -> Iterator[dict[str, Any]]:
        yield from self.db.query("SELECT lead_id, reason, detail, run_id, modstamp FROM skips "
                                 "ORDER BY reason, lead_id")
