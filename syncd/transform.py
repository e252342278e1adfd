"""Lead record → :class:`Contact` or :class:`Skip` (pure: no I/O, no clock, no globals mutated).

Any JSON value may arrive in any field; the answer is always a Contact or a Skip with a reason,
never an exception. Checks run in a fixed order so a lead's reason is stable:
deleted (or merged), converted, do-not-call, status, ``where`` (out_of_scope), then phone.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from syncd.phones import PhoneRules, phone_rules
from syncd.soql.where import Where, WhereTypeError, field_value, parse_where

if TYPE_CHECKING:
    from syncd.config import Config

EMAIL = re.compile(r"^[^@\s\"'<>(),;:\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")
FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r")
# Printable ASCII words separated by single spaces, not starting like a formula: clean already.
_PLAIN_TEXT = re.compile(r"[!-~](?<![=+\-@])[!-~]*(?: [!-~]+)*")
MAX_FIELD_CHARS = 1000  # anything longer cannot fit a 512-character CSV row anyway
MAX_RECORD_CHARS = 512

# Reasons a lead is not on the list; stable names that operators and `syncd skipped` rely on.
REASONS = ("invalid_id", "malformed", "deleted", "merged", "converted", "do_not_call", "status", "out_of_scope",
           "no_phone", "invalid_phone", "too_long")


@dataclass(frozen=True)
class Rules:
    eligible_statuses: frozenset[str]
    phone_fields: tuple[str, ...] = ("MobilePhone", "Phone")
    default_region: str = "US"
    where: Where | None = None
    extra: tuple[str, ...] = ()  # the Lead fields of the mapped extra columns, in column order

    @functools.cached_property
    def phones(self) -> PhoneRules:
        return phone_rules(self.default_region)

    @property
    def reads(self) -> tuple[str, ...]:
        """The fields beyond the base ones that the rules read: ``where``'s, then the mapped columns'."""
        return (self.where.fields if self.where else ()) + self.extra


def rules_for(config: Config) -> Rules:
    sf = config.salesforce
    return Rules(frozenset(sf.eligible_statuses), tuple(sf.phone_fields), sf.default_region, parse_where(sf.where),
                 tuple(config.mapped_fields.values()))


class Contact(NamedTuple):
    """A callable lead. Immutable; a NamedTuple because a million are built per initial sync."""

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
    extra: tuple[str, ...] = ()  # the mapped extra columns' values, cleaned like the rest


class Skip(NamedTuple):
    """A lead that is not callable, and why. A NamedTuple like Contact: nearly half of an org is one."""

    lead_id: str
    reason: str
    detail: str = ""


class _Malformed(Exception):
    pass


def clean_text(value: Any, field: str) -> str:
    """Free text: NFC, control characters dropped, whitespace folded, formulas neutralised."""
    if type(value) is str and len(value) <= _CACHED_CHARS:
        return _clean_cached(value)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Malformed(f"{field} is {type(value).__name__}, not text")
    if len(value) > MAX_FIELD_CHARS:
        raise _Malformed(f"{field} is longer than {MAX_FIELD_CHARS} characters")
    return _clean(str(value))


def _clean(value: str) -> str:
    if _PLAIN_TEXT.fullmatch(value):
        return value  # the common case: nothing to normalise, drop, fold or neutralise
    text = value if unicodedata.is_normalized("NFC", value) else unicodedata.normalize("NFC", value)
    if not text.isprintable():  # the per-character scan only for text that has something to drop
        # Format characters go (but the zero-width joiner inside emoji), and so do lone surrogates
        # (Cs): no UTF-8 text can hold one, so nothing downstream could encode the value.
        text = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c
                       for c in text if unicodedata.category(c) not in ("Cf", "Cs") or c == "\u200d")
    text = " ".join(text.split())
    if text.startswith(FORMULA_LEAD):
        # A spreadsheet opening the list must not run it: prefix a quote (OWASP CSV injection).
        text = "'" + text
    return text


# Statuses, states, cities, companies and first names recur across an org: a short value seen
# recently is not cleaned again. Bounded (a few MB at most), so a field with few repeats costs only
# the misses.
_CACHED_CHARS = 80
_clean_cached = functools.lru_cache(maxsize=16_384)(_clean)


# Checked in this order: the first that is set is the lead's reason.
_FLAGS = (("IsDeleted", "deleted"), ("IsConverted", "converted"), ("DoNotCall", "do_not_call"))


def extra_value(value: Any, field: str) -> str:
    """A mapped field's value as text: numbers and booleans as Salesforce writes them, text cleaned."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict):
        raise _Malformed(f"{field} is a related record, not a field")
    return clean_text(value, field)


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
    if len(email) > 254 or not EMAIL.match(email) or email.startswith(FORMULA_LEAD) or not email.isprintable():
        # An unusable address does not make a lead uncallable. One that starts like a spreadsheet
        # formula (OWASP CSV injection) or holds what no UTF-8 text can (a lone surrogate) is unusable.
        return ""
    if email.islower():
        return email  # no capital anywhere, so none in the domain either
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}"


