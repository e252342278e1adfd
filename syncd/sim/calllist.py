"""A simulated calling list: its records as CXone keeps them, under every UNVERIFIED reading.

API-CONTRACTS.md (section 2, "UNVERIFIED behaviours") leaves open what ``forceOverwrite`` does, what
``removeProspects`` does to an uploaded list, and whether a removed record comes back when it is
uploaded again. :class:`Readings` holds one answer to each; the list behaves by it, and
:func:`callable_set` says which records a dialer would call (on the list, active, not expired, not
finalized, not removed, their number in no DNC group that scrubs the record's skill).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

OVERWRITE = ("upsert", "replace")
REMOVAL = ("removes", "fails", "noop")
READD = ("reactivates", "stays-removed")


@dataclass
class Readings:
    overwrite: str = "upsert"  # forceOverwrite: upsert by ExternalId, or replace the whole list
    removal: str = "removes"  # removeProspects: removes, fails every id, or answers success and does nothing
    readd: str = "reactivates"  # uploading a removed record again: reactivates it, or it stays removed

    def set(self, name: str, value: str) -> None:
        allowed = {"overwrite": OVERWRITE, "removal": REMOVAL, "readd": READD}[name]
        if value not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        setattr(self, name, value)


@dataclass
class Record:
    row: dict[str, str]
    skill: int
    expiration: str = ""  # as uploaded
    expires: datetime | None = None  # the moment it stops being dialled
    removed: bool = False
    final: str = ""  # icFinalStatus: set when CXone's system finalized the record
    attempts: int = 0


def expiry_moment(text: str) -> datetime | None:
    """When a record with this ``expirationDate`` stops being dialled: a date lasts to its end (UTC)."""
    if not text:
        return None
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text) + timedelta(days=1), datetime.min.time(), timezone.utc)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass
class CallList:
    list_id: int
    name: str
    columns: list[str]  # the list's mapping: which CSV column names it expects, in canonical order
    records: dict[str, Record] = field(default_factory=dict)
    invalid: int = 0

    def apply(self, rows: list[dict[str, str]], skill: int, expiration: str, readings: Readings) -> None:
        """A completed upload job's effect on the list."""
        moment = expiry_moment(expiration)
        if readings.overwrite == "replace":
            kept = self.records
            self.records = {}
        else:
            kept = self.records
        for row in rows:
            old = kept.get(row["ExternalId"])
            removed = old is not None and old.removed and readings.readd == "stays-removed"
            self.records[row["ExternalId"]] = Record(row, skill, expiration, moment, removed=removed)

    def remove(self, ext: str, readings: Readings) -> str:
        """removeProspects for one id: 'removed', 'failed' or 'missing' (what the answer says)."""
        record = self.records.get(ext)
        if record is None:
            return "missing"
        if readings.removal == "fails":
            return "failed"
        if readings.removal == "removes":
            record.removed = True
        return "removed"

    def is_callable(self, record: Record, now: datetime, blocked: Callable[[str, int], bool]) -> bool:
        return (not record.removed and not record.final and (record.expires is None or now < record.expires)
                and not blocked(record.row.get("PhoneNumber", ""), record.skill))

    def callable_set(self, now: datetime, blocked: Callable[[str, int], bool]) -> dict[str, Record]:
        return {ext: r for ext, r in self.records.items() if self.is_callable(r, now, blocked)}

    def summary(self, now: datetime) -> dict[str, object]:
        n = len(self.records)
        final = sum(1 for r in self.records.values() if r.final)
        return {"listId": self.list_id, "listName": self.name, "status": "Active",
                "totalRecords": n + self.invalid, "validRecords": n, "invalidRecords": self.invalid,
                "finalizedRecords": final, "listExpirationDate": None}

    def view(self, ext: str, record: Record, now: datetime) -> dict[str, object]:
        """One record as ``includeRecords=true`` shows it."""
        active = not record.removed and not record.final and (record.expires is None or now < record.expires)
        view: dict[str, object] = {
            "externalId": ext, "expirationDate": record.expiration or None,
            "icProspectiveContactExpireDate": record.expiration or None, "icFinalStatus": record.final or None,
            "icAttempts": record.attempts, "icSourceActive": active, "icSourceRemoved": record.removed,
            "destinations": [{"formattedDestination": record.row.get("PhoneNumber", ""), "description": "PhoneNumber",
                              "compliance": "", "maxAttempts": 3}]}
        for key, value in record.row.items():
            if key not in ("ExternalId", "PhoneNumber"):
                view[key] = value
        return view

    def download(self, now: datetime, lock: object) -> Iterator[bytes]:
        """The list with its records as one JSON document, produced in pieces (a million records is
        hundreds of MB: the simulator never builds it whole)."""
        head = json.dumps({"resultSet": {**self.summary(now), "contactRecords": []}})
        yield head[: head.rindex("[") + 1].encode()
        items = list(self.records.items())  # a snapshot of the references, taken under the caller's lock
        for start in range(0, len(items), 2000):
            part = ",".join(json.dumps(self.view(ext, rec, now)) for ext, rec in items[start:start + 2000])
            yield (("," if start else "") + part).encode()
        yield b"]}}"
