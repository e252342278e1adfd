from __future__ import annotations

import hashlib
import json
import sqlite3
import stat
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from syncd.errors import LockHeld, StateError
from syncd.lock import StateLock
from syncd.store import PENDING, LeadUpdate, Member, Store
from syncd.store.db import WAL_AUTOCHECKPOINT_PAGES, json_text, json_value
from syncd.store.schema import NAMES, applied, migrations

T = datetime(2024, 5, 15, 10, 30, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "syncd.db")


def h(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def pending(store: Store, kind: str = "upsert") -> list[str]:
    return store.pending_ids(kind)


def pragma(store: Store, name: str) -> Any:
    return store.conn.execute(f"PRAGMA {name}").fetchone()[0]


def migration_names(store: Store) -> list[str]:
    return [r[0] for r in store.conn.execute("SELECT name FROM _sqlite_migrations ORDER BY rowid")]


def state_before(path: Path, migration: str) -> sqlite3.Connection:
    """A syncd state file as a release before ``migration`` left it (every migration before it applied)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA application_id = {0x53594E43}")
    migrations().apply(sqlite_utils.Database(conn), stop_before=migration)
    return conn


def test_pragmas_and_permissions(store: Store) -> None:
    assert pragma(store, "journal_mode") == "wal"
    assert pragma(store, "synchronous") == 2  # FULL
    assert pragma(store, "wal_autocheckpoint") == WAL_AUTOCHECKPOINT_PAGES  # not SQLite's 1,000
    assert pragma(store, "busy_timeout") >= 1000
    assert pragma(store, "application_id") == 0x53594E43
    store.heartbeat(store.start_run(1, T), T)  # a write, so the WAL exists
    for suffix in ("", "-wal"):
        mode = stat.S_IMODE(Path(f"{store.path}{suffix}").stat().st_mode)
        assert mode == 0o600, (suffix, oct(mode))


def test_migrations_are_named_and_reopen_cleanly(store: Store) -> None:
    names = migration_names(store)
    assert names == ["m001_initial", "m002_parked_batch", "m003_daemon", "m004_batch_rows", "m005_batch_bodies",
                     "m006_pending_covering", "m007_closed_loop", "m008_full_refresh", "m009_bulk", "m010_row_hash",
                     "m011_leads_by_arrival", "m012_skips_by_arrival"]
    store.close()
    again = Store(store.path)
    assert migration_names(again) == names


def test_the_applied_migrations_read_as_sqlite_utils_reads_them(tmp_path: Path) -> None:
    """``applied`` is the library's ``Migrations.applied`` without the library: at each step of an
    upgrade, and with another migration set's rows in the same table."""
    conn = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    db = sqlite_utils.Database(conn)
    assert applied(conn) == [m.name for m in migrations().applied(db)] == []
    migrations().apply(db, stop_before="m004_batch_rows")
    conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('other', 'm999_x', '')")
    assert applied(conn) == [m.name for m in migrations().applied(db)] == list(NAMES[:3])
    migrations().apply(db)
    assert applied(conn) == [m.name for m in migrations().applied(db)] == list(NAMES)
    assert [m.name for m in migrations().pending(db)] == []


def test_a_start_on_an_up_to_date_state_does_not_import_sqlite_utils(tmp_path: Path) -> None:
    """sqlite-utils is imported for a migration only: every later start of syncd spares its import."""
    path = tmp_path / "syncd.db"
    Store(path).close()  # created and migrated here
    code = ("import sys; from syncd.store import Store; s = Store(__import__('pathlib').Path(sys.argv[1])); "
            "print(s.schema_version(), 'sqlite_utils' in sys.modules)")
    fresh = subprocess.run([sys.executable, "-c", code, str(tmp_path / "new.db")], capture_output=True, text=True,
                           check=True)
    assert fresh.stdout.split() == [NAMES[-1], "True"]  # a new file needs its migrations
    again = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert again.stdout.split() == [NAMES[-1], "False"]


def test_an_older_schema_is_upgraded_in_place_keeping_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = state_before(path, "m002_parked_batch")  # the state as the first release left it
    conn.execute("INSERT INTO leads (id, seen_hash, payload) VALUES ('L1', x'01', 'row')")
    conn.execute("INSERT INTO batches (id, kind, state, file_name, rows, created_at) "
                 "VALUES ('b1', 'upsert', 'staged', 'f.csv', 1, '')")
    conn.execute("INSERT INTO batch_members (batch_id, lead_id, hash, payload) VALUES ('b1', 'L1', x'01', 'row')")
    conn.close()
    store = Store(path)
    assert migration_names(store)[-1] == NAMES[-1]
    lead = store.lead("L1")
    assert store.lead_ids() == ["L1"]
    assert lead is not None
    assert (lead["payload"], lead["parked_batch"]) == ("row", None)
    # A batch staged before m004 (and m005) keeps its exact rows (its digest rehashed from the row by m010).
    assert store.members("b1") == [Member("L1", h("row"), "row")]


def test_batches_open_at_m004_keep_their_exact_rows_through_m005(tmp_path: Path) -> None:
    path = tmp_path / "m004.db"
    conn = state_before(path, "m005_batch_bodies")
    rows = {"b1": {"L2": 'L2,+14155552671,"Smith, Jo"', "L1": "L1,+14155552672,Zoë"}, "b2": {"L3": "L3,+1,x"}}
    for batch_id, members in rows.items():
        conn.execute("INSERT INTO batches (id, kind, state, file_name, rows, created_at) "
                     "VALUES (?, 'upsert', 'staged', 'f.csv', ?, '')", (batch_id, len(members)))
        for lead_id, payload in members.items():
            conn.execute("INSERT INTO batch_members (batch_id, lead_id, hash) VALUES (?, ?, ?)",
                         (batch_id, lead_id, h(payload)))
            conn.execute("INSERT INTO batch_rows (batch_id, lead_id, payload) VALUES (?, ?, ?)",
                         (batch_id, lead_id, payload))
    conn.execute("INSERT INTO batches (id, kind, state, file_name, rows, created_at) "
                 "VALUES ('r1', 'remove', 'staged', 'r.csv', 1, '')")
    conn.execute("INSERT INTO batch_members (batch_id, lead_id, hash) VALUES ('r1', 'L9', NULL)")
    conn.close()
    store = Store(path)
    for batch_id, members in rows.items():
        assert store.members(batch_id) == [Member(i, h(p), p) for i, p in sorted(members.items())]
    assert store.members("r1") == [Member("L9", None, None)]
    assert "batch_rows" not in sqlite_utils.Database(store.conn).table_names()


def test_m010_rehashes_each_digest_from_the_row_stored_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "m009.db"
    conn = state_before(path, "m010_row_hash")
    old = {name: bytes([n]) * 16 for n, name in enumerate(("current", "dirty", "acked", "staged", "gone"), 1)}
    leads = [("current", old["current"], old["current"], "row-c", None),  # CXone holds the current row
             ("changed", old["dirty"], old["acked"], "row-d", None),  # content changed since CXone confirmed it
             ("stale", old["current"], b"\x00", "row-s", None),  # due its keep-alive
             ("removal", None, old["gone"], None, None),  # pending removal
             ("in-batch", old["staged"], None, "row-now", "b1")]  # staged, then changed again
    conn.executemany("INSERT INTO leads (id, seen_hash, acked_hash, payload, batch_id) VALUES (?, ?, ?, ?, ?)", leads)
    conn.execute("INSERT INTO batches (id, kind, state, file_name, rows, created_at) "
                 "VALUES ('b1', 'upsert', 'submitted', 'f.csv', 1, '')")
    conn.execute("INSERT INTO batch_members (batch_id, lead_id, hash) VALUES ('b1', 'in-batch', ?)", (old["staged"],))
    conn.execute("INSERT INTO batch_bodies (batch_id, rows) VALUES ('b1', ?)", ('{"in-batch": "row-staged"}',))
    conn.close()
    store = Store(path)
    got = {i: (seen, acked) for i, seen, acked in store.conn.execute("SELECT id, seen_hash, acked_hash FROM leads")}
    assert got == {"current": (h("row-c"), h("row-c")), "changed": (h("row-d"), old["acked"]),
                   "stale": (h("row-s"), b"\x00"), "removal": (None, old["gone"]), "in-batch": (h("row-now"), None)}
    # The member's digest is of the row it was staged with: its ack confirms that row, and the lead
    # (changed since) stays dirty.
    assert store.members("b1") == [Member("in-batch", h("row-staged"), "row-staged")]
    assert pending(store) == ["changed", "stale"]
    assert pending(store, "remove") == ["removal"]


def test_m011_keeps_every_lead_as_it_was_and_orders_them_by_id(tmp_path: Path) -> None:
    path = tmp_path / "m010.db"
    conn = state_before(path, "m011_leads_by_arrival")
    columns = [r[1] for r in conn.execute("PRAGMA table_info(leads)")]
    leads = [("L3", h("3"), h("3"), "row3", None, 0, None, "2024-05-01T00:00:00.000+0000", None, "+14155550103",
              "2024-06-01", "u1", None, 0, None, 7),  # on the list
             ("L1", h("1"), None, "row1", "b1", 2, None, None, None, "+14155550101", None, None, None, 0, None, 7),
             ("L2", None, h("2"), None, None, 5, "parked: no", None, "u0", None, None, None, "2024-05-02", 1,
              "missing", None)]  # a pending removal, parked
    conn.executemany(f"INSERT INTO leads ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", leads)
    conn.close()
    store = Store(path)
    after = store.conn.execute(f"SELECT {', '.join(columns)} FROM leads ORDER BY id").fetchall()
    assert after == sorted(leads)
    assert [r[0] for r in store.conn.execute("SELECT id FROM leads ORDER BY seq")] == ["L1", "L2", "L3"]
    assert pending(store) == []  # L1 is in a batch, L3 acked
    assert pending(store, "remove") == []  # L2 is parked
    indexes = {r[1] for r in store.conn.execute("PRAGMA index_list(leads)")}
    assert {"leads_pending", "leads_expiry", "leads_removed", "leads_parked"} <= indexes
    with pytest.raises(sqlite3.IntegrityError):  # an id is still one lead
        store.conn.execute("INSERT INTO leads (id) VALUES ('L1')")
    # A lead first read after the upgrade is stored after them, and staged after them.
    run = store.start_run(1, T)
    store.apply_page([LeadUpdate("L0", None, h("0"), "row0")], run, None, None, None, None)
    store.release_parked()
    assert [r[0] for r in store.conn.execute("SELECT id FROM leads ORDER BY seq")] == ["L1", "L2", "L3", "L0"]
    assert store.stage_pending("r1", "remove", "r.csv", 10, run, T) == 1
    assert store.stage_pending("u9", "upsert", "u.csv", 10, run, T) == 1


def test_m012_keeps_every_skip_and_finds_each_by_lead_id(tmp_path: Path) -> None:
    path = tmp_path / "m011.db"
    conn = state_before(path, "m012_skips_by_arrival")
    skips = [("L2", "status", "Nurturing", 3, "2024-05-01T00:00:00.000+0000"), ("L1", "do_not_call", "", 2, None),
             ("L3", "invalid_phone", "", None, "2024-05-02T00:00:00.000+0000")]
    conn.executemany("INSERT INTO skips (lead_id, reason, detail, run_id, modstamp) VALUES (?, ?, ?, ?, ?)", skips)
    conn.close()
    store = Store(path)
    assert [tuple(r.values()) for r in store.skips()] == sorted(skips, key=lambda s: (s[1], s[0]))
    assert store.counts()["skipped"] == {"do_not_call": 1, "invalid_phone": 1, "status": 1}
    with pytest.raises(sqlite3.IntegrityError):  # a lead still has one skip
        store.conn.execute("INSERT INTO skips (lead_id, reason) VALUES ('L1', 'status')")
    # A lead read again as skipped for another reason keeps one row, the new reason; one that turns
    # callable loses it.
    run = store.start_run(1, T)
    seq = dict(store.conn.execute("SELECT lead_id, seq FROM skips").fetchall())
    store.apply_page([LeadUpdate("L2", None, reason="converted"), LeadUpdate("L3", None, h("3"), "row3")], run,
                     None, None, None, None)
    assert store.skip_reasons() == {"L1": "do_not_call", "L2": "converted"}
    # Rewritten where it was (a full refresh rewrites every skip: in place, not appended anew).
    assert dict(store.conn.execute("SELECT lead_id, seq FROM skips").fetchall()) == {k: seq[k] for k in ("L1", "L2")}


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "syncd.db"
    path.write_bytes(b"hello, I am a spreadsheet\n" * 10)
    before = path.read_bytes()
    with pytest.raises(StateError, match="is not a SQLite database"):
        Store(path)
    assert path.read_bytes() == before
    assert not Path(f"{path}-wal").exists()


def test_another_apps_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StateError, match="not syncd's"):
        Store(path)
    assert path.read_bytes() == before


