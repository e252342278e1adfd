"""Reading never waits on CXone (issue 15): while pages are read, the pump's CXone call (an upload, a
round of polls) runs in the background and its answer is committed at the next pump (an accepted
upload's job id at once, by the background thread); a run that ends with a call in flight takes its
answer first, so an accepted upload keeps its job id.

The simulator's ``hold`` fault keeps an upload's answer until more Salesforce pages have been asked
for: a client that waited for the answer before reading on would never ask, and the hold would end
by its timeout instead."""

from __future__ import annotations

import time

import pytest

from syncd.context import Progress
from syncd.store import Store
from tests import oracle
from tests.conftest import Env
from tests.test_crash import syncd_sync


# The first upload is begun after the first page (the CXone token first, in the background, while pages
# go on being read: a few more may be asked for before it arrives); its answer waits until two more pages
# are asked for. Polls come once max_in_flight jobs are out (about one batch of 1,000 is staged per page),
# with pages slow enough for the first jobs to be due; the poll's answer waits for one more page.
@pytest.mark.parametrize(("route", "calls", "batch_size", "page_seconds"), [
    ("cxone.upload", 2, 200, 0.1), ("cxone.job", 1, 1000, 0.2)], ids=["upload", "poll"])
def test_pages_are_read_while_a_cxone_call_waits_for_its_answer(env: Env, route: str, calls: int, batch_size: int,
                                                               page_seconds: float) -> None:
    env.sim.seed_leads(20_000, seed=3)  # ten pages of 2,000
    env.sim.latency = {"sf.next": page_seconds}
    env.sim.faults.add({"route": route, "kind": "hold", "count": 1, "until": "sf.next", "calls": calls})
    result = env.sync(batch_size=batch_size)
    assert result.ok, result.error
    fired = env.sim.faults.fired
    assert (fired[f"{route}:hold-released"], fired[f"{route}:hold-timed-out"]) == (1, 0)
    assert env.list_phones() == oracle.expected(env.sim.leads())


def test_a_run_stopped_with_an_upload_in_flight_keeps_its_job_id(env: Env) -> None:
    env.sim.seed_leads(10_000, seed=4)
    env.sim.faults.hold_seconds = 1.0
    # Nothing releases the hold: the answer comes after a second, when the run has been told to stop.
    env.sim.faults.add({"route": "cxone.upload", "kind": "hold", "count": 1, "until": "sim.never", "calls": 1})
    first = env.sync(batch_size=200, should_stop=lambda: env.sim.stats["cxone.upload"] >= 1)
    assert first.status == "interrupted"
    assert env.sim.faults.fired["cxone.upload:hold-timed-out"] == 1
    [held] = env.sim.cx.uploads
    store = Store(env.tmp / "state" / "syncd.db", readonly=True)
    try:
        assert [b.job_id for b in store.batches("submitted")] == [held["jobId"]]
    finally:
        store.close()
    second = env.sync(batch_size=200)
    assert second.ok, second.error
    assert [u["fileName"] for u in env.sim.cx.uploads].count(held["fileName"]) == 1  # polled, not sent again
    assert env.list_phones() == oracle.expected(env.sim.leads())


def test_a_hold_fault_names_what_releases_it(env: Env) -> None:
    with pytest.raises(ValueError, match="until"):
        env.sim.faults.add({"route": "cxone.upload", "kind": "hold", "count": 1})


