"""The state's schema as ordered, named migrations (sqlite-utils ``Migrations``).

Part of the store: ``syncd/store/db.py`` applies them inside its write transaction and refuses a file
that carries a migration this version does not know. Never edit a released migration: add one.

sqlite-utils is imported only when a migration is pending (a new or an older state file): a start
on an up-to-date file reads the applied names with one query (``applied``) and spares every
command, ``syncd status`` beside the daemon included, the library's import (~0.2 s).
"""

from __future__ import annotations

import functools
import hashlib
import json
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils
    from sqlite_utils.migrations import Migrations

APPLICATION_ID = 0x53594E43  # "SYNC": marks a syncd database

MIGRATION_SET = "syncd"  # sqlite-utils' name for the set, in its table _sqlite_migrations
Migration = Callable[["sqlite_utils.Database"], None]
_MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register a migration, in order (applied by sqlite-utils under the function's name)."""
    _MIGRATIONS.append(fn)
    return fn


@functools.cache
def migrations() -> Migrations:
    """The sqlite-utils migration set (imports the library: only for a file with a migration pending)."""
    from sqlite_utils.migrations import Migrations

    out = Migrations(MIGRATION_SET)
    for fn in _MIGRATIONS:
        out()(fn)
    return out


def applied(conn: sqlite3.Connection) -> list[str]:
    """The names of the migrations applied to this file, in the order applied: what sqlite-utils'
    ``Migrations.applied`` reads (``tests/test_store.py`` holds the two equal), without importing it."""
    table = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlite_migrations'")
    if table.fetchone() is None:
        return []
    return [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations WHERE migration_set = ? ORDER BY rowid",
                                       (MIGRATION_SET,))]


# Every table the current schema has (checked at open: a missing one is damage, not an empty state).
TABLES = ("sync_state", "leads", "batches", "batch_members", "batch_bodies", "runs", "skips", "daemon", "dnc_links",
          "suppressions", "verifications")


@migration
def m001_initial(db: sqlite_utils.Database) -> None:
    db.executescript("""
    CREATE TABLE sync_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        watermark TEXT,
        window_start TEXT,
        window_end TEXT,
        window_run_id INTEGER,
        pos_ts TEXT,
        pos_id TEXT,
        next_url TEXT,
        next_url_at TEXT
    );
    INSERT INTO sync_state (id) VALUES (1);

    CREATE TABLE leads (
        id TEXT PRIMARY KEY,
        seen_hash BLOB,
        acked_hash BLOB,
        payload TEXT,
        batch_id TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        parked TEXT,
        modstamp TEXT
    ) WITHOUT ROWID;
    CREATE INDEX leads_pending ON leads (id)
        WHERE seen_hash IS NOT acked_hash AND batch_id IS NULL AND parked IS NULL;

    CREATE TABLE batches (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('upsert', 'remove')),
        state TEXT NOT NULL CHECK (state IN ('staged', 'submitted', 'completed', 'failed')),
        file_name TEXT NOT NULL,
        rows INTEGER NOT NULL,
        job_id TEXT,
        uploads INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        run_id INTEGER,
        replay_of TEXT,
        created_at TEXT NOT NULL,
        submitted_at TEXT,
        finished_at TEXT
    );
    CREATE INDEX batches_state ON batches (state);
    CREATE INDEX batches_job ON batches (job_id);

    CREATE TABLE batch_members (
        batch_id TEXT NOT NULL REFERENCES batches (id),
        lead_id TEXT NOT NULL,
        hash BLOB,
        payload TEXT,
        PRIMARY KEY (batch_id, lead_id)
    ) WITHOUT ROWID;
    CREATE INDEX batch_members_lead ON batch_members (lead_id);

    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        status TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'interrupted')),
        pid INTEGER,
        started_at TEXT NOT NULL,
        heartbeat_at TEXT,
        finished_at TEXT,
        window_start TEXT,
        window_end TEXT,
        read INTEGER NOT NULL DEFAULT 0,
        sent INTEGER NOT NULL DEFAULT 0,
        removed INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0,
        error TEXT
    );

    CREATE TABLE skips (
        lead_id TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        run_id INTEGER,
        modstamp TEXT
    ) WITHOUT ROWID;
    CREATE INDEX skips_reason ON skips (reason);
    """)


