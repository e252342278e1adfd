from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.cxone.render import batch_contact, csv_line, csv_values
from syncd.diff import content_hash
from syncd.transform import REASONS, Contact, Rules, Skip, clean_text, transform

RULES = Rules(frozenset({"Open - Not Contacted", "Working - Contacted"}), ("MobilePhone", "Phone"), "US")
LEAD_ID = "00Q000000000001EAY"


def row(contact: Contact) -> str:
    """The call-list row the hash is taken of."""
    return csv_line(csv_values(contact))


def batch_row(contact: Contact) -> str:
    """The contacts-batch object as syncd/cxone/batch.py renders it."""
    return json.dumps(batch_contact(contact), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def lead(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"attributes": {"type": "Lead"}, "Id": LEAD_ID, "FirstName": "Ada", "LastName": "Lovelace",
                            "Company": "Analytical", "Phone": "(415) 555-0134", "MobilePhone": None,
                            "Email": "Ada@Example.COM", "Status": "Open - Not Contacted", "IsConverted": False,
                            "DoNotCall": False, "IsDeleted": False, "City": "SF", "State": "CA", "PostalCode": "94105",
                            "SystemModstamp": "2024-05-15T10:30:00.000+0000"}
    base.update(fields)
    return base


@pytest.mark.parametrize(("fields", "reason"), [
    ({"IsDeleted": True}, "deleted"),
    ({"IsConverted": True}, "converted"),
    ({"DoNotCall": True}, "do_not_call"),
    ({"Status": "Closed - Not Converted"}, "status"),
    ({"Status": None}, "status"),
    ({"Phone": None, "MobilePhone": None}, "no_phone"),
    ({"Phone": "   ", "MobilePhone": ""}, "no_phone"),
    ({"Phone": "call me later"}, "invalid_phone"),
    ({"Phone": "555-0123"}, "invalid_phone"),
    ({"Phone": "+1 555"}, "invalid_phone"),
    ({"Id": None}, "invalid_id"),
    ({"Id": "not an id!"}, "invalid_id"),
    ({"Id": 12345}, "invalid_id"),
    ({"Id": LEAD_ID + "\n"}, "invalid_id"),  # a regex's $ would let a trailing newline through
    ({"Id": LEAD_ID[:17] + "é"}, "invalid_id"),
    ({"Id": LEAD_ID[:17]}, "invalid_id"),
    ({"DoNotCall": "yes"}, "malformed"),
    ({"IsDeleted": 1}, "malformed"),
    ({"FirstName": ["a", "list"]}, "malformed"),
    ({"Company": "x" * 5000}, "malformed"),
    # Order of checks: deleted wins over everything, converted over do-not-call, and so on.
    ({"IsDeleted": True, "IsConverted": True, "DoNotCall": True}, "deleted"),
    ({"IsConverted": True, "DoNotCall": True, "Phone": "junk"}, "converted"),
    ({"DoNotCall": True, "Status": "Closed - Not Converted"}, "do_not_call"),
    ({"IsDeleted": True, "IsConverted": 0}, "deleted"),  # a bad flag after the first set one is not read
    ({"IsConverted": "x", "DoNotCall": True}, "malformed"),  # nor is a set one after a bad one
    ({"IsDeleted": None, "IsConverted": None, "DoNotCall": 0.0}, "malformed"),
])
def test_skips_with_reason(fields: dict[str, Any], reason: str) -> None:
    out = transform(lead(**fields), RULES)
    assert isinstance(out, Skip)
    assert out.reason == reason
    assert reason in REASONS


@pytest.mark.parametrize(("fields", "phone", "kind"), [
    ({"Phone": "(415) 555-0134"}, "+14155550134", "WORK"),
    ({"Phone": "415.555.0134"}, "+14155550134", "WORK"),
    ({"Phone": "+1 415 555 0134"}, "+14155550134", "WORK"),
    ({"Phone": "1-415-555-0134"}, "+14155550134", "WORK"),
    ({"Phone": "415-555-0134 x204"}, "+14155550134", "WORK"),
    ({"Phone": "+44 20 7946 0958"}, "+442079460958", "WORK"),
    ({"Phone": "1-800-FLOWERS"}, "+18003569377", "WORK"),
    ({"MobilePhone": "(212) 736-5000", "Phone": "(415) 555-0134"}, "+12127365000", "MOBILE"),
    ({"MobilePhone": "junk", "Phone": "(415) 555-0134"}, "+14155550134", "WORK"),
])
def test_phone_normalisation(fields: dict[str, Any], phone: str, kind: str) -> None:
    out = transform(lead(**fields), RULES)
    assert isinstance(out, Contact)
    assert (out.phone, out.phone_type) == (phone, kind)


def test_phone_field_order_and_region_are_configurable() -> None:
    rules = Rules(RULES.eligible_statuses, ("Phone", "MobilePhone"), "GB")
    out = transform(lead(MobilePhone="(212) 736-5000", Phone="020 7946 0958"), rules)
    assert isinstance(out, Contact)
    assert out.phone == "+442079460958"


def test_contact_fields_are_cleaned() -> None:
    out = transform(lead(FirstName="  José\u200b \t Ñ ", LastName="=cmd|' /C calc'!A0", Company="+SUM(1)",
                         Email=" Ada@Example.COM "), RULES)
    assert isinstance(out, Contact)
    assert out.first_name == "José Ñ"
    assert out.last_name.startswith("'=")
    assert out.company == "'+SUM(1)"
    assert out.email == "Ada@example.com"
    assert transform(lead(Email="not-an-email"), RULES).email == ""  # type: ignore[union-attr]


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1"])
def test_formula_leads_are_neutralised(text: str) -> None:
    assert clean_text(text, "x").startswith("'")


@pytest.mark.parametrize("email", ["=1+2@example.com", "+SUM(1)@example.com", "-2@example.com", "@x@example.com",
                                   "\t=1@example.com", "Jo\ud800@example.com"])
def test_an_email_that_starts_like_a_formula_or_holds_a_surrogate_is_dropped(email: str) -> None:
    out = transform(lead(Email=email), RULES)
    assert isinstance(out, Contact)
    assert out.email == ""
    assert email.strip() not in csv_line(csv_values(out))


def test_lone_surrogates_are_dropped_from_text() -> None:
    out = transform(lead(FirstName="Jo\ud800sé", Company="\udfffAcme"), RULES)
    assert isinstance(out, Contact)
    assert (out.first_name, out.company) == ("José", "Acme")
    assert len(content_hash(row(out))) == 16


def test_csv_line_quotes_commas_quotes_and_keeps_unicode() -> None:
    out = transform(lead(Company='The "Best", Co', FirstName="Zoë"), RULES)
    assert isinstance(out, Contact)
    line = csv_line(csv_values(out))
    assert next(csv.reader(io.StringIO(line))) == csv_values(out)


def test_batch_contact_shape() -> None:
    out = transform(lead(), RULES)
    assert isinstance(out, Contact)
    body = batch_contact(out)
    assert body["external_id"] == LEAD_ID
    assert body["phone_numbers"] == [{"number": "+14155550134", "type": "WORK", "primary": True}]
    assert body["email_addresses"] == [{"email": "Ada@example.com", "primary": True}]
    assert body["custom_attributes"]["sf_status"] == "Open - Not Contacted"


def test_hash_ignores_key_order_and_changes_with_content() -> None:
    a = transform(lead(), RULES)
    b = transform(dict(reversed(list(lead().items()))), RULES)
    c = transform(lead(FirstName="Grace"), RULES)
    assert isinstance(a, Contact)
    assert isinstance(b, Contact)
    assert isinstance(c, Contact)
    assert content_hash(row(a)) == content_hash(row(b))
    assert content_hash(row(a)) != content_hash(row(c))


def test_the_hash_is_of_what_the_sink_receives() -> None:
    # The same number moving from Phone to MobilePhone changes only the phone type: a call list's row
    # has no such column, so nothing is to be sent; the contacts-batch object has it, so it is.
    work = transform(lead(), RULES)
    mobile = transform(lead(Phone=None, MobilePhone="(415) 555-0134"), RULES)
    assert isinstance(work, Contact)
    assert isinstance(mobile, Contact)
    assert (work.phone_type, mobile.phone_type) == ("WORK", "MOBILE")
    assert content_hash(row(work)) == content_hash(row(mobile))
    assert content_hash(batch_row(work)) != content_hash(batch_row(mobile))
    assert content_hash(row(work._replace(extra=("gold",)))) != content_hash(row(work))  # mapped columns count


def test_hash_is_stable_across_processes() -> None:
    code = ("import json,sys; from syncd.transform import *; from syncd.diff import content_hash; "
            "from syncd.cxone.render import csv_line, csv_values; r=Rules(frozenset({'Open - Not Contacted'})); "
            "print(content_hash(csv_line(csv_values(transform(json.loads(sys.argv[1]), r)))).hex())")
    record = json.dumps(lead())
    hashes = {subprocess.run([sys.executable, "-c", code, record], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip() for seed in ("1", "2", "3")}
    assert len(hashes) == 1
    here = transform(lead(), Rules(frozenset({"Open - Not Contacted"})))
    assert isinstance(here, Contact)
    assert hashes == {content_hash(row(here)).hex()}


# Text with lone surrogates mixed in, and addresses that are valid emails but start like a formula.
surrogate_text = st.text(alphabet=st.characters(categories=("Cs", "Ll", "Lu", "Nd", "Zs", "Po")), max_size=20)
emails = st.builds(lambda lead_char, local, domain: f"{lead_char}{local}@{domain}.com",
                   st.sampled_from(["=", "+", "-", "@", "", "\t", "\r"]), st.text(alphabet="ab1+2=", max_size=8),
                   st.sampled_from(["example", "Example", "x-y"]))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=300),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)
