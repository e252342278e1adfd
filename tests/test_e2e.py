"""End to end over real HTTP on loopback: engine → simulator, both sinks, checked against the oracle."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from syncd.report import status
from tests import oracle
from tests.conftest import Env

ORG = 1500


def _past(seconds: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(seconds=seconds)


@pytest.mark.parametrize("api", ["call-lists", "contacts-batch"])
def test_initial_noop_and_incremental_sync_match_the_oracle(env: Env, api: str) -> None:
    env.api = api
    env.sim.seed_leads(ORG, seed=3)
    env.sim.sf.max_page_size = 170  # pages much shorter than asked: pagination must be followed

    first = env.sync()
    assert first.ok, first.error
    before = oracle.expected(env.sim.leads())
    assert env.on_list() == before
    assert first.read == ORG
    assert env.sim.sf.queries == 1  # one window query, then nextRecordsUrl pages

    uploads = len(env.sim.cx.uploads)
    second = env.sync()
    assert second.ok
    assert second.sent == 0
    assert second.removed == 0
    assert len(env.sim.cx.uploads) == uploads, "a sync with no Salesforce changes must upload nothing"

    content_before = oracle.content(env.sim.leads())
    kinds = env.sim.mutate(240, seed=5, new=40, modstamp=_past(2))
    assert {"convert", "dnc", "delete", "phone", "name", "new"} <= set(kinds)
    after_leads = env.sim.leads()
    after = oracle.expected(after_leads)
    content_after = oracle.content(after_leads)
    must_send = {i for i in after if i not in before or content_after[i] != content_before.get(i)}
    must_remove = set(before) - set(after)
    assert must_send
    assert must_remove

    third = env.sync()
    assert third.ok, third.error
    sent = env.uploaded_ids(uploads)
    assert len(sent) == len(set(sent)), "a lead was uploaded twice"
    assert set(sent) == must_send
    if api == "call-lists":
        assert third.removed == len(must_remove)
        assert env.on_list() == after
        assert status(env.config())["leads"]["pending_removal"] == 0
    else:
        # The tutorial's API cannot remove: those leads stay, counted and shown, never dropped silently.
        assert env.on_list() == {**{i: before[i] for i in must_remove}, **after}
        assert status(env.config())["leads"]["pending_removal"] == len(must_remove)


def test_rows_sharing_a_second_at_the_window_edge_are_not_missed(env: Env) -> None:
    edge = _past(30).replace(microsecond=0)
    ids = env.sim.upsert_leads([{"Status": "Open - Not Contacted", "Phone": f"(415) 555-01{i:02d}",
                                 "IsConverted": False, "DoNotCall": False, "IsDeleted": False}
                                for i in range(3)], modstamp=edge)
    # A run whose window ends exactly at that second reads none of them (end is exclusive) ...
    first = env.sync(now=lambda: edge + timedelta(milliseconds=400))
    assert first.ok
    assert first.read == 0
    # ... another row committed late with the same second, then the next run reads all four.
    ids += env.sim.upsert_leads([{"Status": "Working - Contacted", "Phone": "(415) 555-0199", "IsConverted": False,
                                  "DoNotCall": False, "IsDeleted": False}], modstamp=edge)
    second = env.sync(now=lambda: edge + timedelta(seconds=5))
    assert second.ok
    assert set(env.list_phones()) == set(ids)


def test_a_row_that_appears_late_inside_the_lookback_is_read(env: Env) -> None:
    env.sim.seed_leads(300, seed=4)
    t0 = _past(600).replace(microsecond=0)
    assert env.sync(now=lambda: t0).ok
    # A long transaction commits a lead stamped 100 s before the watermark.
    late = env.sim.upsert_leads([{"Status": "Open - Not Contacted", "Phone": "(212) 736-5000", "IsConverted": False,
                                  "DoNotCall": False, "IsDeleted": False}], modstamp=t0 - timedelta(seconds=100))
    again = env.sync(now=lambda: t0 + timedelta(seconds=60))
    assert again.ok
    assert late[0] in env.list_phones()
    assert env.list_phones() == oracle.expected(env.sim.leads())


def test_batches_are_split_and_several_jobs_fly_at_once(env: Env) -> None:
    env.sim.seed_leads(1200, seed=8)
    env.sim.cx.job_delay = 0.4
    result = env.sync(batch_size=100)
    assert result.ok
    uploads = env.sim.cx.uploads
    assert len(uploads) >= 5
    assert all(u["rows"] <= 100 for u in uploads)
    lists = env.config().cxone.call_lists
    assert lists is not None
    # The upload's JSON carries every option beside the file.
    assert uploads[0]["options"] == {
        "fileName": uploads[0]["fileName"], "skillId": lists.skill_id, "forceOverwrite": True,
        "expirationDate": uploads[0]["options"]["expirationDate"], "startSkill": lists.start_skill,
        "sendEmail": False, "defaultTimeZone": lists.default_time_zone}
    assert len(uploads[0]["options"]["expirationDate"]) == len("2026-01-01")
    # With max_in_flight = 4, later uploads go out before syncd has seen the first job complete:
    # the fourth upload found three of syncd's jobs not yet reported complete, and none found more.
    assert [u["unacked"] for u in uploads[:4]] == [0, 1, 2, 3]
    assert max(u["unacked"] for u in uploads) == 3
    assert env.list_phones() == oracle.expected(env.sim.leads())


def test_status_reports_the_bound_fields(env: Env) -> None:
    env.sim.seed_leads(400, seed=9)
    assert env.sync().ok
    s = status(env.config())
    assert s["watermark"] is not None
    assert s["window"] is None
    assert set(s["leads"]) >= {"tracked", "dirty", "parked", "removed"}
    assert s["batches"]["completed"] >= 1
    assert s["batches"]["staged"] == s["batches"]["submitted"] == 0
    assert sum(s["skipped"].values()) == 400 - len(env.list_phones())
    assert set(s["last_run"]) >= {"id", "status", "started_at", "finished_at", "read", "sent", "removed", "skipped"}
    assert s["last_run"]["status"] == "ok"
    assert s["daemon"]["running"] is False
    assert s["daemon"]["pid"] is None
    assert s["daemon"]["heartbeat_at"] is None


@pytest.mark.parametrize("read_api", ["rest", "bulk"])
def test_an_org_whose_ids_come_in_no_order_matches_the_oracle(env: Env, read_api: str) -> None:
    """Read by SystemModstamp, a real org's Ids come in no order: the state keeps leads in the order it
    first stored them and stages them so (m011), while batches and lookups go by Id."""
    env.sim.scatter_ids = True
    env.sim.seed_leads(ORG, seed=4)
    env.settings["read_api"] = read_api
    first = env.sync(batch_size=200)
    assert first.ok, first.error
    assert env.list_phones() == oracle.expected(env.sim.leads())
    staged = [u["externalIds"] for u in env.sim.cx.uploads]
    assert all(ids == sorted(ids) for ids in staged)  # each file in Id order
    assert sorted(i for ids in staged for i in ids) != [i for ids in staged for i in ids]  # the org is scattered
    env.sim.mutate(240, seed=6, new=40, modstamp=_past(2))
    second = env.sync(batch_size=200)
    assert second.ok, second.error
    assert env.list_phones() == oracle.expected(env.sim.leads())
