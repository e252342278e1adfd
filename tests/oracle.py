"""The test's own idea of what the calling list must hold, computed from the simulator's leads.

Written from the rules in DESIGN.md, independently of syncd.transform: a lead belongs on the list
when it is not deleted, not converted, not Do Not Call, has an eligible status and a phone that
phonenumbers accepts as valid (MobilePhone first, then Phone).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
             statuses: tuple[str, ...] = ELIGIBLE, scope: Callable[[dict[str, Any]], bool] | None = None,
             ) -> dict[str, str]:
    """external id → E.164 phone for every lead that must be on the list (``scope``: the test's own
    plain-Python reading of ``salesforce.where``)."""
    out = {}
    for lead in leads:
        if lead.get("IsDeleted") or lead.get("IsConverted") or lead.get("DoNotCall"):
            continue
        if lead.get("Status") not in statuses:
            continue
        if scope is not None and not scope(lead):
            continue
        phone = next((p for p in (e164(lead.get(f)) for f in fields) if p), None)
        if phone:
            out[lead["Id"]] = phone
    return out


def content(leads: Iterable[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """The raw source fields whose change must reach CXone, per lead."""
    return {lead["Id"]: tuple(lead.get(f) for f in CONTENT_FIELDS) for lead in leads}


def blocked_numbers(leads: Iterable[dict[str, Any]], fields: tuple[str, ...] = ("MobilePhone", "Phone")) -> set[str]:
    """Numbers a DNC group must block: every valid number of each lead flagged Do Not Call."""
    return {p for lead in leads if lead.get("DoNotCall") is True for p in (e164(lead.get(f)) for f in fields) if p}


def may_block(leads: Iterable[dict[str, Any]], uploads: Iterable[dict[str, Any]]) -> set[str]:
    """Numbers a DNC group may block: those it must, and the numbers each Do Not Call lead was sent to
    the list with (its record there may still carry an old one)."""
    leads = list(leads)
    dnc = {lead["Id"] for lead in leads if lead.get("DoNotCall") is True}
    sent = {phone for u in uploads for lead_id, phone in zip(u["externalIds"], u.get("phones", []), strict=False)
            if lead_id in dnc}
    return blocked_numbers(leads) | sent


def dnc_checked(leads: Iterable[dict[str, Any]], uploads: Iterable[dict[str, Any]], in_group: set[str],
                strict: bool = True) -> set[str]:
    """The DNC group's numbers (E.164), after checking they are every number that must be blocked and
    (``strict``) none that may not be; returns them for ``expected_callable``. Not strict: a Do Not Call
    lead may also have a number blocked that it had in Salesforce but that never reached the list (a
    run killed between reading its new number and sending it)."""
    leads = list(leads)
    must, may = blocked_numbers(leads), may_block(leads, uploads)
    assert must <= in_group, f"numbers of Do Not Call leads not suppressed: {sorted(must - in_group)[:5]}"
    if strict:
        assert in_group <= may, f"numbers suppressed that no Do Not Call lead needs: {sorted(in_group - may)[:5]}"
    return in_group


def expected_callable(leads: Iterable[dict[str, Any]], blocked: set[str]) -> dict[str, str]:
    """``expected``, less the leads whose number a DNC group blocks."""
    return {lead_id: phone for lead_id, phone in expected(leads).items() if phone not in blocked}
