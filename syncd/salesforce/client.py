"""Salesforce REST: window query pages, locator resume, API usage, errors as Salesforce sends them."""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import requests

from syncd.errors import (
    ApiLimitReached,
    BulkJobLost,
    ConcurrentLimit,
    LocatorExpired,
    ProtocolError,
    QueryTimeout,
    RemoteRejected,
    SessionExpired,
)
from syncd.http import json_object, path_of, raise_for_status, send
from syncd.salesforce.auth import REMOTE, SalesforceAuth
from syncd.salesforce.bulk import BulkQueries

log = logging.getLogger(__name__)
USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
# A page holds at most 2,000 records (API-CONTRACTS.md); more is a broken or hostile answer.
MAX_PAGE_RECORDS = 2000
# Errors a repeat cannot cure: the query or the configuration is wrong.
QUERY_ERRORS = frozenset({"MALFORMED_QUERY", "INVALID_FIELD", "INVALID_TYPE", "INVALID_QUERY_FILTER_OPERATOR"})
# ConcurrentRequests: waits before the repeats of a call (seconds), then the run ends transient.
CONCURRENT_BACKOFF = (2.0, 8.0, 30.0)
# Ids per `Id IN (..)` query: 18-character ids quoted keep the URL well under 16 KB.
IDS_PER_QUERY = 300
# sobjects/Lead/deleted: at most this span per call (a day of a busy org's deletions stays far below
# the 600,000 ids an answer may hold; EXCEEDED_ID_LIMIT halves it).
DELETED_SPAN = timedelta(days=1)


@dataclass(frozen=True)
class Deleted:
    ids: dict[str, datetime]  # id -> deletedDate
    earliest: datetime | None  # earliestDateAvailable: the delete log starts here


@dataclass(frozen=True)
class Page:
    records: list[dict[str, Any]]
    next_url: str | None
    total_size: int
    fetched_at: datetime


# The top-level nextRecordsUrl of a page, found in the first or last bytes of its body (Salesforce writes
# it before the records; at the end is the other order a JSON writer may use). Inside a JSON string a
# quote is escaped, so this text can only be a key; one of a nested object (a subquery's) is caught by
# the comparison with the parsed page (``Fetched.peeked``).
_NEXT_URL = re.compile(rb'"nextRecordsUrl"\s*:\s*"(/services/data/[!#-\[\]-~]{1,500})"')
_PEEK_BYTES = 2048


def peek_next_url(body: bytes) -> str | None:
    """The next page's URL as the body's first or last bytes name it, before the body is parsed."""
    found = _NEXT_URL.search(body, 0, _PEEK_BYTES)
    if found is None and len(body) > _PEEK_BYTES:
        tail = _NEXT_URL.findall(body, len(body) - _PEEK_BYTES)
        return tail[-1].decode("ascii") if tail else None
    return found.group(1).decode("ascii") if found else None


@dataclass
class Fetched:
    """A page's answer, read whole but not parsed; ``peeked`` is its next URL as its bytes name it (a
    guess that ``Page.next_url`` confirms or not)."""

    resp: requests.Response | None
    fetched_at: datetime
    peeked: str | None
    page: Page | None = None  # parsed already (a client whose ``next_page`` reads pages its own way)


