"""A real client judges the simulator: simple-salesforce's query, query_all, query_all_iter (with
include_deleted), describe and its Bulk API 2.0 client (bulk2: query, query_all, download) run against
it over loopback HTTP, with the SOQL its users write.

simple-salesforce builds every URL as https://; the simulator serves plain HTTP on loopback, so the
client's session carries one adapter that sends its https:// requests there unchanged otherwise (the
only shim: what is asked and answered is the client's own)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce.api import Salesforce

from syncd.sim import Simulator
from syncd.sim import salesforce as sfsim


class ToLoopback(HTTPAdapter):
    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        assert request.url is not None
        request.url = request.url.replace("https://", "http://", 1)
        return super().send(request, *args, **kwargs)


@pytest.fixture
def client() -> Iterator[tuple[Salesforce, Simulator]]:
    with Simulator(leads=4500, seed=21) as sim:
        token = requests.post(f"{sim.url}/services/oauth2/token", timeout=10, data={
            "grant_type": "client_credentials", "client_id": sfsim.CLIENT_ID,
            "client_secret": sfsim.CLIENT_SECRET}).json()
        session = requests.Session()
        session.mount("https://", ToLoopback())
        sf = Salesforce(instance_url=token["instance_url"].replace("http://", "https://"),
                        session_id=token["access_token"], session=session, version="62.0")
        yield sf, sim


def test_query_and_query_more_page_through_one_locator(client: tuple[Salesforce, Simulator]) -> None:
    sf, _ = client
    first = sf.query("SELECT Id, Status FROM Lead ORDER BY Id")
    assert first["totalSize"] == 4500
    assert len(first["records"]) == 2000
    assert first["done"] is False
    locator = first["nextRecordsUrl"].rsplit("/", 1)[1]
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert second["nextRecordsUrl"].rsplit("/", 1)[1] == locator.replace("-2000", "-4000")  # same id, next page
    everything = sf.query_all("SELECT Id FROM Lead")
    assert everything["totalSize"] == len(everything["records"]) == 4500


def test_query_all_iter_includes_deleted_rows(client: tuple[Salesforce, Simulator]) -> None:
    sf, sim = client
    doomed = sorted(sim.sf.leads)[:7]
    sim.org.delete(doomed)
    live = list(sf.query_all_iter("SELECT Id FROM Lead WHERE IsDeleted = false"))
    every = list(sf.query_all_iter("SELECT Id, IsDeleted FROM Lead", include_deleted=True))
    assert len(live) == 4500 - 7
    assert len(every) == 4500
    assert {r["Id"] for r in every if r["IsDeleted"]} == set(doomed)


def test_the_soql_of_a_real_where(client: tuple[Salesforce, Simulator]) -> None:
    sf, sim = client
    rows = sf.query_all("SELECT Id, Owner.Name, Interests__c, Lead_Score__c FROM Lead WHERE "
                        "(LeadSource IN ('web', 'Phone Inquiry') OR Owner.Name LIKE 'ada%') "
                        "AND Interests__c INCLUDES ('wind') AND Lead_Score__c >= 50")["records"]
    assert rows
    for r in rows:
        assert "wind" in r["Interests__c"].lower()
        assert r["Lead_Score__c"] >= 50
        assert r["Owner"]["attributes"]["type"] == "User"
    expected = sum(1 for lead in sim.sf.leads.values()
                   if (str(lead["LeadSource"]).lower() in ("web", "phone inquiry")
                       or lead["Owner"]["Name"].lower().startswith("ada"))
                   and "wind" in str(lead["Interests__c"]).lower().split(";") and lead["Lead_Score__c"] >= 50)
    assert len(rows) == expected


def test_describe_and_limits(client: tuple[Salesforce, Simulator]) -> None:
    sf, _ = client
    described = sf.Lead.describe()  # type: ignore[operator]  # its attribute types are loose
    fields = {f["name"]: f for f in described["fields"]}
    assert fields["Lead_Score__c"]["type"] == "double"
    assert fields["Interests__c"]["type"] == "multipicklist"
    assert fields["Score_Band__c"]["calculated"] is True
    assert fields["OwnerId"]["relationshipName"] == "Owner"
    assert sf.limits()["DailyApiRequests"]["Max"] > 0


def test_a_malformed_query_is_refused_as_salesforce_refuses_it(client: tuple[Salesforce, Simulator]) -> None:
    from simple_salesforce.exceptions import SalesforceMalformedRequest

    sf, _ = client
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.query("SELECT Id, Rating FROM Lead")
    content: Any = raised.value.content
    assert content[0]["errorCode"] == "INVALID_FIELD"


# simple-salesforce's Bulk API 2.0 client (sf.bulk2) makes a query job, polls it, then reads its results
# chunk by chunk through Sforce-Locator: the same calls syncd's Bulk reads make, by another hand.
BULK_WAIT = 0.05  # its first poll's wait (its default is seconds)


def bulk2_leads(sf: Salesforce) -> Any:
    """``sf.bulk2.Lead``: its stubs type the attribute as either Bulk client, with an int ``wait``."""
    return cast(Any, sf.bulk2).Lead


def bulk_rows(chunks: list[str]) -> list[dict[str, str]]:
    """The CSV chunks as rows: each chunk with its own header row, as the API writes it."""
    rows: list[dict[str, str]] = []
    for chunk in chunks:
        rows.extend(csv.DictReader(io.StringIO(chunk)))
    return rows


def test_bulk2_query_reads_every_chunk_of_one_job(client: tuple[Salesforce, Simulator]) -> None:
    sf, sim = client
    sim.sf.bulk.delay = 0.3  # InProgress at first: the client's polling is exercised
    chunks = list(bulk2_leads(sf).query("SELECT Id, Status, DoNotCall, SystemModstamp FROM Lead",
                                            max_records=1000, wait=BULK_WAIT))
    assert len(chunks) == 5  # 4,500 rows at 1,000 a chunk
    rows = bulk_rows([str(c) for c in chunks])
    ids = [r["Id"] for r in rows]
    assert len(ids) == len(set(ids)) == 4500  # a set, in no promised order: every lead once
    assert set(ids) == set(sim.sf.leads)
    assert {r["DoNotCall"] for r in rows} == {"true", "false"}
    assert all(r["SystemModstamp"].endswith("Z") for r in rows)
    assert list(rows[0]) == ["Id", "Status", "DoNotCall", "SystemModstamp"]  # the order asked


def test_bulk2_query_all_includes_deleted_rows_and_query_does_not(client: tuple[Salesforce, Simulator]) -> None:
    sf, sim = client
    doomed = sorted(sim.sf.leads)[:9]
    sim.org.delete(doomed)
    live = bulk_rows([str(c) for c in bulk2_leads(sf).query(
        "SELECT Id FROM Lead", max_records=2000, wait=BULK_WAIT)])
    every = bulk_rows([str(c) for c in bulk2_leads(sf).query_all(
        "SELECT Id, IsDeleted FROM Lead", max_records=2000, wait=BULK_WAIT)])
    assert len(live) == 4500 - 9
    assert not set(doomed) & {r["Id"] for r in live}
    assert len(every) == 4500
    assert {r["Id"] for r in every if r["IsDeleted"] == "true"} == set(doomed)


def test_bulk2_download_follows_the_locators_to_the_last_chunk(client: tuple[Salesforce, Simulator],
                                                               tmp_path: Path) -> None:
    sf, _ = client
    results = bulk2_leads(sf).download("SELECT Id, Phone FROM Lead", path=str(tmp_path),
                                           max_records=1500, wait=BULK_WAIT)
    assert [r["number_of_records"] for r in results] == [1500, 1500, 1500]
    assert results[-1]["locator"] in ("", "null", None)  # the client's reading of the last chunk's "null"
    ids = [row["Id"] for r in results for row in bulk_rows([Path(r["file"]).read_text()])]
    assert len(ids) == len(set(ids)) == 4500


def test_a_failed_bulk2_job_is_an_error_to_the_client(client: tuple[Salesforce, Simulator]) -> None:
    from simple_salesforce.exceptions import SalesforceOperationError

    sf, sim = client
    sim.sf.bulk.fail_jobs = 1
    with pytest.raises(SalesforceOperationError, match="Job failure"):
        list(bulk2_leads(sf).query("SELECT Id FROM Lead", wait=BULK_WAIT))
