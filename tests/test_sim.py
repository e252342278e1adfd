"""The simulator behaves as API-CONTRACTS.md says, seen from a plain HTTP client."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from syncd.sim import Simulator
from syncd.sim import cxone as cx
from syncd.sim import salesforce as sf
from syncd.sim.sfbulk import bulk_value


def sf_token(url: str) -> str:
    form = {"grant_type": "client_credentials", "client_id": sf.CLIENT_ID, "client_secret": sf.CLIENT_SECRET}
    r = requests.post(f"{url}/services/oauth2/token", data=form, timeout=10)
    assert r.status_code == 200
    body = r.json()
    assert "expires_in" not in body
    assert body["instance_url"] == url
    return str(body["access_token"])


def _pages(url: str, h: dict[str, str], body: dict[str, Any]) -> list[dict[str, Any]]:
    rows = list(body["records"])
    while body.get("nextRecordsUrl"):
        body = requests.get(f"{url}{body['nextRecordsUrl']}", headers=h, timeout=10).json()
        rows += body["records"]
    return rows


def _bulk_csv(url: str, h: dict[str, str], job: str) -> str:
    for _ in range(200):
        state = requests.get(f"{url}/services/data/v62.0/jobs/query/{job}", headers=h, timeout=10).json()["state"]
        if state == "JobComplete":
            break
        time.sleep(0.05)
    return requests.get(f"{url}/services/data/v62.0/jobs/query/{job}/results", headers=h, timeout=10).text


@given(st.datetimes(min_value=datetime(1700, 1, 1), max_value=datetime(4000, 12, 31),
                    timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=5, minutes=30)),
                                               timezone(timedelta(hours=-8)), timezone(timedelta(0))])))
def test_datetimes_are_written_as_salesforce_writes_them(value: datetime) -> None:
    """The fast forms the pages use equal the plain strftime of the UTC moment, milliseconds truncated."""
    utc = value.astimezone(timezone.utc)
    plain = utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}"
    assert sf.sf_datetime(value) == plain + "+0000"
    assert bulk_value(value) == plain + "Z"


def test_salesforce_paging_snapshot_and_errors(sim: Simulator) -> None:
    sim.seed_leads(450, seed=1)
    token = sf_token(sim.url)
    h = {"Authorization": f"Bearer {token}", "Sforce-Query-Options": "batchSize=200"}
    q = "SELECT Id, SystemModstamp FROM Lead ORDER BY SystemModstamp, Id"
    r = requests.get(f"{sim.url}/services/data/v62.0/queryAll", params={"q": q}, headers=h, timeout=10)
    body = r.json()
    assert r.headers["Sforce-Limit-Info"].startswith("api-usage=")
    assert body["totalSize"] == 450
    assert len(body["records"]) == 200
    assert body["done"] is False
    assert body["nextRecordsUrl"].startswith("/services/data/v62.0/query/01g")
    assert body["records"][0]["attributes"]["type"] == "Lead"
    assert body["records"][0]["SystemModstamp"].endswith(".000+0000")
    sim.mutate(50, seed=2)  # later edits do not show in a running query's pages
    ids = [x["Id"] for x in _pages(sim.url, h, body)]
    assert len(ids) == len(set(ids)) == 450
    # Errors are JSON arrays with Salesforce's codes.
    bad = requests.get(f"{sim.url}/services/data/v62.0/query", params={"q": "SELECT Nope FROM Lead"}, headers=h,
                       timeout=10)
    assert bad.status_code == 400
    assert bad.json()[0]["errorCode"] == "INVALID_FIELD"
    unauth = requests.get(f"{sim.url}/services/data/v62.0/query", params={"q": q}, timeout=10)
    assert unauth.status_code == 401
    assert unauth.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    # A locator dies with the session that made it.
    first = requests.get(f"{sim.url}/services/data/v62.0/queryAll", params={"q": q}, headers=h, timeout=10).json()
    other = sf_token(sim.url)
    dead = requests.get(f"{sim.url}{first['nextRecordsUrl']}", headers={"Authorization": f"Bearer {other}"},
                        timeout=10)
    assert dead.status_code == 400
    assert dead.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_a_query_and_a_bulk_job_show_the_org_as_it_was_when_they_ran(sim: Simulator) -> None:
    """Every kind of edit made while a query is paged (or a Bulk job waits) leaves its rows as they were:
    an upsert, a soft delete, a merge, a formula change and an owner's rename. A query made after sees them."""
    sim.seed_leads(450, seed=1)
    h = {"Authorization": f"Bearer {sf_token(sim.url)}", "Sforce-Query-Options": "batchSize=200"}
    q = ("SELECT Id, FirstName, Phone, IsDeleted, MasterRecordId, Lead_Score__c, Owner.Name FROM Lead "
         "ORDER BY SystemModstamp, Id")

    def query() -> dict[str, Any]:
        answer: dict[str, Any] = requests.get(f"{sim.url}/services/data/v62.0/queryAll", params={"q": q}, headers=h,
                                              timeout=10).json()
        return answer

    before = _pages(sim.url, h, query())
    running = query()

    def bulk_job() -> str:
        return str(requests.post(f"{sim.url}/services/data/v62.0/jobs/query", headers=h, timeout=10,
                                 json={"operation": "queryAll", "query": q}).json()["id"])

    job = bulk_job()  # its results are read after the edits
    bulk_before = _bulk_csv(sim.url, h, bulk_job())
    late = [r["Id"] for r in before[300:]]  # on the running query's later pages
    owner = sim.sf.leads[late[0]]["OwnerId"]
    sim.upsert_leads([{"Id": late[1], "FirstName": "Changed", "Phone": "+1 312 555 0100"}])
    assert requests.post(f"{sim.url}/_sim/salesforce/delete", json={"ids": [late[2]]}, timeout=10).ok
    assert requests.post(f"{sim.url}/_sim/salesforce/merge", timeout=10,
                         json={"master": late[3], "losers": [late[4]], "fields": {"FirstName": "Merged"}}).ok
    assert requests.post(f"{sim.url}/_sim/salesforce/formula", timeout=10,
                         json={"ids": [late[5]], "fields": {"Lead_Score__c": 99.0}}).ok
    assert requests.post(f"{sim.url}/_sim/salesforce/owner", json={"id": owner, "Name": "Renamed"}, timeout=10).ok

    assert _pages(sim.url, h, running) == before
    assert _bulk_csv(sim.url, h, job) == bulk_before
    after = {r["Id"]: r for r in _pages(sim.url, h, query())}
    assert after[late[1]]["FirstName"] == "Changed"
    assert after[late[2]]["IsDeleted"] is True
    assert after[late[3]]["FirstName"] == "Merged"
    assert after[late[4]]["MasterRecordId"] == late[3]
    assert after[late[5]]["Lead_Score__c"] == 99.0
    assert after[late[0]]["Owner"]["Name"] == "Renamed"
    assert sum(r["Owner"]["Name"] == "Renamed" for r in after.values()) > 1  # every lead it owns