def test_a_newer_schema_is_refused(store: Store) -> None:
    with store.transaction() as c:
        c.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                  "VALUES ('syncd', 'm999_future', '')")
    store.close()
    with pytest.raises(StateError, match="written by a newer syncd"):
        Store(store.path)


def test_transaction_rolls_back_on_error(store: Store) -> None:
    def write_then_fail() -> None:
        with store.transaction() as c:
            c.execute("UPDATE sync_state SET watermark = 'x'")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert store.sync_state().watermark is None


def test_watermark_moves_only_forward(store: Store) -> None:
    store.open_window(None, T, 1)
    assert store.close_window(T)
    assert store.sync_state().watermark == T
    earlier = T - timedelta(seconds=1)
    store.open_window(T - timedelta(minutes=5), earlier, 2)
    with pytest.raises(StateError, match="before the watermark"):
        store.close_window(earlier)
    assert store.sync_state().watermark == T


def test_a_window_reset_underneath_a_run_is_not_closed(store: Store) -> None:
    store.open_window(None, T, 1)
    store.rewind()  # `syncd reset` while the run reads
    assert not store.close_window(T)
    assert store.sync_state().watermark is None


def test_ack_takes_exactly_the_sent_hash_and_a_change_meanwhile_stays_dirty(store: Store) -> None:
    run = store.start_run(1, T)
    store.apply_page([LeadUpdate("L1", None, h("v1"), "row1"), LeadUpdate("L2", None, h("a"), "rowa")],
                     run, None, None, None, None)
    store.stage("b1", "upsert", "f.csv", [Member("L1", h("v1"), "row1"), Member("L2", h("a"), "rowa")], run, T)
    store.mark_submitted("b1", "42", T, run)
    # L1 changes in Salesforce while the job is in flight.
    store.apply_page([LeadUpdate("L1", None, h("v2"), "row2")], run, None, None, None, None)
    store.ack_batch("b1", T)
    rows = {i: store.lead(i) or {} for i in store.lead_ids()}
    assert rows["L1"]["acked_hash"] == h("v1")
    assert rows["L1"]["seen_hash"] == h("v2")
    assert rows["L2"]["acked_hash"] == rows["L2"]["seen_hash"] == h("a")
    assert pending(store) == ["L1"]
    assert store.members("b1")[0].payload is None  # rows are dropped once the batch is closed


