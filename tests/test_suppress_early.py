"""Numbers the mass-removal guard does not count are suppressed while pages are read (issue 15).

A first sync of a large org links tens of thousands of Do Not Call numbers; added only after the last
page (DESIGN's order: the guard, then suppressions before uploads) they were the longest wait of the
run. A number that no lead on the list (or in a batch) is linked to takes nothing off the list, so
it goes in the background as soon as a full chunk of them waits; every number the guard counts still
waits for the guard, and a run the guard stops sends none of those.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from syncd.sim.cxone import DNC_GROUP
from tests import oracle
from tests.test_closed_loop import LoopEnv, expected, loop  # noqa: F401 - loop is a fixture
from tests.test_crash import syncd_sync

TEN_PAGES = 20_000  # seeded leads: ten pages of 2,000, whose Do Not Call leads link 1,333 numbers


def in_group(env: LoopEnv) -> set[str]:
    return {"+" + n for n in env.sim.cx.dnc.numbers(DNC_GROUP)}


def test_numbers_are_suppressed_while_pages_are_read(loop: LoopEnv) -> None:  # noqa: F811
    """The first chunk's answer is held until one more page is asked for: a client that suppressed only
    after its last page would ask for none, and the hold would end by its timeout instead."""
    loop.settings = {"dnc_group_id": DNC_GROUP}
    loop.sim.seed_leads(TEN_PAGES, seed=3)
    loop.sim.latency = {"sf.next": 0.05}
    loop.sim.faults.add({"route": "dnc.add", "kind": "hold", "count": 1, "until": "sf.next", "calls": 1})
    result = loop.sync()
    assert result.ok, result.error
    fired = loop.sim.faults.fired
    assert (fired["dnc.add:hold-released"], fired["dnc.add:hold-timed-out"]) == (1, 0)
    assert loop.list_phones() == expected(loop)


def test_a_failed_early_chunk_leaves_its_numbers_to_the_delivery(loop: LoopEnv,  # noqa: F811
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A garbled answer to the first chunk ends adding early for the run, not the run: after the read,
    every number goes in line (three chunks of 500 for 1,333), and the run ends exact."""
    loop.settings = {"dnc_group_id": DNC_GROUP}
    loop.sim.seed_leads(TEN_PAGES, seed=3)
    loop.sim.latency = {"sf.next": 0.05}
    loop.sim.faults.add({"route": "dnc.add", "kind": "badjson", "count": 1})
    result = loop.sync()
    assert result.ok, result.error
    assert loop.sim.faults.fired["dnc.add:badjson"] == 1
    assert "they go after the read" in caplog.text
    assert loop.sim.stats["dnc.add"] == 1 + 3
    assert loop.list_phones() == expected(loop)


def test_a_mass_removal_sends_none_of_what_the_guard_counts(loop: LoopEnv) -> None:  # noqa: F811
    """A data load of new Do Not Call leads and, in the same window, half the list turning Do Not Call:
    the guard stops the run, and not one listed lead's number reached the DNC group, while the new
    leads' numbers (which take nothing off the list) went while pages were read."""
    loop.settings = {"max_removal_percent": 20, "dnc_group_id": DNC_GROUP}
    loop.sim.seed_leads(4_000, seed=37)
    assert loop.sync().ok
    listed = loop.list_phones()
    before = in_group(loop)
    # The new leads come first in the window (an older stamp), so pages follow the page they fill.
    new = [{"Status": "Open - Not Contacted", "Phone": f"(415) 200-{i:04d}", "IsDeleted": False,
            "IsConverted": False, "DoNotCall": True} for i in range(1_200)]
    loop.sim.upsert_leads(new, modstamp=loop.clock() - timedelta(seconds=10))
    turned = sorted(listed)[: len(listed) // 2]
    loop.change([{"Id": lead_id, "DoNotCall": True} for lead_id in turned])
    refused = loop.sync()
    assert not refused.ok
    assert refused.error is not None
    assert "leads on the list" in refused.error
    added = in_group(loop) - before
    assert not added & {listed[lead_id] for lead_id in turned}
    assert len(added) >= 500  # a chunk of the new leads' numbers went before the guard
    loaded = [lead for lead in loop.sim.leads() if str(lead.get("Phone")).startswith("(415) 200-")]
    assert added <= oracle.blocked_numbers(loaded)  # theirs only (their mobile numbers too)
    allowed = loop.sync(allow_mass_removal=True)
    assert allowed.ok, allowed.error
    assert loop.list_phones() == expected(loop)


@pytest.mark.parametrize("point", ["before_suppress:1", "suppress_committed:1"])
def test_a_crash_while_numbers_go_early_loses_nothing(loop: LoopEnv, point: str) -> None:  # noqa: F811
    """Killed on the background thread while pages are still read, before CXone's answer or before it
    was committed: the next run adds what is missing (again, harmlessly) and ends exact."""
    loop.settings = {"dnc_group_id": DNC_GROUP}
    loop.sim.seed_leads(TEN_PAGES, seed=3)
    loop.write_config()
    killed = syncd_sync(loop, SYNCD_FAILPOINTS=point)
    assert killed.returncode == 137, killed.stderr
    assert f"failpoint {point} reached" in killed.stderr
    assert loop.sim.stats["sf.next"] < 9  # the kill came while pages were read, not in the delivery after them
    again = syncd_sync(loop)
    assert again.returncode == 0, again.stderr
    assert loop.list_phones() == expected(loop)