def test_salesforce_query_hides_deleted_rows_queryall_shows_them(sim: Simulator) -> None:
    ids = sim.upsert_leads([{"Status": "Open - Not Contacted"}, {"Status": "Open - Not Contacted", "IsDeleted": True}])
    h = {"Authorization": f"Bearer {sf_token(sim.url)}"}
    q = {"q": "SELECT Id, IsDeleted FROM Lead"}
    plain = requests.get(f"{sim.url}/services/data/v62.0/query", params=q, headers=h, timeout=10).json()
    every = requests.get(f"{sim.url}/services/data/v62.0/queryAll", params=q, headers=h, timeout=10).json()
    assert [r["Id"] for r in plain["records"]] == ids[:1]
    assert sorted(r["Id"] for r in every["records"]) == sorted(ids)


def cx_token(url: str) -> tuple[str, dict[str, Any]]:
    issuer = requests.get(f"{url}/.well-known/openid-configuration", timeout=10).json()
    r = requests.post(issuer["token_endpoint"], data={"grant_type": "password", "username": cx.ACCESS_KEY_ID,
                                                      "password": cx.ACCESS_KEY_SECRET},
                      auth=(cx.CLIENT_ID, cx.CLIENT_SECRET), timeout=10)
    body = r.json()
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    return str(body["access_token"]), claims


def test_cxone_call_list_upload_job_and_removal(sim: Simulator) -> None:
    token, claims = cx_token(sim.url)
    found = requests.get(f"{sim.url}/.well-known/cxone-configuration", params={"tenantId": claims["tenantId"]},
                         timeout=10).json()
    api = f"{found['api_endpoint']}/inContactAPI/services/v33.0/lists/call-lists"
    h = {"Authorization": f"Bearer {token}"}
    csv_text = ("ExternalId,PhoneNumber,FirstName\r\nA1,+14155550134,Ann\r\nA2,+14155550135,\"Bo, Jr\"\r\n"
                f"A3,+14155550136,{'x' * 600}\r\n")
    body = {"listFile": base64.b64encode(csv_text.encode()).decode(), "fileName": "f.csv", "skillId": 5678,
            "forceOverwrite": True, "expirationDate": "", "startSkill": False}
    job = requests.post(f"{api}/1234/upload", json=body, headers=h, timeout=10).json()["jobId"]
    assert isinstance(job, int)
    first = requests.get(f"{api}/jobs/{job}", headers=h, timeout=10).json()["uploadJobs"][0]
    assert first["isComplete"] is False
    time.sleep(0.1)
    done = requests.get(f"{api}/jobs/{job}", headers=h, timeout=10).json()["uploadJobs"][0]
    assert done["isComplete"] is True
    assert done["isCancelled"] is False
    info = requests.get(f"{api}/1234", headers=h, timeout=10).json()["resultSet"]
    assert (info["validRecords"], info["invalidRecords"]) == (2, 1)  # the 600-character record is refused
    bad_header = dict(body, listFile=base64.b64encode(b"Id,Phone\r\nA,+1\r\n").decode())
    assert requests.post(f"{api}/1234/upload", json=bad_header, headers=h, timeout=10).status_code == 400
    removed = requests.delete(f"{api}/Salesforce%20Leads/removeProspects", headers=h, timeout=10,
                              json={"prospectsToRemove": [{"externalId": "A1"}, {"externalId": "ZZ"}]}).json()
    assert [r["externalId"] for r in removed["successfulRecords"]] == ["A1"]
    assert [r["externalId"] for r in removed["failedRecords"]] == ["ZZ"]
    listed = requests.get(f"{sim.url}/_sim/cxone/list", timeout=10).json()["callable"]
    assert set(listed) == {"A2"}
    assert listed["A2"]["FirstName"] == "Bo, Jr"


