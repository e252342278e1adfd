"""The closed loop with CXone, under every reading of its UNVERIFIED behaviours (API-CONTRACTS.md §2).

For each combination of simulator readings, syncd is configured as its own probe recommends; then
after clean runs (and verification and expiry where the reading needs them) the simulator's
callable set must equal the oracle, and a lead that turns Do Not Call is not callable after the
first run that reads it. Under a reading the configuration does not match, syncd stops with a
message naming the setting, and nothing eligible is lost.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from syncd.engine import RunResult
from syncd.probe import Probe
from syncd.runner import sync_once
from syncd.sim import Simulator
from syncd.sim.calllist import Record
from syncd.sim.cxone import DNC_GROUP, SCRATCH_LIST
from syncd.store import Store
from tests import oracle
from tests.conftest import Env

READINGS = list(itertools.product(("upsert", "replace"), ("removes", "fails", "noop"), ("reactivates",
                                                                                         "stays-removed")))


class ShiftedClock:
    """Real time plus an offset the test moves (days of expiry pass in an instant)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def advance(self, **kw: float) -> None:
        self.offset += timedelta(**kw)


class LoopEnv(Env):
    clock: ShiftedClock

    def sync(self, **kw: Any) -> RunResult:
        config = self.config(**{k: v for k, v in kw.items() if k == "batch_size"})
        return sync_once(config, self.secrets(config), now=self.clock,
                         **{k: v for k, v in kw.items() if k != "batch_size"})

    def change(self, leads: list[dict[str, Any]]) -> None:
        """Salesforce changes, stamped a little in the past (a window ends at Salesforce's time now)."""
        self.sim.upsert_leads(leads, modstamp=self.clock() - timedelta(seconds=5))

    def mutate(self, count: int, seed: int, new: int = 0) -> None:
        self.sim.mutate(count, seed=seed, new=new, modstamp=self.clock() - timedelta(seconds=5))

    def expected(self) -> dict[str, str]:
        return expected(self)


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[LoopEnv]:
    clock = ShiftedClock()
    with Simulator(leads=0, seed=11, job_delay=0.05, now=clock) as sim:
        env = LoopEnv(sim, tmp_path)
        env.clock = clock
        yield env


def expected(env: Env, strict: bool = True, planted: frozenset[str] = frozenset()) -> dict[str, str]:
    """The oracle's callable set; with a DNC group configured, less the numbers it blocks (checked to be
    those of Do Not Call leads; ``planted``: numbers the test put there itself)."""
    leads = env.sim.leads()
    if not env.settings.get("dnc_group_id"):
        return oracle.expected(leads)
    group = {"+" + n for n in env.sim.cx.dnc.numbers(DNC_GROUP)} - planted
    return oracle.expected_callable(leads, oracle.dnc_checked(leads, env.sim.cx.uploads, group, strict) | planted)


def recommended(env: LoopEnv) -> dict[str, Any]:
    """What `syncd doctor --probe` says to configure on this simulated tenant."""
    config = env.config(dnc_group_id=DNC_GROUP)
    report = Probe(config, env.secrets(config), SCRATCH_LIST, sleep=lambda s: None).run()
    return dict(report.settings)