def test_a_crash_before_the_answer_is_taken_keeps_the_job_id(env: Env) -> None:
    """The background thread commits an accepted upload's job id itself: killed before the main thread
    takes the answer (``cxone_answered``), the batch is not sent again."""
    env.sim.seed_leads(10_000, seed=5)
    env.write_config(batch_size=200)
    killed = syncd_sync(env, SYNCD_FAILPOINTS="cxone_answered:1")
    assert killed.returncode == 137, killed.stderr
    [first] = env.sim.cx.uploads  # the first background call is an upload: no job was out to poll
    store = Store(env.tmp / "state" / "syncd.db", readonly=True)
    try:
        assert [b.job_id for b in store.batches("submitted")] == [first["jobId"]]
    finally:
        store.close()
    again = syncd_sync(env)
    assert again.returncode == 0, again.stderr
    assert [u["fileName"] for u in env.sim.cx.uploads].count(first["fileName"]) == 1
    assert env.list_phones() == oracle.expected(env.sim.leads())


# The next page is asked for before this one is parsed, from the URL its bytes name: first (where
# Salesforce writes it) or last. A URL the parse does not confirm costs one call whose answer is
# dropped: a subquery's in the first record is the first the bytes name on the last page (no page
# URL before it), and on every page fetched ahead (all but the first) when the page's own URL comes
# after the records.
@pytest.mark.parametrize(("next_url_last", "decoy", "extra_calls"), [
    (False, False, 0), (True, False, 0), (False, True, 1), (True, True, 9)],
    ids=["salesforce-order", "url-last", "decoy", "url-last-decoy"])
def test_the_next_page_is_fetched_from_the_url_its_bytes_name(env: Env, next_url_last: bool, decoy: bool,
                                                              extra_calls: int) -> None:
    env.sim.seed_leads(20_000, seed=6)  # ten pages of 2,000
    env.sim.sf.next_url_last = next_url_last
    if decoy:
        env.sim.faults.add({"route": "sf.*", "kind": "decoy", "count": 100})
    result = env.sync()
    assert result.ok, result.error
    assert result.read == 20_000
    assert env.sim.stats["sf.next"] == 9 + extra_calls
    assert env.list_phones() == oracle.expected(env.sim.leads())


def test_the_page_after_next_is_asked_for_while_a_page_is_still_applied(env: Env) -> None:
    """The chain of calls does not wait for the main thread: when a page lands, the one its bytes name is
    asked for at once, so a page slow to apply holds no call back. It goes one page past the main thread
    and no further (at most three pages in memory)."""
    env.sim.seed_leads(20_000, seed=7)  # ten pages of 2,000
    seen: list[int] = []

    def slow_first_page(progress: Progress) -> None:
        if progress.read == 2_000 and not seen:  # the first page applied, the second not yet taken
            for _ in range(300):
                if env.sim.stats["sf.next"] >= 2:
                    break
                time.sleep(0.01)
            time.sleep(0.3)  # time enough for a chain without its bound to ask for more
            seen.append(env.sim.stats["sf.next"])

    result = env.sync(on_progress=slow_first_page)
    assert result.ok, result.error
    assert seen == [2]
    assert env.sim.stats["sf.next"] == 9
    assert env.list_phones() == oracle.expected(env.sim.leads())


def test_the_chain_goes_on_after_a_garbled_page_is_read_again(env: Env) -> None:
    """A page that lands garbled (no next URL in its bytes) is read again from the saved position; the
    pages after it are still asked for as each lands, the chain not held back by the page it dropped."""
    env.sim.seed_leads(20_000, seed=7)  # ten pages of 2,000
    env.sim.faults.add({"route": "sf.next", "kind": "badjson", "count": 1})  # the second page
    seen: list[int] = []

    def slow_page(progress: Progress) -> None:
        if progress.read == 4_000 and not seen:  # the re-read second page applied, the third not yet taken
            for _ in range(300):
                if env.sim.stats["sf.next"] >= 3:
                    break
                time.sleep(0.01)
            time.sleep(0.3)
            seen.append(env.sim.stats["sf.next"])

    result = env.sync(on_progress=slow_page)
    assert result.ok, result.error
    assert env.sim.faults.fired["sf.next:badjson"] == 1
    assert seen == [3]  # the garbled page, then the third and the fourth
    assert env.list_phones() == oracle.expected(env.sim.leads())