def normalise_phone(record: Mapping[str, Any], rules: Rules) -> tuple[str, str] | str:
    """(E.164, type) from the first valid configured field, else the skip reason."""
    phones = rules.phones
    seen_any = False
    for field in rules.phone_fields:
        raw = record.get(field)
        if not isinstance(raw, str) or not raw.strip():
            continue
        seen_any = True
        e164 = phones.e164(raw)
        if e164 is not None:
            return e164, "MOBILE" if field == "MobilePhone" else "WORK"
    return "invalid_phone" if seen_any else "no_phone"


def dnc_numbers(record: Any, rules: Rules) -> tuple[str, ...]:
    """Every valid number of a lead flagged Do Not Call (what suppression must block); () otherwise."""
    if not isinstance(record, Mapping) or record.get("DoNotCall") is not True:
        return ()
    found = []
    for field in rules.phone_fields:
        raw = record.get(field)
        if isinstance(raw, str) and raw.strip() and len(raw) <= MAX_FIELD_CHARS:
            e164 = rules.phones.e164(raw)
            if e164 is not None and e164 not in found:
                found.append(e164)
    return tuple(found)


def malformed_key(record: Any) -> str:
    """A stable audit key for a record whose Id cannot be used."""
    raw = json.dumps(record, sort_keys=True, default=repr, ensure_ascii=True)
    return "invalid:" + hashlib.blake2b(raw.encode(), digest_size=8).hexdigest()


def transform(record: Any, rules: Rules) -> Contact | Skip:
    if type(record) is not dict and not isinstance(record, Mapping):
        return Skip(malformed_key(record), "invalid_id", "record is not an object")
    lead_id = record.get("Id")
    # A Salesforce id: 15 or 18 ASCII letters and digits.
    if not isinstance(lead_id, str) or len(lead_id) not in (15, 18) or not (lead_id.isascii() and lead_id.isalnum()):
        return Skip(malformed_key(record), "invalid_id", "Id is missing or not a Salesforce id")
    try:
        deleted, converted, dnc = record.get("IsDeleted"), record.get("IsConverted"), record.get("DoNotCall")
        if not ((deleted is False or deleted is None) and (converted is False or converted is None)
                and (dnc is False or dnc is None)):  # the common case (all unset) without three calls
            for field, reason in _FLAGS:
                if _flag(record, field):
                    master = record.get("MasterRecordId") if reason == "deleted" else None
                    if isinstance(master, str) and master:
                        return Skip(lead_id, "merged", f"into {master[:18]}")
                    return Skip(lead_id, reason)
        status = clean_text(record.get("Status"), "Status")
        if status not in rules.eligible_statuses:
            return Skip(lead_id, "status", status[:80])
        if rules.where is not None and not rules.where(record):
            return Skip(lead_id, "out_of_scope")
        phone = normalise_phone(record, rules)
        if isinstance(phone, str):
            return Skip(lead_id, phone)
        extra = tuple(extra_value(field_value(record, f), f) for f in rules.extra) if rules.extra else ()
        return Contact(  # by position, in Contact's field order (keywords cost a dict per lead)
            lead_id,
            phone[0],
            phone[1],
            clean_text(record.get("FirstName"), "FirstName"),
            clean_text(record.get("LastName"), "LastName"),
            clean_text(record.get("Company"), "Company"),
            normalise_email(record.get("Email")),
            status,
            clean_text(record.get("City"), "City"),
            clean_text(record.get("State"), "State"),
            clean_text(record.get("PostalCode"), "PostalCode"),
            extra,
        )
    except _Malformed as e:
        return Skip(lead_id, "malformed", str(e))
    except WhereTypeError as e:
        return Skip(lead_id, "malformed", str(e)[:200])