def test_failed_batches_park_after_max_attempts(store: Store) -> None:
    run = store.start_run(1, T)
    store.apply_page([LeadUpdate("L1", None, h("v1"), "row1")], run, None, None, None, None)
    for attempt in range(1, 4):
        batch = f"b{attempt}"
        store.stage(batch, "upsert", "f.csv", [Member("L1", h("v1"), "row1")], run, T)
        store.mark_submitted(batch, str(attempt), T, run)
        parked = store.fail_batch(batch, "cancelled", 3, T)
        assert parked == (1 if attempt == 3 else 0)
    assert pending(store) == []
    assert store.counts()["leads"]["parked"] == 1


def test_skipped_leads_never_sent_leave_no_lead_row(store: Store) -> None:
    run = store.start_run(1, T)
    store.apply_page([LeadUpdate("L1", None, reason="do_not_call")], run, None, None, None, None)
    assert store.lead_ids() == []
    assert store.counts()["skipped"] == {"do_not_call": 1}


def test_lock_is_exclusive_and_released_on_close(tmp_path: Path) -> None:
    a, b = StateLock(tmp_path / "syncd.db"), StateLock(tmp_path / "syncd.db")
    a.acquire()
    with pytest.raises(LockHeld, match="holds the state lock"):
        b.acquire()
    a.release()
    b.acquire()
    b.release()


