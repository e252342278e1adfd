from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.sim import soql as sim_soql
from syncd.sim.data import LEAD_FIELDS
from syncd.soql import literal_datetime, literal_string, select_fields, window_query

T = datetime(2024, 5, 15, 10, 30, 0, 250_000, tzinfo=timezone.utc)


def test_first_window_has_no_lower_bound() -> None:
    q = window_query(["Id", "SystemModstamp"], None, T)
    assert q == ("SELECT Id, SystemModstamp FROM Lead WHERE SystemModstamp < 2024-05-15T10:30:00Z "
                 "ORDER BY SystemModstamp ASC, Id ASC")


def test_window_bounds_and_no_where_in_the_query() -> None:
    q = window_query(["Id"], T - timedelta(minutes=5), T)
    assert q.endswith("WHERE SystemModstamp >= 2024-05-15T10:25:00Z AND SystemModstamp < 2024-05-15T10:30:00Z "
                      "ORDER BY SystemModstamp ASC, Id ASC")


def test_select_adds_where_and_mapped_fields_once() -> None:
    fields = select_fields(["Phone"], ("LeadSource", "leadsource", "Owner.Name", "Lead_Score__c", "Status"))
    assert fields[-3:] == ["LeadSource", "Owner.Name", "Lead_Score__c"]
    assert fields.count("Status") == 1
    with pytest.raises(ValueError, match="not a Salesforce field"):
        select_fields(["Phone"], ("Owner.Manager.Name",))


def test_eligibility_is_not_filtered_in_soql() -> None:
    q = window_query(select_fields(["MobilePhone", "Phone"]), None, T)
    for word in ("Status", "IsConverted", "DoNotCall", "IsDeleted"):
        assert f"{word} =" not in q
        assert word in q  # selected, so ineligible leads are still read and removed


def test_literals() -> None:
    assert literal_datetime(T.astimezone(timezone(timedelta(hours=2)))) == "2024-05-15T10:30:00Z"
    assert literal_string("O'Brien\\x\n") == "'O\\'Brien\\\\x\\n'"
    with pytest.raises(ValueError, match="naive"):
        literal_datetime(datetime(2024, 1, 1))


@pytest.mark.parametrize("bad", ["Phone; DELETE", "Phone,Id", "1Phone", "", "a" * 81])
def test_phone_fields_must_be_identifiers(bad: str) -> None:
    with pytest.raises(ValueError, match="not a Salesforce field name"):
        select_fields([bad])


