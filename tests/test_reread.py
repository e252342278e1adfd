"""A lead an incremental window reads again unchanged (its lookback) is not written again, and the
state a page leaves is the same as when every row is written (but for the marks nobody asks of an
incremental window: ``seen_window``, the skip's ``run_id``)."""

from __future__ import annotations

import hashlib
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.store import LeadUpdate, Store

T = datetime(2024, 5, 15, tzinfo=timezone.utc)
IDS = ("00Q000000000001EAY", "00Q000000000002EAY")
STAMPS = ("2024-05-15T10:00:00.000+0000", "2024-05-15T11:00:00.000+0000")


def update(lead_id: str, outcome: str, stamp: str, phone: str = "+14155550134") -> LeadUpdate:
    if outcome in ("a", "b"):
        row = f"{lead_id},{phone},{outcome}"
        return LeadUpdate(lead_id, stamp, hashlib.blake2b(row.encode(), digest_size=16).digest(), row, phone=phone)
    dnc = (phone, "+14155550100") if outcome == "do_not_call" else ()
    return LeadUpdate(lead_id, stamp, reason=outcome, detail=f"because {outcome}", dnc=dnc)


def state(store: Store) -> tuple[list[Any], list[Any], list[Any]]:
    leads = store.conn.execute("SELECT id, seen_hash, acked_hash, payload, batch_id, attempts, parked, modstamp, "
                               "phone FROM leads ORDER BY id").fetchall()
    skips = store.conn.execute("SELECT lead_id, reason, detail, modstamp FROM skips ORDER BY lead_id").fetchall()
    links = store.conn.execute("SELECT * FROM dnc_links ORDER BY phone, lead_id").fetchall()
    return leads, skips, links


def test_a_lead_read_again_unchanged_writes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "syncd.db")
    run = store.start_run(1, T)
    page = [update(IDS[0], "a", STAMPS[0]), update(IDS[1], "do_not_call", STAMPS[0])]
    store.apply_page(page, run, None, None, None, None, window_id=run)
    later = store.start_run(2, T)
    before = store.conn.total_changes
    store.apply_page([], later, None, None, None, None, window_id=later, keep_unchanged=True)
    empty_page = store.conn.total_changes - before  # the run's counts and the window's position
    before = store.conn.total_changes
    assert store.apply_page(page, later, None, None, None, None, window_id=later, keep_unchanged=True) == (2, 1)
    assert store.conn.total_changes - before == empty_page
    assert store.lead(IDS[0])["seen_window"] == run  # type: ignore[index]
    assert store.conn.execute("SELECT run_id FROM skips").fetchone()[0] == run
    assert store.conn.execute("SELECT read, skipped FROM runs WHERE id = ?", (later,)).fetchone() == (2, 1)
    # A full window writes every lead it reads, unchanged or not: its mark is what finds the unreturned.
    store.apply_page(page, later, None, None, None, None, window_id=later)
    assert store.lead(IDS[0])["seen_window"] == later  # type: ignore[index]
    store.close()


def test_a_changed_modstamp_number_or_skip_detail_is_written(tmp_path: Path) -> None:
    store = Store(tmp_path / "syncd.db")
    run = store.start_run(1, T)
    store.apply_page([update(IDS[0], "a", STAMPS[0]), update(IDS[1], "status", STAMPS[0])], run, None, None, None,
                     None)
    store.apply_page([update(IDS[0], "a", STAMPS[1], phone="+14155550199"),
                      LeadUpdate(IDS[1], STAMPS[0], reason="status", detail="Closed")],
                     run, None, None, None, None, keep_unchanged=True)
    lead = store.lead(IDS[0])
    assert lead is not None
    assert (lead["modstamp"], lead["phone"]) == (STAMPS[1], "+14155550199")
    assert store.conn.execute("SELECT detail FROM skips").fetchone()[0] == "Closed"
    store.close()


def expected_links(store: Store, updates: list[LeadUpdate]) -> set[tuple[str, str, str | None]]:
    """The DNC links after the page: a lead it shows flagged needs its numbers (from its last flagged
    update) and the one it was last callable on while CXone may hold it; one shown unflagged needs none."""
    links = set(store.conn.execute("SELECT phone, lead_id, since FROM dnc_links").fetchall())
    last = dict(store.conn.execute("SELECT id, phone FROM leads WHERE phone IS NOT NULL "
                                   "AND (acked_hash IS NOT NULL OR batch_id IS NOT NULL)").fetchall())
    shown = {u.lead_id for u in updates if not u.keep_dnc}
    flagged = {u.lead_id: u for u in updates if u.dnc}
    links = {link for link in links if link[1] not in shown}
    for lead_id, u in flagged.items():
        links |= {(phone, lead_id, u.modstamp) for phone in {*u.dnc, *([last[lead_id]] if lead_id in last else [])}}
    return links


pages = st.lists(st.lists(st.tuples(st.sampled_from(IDS), st.sampled_from(["a", "b", "status", "do_not_call"]),
                                    st.sampled_from(STAMPS)), max_size=4), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(pages)
def test_keeping_unchanged_rows_leaves_the_state_every_write_leaves(seq: list[list[tuple[str, str, str]]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        every, kept = Store(Path(tmp) / "every.db"), Store(Path(tmp) / "kept.db")
        runs = every.start_run(1, T), kept.start_run(1, T)
        for n, page in enumerate(seq):
            updates = [update(*u) for u in page]
            links = expected_links(every, updates)
            every.apply_page(updates, runs[0], None, None, None, None)
            kept.apply_page(updates, runs[1], None, None, None, None, keep_unchanged=True)
            assert state(kept) == state(every), seq[: n + 1]
            assert set(state(every)[2]) == links, seq[: n + 1]
            if n % 2:  # staged and confirmed now and then, so that attempts, batches and acks take part
                for store in (every, kept):
                    if store.stage_pending(f"u{n}", "upsert", "f.csv", 10, None, T):
                        store.ack_batch(f"u{n}", T)
        every.close()
        kept.close()