@migration
def m002_parked_batch(db: sqlite_utils.Database) -> None:
    # Which batch's failure parked a lead, so `syncd jobs` and `replay-job` can find it.
    db.execute("ALTER TABLE leads ADD COLUMN parked_batch TEXT")


@migration
def m003_daemon(db: sqlite_utils.Database) -> None:
    # What the daemon is doing, for `syncd status` beside it (one row; the lock says if it is alive).
    db.executescript("""
    CREATE TABLE daemon (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        pid INTEGER,
        started_at TEXT,
        heartbeat_at TEXT,
        state TEXT,
        progress TEXT,
        next_run_at TEXT,
        last_error TEXT,
        stopped_at TEXT
    );
    INSERT INTO daemon (id) VALUES (1);
    """)


@migration
def m004_batch_rows(db: sqlite_utils.Database) -> None:
    # The exact rows of open batches move to their own table, deleted when a batch closes: nulling
    # them in place left batch_members' pages half empty (~215 bytes a member at 1M leads).
    db.executescript("""
    CREATE TABLE batch_rows (
        batch_id TEXT NOT NULL,
        lead_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        PRIMARY KEY (batch_id, lead_id)
    ) WITHOUT ROWID;
    INSERT INTO batch_rows (batch_id, lead_id, payload)
        SELECT batch_id, lead_id, payload FROM batch_members WHERE payload IS NOT NULL;
    DROP INDEX batch_members_lead;
    ALTER TABLE batch_members DROP COLUMN payload;
    """)


@migration
def m005_batch_bodies(db: sqlite_utils.Database) -> None:
    # An open batch's exact rows as one JSON object {lead id: row}, not a row per lead: staging and
    # closing a batch write one record instead of thousands (the per-lead cost of an initial sync).
    db.execute("CREATE TABLE batch_bodies (batch_id TEXT PRIMARY KEY, rows TEXT NOT NULL)")
    batch_ids = [r[0] for r in db.execute("SELECT DISTINCT batch_id FROM batch_rows ORDER BY batch_id").fetchall()]
    for batch_id in batch_ids:
        rows = db.execute("SELECT lead_id, payload FROM batch_rows WHERE batch_id = ? ORDER BY lead_id",
                          (batch_id,)).fetchall()
        db.execute("INSERT INTO batch_bodies (batch_id, rows) VALUES (?, ?)", (batch_id, json.dumps(dict(rows))))
    db.execute("DROP TABLE batch_rows")


@migration
def m006_pending_covering(db: sqlite_utils.Database) -> None:
    # The pending index holds every column its condition reads: counting and staging pending leads
    # then never visits the table (SQLite re-checks a partial index's terms against the row unless the
    # index covers them), about 10x cheaper to count. Entries exist only while a lead is pending.
    db.executescript("""
    DROP INDEX leads_pending;
    CREATE INDEX leads_pending ON leads (id, seen_hash, acked_hash, batch_id, parked)
        WHERE seen_hash IS NOT acked_hash AND batch_id IS NULL AND parked IS NULL;
    """)