FIELDS = ["Id", "FirstName", "LastName", "Company", "Phone", "MobilePhone", "Email", "Status", "IsConverted",
          "DoNotCall", "IsDeleted", "City", "State", "PostalCode", "SystemModstamp", "attributes"]
records = st.one_of(
    st.fixed_dictionaries({}, optional={f: json_values for f in FIELDS}),
    st.builds(lambda over: lead(**over), st.fixed_dictionaries({}, optional={f: json_values for f in FIELDS})),
    st.builds(lambda over: lead(**over), st.fixed_dictionaries({}, optional={
        "FirstName": st.text(), "LastName": st.text(), "Company": st.text(),
        "Phone": st.text(alphabet="0123456789 +-().x", max_size=25), "Email": st.one_of(st.text(), emails)})),
    # Lone surrogates (JSON can carry "\ud800"; no UTF-8 text can hold one) in every text field.
    st.builds(lambda over: lead(**over), st.fixed_dictionaries({}, optional={
        f: surrogate_text for f in ("FirstName", "LastName", "Company", "City", "State", "PostalCode", "Status",
                                    "Email")})),
    json_values,
)


@settings(max_examples=400, deadline=None)
@given(records)
def test_any_record_is_a_contact_or_a_skip(record: Any) -> None:
    out = transform(record, RULES)
    assert isinstance(out, Contact | Skip)
    if isinstance(out, Skip):
        assert out.reason in REASONS
        assert out.lead_id
    else:
        line = csv_line(csv_values(out))
        assert next(csv.reader(io.StringIO(line))) == csv_values(out)
        assert out.phone.startswith("+")
        for value in csv_values(out)[2:]:
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r"))
        # every field is UTF-8 text: hashing either sink's row can never raise
        assert len(content_hash(line)) == len(content_hash(batch_row(out))) == 16


