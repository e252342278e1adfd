"""Salesforce Bulk API 2.0 query jobs: make one, wait for it, and read its results chunk by chunk.

A chunk comes as CSV text (``maxRecords`` rows at most, ``Sforce-Locator`` naming the next one); it is
parsed page by page into records shaped as the REST API returns them, so the rest of syncd cannot
tell the two apart and a lead hashes the same whichever API read it:

- an empty value is null; ``true``/``false`` are booleans for boolean fields; numbers are numbers for
  the numeric ones (types from ``describe``, with the base fields' types known beforehand); a datetime
  in the ``Z`` form is written as REST writes it (``...000+0000``);
- ``Owner.Name`` columns become a nested ``Owner`` record.

A value that does not parse as its type stays text, and the transform audits the lead as malformed,
as it would a REST record of the wrong shape. Results are validated whole: the header must be the
columns asked for, every row as wide, and the row count what ``Sforce-NumberOfRecords`` says.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from syncd.errors import BulkJobLost, ProtocolError
from syncd.http import json_object, path_of

if TYPE_CHECKING:
    from syncd.salesforce.client import SalesforceClient

REMOTE = "salesforce"
# Rows asked per results call: ~12 MB of CSV for syncd's columns, two of which (one read ahead) stay
# well inside the memory budget; a million leads take 20 calls instead of 500 REST pages.
CHUNK_RECORDS = 50_000
# Waits between polls of a job's state, then the last one repeated: close at first (a job of a few
# thousand rows completes in seconds), a poll every 10 s for the long ones.
POLL_WAITS = (0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 2.0, 2.0, 4.0, 8.0, 10.0)
# Types of the base fields when describe does not say (it always should).
BASE_TYPES = {"IsConverted": "boolean", "DoNotCall": "boolean", "IsDeleted": "boolean", "HasOptedOutOfEmail": "boolean",
              "SystemModstamp": "datetime", "CreatedDate": "datetime", "LastModifiedDate": "datetime"}
NUMBERS = {"double": float, "currency": float, "percent": float, "int": int, "long": int}


def _boolean(text: str) -> Any:
    return True if text == "true" else False if text == "false" else text


def _datetime(text: str) -> str:
    return text[:-1] + "+0000" if text.endswith("Z") else text


def converter(kind: str) -> Callable[[str], Any] | None:
    """How a non-empty CSV value of this describe type becomes its REST value (None: it stays text)."""
    if kind == "boolean":
        return _boolean
    if kind == "datetime":
        return _datetime
    number = NUMBERS.get(kind)
    if number is None:
        return None

    def parse(text: str) -> Any:
        try:
            return number(text)
        except ValueError:
            return text
    return parse


@dataclass(frozen=True)
class Job:
    id: str
    version: str  # the API version the job was made with: its results are read with the same one


@dataclass
class Chunk:
    """One results call: its CSV body (UTF-8 bytes, decoded as it is parsed: a str or a StringIO of it
    would hold it again, up to four bytes a character), the next chunk's locator (None: the last), its
    row count."""
    body: bytes
    next_locator: str | None
    count: int | None
    path: str
    fetched_at: datetime

    def pages(self, fields: list[str], types: dict[str, str], size: int) -> Iterator[list[dict[str, Any]]]:
        """The chunk's rows as REST-shaped records, ``size`` at a time (parsed as they are asked for)."""
        reader = csv.reader(io.TextIOWrapper(io.BytesIO(self.body), encoding="utf-8", newline=""), strict=True)
        try:
            header = next(reader, None)
            if header is None or [h.lower() for h in header] != [f.lower() for f in fields]:
                raise self._bad("the Bulk results' columns are not the ones asked for")
            convert = [(f, c) for f in fields
                       if "." not in f and (c := converter(types.get(f.lower(), ""))) is not None]
            related = [(f, *f.split(".", 1)) for f in fields if "." in f]
            width, seen, page = len(fields), 0, []
            for row in reader:
                if len(row) != width:
                    raise self._bad(f"a Bulk results row has {len(row)} values for {width} columns")
                rec: dict[str, Any] = {f: v or None for f, v in zip(fields, row, strict=True)}
                for f, conv in convert:
                    v = rec[f]
                    if v is not None:
                        rec[f] = conv(v)
                for f, rel, sub in related:
                    v = rec.pop(f)
                    nested = rec.get(rel)
                    if v is not None:
                        rec[rel] = {**(nested or {}), sub: v}
                    elif rel not in rec:
                        rec[rel] = None
                page.append(rec)
                seen += 1
                if len(page) >= size:
                    yield page
                    page = []
            if self.count is not None and seen != self.count:
                raise self._bad(f"the Bulk results chunk holds {seen:,} rows where Sforce-NumberOfRecords says "
                                f"{self.count:,}")
            if page:
                yield page
        except csv.Error as e:
            raise self._bad(f"the Bulk results are not well-formed CSV ({e})") from None
        except UnicodeDecodeError:
            raise self._bad("the Bulk results are not UTF-8") from None

    def _bad(self, message: str) -> ProtocolError:
        return ProtocolError(message, remote=REMOTE, method="GET", path=self.path)