class SalesforceClient(SalesforceAuth):
    """Queries against the org (authentication from ``SalesforceAuth``; Bulk API 2.0 jobs in ``bulk``)."""

    @functools.cached_property
    def bulk(self) -> BulkQueries:
        return BulkQueries(self)

    def _record_usage(self, resp: requests.Response) -> None:
        m = USAGE.search(resp.headers.get("Sforce-Limit-Info", ""))
        if m:
            self.api_usage = (int(m.group(1)), int(m.group(2)))

    def usage_exceeded(self) -> bool:
        if not self.api_usage or self.api_usage[1] <= 0:
            return False
        used, limit = self.api_usage
        return used * 100 >= limit * self.cfg.max_api_usage_percent

    def _raise_for(self, resp: requests.Response) -> None:
        if resp.status_code < 400:
            return
        method, path = resp.request.method or "GET", path_of(resp.request.url or "")
        code, message = "", ""
        try:
            body = resp.json()
            if isinstance(body, list) and body and isinstance(body[0], dict):
                code = str(body[0].get("errorCode", ""))[:60]
                message = str(body[0].get("message", ""))[:300]
        except ValueError:
            pass
        kw: dict[str, Any] = {"remote": REMOTE, "method": method, "path": path, "status": resp.status_code,
                              "code": code}
        if code == "INVALID_QUERY_LOCATOR":
            raise LocatorExpired("the query locator expired", **kw)
        if code == "REQUEST_LIMIT_EXCEEDED" and "concurrent" in message.lower():
            raise ConcurrentLimit("too many long-running requests at once in the org (ConcurrentRequests, not the "
                                  "daily allocation); syncd backs off and retries", **kw)
        if code == "QUERY_TIMEOUT":
            raise QueryTimeout("Salesforce timed the query out (QUERY_TIMEOUT); the window is read in parts", **kw)
        if code == "REQUEST_LIMIT_EXCEEDED":
            raise ApiLimitReached("the org's 24-hour API request allocation is spent; "
                                  "syncd will resume at the next run", **kw)
        if code in QUERY_ERRORS:
            # The message names the offending SOQL (from configuration), never lead data.
            raise RemoteRejected(f"query refused: {message} (check phone_fields, salesforce.where and the mapped "
                                 "fields; `syncd doctor` checks each against describe)", **kw)
        if "/jobs/query/" in path and resp.status_code in (404, 409):
            raise BulkJobLost("the Bulk API job or its results are gone (expired, or made with another API "
                              "version)", **kw)
        if code in ("EXCEEDED_ID_LIMIT", "INVALID_REPLICATION_DATE"):
            raise RemoteRejected(f"the delete log refused the span: {code}", **kw)
        raise_for_status(resp, REMOTE)

    def _get(self, url: str, params: dict[str, str] | None = None) -> requests.Response:
        return self._call("GET", url, params)

    def _call(self, method: str, url: str, params: dict[str, str] | None = None,
              body: dict[str, Any] | None = None) -> requests.Response:
        """A call on the instance; ConcurrentRequests is waited out (it passes), then raised as transient."""
        waits = list(CONCURRENT_BACKOFF)
        while True:
            try:
                return self._call_once(method, url, params, body)
            except ConcurrentLimit:
                if not waits:
                    raise
                wait = waits.pop(0)
                log.warning("salesforce: ConcurrentRequests limit (too many long requests in the org at once, not "
                            "the daily allocation); retrying in %.0f s", wait)
                self.sleep(wait)

    def _call_once(self, method: str, url: str, params: dict[str, str] | None,
                   body: dict[str, Any] | None) -> requests.Response:
        if self._token is None:
            self.authenticate()
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._token}",
                       "Sforce-Query-Options": f"batchSize={self.cfg.page_size}"}
            full = url if url.startswith("http") else f"{self.instance_url}{url}"
            resp = send(self.session, method, full, REMOTE, params=params, headers=headers, json=body)
            self._record_usage(resp)
            self.note_clock(resp)
            if resp.status_code == 401 and attempt == 1:
                log.info("salesforce: session expired, authenticating again")
                self.authenticate()
                continue
            self._raise_for(resp)
            return resp
        raise SessionExpired("still not authorised after authenticating again", remote=REMOTE,
                             method=method, path=path_of(url), status=401)

    def _page(self, resp: requests.Response, fetched_at: datetime | None = None) -> Page:
        body = json_object(resp, REMOTE, "records", "done")
        records = body["records"]
        if not isinstance(records, list):
            raise ProtocolError("records is not a list", remote=REMOTE, method="GET",
                                path=path_of(resp.request.url or ""))
        if len(records) > MAX_PAGE_RECORDS:
            raise ProtocolError(f"a page of {len(records):,} records is more than the {MAX_PAGE_RECORDS:,} "
                                "Salesforce sends; refused", remote=REMOTE, method="GET",
                                path=path_of(resp.request.url or ""))
        done = body["done"]
        if not isinstance(done, bool):
            raise ProtocolError("done is not a boolean", remote=REMOTE, method="GET",
                                path=path_of(resp.request.url or ""))
        nxt = body.get("nextRecordsUrl") if not done else None
        if not done and nxt is None:
            # Taking this page as the last would move the watermark past rows never read.
            raise ProtocolError("the page says more records follow (done: false) but names no nextRecordsUrl",
                                remote=REMOTE, method="GET", path=path_of(resp.request.url or ""))
        if nxt is not None and (not isinstance(nxt, str) or not nxt.startswith("/services/data/")):
            raise ProtocolError("nextRecordsUrl is not a server-relative data path", remote=REMOTE,
                                method="GET", path=path_of(resp.request.url or ""))
        total = body.get("totalSize", 0)
        return Page(records=records, next_url=nxt, total_size=total if isinstance(total, int) else 0,
                    fetched_at=fetched_at or self.now())

    def query_all(self, soql: str) -> Page:
        """First page of a ``queryAll`` (deleted and merged rows included)."""
        return self._page(self._get(f"/services/data/v{self.cfg.api_version}/queryAll", {"q": soql}))

    def next_page(self, next_url: str) -> Page:
        """Follow a server-relative ``nextRecordsUrl`` on the instance, with no parameters."""
        return self.page_of(self.fetch_next(next_url))

    def fetch_next(self, next_url: str) -> Fetched:
        """``next_page``'s call alone: the answer read whole, its next URL peeked, nothing parsed."""
        if type(self).next_page is not SalesforceClient.next_page:  # a subclass serves pages its own way
            return Fetched(None, self.now(), None, self.next_page(next_url))
        resp = self._get(next_url)
        return Fetched(resp, self.now(), peek_next_url(resp.content))

    def page_of(self, fetched: Fetched) -> Page:
        """``next_page``'s parse of an answer ``fetch_next`` read."""
        if fetched.page is not None:
            return fetched.page
        assert fetched.resp is not None
        return self._page(fetched.resp, fetched.fetched_at)

    def query_ids(self, fields: Sequence[str], ids: Sequence[str]) -> Iterator[Page]:
        """The leads with these ids (deleted and merged ones included), every page of the answer."""
        from syncd.soql import literal_string

        for i in range(0, len(ids), IDS_PER_QUERY):
            chunk = ", ".join(literal_string(x) for x in ids[i:i + IDS_PER_QUERY])
            # Fields are validated identifiers and ids quoted literals.
            page = self.query_all(f"SELECT {', '.join(fields)} FROM Lead WHERE Id IN ({chunk})")  # noqa: S608
            yield page
            while page.next_url:
                page = self.next_page(page.next_url)
                yield page

    def deleted(self, start: datetime, end: datetime) -> Deleted:
        """``sobjects/Lead/deleted`` for ``[start, end)`` in spans of at most a day, halved on EXCEEDED_ID_LIMIT."""
        from syncd.window import parse_sf_datetime

        start = min(start, end - timedelta(seconds=61))  # Salesforce wants over a minute between the two
        found: dict[str, datetime] = {}
        earliest: datetime | None = None
        span, at = DELETED_SPAN, start
        while at < end:
            upto = min(end, at + span)
            if upto - at <= timedelta(seconds=60):
                at = upto - timedelta(seconds=61)
            params = {"start": at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "end": upto.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
            try:
                resp = self._get(f"/services/data/v{self.cfg.api_version}/sobjects/Lead/deleted/", params)
            except RemoteRejected as e:
                if e.code != "EXCEEDED_ID_LIMIT" or span <= timedelta(minutes=2):
                    raise
                span /= 2
                continue
            body = json_object(resp, REMOTE, "deletedRecords")
            rows = body["deletedRecords"]
            if not isinstance(rows, list):
                raise ProtocolError("deletedRecords is not a list", remote=REMOTE, method="GET",
                                    path=path_of(resp.request.url or ""))
            for row in rows:
                lead_id, when = (row.get("id"), row.get("deletedDate")) if isinstance(row, dict) else (None, None)
                if isinstance(lead_id, str) and isinstance(when, str):
                    try:
                        found[lead_id] = parse_sf_datetime(when)
                    except ValueError:
                        found[lead_id] = upto
            first = body.get("earliestDateAvailable")
            if isinstance(first, str) and earliest is None:
                with contextlib.suppress(ValueError):
                    earliest = parse_sf_datetime(first)
            at = upto
        return Deleted(found, earliest)

    def describe_lead(self) -> dict[str, dict[str, Any]]:
        """``sobjects/Lead/describe``: field name (lower case) -> its description; relationship names too."""
        resp = self._get(f"/services/data/v{self.cfg.api_version}/sobjects/Lead/describe")
        body = json_object(resp, REMOTE, "fields")
        out: dict[str, dict[str, Any]] = {}
        for f in body["fields"] if isinstance(body["fields"], list) else []:
            if isinstance(f, dict) and isinstance(f.get("name"), str):
                out[f["name"].lower()] = f
                if isinstance(f.get("relationshipName"), str):
                    out.setdefault(f["relationshipName"].lower() + ".", f)
        return out