@settings(max_examples=600, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=12), st.text(alphabet=',"\r\n ab', max_size=6)), max_size=10))
def test_csv_line_writes_what_csv_writer_writes(values: list[str]) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(values)  # the file's lines: a line break is quoted
    assert csv_line(values) + "\r\n" == buf.getvalue()


def _clean_text_reference(value: str) -> str:
    """clean_text without its ASCII shortcut: the rules as written."""
    import unicodedata

    text = unicodedata.normalize("NFC", value)
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c
                   for c in text if unicodedata.category(c) != "Cf" or c in "\u200d")
    text = " ".join(text.split())
    return "'" + text if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=30), st.text(alphabet=st.characters(max_codepoint=127), max_size=30),
                 st.text(alphabet=" a=+-@\t\r\n\x00\x1c\x7f", max_size=12)))
def test_clean_text_shortcut_gives_what_the_rules_give(value: str) -> None:
    assert clean_text(value, "City") == _clean_text_reference(value)
    assert clean_text(value, "City") == _clean_text_reference(value)  # again: now from the cache
    padded = value + " x" * 60  # longer than what the cache keeps
    assert clean_text(padded, "City") == _clean_text_reference(padded)


def test_clean_text_takes_a_str_subclass_as_its_text() -> None:
    class Text(str):
        pass

    cleaned = clean_text(Text("  =Acme\t Inc "), "Company")
    assert cleaned == "'=Acme Inc"
    assert type(cleaned) is str