class BulkQueries:
    """The Bulk API 2.0 calls, on a client's session (authentication, retries, usage, errors)."""

    def __init__(self, sf: SalesforceClient) -> None:
        self.sf = sf
        self._types: dict[str, str] | None = None

    def types(self) -> dict[str, str]:
        """Field name (lower case) -> describe type, read once per process."""
        if self._types is None:
            types = {k.lower(): v for k, v in BASE_TYPES.items()}
            types.update({name: str(f.get("type", "")) for name, f in self.sf.describe_lead().items()
                          if not name.endswith(".")})
            self._types = types
        return self._types

    def create(self, soql: str) -> Job:
        version = self.sf.cfg.api_version
        resp = self.sf._call("POST", f"/services/data/v{version}/jobs/query", None,
                             {"operation": "queryAll", "query": soql, "contentType": "CSV",
                              "columnDelimiter": "COMMA", "lineEnding": "LF"})
        body = json_object(resp, REMOTE, "id")
        job_id = body["id"]
        if not isinstance(job_id, str) or not job_id.isalnum() or len(job_id) > 40:
            raise ProtocolError("the Bulk job id is not an id", remote=REMOTE, method="POST",
                                path=path_of(resp.request.url or ""))
        return Job(job_id, version)

    def state(self, job: Job) -> tuple[str, int | None]:
        """The job's state and, once complete, how many records it holds; Failed/Aborted raise BulkJobLost."""
        resp = self.sf._get(f"/services/data/v{job.version}/jobs/query/{job.id}")
        body = json_object(resp, REMOTE, "state")
        state = str(body["state"])
        if state in ("Failed", "Aborted"):
            reason = str(body.get("errorMessage") or "no reason given")[:200]
            raise BulkJobLost(f"the Bulk API job {job.id} ended {state}: {reason}", remote=REMOTE, method="GET",
                              path=path_of(resp.request.url or ""))
        count = body.get("numberRecordsProcessed")
        return state, count if isinstance(count, int) else None

    def chunk(self, job: Job, locator: str | None) -> Chunk:
        params = {"maxRecords": str(CHUNK_RECORDS)}
        if locator:
            params["locator"] = locator
        resp = self.sf._get(f"/services/data/v{job.version}/jobs/query/{job.id}/results", params)
        path = path_of(resp.request.url or "")
        nxt = resp.headers.get("Sforce-Locator")
        if nxt is None:
            raise ProtocolError("the Bulk results name no Sforce-Locator (the next chunk, or null)", remote=REMOTE,
                                method="GET", path=path)
        if nxt != "null" and (not nxt or len(nxt) > 200 or not nxt.isprintable()):
            raise ProtocolError("the Bulk results' Sforce-Locator is not a locator", remote=REMOTE, method="GET",
                                path=path)
        number = resp.headers.get("Sforce-NumberOfRecords", "")
        return Chunk(resp.content, None if nxt == "null" else nxt, int(number) if number.isdigit() else None, path,
                     self.sf.now())
