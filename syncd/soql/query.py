"""SOQL text for the extraction window, built only from validated configuration (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

from syncd.config import SF_IDENTIFIER

# What a dialer needs, plus what decides eligibility and the window position.
BASE_FIELDS = (
    "Id", "FirstName", "LastName", "Company", "Email", "Status", "IsConverted", "DoNotCall",
    "IsDeleted", "City", "State", "PostalCode", "Country", "SystemModstamp",
)


def literal_datetime(value: datetime) -> str:
    """A SOQL datetime literal: unquoted UTC, whole seconds (SOQL compares at that grain)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime in a SOQL literal")
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def literal_string(value: str) -> str:
    """A quoted SOQL string literal with the escapes Salesforce defines."""
    escaped = (value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return f"'{escaped}'"


def select_fields(phone_fields: Iterable[str]) -> list[str]:
    fields = list(BASE_FIELDS)
    for name in phone_fields:
        if not SF_IDENTIFIER.match(name):
            raise ValueError(f"{name!r} is not a Salesforce field name")
        if name not in fields:
            fields.insert(1, name)
    return fields


def window_query(
    fields: Iterable[str],
    start: datetime | None,
    end: datetime,
    where: str = "",
    after: tuple[datetime, str] | None = None,
) -> str:
    """``SELECT .. FROM Lead`` for ``start <= SystemModstamp < end`` in a stable order.

    ``start`` is None only on the very first run (the whole org). ``after`` resumes a window past
    the last (SystemModstamp, Id) committed, in the query's own order, so a re-query never returns
    rows already read, even when more rows share one second than fit on a page. Eligibility is
    deliberately not part of the filter: a lead that stops being eligible must still be read to be removed.
    """
    conds = []
    if after is not None:
        ts, lead_id = literal_datetime(after[0]), literal_string(after[1])
        conds.append(f"(SystemModstamp > {ts} OR (SystemModstamp = {ts} AND Id > {lead_id}))")
    elif start is not None:
        conds.append(f"SystemModstamp >= {literal_datetime(start)}")
    conds.append(f"SystemModstamp < {literal_datetime(end)}")
    if where.strip():
        conds.append(f"({where.strip()})")
    # Every piece is a validated identifier, a formatted literal, or the operator's trusted `where`.
    return (f"SELECT {', '.join(fields)} FROM Lead WHERE {' AND '.join(conds)} "  # noqa: S608
            "ORDER BY SystemModstamp ASC, Id ASC")
