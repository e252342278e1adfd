"""Every way a lead leaves or changes that the window query cannot show (issue 14), judged by the
simulator's callable set against the oracle: scope, hard deletes, purges, merges, formula fields,
related records, and a delete log that no longer reaches back."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from syncd import admin
from syncd.report import status
from syncd.sim import Simulator
from syncd.store import Store
from tests import oracle
from tests.conftest import Env

OPEN = {"Status": "Open - Not Contacted", "IsConverted": False, "DoNotCall": False, "IsDeleted": False}


def ago(seconds: float = 5) -> datetime:
    """A SystemModstamp a little in the past: a window ends at the current second, exclusive."""
    return datetime.now(timezone.utc) - timedelta(seconds=seconds)


def skip_reason(env: Env, lead_id: str) -> str:
    """Why the state says a lead is not on the list."""
    store = Store(env.tmp / "state" / "syncd.db", readonly=True)
    try:
        return store.skip_reasons()[lead_id]
    finally:
        store.close()


def callable_leads(env: Env, count: int = 40, age: float = 20) -> list[str]:
    return env.sim.upsert_leads([{**OPEN, "Phone": f"(415) 555-{1000 + i:04d}", "MobilePhone": None}
                                 for i in range(count)], modstamp=ago(age))


def test_leads_that_leave_where_are_removed_in_the_next_run(env: Env) -> None:
    env.settings["where"] = "LeadSource = 'web'"  # case does not matter to Salesforce, nor to syncd
    env.sim.seed_leads(300, seed=3)
    web = callable_leads(env)
    env.sim.upsert_leads([{"Id": i, "LeadSource": "Web"} for i in web], modstamp=ago(10))
    assert env.sync().ok

    def in_scope(lead: dict[str, Any]) -> bool:
        return str(lead.get("LeadSource") or "").lower() == "web"

    assert env.list_phones() == oracle.expected(env.sim.leads(), scope=in_scope)
    assert set(web) <= set(env.list_phones())
    # 20 leads move to another source: nothing else about them changes.
    env.sim.upsert_leads([{"Id": i, "LeadSource": "Trade Show"} for i in web[:20]], modstamp=ago())
    assert env.sync().ok
    assert env.list_phones() == oracle.expected(env.sim.leads(), scope=in_scope)
    assert not set(web[:20]) & set(env.list_phones())
    skips = status(env.config())["skipped"]
    assert skips.get("out_of_scope", 0) >= 20
    # And back in scope: they return.
    env.sim.upsert_leads([{"Id": i, "LeadSource": "WEB"} for i in web[:5]], modstamp=ago(2))
    assert env.sync().ok
    assert set(web[:5]) <= set(env.list_phones())


def test_where_is_never_sent_to_salesforce(env: Env) -> None:
    env.settings["where"] = "LeadSource IN ('Web', 'Phone Inquiry') AND Owner.Name != null"
    env.sim.seed_leads(200, seed=5)
    assert env.sync().ok
    queries = [q for q in env.sim.sf.query_log if "FROM Lead" in q]
    assert queries
    assert all("LeadSource IN" not in q for q in queries)
    assert any("Owner.Name" in q.split(" FROM ")[0] for q in queries)  # its fields are read


def test_hard_deleted_and_purged_leads_are_removed_in_the_next_run(env: Env) -> None:
    env.sim.seed_leads(300, seed=6)
    ids = callable_leads(env, 30)
    assert env.sync().ok
    assert set(ids) <= set(env.list_phones())
    env.sim.org.delete(ids[:10], hard=True, at=ago())  # gone from every query at once
    env.sim.org.delete(ids[10:20], at=ago())  # soft ...
    with env.sim.lock:  # ... and purged from the recycle bin before syncd reads the window
        for i in ids[10:20]:
            del env.sim.sf.leads[i]
        env.sim.sf.reindex()
    result = env.sync()
    assert result.ok
    assert not set(ids[:20]) & set(env.list_phones())
    assert env.list_phones() == oracle.expected(env.sim.leads())
    assert env.sim.stats["sf.deleted"] >= 1
    assert skip_reason(env, ids[0]) == "deleted"


def test_an_undeleted_lead_stays(env: Env) -> None:
    ids = callable_leads(env, 5)
    assert env.sync().ok
    env.sim.org.delete(ids[:1], at=ago(3))
    env.sim.upsert_leads([{"Id": ids[0], "IsDeleted": False}], modstamp=ago(2))
    assert env.sync().ok
    assert ids[0] in env.list_phones()  # read alive after its deletion date: the delete log does not win


def test_merged_leads_leave_and_their_master_is_read(env: Env) -> None:
    ids = callable_leads(env, 6)
    assert env.sync().ok
    env.post("/_sim/salesforce/merge", {"master": ids[0], "losers": ids[1:3],
                                              "fields": {"MobilePhone": "(212) 555-0199"}, "at": ago().isoformat()})
    assert env.sync().ok
    phones = env.list_phones()
    assert ids[1] not in phones
    assert ids[2] not in phones
    assert phones[ids[0]] == "+12125550199"
    assert env.sim.stats["sf.queryAll"] >= 3  # the second run read the master by id
    assert skip_reason(env, ids[1]) == "merged"


def test_a_formula_field_change_reaches_cxone_after_the_next_full_refresh(env: Env) -> None:
    env.settings["fields"] = 'Band = "Score_Band__c"\nOwner = "Owner.Name"'
    env.settings["full_refresh_days"] = 1
    ids = callable_leads(env, 8, age=3600)  # older than the lookback: a window run re-reads none of them
    assert env.sync().ok
    records = env.list_records()
    assert records[ids[0]]["Band"] in ("A", "B", "C")
    assert records[ids[0]]["Owner"]
    env.post("/_sim/salesforce/formula", {"ids": ids[:2], "fields": {"Score_Band__c": "Z"}})
    owner = env.sim.sf.leads[ids[3]]["OwnerId"]
    env.post("/_sim/salesforce/owner", {"id": owner, "Name": "Renamed Owner"})
    assert env.sync().ok  # a window run sees neither: SystemModstamp did not move
    assert env.list_records()[ids[0]]["Band"] != "Z"
    later = datetime.now(timezone.utc) + timedelta(days=1, minutes=1)
    before = len(env.sim.cx.uploads)
    assert env.sync(now=lambda: later).ok  # the full refresh is due
    records = env.list_records()
    assert records[ids[0]]["Band"] == records[ids[1]]["Band"] == "Z"
    assert records[ids[3]]["Owner"] == "Renamed Owner"
    sent = env.uploaded_ids(before)
    owned = {i for i in ids if env.sim.sf.leads[i]["OwnerId"] == owner}
    assert set(sent) == set(ids[:2]) | owned  # only what differs is sent
    assert status(env.config())["last_full_refresh"] is not None


def test_a_full_refresh_treats_tracked_leads_salesforce_no_longer_has_as_deleted(env: Env) -> None:
    ids = callable_leads(env, 10)
    assert env.sync().ok
    with env.sim.lock:  # gone with no trace in the delete log (older than it reaches)
        for i in ids[:3]:
            del env.sim.sf.leads[i]
        env.sim.sf.reindex()
    assert env.sync().ok
    assert set(ids[:3]) <= set(env.list_phones())  # a window run cannot know
    admin.reset(env.config())
    assert env.sync().ok  # after reset: a full refresh
    assert not set(ids[:3]) & set(env.list_phones())
    assert env.list_phones() == oracle.expected(env.sim.leads())


def test_a_delete_log_that_no_longer_reaches_back_makes_the_next_run_a_full_refresh(env: Env) -> None:
    ids = callable_leads(env, 10)
    assert env.sync().ok
    with env.sim.lock:
        del env.sim.sf.leads[ids[0]]  # hard-deleted ...
        env.sim.sf.reindex()
    env.post("/_sim/salesforce/purge-log", {})  # ... and the delete log purged early
    assert env.sync().ok
    st = status(env.config())
    assert "the delete log starts at" in st["full_refresh"]["reason"]
    assert env.sync().ok
    assert ids[0] not in env.list_phones()
    assert status(env.config())["full_refresh"]["reason"] != st["full_refresh"]["reason"]


def test_mapped_fields_reach_the_contacts_batch_api_as_custom_attributes(sim: Simulator, tmp_path: Path) -> None:
    env = Env(sim, tmp_path, api="contacts-batch")
    env.settings["fields"] = 'score = "Lead_Score__c"\nowner = "Owner.Name"'
    ids = callable_leads(env, 5)
    assert env.sync().ok
    with env.sim.lock:
        env.sim.cx.settle()
        contact = env.sim.cx.contacts[ids[0]]
    lead = env.sim.sf.leads[ids[0]]
    assert contact["custom_attributes"]["score"] == str(lead["Lead_Score__c"])
    assert contact["custom_attributes"]["owner"] == lead["Owner"]["Name"]
    assert contact["custom_attributes"]["sf_status"] == "Open - Not Contacted"
