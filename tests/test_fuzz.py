"""Hostile lead records through the whole engine: never an exception, nothing lost, CSV that parses back.

Salesforce is a fake behind the client seam (it serves the fuzzed pages); CXone is the simulator over
real HTTP, which parses every uploaded file with Python's csv module.
"""

from __future__ import annotations

import csv
import io
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.config import CSV_COLUMNS
from syncd.cxone import make_sink
from syncd.engine import Engine, utcnow
from syncd.http import make_session
from syncd.salesforce import Page, SalesforceClient
from syncd.store import Store
from tests.conftest import Env

IDS = [f"00Q{n:012d}EAY" for n in range(12)]  # a small pool: the same Id shows up on several pages
text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=400),
    st.text(alphabet=st.characters(categories=("Cs", "Ll", "Zs")), max_size=30),  # lone surrogates too
    st.sampled_from(["=cmd|' /C calc'!A0", "+SUM(1)", "@x", "-1", "O'Brien", 'Say "hi", then', "שלום", "مرحبا",
                     "👩‍💻 Zoë", "a\x00b\x1fc\u202ed", "line\nbreak\r\n", "x" * 2000]),
)
anything = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), text, st.lists(st.integers(), max_size=2),
                     st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
phone = st.one_of(st.sampled_from(["(415) 555-0134", "+44 20 7946 0958", "212.736.5000 x12", "junk", "", None]),
                  st.text(alphabet="0123456789+-() .x", max_size=30), anything)
record = st.fixed_dictionaries(
    {"Id": st.one_of(st.sampled_from(IDS), anything),
     "Status": st.one_of(st.sampled_from(["Open - Not Contacted", "Working - Contacted", "Closed"]), anything),
     "Phone": phone, "MobilePhone": phone,
     "IsConverted": st.one_of(st.just(False), st.booleans(), anything),
     "DoNotCall": st.one_of(st.just(False), st.booleans(), anything),
     "IsDeleted": st.one_of(st.just(False), anything),
     "SystemModstamp": st.one_of(st.just("2024-05-15T10:30:00.000+0000"), anything)},
    optional={"FirstName": text, "LastName": text, "Company": text, "Email": st.one_of(text, anything, st.sampled_from(
                  ["=1+2@example.com", "+a@example.com", "-x@example.com", "@at@example.com", "\ud800@example.com"])),
              "City": text, "State": text, "PostalCode": anything, "attributes": anything},
)
pages = st.lists(st.lists(st.one_of(record, anything), min_size=0, max_size=15), min_size=1, max_size=4)


class FakeSalesforce(SalesforceClient):
    """Serves the given pages as one window query, through the engine's real paging path."""

    def __init__(self, client: SalesforceClient, served: list[list[Any]]) -> None:
        super().__init__(client.cfg, client.secrets, client.session)
        self.served = served

    def query_all(self, soql: str) -> Page:
        return self._at(0)

    def next_page(self, next_url: str) -> Page:
        return self._at(int(next_url.rsplit("-", 1)[1]))

    def _at(self, i: int) -> Page:
        nxt = f"/services/data/v62.0/query/01gFAKE-{i + 1}" if i + 1 < len(self.served) else None
        return Page(self.served[i], nxt, sum(map(len, self.served)), datetime.now(timezone.utc))


def drive(env: Env, served: list[list[Any]]) -> int:
    """Run the engine over ``served``, check every invariant, return how many uploads CXone received."""
    sim = env.sim
    with sim.lock:  # one simulator for all examples; each starts from an empty list
        sim.cx.lists[1234].records.clear()
        sim.cx.uploads.clear()
        sim.cx.job_delay = 0.01
    with tempfile.TemporaryDirectory() as tmp:
        env.tmp = Path(tmp)
        config = env.config(batch_size=5)
        secrets = env.secrets(config)
        session = make_session(retries=0)
        store = Store(config.state.path)
        try:
            real = SalesforceClient(config.salesforce, secrets, session)
            engine = Engine(config, store, FakeSalesforce(real, served), make_sink(config, secrets, session, utcnow))
            result = engine.run()
            assert result.ok, result.error
            assert result.read == sum(map(len, served))

            valid_ids = {r["Id"] for page in served for r in page if isinstance(r, dict) and r.get("Id") in IDS}
            tracked = set(store.lead_ids())
            skipped = store.skip_reasons()
            assert valid_ids <= tracked | set(skipped), "a lead was neither a contact nor an audited skip"
            if any(not (isinstance(r, dict) and r.get("Id") in IDS) for page in served for r in page):
                assert any(reason == "invalid_id" for reason in skipped.values())

            for upload in sim.cx.uploads:
                assert len(upload["externalIds"]) == len(set(upload["externalIds"])), "an id twice in one batch"
            listed = {k: r.row for k, r in sim.cx.lists[1234].records.items()}
            for lead_id, payload in store.confirmed_rows().items():
                values = next(csv.reader(io.StringIO(payload)))
                assert len(values) == len(CSV_COLUMNS)
                assert listed[lead_id] == dict(zip(CSV_COLUMNS, values, strict=True))
        finally:
            session.close()
            store.close()
    return len(sim.cx.uploads)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(served=pages)
def test_fuzzed_records_become_contacts_or_audited_skips(env: Env, served: list[list[Any]]) -> None:
    drive(env, served)


def test_a_hostile_page_with_callable_leads_reaches_the_list(env: Env) -> None:
    ok = {"Status": "Open - Not Contacted", "IsConverted": False, "DoNotCall": False, "IsDeleted": False,
          "SystemModstamp": "2024-05-15T10:30:00.000+0000"}
    served: list[list[Any]] = [
        [{**ok, "Id": IDS[0], "Phone": "(415) 555-0134", "FirstName": "=cmd|' /C calc'!A0", "Company": 'A "B", C'},
         {**ok, "Id": IDS[1], "MobilePhone": "+44 20 7946 0958", "LastName": "\u202eevil\x00", "Email": ["x"]},
         "not a record", None, {"Id": 7}],
        [{**ok, "Id": IDS[0], "Phone": "(415) 555-0199", "City": "👩‍💻" * 300},  # the same Id again, too long
         {**ok, "Id": IDS[2], "Phone": "212.736.5000 x12", "Company": "x" * 2000}],
    ]
    assert drive(env, served) >= 1
    # IDS[0]'s latest record cannot fit CXone's 512 characters, so only IDS[1] may be on the list.
    assert set(env.sim.cx.lists[1234].records) == {IDS[1]}
    row = env.sim.cx.lists[1234].records[IDS[1]].row
    assert row["PhoneNumber"] == "+442079460958"
    assert row["LastName"] == "evil"  # the bidi override and the NUL are gone