@pytest.mark.parametrize(("overwrite", "removal", "readd"), READINGS)
def test_the_probe_names_each_reading(loop: LoopEnv, overwrite: str, removal: str, readd: str) -> None:
    loop.sim.set_readings(overwrite=overwrite, removal=removal, readd=readd)
    config = loop.config(dnc_group_id=DNC_GROUP)
    report = Probe(config, loop.secrets(config), SCRATCH_LIST, sleep=lambda s: None).run()
    verdicts = {v.name: v.verdict for v in report.verdicts}
    assert verdicts["api_version"].startswith("v33.0 serves")
    assert verdicts["list_file"] == "base64 of a UTF-8 CSV is accepted"
    assert verdicts["expiration_date"] == "YYYY-MM-DD is accepted"
    replaced = overwrite == "replace"
    assert verdicts["force_overwrite"] == ("replaces the whole list" if replaced else "upserts by ExternalId")
    assert verdicts["remove_prospects"] == {"removes": "removes", "fails": "fails",
                                            "noop": "answers success and removes nothing"}[removal]
    if removal == "removes":
        assert verdicts["re_add"] == f"a removed record uploaded again {readd.replace('-', ' ')}"
    else:
        assert "re_add" not in verdicts
    assert verdicts["dnc_group"] == f"group {DNC_GROUP} scrubs skill 5678"
    works = removal == "removes" and readd == "reactivates"
    assert report.settings == {"upload_mode": "snapshot" if overwrite == "replace" else "upsert",
                               "removal": "remove-prospects" if works else "expire-only", "dnc_group_id": DNC_GROUP}
    assert loop.sim.cx.lists[1234].records == {}  # the configured list was never touched
    today = loop.clock().date().isoformat()  # the scratch records are gone, or expire today
    assert all(r.expiration == today for r in loop.sim.cx.lists[SCRATCH_LIST].records.values())
    assert not loop.sim.cx.callable(SCRATCH_LIST) or removal != "removes"


def test_the_probe_refuses_the_configured_list(loop: LoopEnv) -> None:
    config = loop.config()
    with pytest.raises(Exception, match="is the configured list"):
        Probe(config, loop.secrets(config), 1234)


def dnc_turned(env: LoopEnv, count: int) -> list[str]:
    """Turn ``count`` leads on the list Do Not Call; returns their ids."""
    on_list = sorted(env.list_phones())[:count]
    env.change([{"Id": i, "DoNotCall": True} for i in on_list])
    return on_list


@pytest.mark.parametrize(("overwrite", "removal", "readd"), READINGS)
def test_the_callable_set_is_exact_under_every_reading(loop: LoopEnv, overwrite: str, removal: str,
                                                        readd: str) -> None:
    loop.sim.set_readings(overwrite=overwrite, removal=removal, readd=readd)
    loop.settings = {**recommended(loop), "expiration_days": 30}
    loop.sim.seed_leads(400, seed=5)
    first = loop.sync(batch_size=100)
    assert first.ok, first.error
    assert loop.list_phones() == loop.expected()

    # A day of changes: statuses, conversions, deletions, new numbers, leads coming back; and five
    # leads turn Do Not Call. They are not callable after the first run that reads the change.
    loop.clock.advance(hours=1)
    loop.mutate(120, seed=9, new=15)
    turned = dnc_turned(loop, 5)
    second = loop.sync(batch_size=100)
    assert second.ok, second.error
    callable_now = loop.list_phones()
    assert not set(turned) & set(callable_now)
    assert not set(callable_now.values()) & oracle.blocked_numbers(loop.sim.leads())

    # Leads that became ineligible are gone now where removal works, and by their expiry where it
    # does not: a day past the keep-alive, then past the expiry.
    loop.clock.advance(days=26)
    kept = loop.sync(batch_size=100)  # the keep-alive re-sends every lead still eligible
    assert kept.ok, kept.error
    loop.clock.advance(days=6)
    last = loop.sync(batch_size=100)
    assert last.ok, last.error
    assert loop.list_phones() == loop.expected()
    assert last.verify is not None  # a day had passed: the run checked what the list holds
    assert last.verify["unexpected"] == 0


def test_a_replacing_upload_stops_an_upsert_config_and_snapshot_mode_heals_it(loop: LoopEnv) -> None:
    loop.sim.set_readings(overwrite="replace")
    loop.sim.seed_leads(300, seed=3)
    assert loop.sync(batch_size=50).ok  # six batches; each one replaced the list
    assert len(loop.list_phones()) < len(loop.expected())
    loop.clock.advance(hours=25)
    stopped = loop.sync(batch_size=50)
    assert not stopped.ok
    assert stopped.error is not None
    assert 'upload_mode = "snapshot"' in stopped.error
    loop.settings = {"upload_mode": "snapshot"}
    healed = loop.sync(batch_size=50)
    assert healed.ok, healed.error
    assert loop.list_phones() == loop.expected()
    loop.mutate(60, seed=4, new=5)
    assert loop.sync(batch_size=50).ok
    assert loop.list_phones() == loop.expected()


