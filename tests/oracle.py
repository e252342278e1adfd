"""The test's own idea of what the calling list must hold, computed from the simulator's leads.

Written from the rules in DESIGN.md, independently of syncd.transform: a lead belongs on the list
when it is not deleted, not converted, not Do Not Call, has an eligible status and a phone that
phonenumbers accepts as valid (MobilePhone first, then Phone).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import phonenumbers

ELIGIBLE = ("Open - Not Contacted", "Working - Contacted")
CONTENT_FIELDS = ("FirstName", "LastName", "Company", "Email", "Status", "City", "State", "PostalCode",
                  "MobilePhone", "Phone")


def e164(raw: Any, region: str = "US") -> str | None:
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def expected(leads: Iterable[dict[str, Any]], fields: tuple[str, ...] = ("MobilePhone", "Phone"),
             statuses: tuple[str, ...] = ELIGIBLE) -> dict[str, str]:
    """external id → E.164 phone for every lead that must be on the list."""
    out = {}
    for lead in leads:
        if lead.get("IsDeleted") or lead.get("IsConverted") or lead.get("DoNotCall"):
            continue
        if lead.get("Status") not in statuses:
            continue
        phone = next((p for p in (e164(lead.get(f)) for f in fields) if p), None)
        if phone:
            out[lead["Id"]] = phone
    return out


def content(leads: Iterable[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """The raw source fields whose change must reach CXone, per lead."""
    return {lead["Id"]: tuple(lead.get(f) for f in CONTENT_FIELDS) for lead in leads}
