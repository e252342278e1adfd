"""The state database: connection discipline, identity, migrations and the one write transaction.

Every SQL statement syncd runs goes through :class:`Database` (``_rows``, ``_one``, ``_value`` and
``transaction``), so every foreign sqlite3 error is translated here, once, into a
:class:`~syncd.errors.StateError` with one line naming the file. The typed queries per concern
(``window``, ``leads``, ``outbox``, ``runs``, ``reports``) build on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from syncd.errors import StateError
from syncd.store.schema import APPLICATION_ID, NAMES, TABLES, applied, migrations

SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 10_000
# SQLite's page cache for the state, in KiB (SQLite's default is 2 MiB). With the default, a large
# sync re-reads most pages it writes from the OS; 64 MiB is a bounded cost in memory (peak RSS ~160 MB
# at 1M leads) that measured ~5% less CPU per lead than 32 MiB at 1M leads.
CACHE_KIB = 64 * 1024
# Pages the write-ahead log may hold before a commit copies them into the database (SQLite's default is
# 1,000, 4 MB). A sync rewrites the same pages commit after commit (the end of the leads table, the open
# batches): a longer log copies each once per checkpoint instead of once per 4 MB. At 300,000 leads it
# measured 16% fewer page writes, 29% fewer page reads and a third fewer fsyncs (strace -c); the log
# peaks near 40 MB on disk, and SQLite removes it when the last connection closes.
WAL_AUTOCHECKPOINT_PAGES = 10_000


def json_text(values: Sequence[str]) -> str:
    """A JSON array of text, for ``json_each(?)``: orjson writes a page's 2,000 lead ids in a tenth of
    ``json.dumps``'s time. Text orjson refuses (a lone surrogate) goes through the standard library."""
    try:
        return orjson.dumps(values).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(values)


