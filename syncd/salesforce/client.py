"""Salesforce REST: window query pages, locator resume, API usage, errors as Salesforce sends them."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from syncd.errors import (
    ApiLimitReached,
    LocatorExpired,
    ProtocolError,
    RemoteRejected,
    SessionExpired,
)
from syncd.http import json_object, path_of, raise_for_status, send
from syncd.salesforce.auth import REMOTE, SalesforceAuth

log = logging.getLogger(__name__)
USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
# A page holds at most 2,000 records (API-CONTRACTS.md); more is a broken or hostile answer.
MAX_PAGE_RECORDS = 2000
# Errors a repeat cannot cure: the query or the configuration is wrong.
QUERY_ERRORS = frozenset({"MALFORMED_QUERY", "INVALID_FIELD", "INVALID_TYPE", "INVALID_QUERY_FILTER_OPERATOR"})


@dataclass(frozen=True)
class Page:
    records: list[dict[str, Any]]
    next_url: str | None
    total_size: int
    fetched_at: datetime


class SalesforceClient(SalesforceAuth):
    """Queries against the org (authentication from ``SalesforceAuth``)."""

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
        if code == "REQUEST_LIMIT_EXCEEDED":
            raise ApiLimitReached("the org's 24-hour API request allocation is spent; "
                                  "syncd will resume at the next run", **kw)
        if code in QUERY_ERRORS:
            # The message names the offending SOQL (from configuration), never lead data.
            raise RemoteRejected(f"query refused: {message} (check salesforce.where and phone_fields)", **kw)
        raise_for_status(resp, REMOTE)

    def _get(self, url: str, params: dict[str, str] | None = None) -> requests.Response:
        if self._token is None:
            self.authenticate()
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._token}",
                       "Sforce-Query-Options": f"batchSize={self.cfg.page_size}"}
            full = url if url.startswith("http") else f"{self.instance_url}{url}"
            resp = send(self.session, "GET", full, REMOTE, params=params, headers=headers)
            self._record_usage(resp)
            if resp.status_code == 401 and attempt == 1:
                log.info("salesforce: session expired, authenticating again")
                self.authenticate()
                continue
            self._raise_for(resp)
            return resp
        raise SessionExpired("still not authorised after authenticating again", remote=REMOTE,
                             method="GET", path=path_of(url), status=401)

    def _page(self, resp: requests.Response) -> Page:
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
                    fetched_at=self.now())

    def query_all(self, soql: str) -> Page:
        """First page of a ``queryAll`` (deleted and merged rows included)."""
        return self._page(self._get(f"/services/data/v{self.cfg.api_version}/queryAll", {"q": soql}))

    def next_page(self, next_url: str) -> Page:
        """Follow a server-relative ``nextRecordsUrl`` on the instance, with no parameters."""
        return self._page(self._get(next_url))
