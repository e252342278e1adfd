"""The rules of syncd/diff.py and their SQL twins in the store, held equal on every sequence of events."""

from __future__ import annotations

import tempfile
from datetime import datetime, timezone
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd import diff
from syncd.diff import LeadState
from syncd.store import LeadUpdate, Store

T = datetime(2024, 5, 15, tzinfo=timezone.utc)
LEAD = "00Q000000000001EAY"
MAX_ATTEMPTS = 2
HASHES = {"a": b"a" * 16, "b": b"b" * 16}

# "observe" reads the lead in a full window, "reread" in an incremental one (an unchanged row is not written).
events = st.lists(st.one_of(st.tuples(st.sampled_from(["observe", "reread"]), st.sampled_from([None, "a", "b"])),
                            st.tuples(st.sampled_from(["stage", "ack", "fail", "refresh"]), st.none())), max_size=25)
EXPIRES, TODAY, REFRESH_UNTIL = "2024-06-14", "2024-05-15", "2024-06-20"  # every ack is due its keep-alive


def stored(store: Store) -> LeadState | None:
    row = store.lead(LEAD)
    if row is None:
        return None
    return LeadState(seen=row["seen_hash"], acked=row["acked_hash"], in_batch=row["batch_id"] is not None,  # type: ignore[arg-type]
                     attempts=int(row["attempts"]), parked=row["parked"] is not None)  # type: ignore[call-overload]


@settings(max_examples=300, deadline=None)
@given(events)
def test_the_store_follows_the_rules_of_diff(steps: list[tuple[str, str | None]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "syncd.db")
        run = store.start_run(1, T)
        model = LeadState()
        batch: tuple[str, str, bytes | None] | None = None  # (id, kind, hash sent)
        for n, (event, arg) in enumerate(steps):
            if event in ("observe", "reread"):
                seen = HASHES[arg] if arg else None
                update = LeadUpdate(LEAD, None, seen, f"row-{arg}") if seen else LeadUpdate(LEAD, None, reason="status")
                store.apply_page([update], run, None, None, None, None, keep_unchanged=event == "reread")
                if model != LeadState() or seen is not None:  # an untracked lead that is skipped stays untracked
                    model = diff.observe(model, seen)
            elif event == "stage" and batch is None:
                for kind, pending in (("upsert", diff.is_pending_upsert), ("remove", diff.is_pending_removal)):
                    staged = store.stage_pending(f"{kind[0]}{n}", kind, "f.csv", 10, run, T)
                    assert bool(staged) == pending(model), (kind, model)
                    if staged:
                        batch = (f"{kind[0]}{n}", kind, model.seen)
                        model = LeadState(model.seen, model.acked, True, model.attempts, model.parked)
            elif event == "ack" and batch is not None:
                batch_id, kind, sent = batch
                if kind == "upsert":
                    store.ack_batch(batch_id, T, EXPIRES)
                else:
                    store.finish_removal(batch_id, [LEAD], [], run, MAX_ATTEMPTS, T)
                model, batch = diff.ack(model, sent if kind == "upsert" else None), None
            elif event == "refresh":
                store.expire_and_refresh(TODAY, REFRESH_UNTIL)
                if diff.is_due_refresh(model, EXPIRES if model.acked is not None else None, REFRESH_UNTIL):
                    model = diff.refresh(model)
            elif event == "fail" and batch is not None:
                batch_id, kind, _ = batch
                if kind == "upsert":
                    store.fail_batch(batch_id, "cancelled", MAX_ATTEMPTS, T)
                else:
                    store.finish_removal(batch_id, [], [LEAD], run, MAX_ATTEMPTS, T)
                model, batch = diff.fail(model, MAX_ATTEMPTS), None
            if model.seen is None and model.acked is None and not model.in_batch:
                model = LeadState()  # neither wanted nor on the list: the store keeps no row for it
            got = stored(store)
            assert (got or LeadState()) == model, (steps[: n + 1], got, model)
            assert store.counts()["leads"]["dirty"] == int(diff.is_dirty(model))
            assert (LEAD in store.pending_ids("upsert")) == diff.is_pending_upsert(model)
            assert (LEAD in store.pending_ids("remove")) == diff.is_pending_removal(model)
        store.close()