def json_value(text: str) -> Any:
    """``json.loads``, by orjson where it can: a staged batch's body of 5,000 rows is read per upload."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _check_file(path: Path) -> None:
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as e:
        raise StateError(f"state file {path} cannot be read ({e.strerror})") from None
    if head and head != SQLITE_MAGIC:
        raise StateError(f"{path} is not a SQLite database; refusing to touch it "
                         "(point state.path elsewhere, or move the file away)")


def no_state(path: Path) -> str:
    # Never a bare "run sync first": beside a service, that would start a second state for the same list.
    return (f"no state at {path} yet. It is the [state] path of the configuration given (relative paths are "
            "read from the config file's directory); a syncd service keeps its state where its own "
            "configuration says, so pass the same --config (`systemctl cat syncd` shows it). Only where no "
            "syncd has run for this list does the first `syncd sync` or `syncd run` create it")


def way_back(path: Path) -> str:
    return (f"restore {path} from a backup, or move it (and its -wal) away so the next run starts a fresh "
            "state that re-reads the whole org")


def describe(path: Path, e: sqlite3.Error, busy_timeout: float) -> StateError:
    """One line for a foreign sqlite3 error, naming the file and, where there is one, the fix."""
    text = str(e)
    code = getattr(e, "sqlite_errorname", "") or ""
    if "locked" in text or "busy" in text or code.startswith("SQLITE_BUSY"):
        return StateError(f"the state database {path} is locked by another process; gave up after "
                          f"{busy_timeout:g}s (state.busy_timeout_seconds). Nothing was changed.")
    if code == "SQLITE_FULL" or "disk is full" in text or "database or disk is full" in text:
        return StateError(f"the state database {path} cannot grow: the disk (or its quota) is full. "
                          "Nothing of this step was written; free space and run again.")
    if code.startswith("SQLITE_CORRUPT") or "malformed" in text or "not a database" in text:
        return StateError(f"the state database {path} is damaged ({text}); {way_back(path)}")
    if code.startswith("SQLITE_IOERR") or "disk I/O error" in text:
        return StateError(f"the state database {path} could not be read or written (disk I/O error); "
                          "check the disk, then run again")
    if code.startswith("SQLITE_READONLY") or "readonly" in text:
        return StateError(f"the state database {path} is read-only for this user; run syncd as the user that "
                          "owns it (or fix the permissions of the file and its directory)")
    if "no such table" in text or "no such column" in text:
        return StateError(f"the state database {path} lacks part of its schema ({text}); {way_back(path)}")
    if isinstance(e, sqlite3.IntegrityError):
        return StateError(f"the state database {path} refused a write that contradicts its contents ({text}); "
                          "the state is inconsistent: " + way_back(path))
    return StateError(f"the state database {path} failed: {text}")


class Database:
    """One connection to the state. Writers use ``transaction()``; readers the typed queries."""

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
            raise StateError(no_state(path))
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
        except sqlite3.Error as e:
            raise describe(path, e, busy_timeout) from None
        try:
            self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            # Identify the file before anything can write to it (even switching to WAL rewrites its header).
            self._check_identity()
            if not readonly:
                self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = FULL")
            self.conn.execute(f"PRAGMA cache_size = {-CACHE_KIB}")
            self.conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
            self.conn.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                self._migrate()
            self._check_schema()
        except sqlite3.Error as e:
            self.conn.close()
            raise describe(path, e, busy_timeout) from None
        except StateError:
            self.conn.close()
            raise

    def _check_identity(self) -> None:
        app_id = self.conn.execute("PRAGMA application_id").fetchone()[0]
        has_tables = self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and has_tables):
            raise StateError(f"{self.path} is a SQLite database but not syncd's; refusing to touch it")
        unknown = [name for name in applied(self.conn) if name not in NAMES]
        if unknown:
            raise StateError(f"{self.path} was written by a newer syncd (schema {unknown[-1]}); "
                             "upgrade syncd to use it")

    def schema_version(self) -> str | None:
        """The last migration applied to this file (``m009_bulk``), as ``status`` reports it."""
        names = applied(self.conn)
        return names[-1] if names else None

    def _migrate(self) -> None:
        if set(NAMES) <= set(applied(self.conn)):
            return
        import sqlite_utils  # only now: a file already up to date never needs the library

        with self.transaction():
            if self.conn.execute("PRAGMA application_id").fetchone()[0] == 0:
                self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            migrations().apply(sqlite_utils.Database(self.conn))

    def _check_schema(self) -> None:
        """Every table of the schema is there, and the one-row tables hold their row."""
        present = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = [t for t in TABLES if t not in present]
        if missing and not present:
            raise StateError(no_state(self.path))
        if missing:
            raise StateError(f"the state database {self.path} lacks the table {missing[0]}; {way_back(self.path)}")
        for table in ("sync_state", "daemon"):
            if table in present and self.conn.execute(
                    f"SELECT count(*) FROM {table} WHERE id = 1").fetchone()[0] != 1:  # noqa: S608 - fixed names
                raise StateError(f"the state database {self.path} lacks its {table} row; {way_back(self.path)}")

    def check_integrity(self) -> None:
        """``PRAGMA quick_check``: a file that fails it stops syncd, naming SQLite's first complaint."""
        try:
            rows = self.conn.execute("PRAGMA quick_check(5)").fetchall()
            # SQLite's complaint may span lines ("*** in database main ***", then the page): one line.
            problem = " ".join(str(rows[0][0]).split()) if rows else "no answer"
        except sqlite3.Error as e:
            problem = str(e)
        if problem != "ok":
            raise StateError(f"the state database {self.path} failed its integrity check ({problem[:200]}); "
                             f"{way_back(self.path)}")

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The one way to write: ``BEGIN IMMEDIATE`` (the write lock up front), commit or roll back.

        As sqlite-utils' ``atomic()``: the rollback runs only while a transaction is open (SQLite
        rolls some failures back itself) and can never mask the first error; every sqlite3 error
        leaves as one :class:`StateError`.
        """
        if self.conn.in_transaction:
            yield self.conn
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise describe(self.path, e, self.busy_timeout) from None
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except sqlite3.Error as e:
            self._rollback()
            raise describe(self.path, e, self.busy_timeout) from None
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        # The first error is the one worth reporting; what a failed ROLLBACK leaves, SQLite undoes on close.
        if self.conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")

    # -- the only ways to read ------------------------------------------------------------------
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        try:
            cur = self.conn.execute(sql, params)
            names = [d[0] for d in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        except sqlite3.Error as e:
            raise describe(self.path, e, self.busy_timeout) from None

    def _one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        try:
            row = self.conn.execute(sql, params).fetchone()
        except sqlite3.Error as e:
            raise describe(self.path, e, self.busy_timeout) from None
        return row[0] if row else None

    def _iter(self, sql: str, params: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        try:
            cur = self.conn.execute(sql, params)
            names = [d[0] for d in cur.description or ()]
            for row in cur:
                yield dict(zip(names, row, strict=True))
        except sqlite3.Error as e:
            raise describe(self.path, e, self.busy_timeout) from None