@migration
def m007_closed_loop(db: sqlite_utils.Database) -> None:
    # What CXone holds, not only what it acked: the number on the record, when it expires (from the
    # ack, then from what verification reads), the batch that put it there, a removal answered as done
    # (kept until a verification agrees), and verifications in a row that found the record wrong.
    # DNC suppression: which numbers syncd added to the DNC group, and which leads need each one.
    db.executescript("""
    ALTER TABLE leads ADD COLUMN phone TEXT;
    ALTER TABLE leads ADD COLUMN expires_on TEXT;
    ALTER TABLE leads ADD COLUMN acked_batch TEXT;
    ALTER TABLE leads ADD COLUMN removed_at TEXT;
    ALTER TABLE leads ADD COLUMN misses INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE leads ADD COLUMN drift TEXT;
    CREATE INDEX leads_expiry ON leads (expires_on) WHERE expires_on IS NOT NULL;
    CREATE INDEX leads_removed ON leads (removed_at) WHERE removed_at IS NOT NULL;
    CREATE INDEX leads_parked ON leads (parked) WHERE parked IS NOT NULL;
    ALTER TABLE batches ADD COLUMN snapshot INTEGER NOT NULL DEFAULT 0;

    CREATE TABLE dnc_links (
        phone TEXT NOT NULL,
        lead_id TEXT NOT NULL,
        since TEXT,
        PRIMARY KEY (phone, lead_id)
    ) WITHOUT ROWID;
    CREATE INDEX dnc_links_lead ON dnc_links (lead_id);

    CREATE TABLE suppressions (
        phone TEXT PRIMARY KEY,
        added_at TEXT NOT NULL,
        run_id INTEGER
    ) WITHOUT ROWID;

    CREATE TABLE verifications (
        id INTEGER PRIMARY KEY,
        run_id INTEGER,
        at TEXT NOT NULL,
        records INTEGER NOT NULL DEFAULT 0,
        missing INTEGER NOT NULL DEFAULT 0,
        expired INTEGER NOT NULL DEFAULT 0,
        finalized INTEGER NOT NULL DEFAULT 0,
        wrong INTEGER NOT NULL DEFAULT 0,
        unexpected INTEGER NOT NULL DEFAULT 0,
        removed_again INTEGER NOT NULL DEFAULT 0,
        unremovable INTEGER NOT NULL DEFAULT 0,
        unrestorable INTEGER NOT NULL DEFAULT 0,
        rejected INTEGER NOT NULL DEFAULT 0,
        replaced INTEGER NOT NULL DEFAULT 0,
        confirmed INTEGER NOT NULL DEFAULT 0
    );
    """)


@migration
def m008_full_refresh(db: sqlite_utils.Database) -> None:
    """Full refresh, the delete log and Salesforce's clock (issue 14).

    ``leads.seen_window`` is the window (by the run that opened it) that last returned the lead: at
    the end of a full refresh, a tracked lead the refresh did not return is looked up by id, and
    treated as deleted when Salesforce no longer has it. ``sync_state.window_full`` marks an open
    window as a full refresh; ``refresh_reason`` says why the next run must be one (a reset, a delete
    log that no longer reaches back); ``sf_skew_seconds`` is Salesforce's clock minus the host's.
    """
    db.executescript("""
    ALTER TABLE leads ADD COLUMN seen_window INTEGER;
    ALTER TABLE sync_state ADD COLUMN window_full INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sync_state ADD COLUMN refresh_reason TEXT;
    ALTER TABLE sync_state ADD COLUMN last_full_refresh TEXT;
    ALTER TABLE sync_state ADD COLUMN sf_skew_seconds REAL;
    ALTER TABLE sync_state ADD COLUMN sf_clock_at TEXT;
    """)


@migration
def m009_bulk(db: sqlite_utils.Database) -> None:
    """Bulk API 2.0 reads (issue 15): the open window's query job, the API version it was made with
    (its results must be read with the same one), and the locator of the next chunk to apply. A
    crash resumes the same job at that chunk; a job that failed or expired is forgotten and the
    window read by REST from its saved position."""
    db.executescript("""
    ALTER TABLE sync_state ADD COLUMN bulk_job_id TEXT;
    ALTER TABLE sync_state ADD COLUMN bulk_api_version TEXT;
    ALTER TABLE sync_state ADD COLUMN bulk_locator TEXT;
    """)


def _row_hash_v2(row: str | None) -> bytes | None:
    """Hash version 2 as m010 applies it (frozen here: a later version adds its own migration)."""
    return None if row is None else hashlib.blake2b(row.encode("utf-8"), digest_size=16).digest()


