"""Lead record → :class:`Contact` or :class:`Skip` (pure: no I/O, no clock, no globals mutated).

Any JSON value may arrive in any field; the answer is always a Contact or a Skip with a reason,
never an exception. Checks run in a fixed order so a lead's reason is stable:
deleted, converted, do-not-call, status, then phone.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import operator
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import phonenumbers

SF_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
EMAIL = re.compile(r"^[^@\s\"'<>(),;:\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")
FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r")
# "(415) 555-0134", "415.555.0134", "+1 415 555 0134", "1-415-555-0134": area code and exchange start 2-9.
# An extension ("x204", "ext. 12") may follow: E.164 has no extension, so it does not change the number.
NANP_PLAIN = re.compile(r"^ *(?:\+?1[ .-]?)?(?:\(([2-9]\d\d)\)|([2-9]\d\d)) ?[ .-]?([2-9]\d\d)[ .-]?(\d{4})"
                        r"(?: *(?:x|ext\.?) ?\d{1,6})? *$")
MAX_FIELD_CHARS = 1000  # anything longer cannot fit a 512-character CSV row anyway
MAX_RECORD_CHARS = 512

# Reasons a lead is not on the list; stable names that operators and `syncd skipped` rely on.
REASONS = ("invalid_id", "malformed", "deleted", "converted", "do_not_call", "status", "no_phone",
           "invalid_phone", "too_long")


@dataclass(frozen=True)
class Rules:
    eligible_statuses: frozenset[str]
    phone_fields: tuple[str, ...] = ("MobilePhone", "Phone")
    default_region: str = "US"

    @property
    def country_code(self) -> int:
        return _country_code(self.default_region)


@functools.cache
def _country_code(region: str) -> int:
    return int(phonenumbers.country_code_for_region(region))


@dataclass(frozen=True, slots=True)
class Contact:
    external_id: str
    phone: str
    phone_type: str  # MOBILE | WORK
    first_name: str
    last_name: str
    company: str
    email: str
    status: str
    city: str
    state: str
    zip: str

    def canonical(self) -> str:
        # Sorted-key JSON of the fields: the dict is built in sorted order, and one encoder is reused
        # (json.dumps with options builds an encoder per call; dataclasses.asdict deep-copies).
        return _CANONICAL.encode(dict(zip(_SORTED_FIELDS, _sorted_values(self), strict=True)))

    def content_hash(self) -> bytes:
        return hashlib.blake2b(self.canonical().encode("utf-8"), digest_size=16).digest()

    @classmethod
    def from_json(cls, text: str) -> Contact:
        return cls(**json.loads(text))


_SORTED_FIELDS = tuple(sorted(f.name for f in fields(Contact)))
_sorted_values = operator.attrgetter(*_SORTED_FIELDS)
_CANONICAL = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Skip:
    lead_id: str
    reason: str
    detail: str = ""


class _Malformed(Exception):
    pass


def clean_text(value: Any, field: str) -> str:
    """Free text: NFC, control characters dropped, whitespace folded, formulas neutralised."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Malformed(f"{field} is {type(value).__name__}, not text")
    if len(value) > MAX_FIELD_CHARS:
        raise _Malformed(f"{field} is longer than {MAX_FIELD_CHARS} characters")
    text = value if unicodedata.is_normalized("NFC", value) else unicodedata.normalize("NFC", value)
    if not text.isprintable():  # the per-character scan only for text that has something to drop
        text = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c
                       for c in text if unicodedata.category(c) != "Cf" or c in "\u200d")
    text = " ".join(text.split())
    if text.startswith(FORMULA_LEAD):
        # A spreadsheet opening the list must not run it: prefix a quote (OWASP CSV injection).
        text = "'" + text
    return text


def _flag(record: Mapping[str, Any], field: str) -> bool:
    value = record.get(field)
    if value is None or value is False:
        return False
    if value is True:
        return True
    raise _Malformed(f"{field} is not a boolean")


def normalise_email(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    email = value.strip()
    if len(email) > 254 or not EMAIL.match(email):
        return ""  # an unusable address does not make a lead uncallable
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}"


