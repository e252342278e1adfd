"""``salesforce.where``: Salesforce's semantics by hand, the simulator's evaluator as a second opinion,
and every refusal naming its construct."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.config import parse_config
from syncd.errors import ConfigError
from syncd.sim import soql as sim_soql
from syncd.soql.where import WhereError, WhereTypeError, field_value, parse_where

LEAD = {
    "Id": "00Q000000000001EAY", "LeadSource": "Web", "Status": "Open - Not Contacted", "Country": None,
    "Lead_Score__c": 42.0, "NumberOfEmployees": 12, "IsConverted": False, "Interests__c": "Solar;Wind",
    "CreatedDate": "2024-05-15T10:30:00.000+0000", "Follow_Up__c": "2024-06-01", "Company": "50% Off_Shop",
    "Owner": {"attributes": {"type": "User"}, "Name": "Ada Lovelace"}, "Partner__r": None,
}

# (condition, expected on LEAD): what Salesforce answers, written down by hand.
TABLE = [
    ("LeadSource = 'Web'", True),
    ("LeadSource = 'WEB'", True),  # text equality ignores case
    ("LeadSource != 'web'", False),
    ("LeadSource <> 'Phone'", True),
    ("leadsource = 'Web'", True),  # field names ignore case
    ("LeadSource IN ('phone', 'WEB')", True),  # so does IN
    ("LeadSource NOT IN ('Web')", False),
    ("Country = null", True),
    ("Country != null", False),
    ("Country = 'US'", False),  # NULL equals no value
    ("Country != 'US'", True),  # and differs from every value
    ("Country NOT IN ('US', 'CA')", True),
    ("Country IN ('US', null)", True),
    ("Country LIKE '%'", False),  # LIKE never matches NULL
    ("NOT Country LIKE 'U%'", True),
    ("Country < 'ZZ'", False),  # ordering never holds for NULL
    ("LeadSource LIKE 'w%'", True),  # LIKE ignores case
    ("LeadSource LIKE '_eb'", True),
    ("LeadSource LIKE 'We'", False),  # the whole value must match
    ("Company LIKE '50\\% Off\\_Shop'", True),  # escaped wildcards stand for themselves
    ("Company LIKE '50\\_%'", False),  # an escaped _ is no wildcard
    ("Company = '50% Off_Shop'", True),
    ("Lead_Score__c > 40", True),
    ("Lead_Score__c >= 42", True),
    ("Lead_Score__c < 42.5", True),
    ("NumberOfEmployees = 12", True),
    ("IsConverted = false", True),
    ("IsConverted = TRUE", False),
    ("Interests__c INCLUDES ('solar')", True),  # a multi-select picklist: any value, ignoring case
    ("Interests__c INCLUDES ('Solar;Hydro')", False),  # 'a;b' needs both
    ("Interests__c INCLUDES ('Wind;Solar', 'Hydro')", True),
    ("Interests__c EXCLUDES ('Hydro')", True),
    ("Interests__c EXCLUDES ('Wind')", False),
    ("Owner.Name = 'ada lovelace'", True),  # a one-level relationship field
    ("Owner.Name LIKE 'Ada%'", True),
    ("Partner__r.Name = null", True),  # an empty relationship reads as NULL
    ("CreatedDate >= 2024-05-15T10:30:00Z", True),
    ("CreatedDate = 2024-05-15T10:30:00.999Z", True),  # datetimes compare at whole seconds
    ("CreatedDate < 2024-05-15T12:30:00+02:00", False),  # the same instant in another offset
    ("Follow_Up__c > 2024-05-31", True),
    ("Follow_Up__c = 2024-06-01", True),
    ("Id = '00Q000000000001EAY'", True),
    ("Id = '00q000000000001eay'", False),  # ids compare exactly: a 15-character id is case-sensitive
    ("(LeadSource = 'Web' OR Country = 'US') AND NOT IsConverted = true", True),
    ("LeadSource = 'Phone' OR (Lead_Score__c > 10 AND Country = null)", True),
    ("NOT (LeadSource = 'Web')", False),
]


@pytest.mark.parametrize(("condition", "expected"), TABLE)
def test_salesforce_semantics_by_hand(condition: str, expected: bool) -> None:
    where = parse_where(condition)
    assert where is not None
    assert where(LEAD) is expected


REFUSED = [
    ("Id IN (SELECT LeadId FROM CampaignMember)", "semi-join"),
    ("COUNT(Id) > 1", "aggregate COUNT()"),
    ("CreatedDate = LAST_N_DAYS:30", "relative date literal LAST_N_DAYS:30"),
    ("CreatedDate > TODAY", "relative date literal TODAY"),
    ("CreatedDate < N_DAYS_AGO:7", "relative date literal N_DAYS_AGO:7"),
    ("CALENDAR_YEAR(CreatedDate) = 2024", "date function CALENDAR_YEAR()"),
    ("toLabel(Status) = 'Open'", "function toLabel()"),
    ("AnnualRevenue > USD5000", "currency literal USD5000"),
    ("LeadSource = :source", "bind variable :source"),
    ("Owner.Manager.Name = 'x'", "deeper than one level"),
    ("LeadSource = 'Web' AND Country = 'US' OR Status = 'x'", "AND mixed with OR needs parentheses"),
    ("LeadSource = 'Web' ORDER BY Id", "after the condition"),
    ("Lead_Score__c > null", "only = and != compare with null"),
    ("IsConverted > false", "booleans compare with = and != only"),
    ("LeadSource = 'Web", "unexpected character"),
    ("LeadSource NOT LIKE 'W%'", "must be followed by IN"),
]


@pytest.mark.parametrize(("condition", "named"), REFUSED)
def test_refusals_name_the_construct(condition: str, named: str) -> None:
    with pytest.raises(WhereError, match=named.replace("(", r"\(").replace(")", r"\)")):
        parse_where(condition)


def test_a_refused_where_is_a_configuration_error_naming_the_key() -> None:
    cfg: dict[str, Any] = {"salesforce": {"client_id": "x", "where": "CreatedDate = LAST_N_DAYS:30"},
                           "cxone": {"call_lists": {"client_id": "c", "list_id": 1, "list_name": "L", "skill_id": 2}}}
    with pytest.raises(ConfigError, match=r"salesforce\.where: the relative date literal LAST_N_DAYS:30"):
        parse_config(cfg)


def test_fields_read_are_collected_once_in_the_spelling_written() -> None:
    where = parse_where("(LeadSource = 'Web' OR leadsource = 'x') AND Owner.Name != null")
    assert where is not None
    assert where.fields == ("LeadSource", "Owner.Name")
    assert parse_where("   ") is None


def test_a_value_of_the_wrong_kind_is_a_type_error_not_a_wrong_answer() -> None:
    where = parse_where("Lead_Score__c > 10")
    assert where is not None
    with pytest.raises(WhereTypeError, match="Lead_Score__c holds str"):
        where({"Lead_Score__c": "ten"})
    dated = parse_where("CreatedDate > 2024-01-01")  # a date literal against a datetime field
    assert dated is not None
    with pytest.raises(WhereTypeError):
        dated(LEAD)


def test_field_value_reads_relationships_and_ignores_case() -> None:
    assert field_value(LEAD, "owner.name") == "Ada Lovelace"
    assert field_value(LEAD, "Partner__r.Name") is None
    assert field_value(LEAD, "Missing__c") is None


# -- the simulator's evaluator, written apart, must agree on every generated condition and lead -----------
TEXTS = ["Web", "web", "WEB", "Phone", "ph_one", "50%", "x'y", ""]
PATTERNS = ["'w%'", "'%EB'", "'_eb'", "'ph\\_one'", "'50\\%'", "'%'", "'p%e'"]
MULTI = ["Solar", "Solar;Wind", "wind;HYDRO", "Hydro"]
SIM_FIELDS = ("Id", "LeadSource", "Lead_Score__c", "IsConverted", "Interests__c", "CreatedDate", "Follow_Up__c",
              "Owner.Name")
STAMPS = [datetime(2024, 5, 15, 10, 30, s, tzinfo=timezone.utc) for s in (0, 1, 2)]
DAYS = [date(2024, 6, d) for d in (1, 2, 3)]


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


text_field = st.sampled_from(["LeadSource", "Owner.Name"])
comparison = st.one_of(
    st.builds(lambda f, op, v: f"{f} {op} {_quote(v)}", text_field, st.sampled_from(["=", "!=", "<", ">="]),
              st.sampled_from(TEXTS)),
    st.builds(lambda f, vs, neg: f"{f} {'NOT IN' if neg else 'IN'} ({', '.join(map(_quote, vs))})", text_field,
              st.lists(st.sampled_from(TEXTS), min_size=1, max_size=3), st.booleans()),
    st.builds(lambda f, p: f"{f} LIKE {p}", text_field, st.sampled_from(PATTERNS)),
    st.builds(lambda f, op: f"{f} {op} null", text_field, st.sampled_from(["=", "!="])),
    st.builds(lambda op, n: f"Lead_Score__c {op} {n}", st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
              st.sampled_from(["10", "42", "42.5", "-3"])),
    st.builds(lambda b: f"IsConverted = {b}", st.sampled_from(["true", "FALSE"])),
    st.builds(lambda kw, vs: f"Interests__c {kw} ({', '.join(map(_quote, vs))})",
              st.sampled_from(["INCLUDES", "EXCLUDES"]), st.lists(st.sampled_from(MULTI), min_size=1, max_size=2)),
    st.builds(lambda op, i: f"CreatedDate {op} {STAMPS[i].strftime('%Y-%m-%dT%H:%M:%S')}.{i}00Z",
              st.sampled_from(["=", "<", ">="]), st.integers(0, 2)),
    st.builds(lambda op, d: f"Follow_Up__c {op} {d.isoformat()}", st.sampled_from(["=", "<=", ">"]),
              st.sampled_from(DAYS)),
)
condition = st.recursive(comparison, lambda inner: st.one_of(
    st.builds(lambda a: f"NOT ({a})", inner),
    st.builds(lambda a, b, j: f"({a}) {j} ({b})", inner, inner, st.sampled_from(["AND", "OR"])),
), max_leaves=6)


@st.composite
def sim_lead(draw: st.DrawFn) -> dict[str, Any]:
    owner = draw(st.sampled_from([*TEXTS, None]))
    return {
        "Id": "00Q000000000001EAY",
        "LeadSource": draw(st.sampled_from([*TEXTS, None])),
        "Lead_Score__c": draw(st.sampled_from([10, 42, 42.0, 42.5, -3, 0.5, None])),
        "IsConverted": draw(st.booleans()),
        "Interests__c": draw(st.sampled_from([*MULTI, None])),
        "CreatedDate": draw(st.sampled_from(STAMPS)).replace(microsecond=draw(st.sampled_from([0, 400_000]))),
        "Follow_Up__c": draw(st.sampled_from(DAYS)),
        "Owner": None if owner is None else {"Name": owner},
    }


def as_salesforce_sends(lead: dict[str, Any]) -> dict[str, Any]:
    """The simulator's row as the JSON a query answer carries it."""
    out = dict(lead)
    stamp = lead["CreatedDate"]
    out["CreatedDate"] = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}+0000"
    out["Follow_Up__c"] = lead["Follow_Up__c"].isoformat()
    if lead["Owner"] is not None:
        out["Owner"] = {"attributes": {"type": "User", "url": "/x"}, **lead["Owner"]}
    return out


@settings(max_examples=400, deadline=None)
@given(condition, st.lists(sim_lead(), min_size=1, max_size=6))
def test_syncd_and_the_simulator_agree(cond: str, leads: list[dict[str, Any]]) -> None:
    where = parse_where(cond)
    assert where is not None
    query = sim_soql.parse(f"SELECT Id FROM Lead WHERE {cond}", SIM_FIELDS)
    for lead in leads:
        assert where(as_salesforce_sends(lead)) is bool(query.where(lead)), (cond, lead)