@migration
def m010_row_hash(db: sqlite_utils.Database) -> None:
    """Hash version 2 (``syncd/diff.py``): a lead's digest is of the row its sink receives, not of the
    whole contact. A call list never sees the phone type, and a change of it alone re-sent an
    identical row. Every stored digest is recomputed from the row stored beside it, so an upgrade
    sends nothing: a lead whose confirmed content was current (acked = seen) stays so, and an open
    batch's members take the digest of the row staged for each, which their ack then confirms. A
    confirmed digest of other content (the lead changed since, or STALE) keeps its version-1 value,
    which no row hashes to: that lead stays dirty, as it was."""
    db.register_function(_row_hash_v2, deterministic=True, name="syncd_row_hash_v2")
    db.execute("UPDATE leads SET acked_hash = CASE WHEN acked_hash = seen_hash THEN syncd_row_hash_v2(payload) "
               "ELSE acked_hash END, seen_hash = syncd_row_hash_v2(payload) WHERE payload IS NOT NULL")
    for batch_id, body in db.execute("SELECT batch_id, rows FROM batch_bodies ORDER BY batch_id").fetchall():
        rows: dict[str, str] = json.loads(body)
        db.conn.executemany("UPDATE batch_members SET hash = ? WHERE batch_id = ? AND lead_id = ? AND hash IS NOT NULL",
                            [(_row_hash_v2(row), batch_id, lead_id) for lead_id, row in rows.items()])


@migration
def m011_leads_by_arrival(db: sqlite_utils.Database) -> None:
    """Lead rows in the order syncd first stored them (``seq``), found by id through a unique index.

    Keyed by id, every lead a page brings lands in its own leaf of the table when ids do not follow
    SystemModstamp (a real org's do not: a lead modified long after it was made sorts late), and each of
    its three writes (read, staged, acked) rewrites a 4 KB page of it and of the pending index. Keyed by
    arrival, a page's new leads are appended, and a batch (staged in ``seq`` order) is a run of rows:
    only the narrow id index takes a scattered insert. Existing rows keep their id order."""
    db.executescript("""
    CREATE TABLE leads_by_arrival (
        seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, seen_hash BLOB, acked_hash BLOB, payload TEXT,
        batch_id TEXT, attempts INTEGER NOT NULL DEFAULT 0, parked TEXT, modstamp TEXT, parked_batch TEXT,
        phone TEXT, expires_on TEXT, acked_batch TEXT, removed_at TEXT, misses INTEGER NOT NULL DEFAULT 0,
        drift TEXT, seen_window INTEGER
    );
    INSERT INTO leads_by_arrival (id, seen_hash, acked_hash, payload, batch_id, attempts, parked, modstamp,
        parked_batch, phone, expires_on, acked_batch, removed_at, misses, drift, seen_window)
    SELECT id, seen_hash, acked_hash, payload, batch_id, attempts, parked, modstamp,
        parked_batch, phone, expires_on, acked_batch, removed_at, misses, drift, seen_window
    FROM leads ORDER BY id;
    DROP TABLE leads;
    ALTER TABLE leads_by_arrival RENAME TO leads;
    CREATE INDEX leads_pending ON leads (seq, id, seen_hash, acked_hash, batch_id, parked)
        WHERE seen_hash IS NOT acked_hash AND batch_id IS NULL AND parked IS NULL;
    CREATE INDEX leads_expiry ON leads (expires_on) WHERE expires_on IS NOT NULL;
    CREATE INDEX leads_removed ON leads (removed_at) WHERE removed_at IS NOT NULL;
    CREATE INDEX leads_parked ON leads (parked) WHERE parked IS NOT NULL;
    """)


@migration
def m012_skips_by_arrival(db: sqlite_utils.Database) -> None:
    """The skip audit in the order first stored, found by lead id through a unique index (as m011 did for
    leads): a page's skipped leads are appended, and ``skips_reason`` takes each in reason then arrival
    order, instead of two scattered inserts a skip (the table and the reason index, both by lead id)."""
    db.executescript("""
    CREATE TABLE skips_by_arrival (
        seq INTEGER PRIMARY KEY, lead_id TEXT NOT NULL UNIQUE, reason TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '', run_id INTEGER, modstamp TEXT
    );
    INSERT INTO skips_by_arrival (lead_id, reason, detail, run_id, modstamp)
    SELECT lead_id, reason, detail, run_id, modstamp FROM skips ORDER BY lead_id;
    DROP TABLE skips;
    ALTER TABLE skips_by_arrival RENAME TO skips;
    CREATE INDEX skips_reason ON skips (reason);
    """)


NAMES = tuple(fn.__name__ for fn in _MIGRATIONS)  # every migration this version knows, in order