@pytest.mark.parametrize("removal", ["fails", "noop"])
def test_a_removal_that_does_not_remove_stops_with_the_setting_to_change(loop: LoopEnv, removal: str) -> None:
    loop.sim.set_readings(removal=removal)
    loop.sim.seed_leads(200, seed=8)
    assert loop.sync().ok
    gone = sorted(loop.list_phones())[:4]
    loop.change([{"Id": i, "Status": "Closed - Not Converted"} for i in gone])
    result = loop.sync()
    for _ in range(2):  # a no-op removal is caught by verification: found once, removed again, found again
        if not result.ok:
            break
        loop.clock.advance(hours=25)
        result = loop.sync()
    assert not result.ok
    assert result.error is not None
    assert 'removal = "expire-only"' in result.error
    # The operator follows the message: the records expire instead, and nothing eligible was lost.
    loop.settings = {"removal": "expire-only", "dnc_group_id": DNC_GROUP}
    assert loop.sync().ok
    loop.clock.advance(days=31)
    assert loop.sync().ok
    assert loop.list_phones() == loop.expected()


def test_a_removed_record_that_stays_removed_is_reported(loop: LoopEnv) -> None:
    loop.sim.set_readings(readd="stays-removed")
    loop.sim.seed_leads(200, seed=8)
    assert loop.sync().ok
    back = sorted(loop.list_phones())[:3]
    loop.change([{"Id": i, "Status": "Closed - Not Converted"} for i in back])
    assert loop.sync().ok  # removed
    loop.change([{"Id": i, "Status": "Working - Contacted"} for i in back])
    results = []
    for _ in range(3):
        loop.clock.advance(hours=25)
        results.append(loop.sync())
        if not results[-1].ok:
            break
    assert not results[-1].ok
    assert results[-1].error is not None
    assert "re-activated" in results[-1].error


def test_do_not_call_numbers_are_suppressed_and_released_only_when_no_lead_needs_them(loop: LoopEnv) -> None:
    loop.settings = {"removal": "expire-only", "dnc_group_id": DNC_GROUP}
    loop.sim.seed_leads(200, seed=2)
    assert loop.sync().ok
    turned = dnc_turned(loop, 3)
    phones = {i: loop.list_phones()[i].lstrip("+") for i in turned}
    result = loop.sync()
    assert result.ok, result.error
    assert set(phones.values()) <= loop.sim.cx.dnc.numbers(DNC_GROUP)
    assert not set(turned) & set(loop.list_phones())  # expire-only: suppression alone keeps them from the dialer
    # A number syncd did not add is never touched; one no lead needs any more is released.
    loop.sim.cx.dnc.groups[DNC_GROUP].numbers["15550009999"] = loop.clock()
    loop.change([{"Id": turned[0], "DoNotCall": False}])
    assert loop.sync().ok
    numbers = loop.sim.cx.dnc.numbers(DNC_GROUP)
    assert "15550009999" in numbers
    assert phones[turned[0]] not in numbers
    assert {phones[i] for i in turned[1:]} <= numbers
    assert loop.list_phones() == expected(loop, planted=frozenset({"+15550009999"}))


