"""A real client judges the simulator: simple-salesforce's query, query_all, query_all_iter (with
include_deleted) and describe run against it over loopback HTTP, with the SOQL its users write.

simple-salesforce builds every URL as https://; the simulator serves plain HTTP on loopback, so the
client's session carries one adapter that sends its https:// requests there unchanged otherwise (the
only shim: what is asked and answered is the client's own)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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