# -- the simulator's evaluator ------------------------------------------------------------------------
def row(i: int, **kw: Any) -> dict[str, Any]:
    base = {"Id": f"00Q{i:015d}", "Status": "Open", "IsDeleted": False, "DoNotCall": False, "FirstName": f"n{i}",
            "SystemModstamp": T + timedelta(seconds=i // 2, milliseconds=7 * i)}
    base.update(kw)
    return base


ROWS = [row(i) for i in range(10)] + [row(10, FirstName=None, Status="Closed", DoNotCall=True)]


def run(q: str) -> list[str]:
    return [r["Id"][-2:] for r in sim_soql.run(sim_soql.parse(q, LEAD_FIELDS), ROWS)]


def test_evaluator_reads_what_syncd_sends() -> None:
    q = window_query(select_fields(["Phone"]), T + timedelta(seconds=1), T + timedelta(seconds=4))
    ids = [r["Id"] for r in sim_soql.run(sim_soql.parse(q, LEAD_FIELDS), ROWS)]
    assert ids == [row(i)["Id"] for i in range(2, 8)]  # whole-second comparison: ms ignored


def test_evaluator_boolean_logic_and_operators() -> None:
    assert run("SELECT Id FROM Lead WHERE DoNotCall = true") == ["10"]
    assert run("SELECT Id FROM Lead WHERE NOT (Status = 'open') AND FirstName = null") == ["10"]
    assert run("SELECT Id FROM Lead WHERE Status IN ('Closed') OR Id = '00Q000000000000003'") == ["03", "10"]
    assert run("SELECT Id FROM Lead WHERE Status NOT IN ('Open')") == ["10"]
    assert run("SELECT Id FROM Lead WHERE FirstName LIKE 'n_' AND FirstName != 'n1' LIMIT 3") == ["00", "02", "03"]
    assert run("SELECT Id FROM Lead WHERE FirstName != null ORDER BY Id DESC LIMIT 2") == ["09", "08"]
    assert run("SELECT Id FROM Lead ORDER BY FirstName ASC NULLS FIRST LIMIT 1") == ["10"]
    assert run("SELECT Id FROM Lead WHERE SystemModstamp = " + literal_datetime(T)) == ["00", "01"]


@pytest.mark.parametrize(("q", "code"), [
    ("SELECT Id FROM Lead WHERE", "MALFORMED_QUERY"),
    ("SELECT Id FROM Lead WHERE Status = 'x' AND", "MALFORMED_QUERY"),
    ("SELECT Nope FROM Lead", "INVALID_FIELD"),
    ("SELECT Id FROM Lead WHERE Bogus__c = 1", "INVALID_FIELD"),
    ("SELECT Id FROM Account", "INVALID_TYPE"),
    ("SELECT Id FROM Lead WHERE Status = 'a\\q'", "MALFORMED_QUERY"),
    ("SELECT Id FROM Lead; DROP", "MALFORMED_QUERY"),
])
def test_evaluator_errors_carry_salesforce_codes(q: str, code: str) -> None:
    with pytest.raises(sim_soql.SoqlError) as e:
        sim_soql.parse(q, LEAD_FIELDS)
    assert e.value.code == code


def test_a_resumed_window_continues_after_the_last_row_in_query_order() -> None:
    q = window_query(["Id"], T - timedelta(minutes=5), T, after=(T - timedelta(minutes=1), "00Q000000000042EAY"))
    assert ("(SystemModstamp > 2024-05-15T10:29:00Z OR (SystemModstamp = 2024-05-15T10:29:00Z AND "
            "Id > '00Q000000000042EAY')) AND SystemModstamp < 2024-05-15T10:30:00Z") in q
    rows = [row(i, SystemModstamp=T) for i in range(6)]  # six rows in one second
    after = window_query(["Id"], None, T + timedelta(seconds=1), after=(T, rows[2]["Id"]))
    assert [r["Id"] for r in sim_soql.run(sim_soql.parse(after, LEAD_FIELDS), rows)] == [r["Id"] for r in rows[3:]]


SECOND = T.replace(microsecond=0)


@pytest.mark.parametrize(("where", "floor"), [
    ("SystemModstamp >= 2024-05-15T10:30:03Z", SECOND + timedelta(seconds=3)),
    ("SystemModstamp > 2024-05-15T10:30:03.900Z AND Status = 'Open'", SECOND + timedelta(seconds=3)),
    ("Status = 'Open' AND (SystemModstamp >= 2024-05-15T10:30:01Z) AND SystemModstamp >= 2024-05-15T10:30:02Z",
     SECOND + timedelta(seconds=2)),
    ("SystemModstamp >= 2024-05-15T10:30:03Z OR Status = 'Closed'", None),
    ("NOT SystemModstamp >= 2024-05-15T10:30:03Z", None),
    ("SystemModstamp < 2024-05-15T10:30:03Z", None),
    ("(SystemModstamp > 2024-05-15T10:30:02Z OR (SystemModstamp = 2024-05-15T10:30:02Z AND Id > '00Q'))", None),
])
def test_the_index_floor_is_a_true_conjunct_and_never_hides_a_row(where: str, floor: datetime | None) -> None:
    from syncd.sim.salesforce import SalesforceSim

    q = sim_soql.parse(f"SELECT Id FROM Lead WHERE {where} ORDER BY SystemModstamp, Id", LEAD_FIELDS)
    assert q.since == floor
    sim = SalesforceSim(now=lambda: T, lock=__import__("threading").RLock(), leads={r["Id"]: r for r in ROWS})
    sim.reindex()
    assert sim_soql.run(q, sim._candidates(q.since)) == sim_soql.run(q, ROWS)


@pytest.mark.parametrize(("where", "expected"), [
    ("SystemModstamp < 2024-05-15T10:30:03.400Z", (None, SECOND + timedelta(seconds=3))),
    ("SystemModstamp >= 2024-05-15T10:30:01Z AND SystemModstamp < 2024-05-15T10:30:03Z",
     (SECOND + timedelta(seconds=1), SECOND + timedelta(seconds=3))),
    ("SystemModstamp > 2024-05-15T10:30:01.5Z AND SystemModstamp <= 2024-05-15T10:30:03Z",
     (SECOND + timedelta(seconds=2), SECOND + timedelta(seconds=4))),
    ("SystemModstamp >= 2024-05-15T12:30:01+02:00", (SECOND + timedelta(seconds=1), None)),
    ("SystemModstamp < 2024-05-15T10:30:03Z AND Status = 'Open'", None),
    ("SystemModstamp = 2024-05-15T10:30:03Z", None),
    ("(SystemModstamp < 2024-05-15T10:30:03Z)", None),
    ("NOT SystemModstamp < 2024-05-15T10:30:03Z", None),
    ("SystemModstamp < 2024-05-15T10:30:03Z OR SystemModstamp > 2024-05-15T10:30:05Z", None),
    ("SystemModstamp < 2024-05-15", None),
])
def test_a_where_of_only_modstamp_bounds_is_a_range(where: str, expected: object) -> None:
    assert sim_soql.parse(f"SELECT Id FROM Lead WHERE {where}", LEAD_FIELDS).stamp_range == expected


@settings(max_examples=200, deadline=None)
@given(bounds=st.lists(st.tuples(st.sampled_from([">=", ">", "<", "<="]), st.integers(0, 6), st.integers(0, 999)),
                       min_size=1, max_size=3),
       stamps=st.lists(st.one_of(st.none(), st.tuples(st.integers(0, 6), st.integers(0, 999))), max_size=12))
def test_the_range_selects_exactly_what_the_predicate_does(bounds: list[tuple[str, int, int]],
                                                           stamps: list[tuple[int, int] | None]) -> None:
    where = " AND ".join(f"SystemModstamp {op} {literal(SECOND + timedelta(seconds=s, milliseconds=ms))}"
                         for op, s, ms in bounds)
    q = sim_soql.parse(f"SELECT Id FROM Lead WHERE {where}", LEAD_FIELDS)
    assert q.stamp_range is not None
    rows = [row(i, SystemModstamp=None if st_ is None else SECOND + timedelta(seconds=st_[0], milliseconds=st_[1]))
            for i, st_ in enumerate(stamps)]
    assert sim_soql.run(q, rows) == sim_soql.run(replace(q, stamp_range=None), rows)


def literal(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