def test_contacts_batch_rules(sim: Simulator) -> None:
    r = requests.post(f"{sim.url}/oauth2/token", timeout=10, data={
        "grant_type": "client_credentials", "client_id": cx.CLIENT_ID, "client_secret": cx.CLIENT_SECRET,
        "scope": "contact-center:contacts:read"})
    assert r.status_code == 403  # missing the write scope
    token = requests.post(f"{sim.url}/oauth2/token", timeout=10, data={
        "grant_type": "client_credentials", "client_id": cx.CLIENT_ID, "client_secret": cx.CLIENT_SECRET,
        "scope": "contact-center:contacts:write"}).json()["access_token"]
    h = {"Authorization": f"Bearer {token}"}
    one = {"external_id": "A", "name": "A", "phone_numbers": [{"number": "+14155550134", "type": "WORK",
                                                              "primary": True}]}
    url = f"{sim.url}/v2/contact-center/contacts/batch"
    assert requests.post(url, json={"contacts": [one, one]}, headers=h, timeout=10).status_code == 400
    assert requests.post(url, json={"contacts": [one] * 501}, headers=h, timeout=10).status_code == 400
    job = requests.post(url, json={"contacts": [one]}, headers=h, timeout=10).json()
    assert job["status"] == "PROCESSING"
    time.sleep(0.1)
    assert requests.get(f"{url}/{job['job_id']}", headers=h, timeout=10).json()["status"] == "COMPLETED"


def test_control_surface_changes_leads_over_http(sim: Simulator) -> None:
    sim.seed_leads(100, seed=3)
    changed = requests.post(f"{sim.url}/_sim/mutate", json={"count": 10, "seed": 4, "new": 2}, timeout=10).json()
    assert sum(changed["changes"].values()) == 12
    ids = requests.post(f"{sim.url}/_sim/leads", json={"leads": [{"Id": "00Q000000000001EAY", "DoNotCall": True}]},
                        timeout=10).json()["ids"]
    leads = {x["Id"]: x for x in requests.get(f"{sim.url}/_sim/leads", timeout=10).json()["leads"]}
    assert len(leads) == 102
    assert leads[ids[0]]["DoNotCall"] is True
    assert requests.get(f"{sim.url}/_sim/stats", timeout=10).json()["calls"]["sim.mutate"] == 1


@pytest.mark.parametrize("api", ["call-lists", "contacts-batch"])
def test_syncd_sim_prints_urls_and_a_matching_config(api: str) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "syncd", "sim", "--port", "0", "--leads", "10", "--api", api],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any(line.startswith("client_id") for line in lines[-8:]) or len(lines) < 30:
            lines.append(proc.stdout.readline().rstrip("\n"))
        text = "\n".join(lines)
        assert "export SYNCD_SALESFORCE_CLIENT_SECRET=" in text
        assert f'api = "{api}"' in text
        url = lines[0].split(" at ")[1]
        assert requests.get(f"{url}/_sim/info", timeout=10).json()["leads"] == 10
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_scattered_ids_are_the_same_ids_in_no_order_by_systemmodstamp() -> None:
    from syncd.sim.data import generate

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    plain, scattered = generate(2000, 7, now), generate(2000, 7, now, scatter_ids=True)
    assert sorted(lead["Id"] for lead in plain) == sorted(lead["Id"] for lead in scattered)
    assert [lead["Id"] for lead in plain] == sorted(lead["Id"] for lead in plain)  # Ids follow the stamps
    assert [lead["Id"] for lead in scattered] != sorted(lead["Id"] for lead in scattered)
    # The same random stream: each lead's drawn fields and stamp are as without it.
    for field in ("SystemModstamp", "Status", "Phone", "DoNotCall", "LastName"):
        assert [lead[field] for lead in plain] == [lead[field] for lead in scattered]
