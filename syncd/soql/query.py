"""SOQL text for the extraction window, built only from validated configuration (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

from syncd.config import SF_IDENTIFIER

# What a dialer needs, plus what decides eligibility and the window position.
BASE_FIELDS = (
    "Id", "FirstName", "LastName", "Company", "Email", "Status", "IsConverted", "DoNotCall",
    "IsDeleted", "MasterRecordId", "City", "State", "PostalCode", "Country", "SystemModstamp",
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


def select_fields(phone_fields: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """The SELECT list: the base fields, the phone fields, then what ``where`` and the mapped columns
    read (``Owner.Name`` included), each once whatever its case."""
    fields = list(BASE_FIELDS)
    for name in phone_fields:
        if not SF_IDENTIFIER.match(name):
            raise ValueError(f"{name!r} is not a Salesforce field name")
        if name not in fields:
            fields.insert(1, name)
    have = {f.lower() for f in fields}
    for name in extra:
        if not all(SF_IDENTIFIER.match(part) for part in name.split(".")) or name.count(".") > 1:
            raise ValueError(f"{name!r} is not a Salesforce field name")
        if name.lower() not in have:
            fields.append(name)
            have.add(name.lower())
    return fields


def window_query(
    fields: Iterable[str],
    start: datetime | None,
    end: datetime,
    after: tuple[datetime, str] | None = None,
    ordered: bool = True,
) -> str:
    """``SELECT .. FROM Lead`` for ``start <= SystemModstamp < end`` in a stable order.

    ``start`` is None on a full read of the org. ``after`` resumes a window past the last
    (SystemModstamp, Id) committed, in the query's own order, so a re-query never returns rows
    already read, even when more rows share one second than fit on a page. Nothing that decides
    eligibility is in the filter, ``salesforce.where`` included: a lead that stops being eligible
    must still be read, to be removed (syncd evaluates ``where`` itself, syncd/soql/where.py).
    ``ordered`` False drops the ORDER BY: a Bulk API job reads a set (ORDER BY disables its PK
    chunking and can time the job out), its position being the job and its results locator.
    """
    conds = []
    if after is not None:
        ts, lead_id = literal_datetime(after[0]), literal_string(after[1])
        conds.append(f"(SystemModstamp > {ts} OR (SystemModstamp = {ts} AND Id > {lead_id}))")
    elif start is not None:
        conds.append(f"SystemModstamp >= {literal_datetime(start)}")
    conds.append(f"SystemModstamp < {literal_datetime(end)}")
    # Every piece is a validated identifier or a formatted literal.
    order = " ORDER BY SystemModstamp ASC, Id ASC" if ordered else ""
    return f"SELECT {', '.join(fields)} FROM Lead WHERE {' AND '.join(conds)}{order}"  # noqa: S608