def parse_phone(raw: str, rules: Rules) -> phonenumbers.PhoneNumber | None:
    """``phonenumbers.parse`` with a fast path for plain North American numbers.

    Parsing is most of a lead's CPU; for a NANP default region, a string that is only a 10-digit
    number in the usual punctuation (optionally after ``+1`` or ``1``) parses to exactly this
    (tests/test_transform.py proves it against phonenumbers). Validity is always phonenumbers' call.
    """
    if rules.country_code == 1:
        m = NANP_PLAIN.match(raw)
        if m:
            digits = "".join(g for g in m.groups() if g)
            return phonenumbers.PhoneNumber(country_code=1, national_number=int(digits))
    try:
        return phonenumbers.parse(raw[:64], rules.default_region)
    except phonenumbers.NumberParseException:
        return None


def normalise_phone(record: Mapping[str, Any], rules: Rules) -> tuple[str, str] | str:
    """(E.164, type) from the first valid configured field, else the skip reason."""
    seen_any = False
    for field in rules.phone_fields:
        raw = record.get(field)
        if not isinstance(raw, str) or not raw.strip():
            continue
        seen_any = True
        number = parse_phone(raw, rules)
        if number is None:
            continue
        # Checking the default region first is the same answer, without scanning every region of the
        # country code (+1 has two dozen); only numbers from elsewhere pay for the full check.
        if (number.country_code == rules.country_code
                and phonenumbers.is_valid_number_for_region(number, rules.default_region)) \
                or phonenumbers.is_valid_number(number):
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            return e164, "MOBILE" if field == "MobilePhone" else "WORK"
    return "invalid_phone" if seen_any else "no_phone"


def malformed_key(record: Any) -> str:
    """A stable audit key for a record whose Id cannot be used."""
    raw = json.dumps(record, sort_keys=True, default=repr, ensure_ascii=True)
    return "invalid:" + hashlib.blake2b(raw.encode(), digest_size=8).hexdigest()


def transform(record: Any, rules: Rules) -> Contact | Skip:
    if not isinstance(record, Mapping):
        return Skip(malformed_key(record), "invalid_id", "record is not an object")
    lead_id = record.get("Id")
    if not isinstance(lead_id, str) or not SF_ID.match(lead_id):
        return Skip(malformed_key(record), "invalid_id", "Id is missing or not a Salesforce id")
    try:
        if _flag(record, "IsDeleted"):
            return Skip(lead_id, "deleted")
        if _flag(record, "IsConverted"):
            return Skip(lead_id, "converted")
        if _flag(record, "DoNotCall"):
            return Skip(lead_id, "do_not_call")
        status = clean_text(record.get("Status"), "Status")
        if status not in rules.eligible_statuses:
            return Skip(lead_id, "status", status[:80])
        phone = normalise_phone(record, rules)
        if isinstance(phone, str):
            return Skip(lead_id, phone)
        return Contact(
            external_id=lead_id,
            phone=phone[0],
            phone_type=phone[1],
            first_name=clean_text(record.get("FirstName"), "FirstName"),
            last_name=clean_text(record.get("LastName"), "LastName"),
            company=clean_text(record.get("Company"), "Company"),
            email=normalise_email(record.get("Email")),
            status=status,
            city=clean_text(record.get("City"), "City"),
            state=clean_text(record.get("State"), "State"),
            zip=clean_text(record.get("PostalCode"), "PostalCode"),
        )
    except _Malformed as e:
        return Skip(lead_id, "malformed", str(e))


# -- rendering for the sinks --------------------------------------------------------------------------
def csv_values(contact: Contact) -> list[str]:
    """Values in the order of ``config.CSV_COLUMNS``."""
    c = contact
    return [c.external_id, c.phone, c.first_name, c.last_name, c.company, c.email, c.status, c.city,
            c.state, c.zip]


def csv_line(values: Sequence[str]) -> str:
    """One CSV record (RFC 4180 quoting, as ``csv.writer`` does it) without its line terminator."""
    if len(values) > 1 and not any(c in v for v in values for c in _CSV_SPECIAL):
        return ",".join(values)  # nothing to quote: the common case, without a writer per row
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(values)
    return buf.getvalue()


_CSV_SPECIAL = (",", '"', "\r", "\n")


def batch_contact(contact: Contact) -> dict[str, Any]:
    """The contacts-batch API's contact object."""
    c = contact
    name = " ".join(p for p in (c.first_name, c.last_name) if p) or c.company or c.external_id
    attrs = {"sf_status": c.status, "sf_source": "Lead", "company": c.company, "city": c.city,
             "state": c.state, "zip": c.zip}
    return {
        "external_id": c.external_id,
        "name": name,
        "phone_numbers": [{"number": c.phone, "type": c.phone_type, "primary": True}],
        "email_addresses": [{"email": c.email, "primary": True}] if c.email else [],
        "custom_attributes": attrs,
    }