def test_an_open_batch_gives_back_its_exact_rows_in_staged_order(store: Store) -> None:
    run = store.start_run(1, T)
    members = [Member(f"L{i}", h(str(i)), f"L{i},+1415555{i:04d},\"O'Neil, {i}\"") for i in range(3)]
    store.stage("b1", "upsert", "f.csv", members, run, T)
    assert store.rows("b1") == [m.payload for m in members]
    store.conn.execute("DELETE FROM batch_bodies")  # damage: the rows are gone but the batch is open
    with pytest.raises(StateError, match="should hold 3 rows but its body has 0"):
        store.rows("b1")


def test_staging_takes_pending_leads_in_the_order_first_stored_with_their_exact_rows(store: Store) -> None:
    run = store.start_run(1, T)
    store.apply_page([LeadUpdate(f"L{i}", None, h(f"v{i}"), f"row{i}") for i in (3, 1, 4, 2)], run,
                     None, None, None, None)
    # The first three stored (a run of rows), each batch's members and rows in lead id order.
    assert store.stage_pending("b1", "upsert", "f.csv", 3, run, T) == 3
    assert store.members("b1") == [Member(f"L{i}", h(f"v{i}"), f"row{i}") for i in (1, 3, 4)]
    assert store.rows("b1") == ["row1", "row3", "row4"]
    assert pending(store) == ["L2"]  # staged leads are marked
    # A change after staging is the next batch's business: staged rows never change. The lead keeps
    # its place: it is staged before leads stored after it.
    store.apply_page([LeadUpdate("L1", None, h("v1b"), "row1b"), LeadUpdate("L5", None, h("v5"), "row5")], run,
                     None, None, None, None)
    assert store.rows("b1") == ["row1", "row3", "row4"]
    assert store.stage_pending("b2", "upsert", "f.csv", 1, run, T) == 1  # L1 is in b1 still
    assert store.rows("b2") == ["row2"]
    store.ack_batch("b1", T)
    assert store.stage_pending("b3", "upsert", "f.csv", 1, run, T) == 1
    assert store.rows("b3") == ["row1b"]
    assert store.stage_pending("b4", "upsert", "f.csv", 10, run, T) == 1
    assert store.rows("b4") == ["row5"]
    assert store.stage_pending("b5", "upsert", "f.csv", 10, run, T) == 0
    assert store.find_batch("b5") is None  # nothing pending: no empty batch
    assert store.counts()["batches"]["staged"] == 3