def test_the_mass_removal_guard_sends_none_of_it_unless_allowed(loop: LoopEnv) -> None:
    loop.settings = {"max_removal_percent": 20}
    loop.sim.seed_leads(200, seed=6)
    assert loop.sync().ok
    before = dict(loop.list_phones())
    leaving = sorted(before)[: len(before) // 3]
    loop.change([{"Id": i, "Status": "Closed - Not Converted"} for i in leaving])
    refused = loop.sync()
    assert not refused.ok
    assert refused.error is not None
    assert f"{len(leaving):,} of the {len(before):,}" in refused.error
    assert "max_removal_percent" in refused.error
    assert loop.sim.cx.removals == []
    assert set(leaving) <= set(loop.list_phones())
    allowed = loop.sync(allow_mass_removal=True)
    assert allowed.ok, allowed.error
    assert loop.list_phones() == loop.expected()


def test_new_do_not_call_leads_are_suppressed_without_tripping_the_mass_removal_guard(loop: LoopEnv) -> None:
    """A data load adds 60 Do Not Call leads and 40 callable ones to a list of about 100: blocking the new
    leads' numbers takes nothing off the list, so the guard (20 %) lets it through; a lead on the list
    that turns Do Not Call still counts."""
    loop.settings = {"max_removal_percent": 20, "dnc_group_id": DNC_GROUP}
    loop.sim.seed_leads(200, seed=36)
    loop.sim.upsert_leads([{"Id": lead["Id"], "DoNotCall": False} for lead in loop.sim.leads()
                           if lead.get("DoNotCall")], modstamp=loop.clock() - timedelta(seconds=5))
    assert loop.sync().ok
    on_list = len(loop.list_phones())
    loaded = [{"Status": "Open - Not Contacted", "Phone": f"(415) 555-{2000 + i:04d}", "IsDeleted": False,
               "IsConverted": False, "DoNotCall": i < 60} for i in range(100)]
    loop.change(loaded)
    result = loop.sync()
    assert result.ok, result.error
    assert loop.list_phones() == expected(loop)
    assert len(loop.list_phones()) == on_list + 40
    turned = sorted(loop.list_phones())[: on_list // 3]
    loop.change([{"Id": i, "DoNotCall": True} for i in turned])
    refused = loop.sync()
    assert not refused.ok
    assert refused.error is not None
    assert f"{len(turned):,} of the {on_list + 40:,} leads on the list" in refused.error


def test_keep_alive_re_sends_unchanged_leads_before_their_records_expire(loop: LoopEnv) -> None:
    loop.sim.seed_leads(100, seed=12)
    assert loop.sync().ok
    uploads = len(loop.sim.cx.uploads)
    loop.clock.advance(days=10)
    assert loop.sync().ok
    assert len(loop.sim.cx.uploads) == uploads  # nothing due yet
    loop.clock.advance(days=16)  # within refresh_before_days (5) of the 30-day expiry
    assert loop.sync().ok
    assert len(loop.sim.cx.uploads) > uploads
    loop.clock.advance(days=10)  # past the first expiry: the refreshed records are still dialled
    assert loop.sync().ok
    assert loop.list_phones() == loop.expected()


def cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syncd", *args, "--config", str(env.config_path)],
                          capture_output=True, text=True, timeout=120, env=env.subprocess_env(), cwd=env.tmp)


def test_syncd_verify_reports_injected_drift_and_the_next_run_heals_it(env: Env) -> None:
    env.settings = {"verify_every_hours": 0}
    env.sim.seed_leads(300, seed=21)
    assert env.sync().ok
    with env.sim.lock:
        target = env.sim.cx.lists[1234]
        ids = sorted(target.records)
        del target.records[ids[0]]  # vanished
        target.records[ids[1]].expires = env.sim.now() - timedelta(days=1)  # expired
        target.records[ids[1]].expiration = (env.sim.now() - timedelta(days=2)).date().isoformat()
        target.records[ids[2]].final = "Finalized"  # finalized by CXone's system
        target.records[ids[3]].row["PhoneNumber"] = "+12025550199"  # carries another number
        target.records["intruder00000001"] = Record({"ExternalId": "intruder00000001", "PhoneNumber": "+12025550198"},
                                                    5678)  # never sent by syncd
    found = cli(env, "verify", "--json")
    assert found.returncode == 0, found.stderr
    report = json.loads(found.stdout)
    assert {k: report[k] for k in ("missing", "expired", "finalized", "wrong", "unexpected", "unremovable")} == {
        "missing": 1, "expired": 1, "finalized": 1, "wrong": 1, "unexpected": 1, "unremovable": 0}
    shown = json.loads(cli(env, "status", "--json").stdout)["verify"]
    assert (shown["missing"], shown["wrong"], shown["unexpected"]) == (1, 1, 1)
    story = cli(env, "lead", ids[3])
    assert "verification found it wrong" in story.stdout
    assert env.sync().ok  # the next run sends the four again; the intruder is left alone
    callable_now = env.list_phones()
    assert {i: callable_now.get(i) for i in ids[:4]} == {i: oracle.expected(env.sim.leads()).get(i) for i in ids[:4]}
    assert "intruder00000001" in callable_now


def test_dry_run_says_what_would_move_and_changes_nothing(env: Env) -> None:
    env.sim.seed_leads(300, seed=22)
    assert env.sync().ok
    db = env.tmp / "state" / "syncd.db"
    before_db, before_uploads = db.read_bytes(), len(env.sim.cx.uploads)
    on_list = sorted(env.list_phones())
    env.sim.upsert_leads([{"Id": i, "Status": "Closed - Not Converted"} for i in on_list[:3]],
                         modstamp=datetime.now(timezone.utc) - timedelta(seconds=5))
    env.sim.upsert_leads([{"Id": on_list[3], "FirstName": "Changed"}],
                         modstamp=datetime.now(timezone.utc) - timedelta(seconds=5))
    plan = cli(env, "sync", "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    shown = json.loads(plan.stdout)
    assert shown["upload"] == {"count": 1, "first_ids": [on_list[3]]}
    assert shown["remove"] == {"count": 3, "first_ids": on_list[:3]}
    assert len(env.sim.cx.uploads) == before_uploads
    assert env.sim.cx.removals == []
    assert db.read_bytes() == before_db
    text = cli(env, "sync", "--dry-run")
    assert "would upload: 1" in text.stdout
    assert "would remove: 3" in text.stdout
    assert env.sync().ok
    assert env.list_phones() == oracle.expected(env.sim.leads())


def test_lead_story_follows_one_lead(env: Env) -> None:
    env.sim.seed_leads(100, seed=23)
    assert env.sync().ok
    lead_id = sorted(env.list_phones())[0]
    story = cli(env, "lead", lead_id)
    assert story.returncode == 0, story.stderr
    assert f"lead {lead_id}" in story.stdout
    assert "salesforce: callable on +" in story.stdout
    assert "cxone: CXone confirmed it" in story.stdout
    assert "upsert batch u000001-0001 as job" in story.stdout
    assert "completed" in story.stdout
    as_json = json.loads(cli(env, "lead", lead_id, "--json").stdout)
    assert as_json["lead"]["expires_on"] == (datetime.now(timezone.utc) + timedelta(days=30)
                                             - timedelta(hours=1)).date().isoformat()
    unknown = cli(env, "lead", "00Q000000000ZZZZZZ")
    assert "never read this lead" in unknown.stdout


def test_probe_from_the_command_line(env: Env) -> None:
    env.sim.set_readings(overwrite="replace", removal="noop")
    env.settings = {"dnc_group_id": DNC_GROUP}
    env.write_config()
    refused = cli(env, "doctor", "--probe", "--list-id", "1234")
    assert refused.returncode == 2
    assert "is the configured list" in refused.stderr
    shown = cli(env, "doctor", "--probe", "--list-id", str(SCRATCH_LIST))
    assert shown.returncode == 0, shown.stderr
    assert "force_overwrite: replaces the whole list" in shown.stdout
    assert "remove_prospects: answers success and removes nothing" in shown.stdout
    assert 'upload_mode = "snapshot"' in shown.stdout
    assert 'removal = "expire-only"' in shown.stdout
    as_json = json.loads(cli(env, "doctor", "--probe", "--list-id", str(SCRATCH_LIST), "--json").stdout)
    assert as_json["settings"] == {"upload_mode": "snapshot", "removal": "expire-only", "dnc_group_id": DNC_GROUP}


def test_a_row_cxone_drops_silently_is_found_sent_again_and_reported(loop: LoopEnv) -> None:
    loop.sim.seed_leads(150, seed=31)
    eligible = sorted(oracle.expected(loop.sim.leads()))
    loop.sim.cx.reject_ids = {eligible[0]}  # the job completes; only the list shows the row is not there
    assert loop.sync().ok
    assert eligible[0] not in loop.list_phones()
    loop.clock.advance(hours=25)
    found = loop.sync()
    assert found.ok, found.error
    assert found.verify is not None
    assert found.verify["missing"] == 1
    resent = loop.sim.cx.uploads[-1]  # sent again by the same run (dropped again: only the count shows it)
    assert len(loop.sim.cx.uploads) == 2
    assert (resent["rows"], resent["invalid"]) == (1, 1)
    loop.clock.advance(hours=25)
    again = loop.sync()
    assert again.verify is not None
    assert again.verify["rejected"] == 1
    loop.sim.cx.reject_ids = set()
    loop.clock.advance(hours=25)
    assert loop.sync().ok
    assert loop.list_phones() == loop.expected()


def test_snapshot_mode_refuses_a_set_too_large_for_one_file(loop: LoopEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("syncd.outbox.SNAPSHOT_LIMIT", 10)
    loop.settings = {"upload_mode": "snapshot"}
    loop.sim.seed_leads(100, seed=32)
    refused = loop.sync()
    assert not refused.ok
    assert refused.error is not None
    assert "at most 10 records" in refused.error
    assert loop.sim.cx.uploads == []


def test_doctor_checks_that_the_dnc_group_scrubs_the_skill(env: Env) -> None:
    env.sim.seed_leads(10, seed=33)
    env.settings = {"dnc_group_id": DNC_GROUP + 1}  # a group that scrubs no skill
    env.write_config()
    wrong = cli(env, "doctor")
    assert wrong.returncode == 1
    assert f"FAIL  cxone dnc group: DNC group {DNC_GROUP + 1} does not scrub skill 5678" in wrong.stdout
    env.settings = {"dnc_group_id": DNC_GROUP}
    env.write_config()
    right = cli(env, "doctor")
    assert right.returncode == 0, right.stdout
    assert f"ok    cxone dnc group: DNC group {DNC_GROUP} scrubs skill 5678" in right.stdout


def test_verify_is_refused_for_the_contacts_batch_api(env: Env) -> None:
    env.api = "contacts-batch"
    env.write_config()
    refused = cli(env, "verify")
    assert refused.returncode == 2
    assert "no way to read the contacts back" in refused.stderr


@pytest.mark.parametrize("removal", ["removes", "noop"])
def test_a_do_not_call_removal_without_suppression_is_verified_in_the_same_run(loop: LoopEnv, removal: str) -> None:
    loop.sim.set_readings(removal=removal)
    loop.sim.seed_leads(200, seed=34)
    assert loop.sync().ok
    turned = dnc_turned(loop, 2)
    result = loop.sync()
    assert result.verify is not None  # not a day later: now
    if removal == "removes":
        assert result.ok, result.error
        assert not set(turned) & set(loop.list_phones())
        # That verification proved removal works here: later Do Not Call removals rely on it (and on
        # the scheduled verification) instead of downloading the whole list every run.
        more = dnc_turned(loop, 2)
        later = loop.sync()
        assert later.ok, later.error
        assert later.verify is None
        assert not set(more) & set(loop.list_phones())
    else:  # answered removed, still on the dialer: an alert naming the fix, never a quiet success
        assert not result.ok
        assert result.error is not None
        assert "Do Not Call leads may still be dialled" in result.error
        assert "dnc_group_id" in result.error


def test_a_removal_staged_before_expire_only_was_set_is_not_sent(loop: LoopEnv) -> None:
    loop.sim.seed_leads(100, seed=35)
    assert loop.sync().ok
    gone = sorted(loop.list_phones())[:2]
    loop.change([{"Id": i, "Status": "Closed - Not Converted"} for i in gone])
    loop.settings = {"max_removal_percent": 0.1}
    assert not loop.sync().ok  # read, and held by the guard: two removals wait
    store = Store(loop.tmp / "state" / "syncd.db")
    try:  # as a run under removal = "remove-prospects" would have staged them
        assert store.stage_pending("r-earlier", "remove", "syncd-r-earlier.csv", 100, None, loop.clock()) == 2
    finally:
        store.close()
    loop.settings = {"removal": "expire-only", "dnc_group_id": DNC_GROUP}
    assert loop.sync().ok
    assert loop.sim.cx.removals == []  # the configuration now says: no removeProspects
    loop.clock.advance(days=31)
    assert loop.sync().ok
    assert loop.list_phones() == loop.expected()
