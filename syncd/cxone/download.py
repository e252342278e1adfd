"""Reading a calling list back: ``GET lists/call-lists/{id}?includeRecords=true``, streamed.

A list of a million records is hundreds of MB of JSON: it is parsed as it arrives (ijson, a
streaming JSON parser with a C backend), each record reduced at once to what verification compares
(id, number, state, expiration day), so memory stays flat in the list's size. The download is bounded
as a whole by ``deadline`` (a remote trickling bytes must not hold a run for ever).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any, NamedTuple

import ijson
import requests
import urllib3

from syncd.errors import AnswerCut, ProtocolError, RemoteUnavailable

REMOTE = "cxone"
PATH = "lists/call-lists"


class ListRecord(NamedTuple):
    external_id: str
    phone: str  # digits only, as CXone formatted it
    state: str  # active | expired | removed | finalized
    expires_on: str | None  # the last day it is dialled (YYYY-MM-DD), when it has an expiration


def last_day(text: Any) -> tuple[datetime, str] | None:
    """An ``expirationDate`` as (the moment it stops, its last day): a date lasts to its end (UTC)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1), datetime.min.time(), timezone.utc), text
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return moment, (moment - timedelta(microseconds=1)).date().isoformat()


def classify(item: Any, now: datetime) -> ListRecord | None:
    """One ``contactRecords`` entry; None for an entry without an external id (not syncd's)."""
    if not isinstance(item, dict):
        return None
    ext = item.get("externalId")
    if not isinstance(ext, str | int) or isinstance(ext, bool) or str(ext) == "":
        return None
    destinations = item.get("destinations")
    first = destinations[0] if isinstance(destinations, list) and destinations else {}
    raw = first.get("formattedDestination") if isinstance(first, dict) else None
    phone = "".join(c for c in raw if c.isdigit()) if isinstance(raw, str) else ""
    expiry = last_day(item.get("expirationDate") or item.get("icProspectiveContactExpireDate"))
    if item.get("icSourceRemoved") is True:
        state = "removed"
    elif item.get("icFinalStatus"):
        state = "finalized"
    elif expiry is not None and now >= expiry[0]:
        state = "expired"
    elif item.get("icSourceActive") is False:
        state = "finalized"  # inactive for a reason CXone does not name: not being dialled
    else:
        state = "active"
    return ListRecord(str(ext), phone, state, expiry[1] if expiry else None)


class _Bounded:
    """A file-like view of a streamed answer that fails once ``deadline`` (monotonic) passes."""

    def __init__(self, resp: requests.Response, deadline: float) -> None:
        self.resp = resp
        self.deadline = deadline

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""  # ijson asks for nothing first, to learn whether the stream holds bytes or text
        if time.monotonic() > self.deadline:
            raise TimeoutError
        return bytes(self.resp.raw.read1(size if size > 0 else 1 << 20, decode_content=True))


def records(resp: requests.Response, now: datetime, deadline: float) -> Iterator[ListRecord]:
    """The records of a streamed list answer, as they arrive."""
    kw: dict[str, Any] = {"remote": REMOTE, "method": "GET", "path": PATH, "status": resp.status_code}
    try:
        for item in ijson.items(_Bounded(resp, deadline), "resultSet.contactRecords.item", use_float=True):
            found = classify(item, now)
            if found is not None:
                yield found
    except TimeoutError:
        raise RemoteUnavailable("the list download did not finish within job_timeout_seconds", **kw) from None
    except ijson.JSONError as e:
        raise ProtocolError("the list download is not the documented JSON", **kw) from e
    except (urllib3.exceptions.HTTPError, OSError, requests.exceptions.RequestException) as e:
        raise AnswerCut("the list download broke off before its end", **kw) from e
    finally:
        resp.close()