@pytest.mark.parametrize("kind", ["upsert", "remove"])
def test_pending_leads_are_counted_and_chosen_from_the_index_alone(store: Store, kind: str) -> None:
    # Counting and staging run per page on a large sync: a table visit per pending lead was 10x slower.
    for sql in (f"SELECT count(*) FROM (SELECT 1 FROM leads WHERE {PENDING[kind]} LIMIT 10)",
                f"SELECT id, seen_hash FROM leads WHERE {PENDING[kind]} ORDER BY seq LIMIT 10"):
        plan = " ".join(r[3] for r in store.conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "COVERING INDEX leads_pending" in plan, plan
        assert "TEMP B-TREE" not in plan, plan  # already in staging order


def test_staging_a_removal_carries_no_rows(store: Store) -> None:
    run = store.start_run(1, T)
    store.apply_page([LeadUpdate("L1", None, h("v1"), "row1")], run, None, None, None, None)
    assert store.stage_pending("b1", "upsert", "f.csv", 10, run, T) == 1
    store.mark_submitted("b1", "7", T, run)
    store.ack_batch("b1", T)
    store.apply_page([LeadUpdate("L1", None, reason="converted")], run, None, None, None, None)
    assert pending(store, "remove") == ["L1"]
    assert store.stage_pending("r1", "remove", "r.csv", 10, run, T) == 1
    assert store.members("r1") == [Member("L1", None, None)]
    assert pending(store, "remove") == []


def test_numbers_to_suppress_are_read_on_from_the_last_one_in_order(store: Store) -> None:
    """Each chunk reads on after the last number of the chunk before (none twice, none left out), and a
    number already in the DNC group is not offered again."""
    phones = [f"+1555{n:07d}" for n in range(1234)]
    with store.transaction() as c:
        c.executemany("INSERT INTO dnc_links (phone, lead_id, since) VALUES (?, ?, NULL)",
                      [(p, f"00Q{i:015d}") for i, p in enumerate(phones)]
                      + [(phones[7], "00Q999999999999999")])  # two leads share one number
    store.suppressed(phones[100:200], None, T)
    chunks, after = [], ""
    while chunk := store.to_suppress(500, after):
        chunks.append(chunk)
        after = chunk[-1]
    assert [len(c) for c in chunks] == [500, 500, 134]
    assert [p for c in chunks for p in c] == phones[:100] + phones[200:]
    assert store.to_release(500) == []
    with store.transaction() as c:
        c.execute("DELETE FROM dnc_links WHERE phone IN (?, ?)", (phones[150], phones[160]))
    assert store.to_release(1) == [phones[150]]
    assert store.to_release(1, after=phones[150]) == [phones[160]]


def test_the_json_helpers_read_and_write_what_orjson_refuses_as_the_standard_library_does() -> None:
    assert json_text(["00Q000000000001AAA", "é"]) == '["00Q000000000001AAA","é"]'
    assert json.loads(json_text(["a\ud800b"])) == ["a\ud800b"]  # a lone surrogate: orjson cannot write it
    assert json_value('{"b": "x", "a": "y"}') == {"b": "x", "a": "y"}
    assert list(json_value('{"b": "x", "a": "y"}')) == ["b", "a"]  # a batch body's rows keep their order
    assert json_value('{"a": "\\ud800", "n": NaN}')["a"] == "\ud800"  # orjson refuses both
