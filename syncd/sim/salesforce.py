"""Simulated Salesforce REST: OAuth token, query/queryAll with snapshot paging, deleted records.

Its org is described in ``syncd/sim/sforg.py`` (describe, limits, merges, purges, the delete log) and
its token endpoint in ``syncd/sim/sfauth.py``. A query locator keeps one id for its whole result, the
page being its offset (``01gSIM..-2000``), and a user holds at most 10 open locators: an 11th releases
the oldest. ``timeout_rows`` makes a query that matches more rows answer QUERY_TIMEOUT, as a large
org does.
"""

from __future__ import annotations

import base64
import bisect
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from syncd.sim import soql
from syncd.sim.data import BY_STAMP, LEAD_FIELDS, USERS
from syncd.sim.http import Request, Response, Router
from syncd.sim.sfauth import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, TokenEndpoint
from syncd.sim.sfbulk import BulkSim, field_plan, utc_millis

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "REFRESH_TOKEN", "SalesforceSim", "sf_datetime", "sf_error"]
DATE_FIELDS = {"SystemModstamp", "CreatedDate", "LastModifiedDate"}
DAY_FIELDS = {"Follow_Up__c"}
MAX_CURSORS = 10


def sf_datetime(value: datetime) -> str:
    """Salesforce's REST form: UTC, milliseconds (truncated), ``+0000``."""
    return utc_millis(value) + "+0000"


_PLAIN = frozenset({str, bool, int, float, type(None)})  # written as they are


def sf_error(status: int, code: str, message: str) -> Response:
    return Response(status, [{"message": message, "errorCode": code, "fields": []}])


@dataclass
class Locator:
    rows: list[dict[str, Any]]  # frozen leads, rendered a page at a time
    fields: list[str]
    token: str
    last_used: datetime
    offset: int = 0  # the next page it serves


@dataclass
class SalesforceSim:
    now: Callable[[], datetime]
    lock: threading.RLock
    leads: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    locators: dict[str, Locator] = field(default_factory=dict)
    api_used: int = 0
    api_limit: int = 1_000_000
    max_page_size: int = 2000
    locator_ttl: float = 900.0
    base_url: str = ""
    instance_url: str = ""  # what the token answer names as instance_url (default: base_url)
    queries: int = 0
    auth: TokenEndpoint = field(default_factory=TokenEndpoint)
    users: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {uid: {"Name": name, "Email": f"{name.split()[0].lower()}@example.com"}
                                 for uid, name in USERS})
    query_log: list[str] = field(default_factory=list)  # the last queries' text (tests read it)
    timeout_rows: int = 0  # > 0: a query matching more rows answers QUERY_TIMEOUT
    next_url_last: bool = False  # a page's nextRecordsUrl after its records, not before them as Salesforce writes it
    # The delete log (id, deletedDate) behind sobjects/Lead/deleted, and where it starts after a purge.
    delete_log: list[tuple[str, datetime]] = field(default_factory=list)
    log_floor: datetime | None = None
    max_deleted_ids: int = 600_000
    # (SystemModstamp, Id) of every lead in order, rebuilt after leads change: Salesforce answers a
    # window query from its index on SystemModstamp, not by scanning the org.
    by_stamp: list[tuple[datetime, str]] = field(default_factory=list)
    bulk: BulkSim = field(init=False)  # Bulk API 2.0 query jobs (syncd/sim/sfbulk.py)

    def __post_init__(self) -> None:
        self.bulk = BulkSim(self)

    def reindex(self) -> None:
        self.by_stamp = sorted((lead["SystemModstamp"], lead_id) for lead_id, lead in self.leads.items())

    def edit(self, lead_id: str) -> dict[str, Any]:
        """The lead with this id, to change: a copy put in its place. A query's rows (and a Bulk job's) are
        the lead dicts as they were when it ran, never changed in place, so later edits do not show in
        its later pages, as on Salesforce, and a query copies nothing."""
        lead = self.leads[lead_id] = dict(self.leads[lead_id])
        return lead

    def _candidates(self, since: datetime | None) -> list[dict[str, Any]]:
        """The leads from ``since`` on, in (SystemModstamp, Id) order (``BY_STAMP``), as the index gives them."""
        if len(self.by_stamp) != len(self.leads):
            self.reindex()
        start = 0 if since is None else bisect.bisect_left(self.by_stamp, (since, ""))
        return [self.leads[lead_id] for _, lead_id in self.by_stamp[start:]]

    def routes(self, r: Router) -> None:
        r.add("POST", "/services/oauth2/token", "sf.token", self.token)
        for path in ("query", "query/"):  # the REST guide's and simple-salesforce's form
            r.add("GET", f"/services/data/v{{ver}}/{path}", "sf.query", self.query)
            r.add("GET", f"/services/data/v{{ver}}/{path.replace('query', 'queryAll')}", "sf.queryAll", self.query)
        r.add("GET", "/services/data/v{ver}/query/{locator}", "sf.next", self.next_page)
        r.add("GET", "/services/data/v{ver}/queryAll/{locator}", "sf.next", self.next_page)
        self.bulk.routes(r)

    # -- auth ---------------------------------------------------------------------------------------
    def token(self, req: Request) -> Response:
        with self.lock:
            extra = self.auth.check(req, self.now().timestamp())
            if isinstance(extra, Response):
                return extra
            token = "00Dsim!" + secrets.token_urlsafe(24)
            self.tokens.add(token)
        issued = str(int(self.now().timestamp() * 1000))
        return Response(200, {"access_token": token, "instance_url": self.instance_url or self.base_url,
                              "token_type": "Bearer",
                              "id": f"{self.base_url}/id/00Dsim/005sim", "issued_at": issued,
                              "signature": base64.b64encode(secrets.token_bytes(32)).decode(), **extra})

    def revoke(self) -> None:
        with self.lock:
            self.tokens.clear()

    def _auth(self, req: Request) -> str | Response:
        header = req.headers.get("authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        if token not in self.tokens:
            return sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        return token

    def _limited(self, resp: Response) -> Response:
        resp.headers["Sforce-Limit-Info"] = f"api-usage={self.api_used}/{self.api_limit}"
        return resp

    def _count_call(self) -> Response | None:
        self.api_used += 1
        if self.api_used > self.api_limit:
            return sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        return None

    # -- query ----------------------------------------------------------------------------------------
    def _page_size(self, req: Request) -> int:
        size = 2000
        for part in req.headers.get("sforce-query-options", "").split(","):
            key, _, value = part.strip().partition("=")
            if key == "batchSize" and value.isdigit():
                size = max(200, min(2000, int(value)))
        return min(size, self.max_page_size)

    @staticmethod
    def _render(lead: dict[str, Any], fields: list[str], ver: str) -> dict[str, Any]:
        url = f"/services/data/v{ver}/sobjects/Lead/{lead['Id']}"
        out: dict[str, Any] = {"attributes": {"type": "Lead", "url": url}}
        for f, rel, sub in field_plan(tuple(fields)):
            if rel:  # a relationship field: the related record as an object, or null
                related = lead.get(rel)
                if related is None:
                    out[rel] = None
                    continue
                nested = out.get(rel) or {"attributes": {
                    "type": "User", "url": f"/services/data/v{ver}/sobjects/User/{lead.get(rel + 'Id')}"}}
                nested[sub] = related.get(sub)
                out[rel] = nested
                continue
            v = lead.get(f)
            kind = type(v)
            if kind in _PLAIN:
                out[f] = v
            else:
                out[f] = sf_datetime(v) if isinstance(v, datetime) else v.isoformat() if isinstance(v, date) else v
        return out

    def query(self, req: Request) -> Response:
        with self.lock:
            token = self._auth(req)
            if isinstance(token, Response):
                return token
            refused = self._count_call()
            if refused:
                return self._limited(refused)
            self.query_log = [*self.query_log[-99:], req.arg("q")]
            try:
                q = soql.parse(req.arg("q"), LEAD_FIELDS)
            except soql.SoqlError as e:
                return self._limited(sf_error(400, e.code, str(e)))
            include_deleted = req.path.rstrip("/").endswith("/queryAll")
            pool = [lead for lead in self._candidates(q.since) if include_deleted or not lead.get("IsDeleted")]
            try:
                rows = soql.run(q, pool, BY_STAMP)
            except soql.SoqlError as e:
                return self._limited(sf_error(400, e.code, str(e)))
            if self.timeout_rows and len(rows) > self.timeout_rows:
                return self._limited(sf_error(400, "QUERY_TIMEOUT", "Your query request was running for too long."))
            self.queries += 1
            return self._limited(self._serve(rows, q.fields, 0, token, self._page_size(req), req.params["ver"]))

    def _serve(self, rows: list[dict[str, Any]], fields: list[str], offset: int, token: str, size: int, ver: str,
               locator: str | None = None) -> Response:
        page = [self._render(lead, fields, ver) for lead in rows[offset:offset + size]]
        done = offset + size >= len(rows)
        body: dict[str, Any] = {"totalSize": len(rows), "done": done}
        if done:
            self.locators.pop(locator or "", None)
            body["records"] = page
            return Response(200, body)
        if locator is None:
            locator = "01gSIM" + secrets.token_hex(6)
            mine = [k for k, v in self.locators.items() if v.token == token]
            if len(mine) >= MAX_CURSORS:  # the user's oldest cursor is released
                del self.locators[min(mine, key=lambda k: self.locators[k].last_used)]
            self.locators[locator] = Locator(rows, fields, token, self.now())
        loc = self.locators[locator]
        loc.offset, loc.last_used = offset + size, self.now()
        # Where Salesforce writes it, before the records; or after them (a JSON writer may order keys so).
        url = f"/services/data/v{ver}/query/{locator}-{offset + size}"
        if self.next_url_last:
            body["records"] = page
            body["nextRecordsUrl"] = url
        else:
            body["nextRecordsUrl"] = url
            body["records"] = page
        return Response(200, body)

    def next_page(self, req: Request) -> Response:
        with self.lock:
            token = self._auth(req)
            if isinstance(token, Response):
                return token
            refused = self._count_call()
            if refused:
                return self._limited(refused)
            locator_id, _, offset = req.params["locator"].rpartition("-")
            loc = self.locators.get(locator_id)
            expired = loc is None or loc.token != token or (
                self.now() - loc.last_used > timedelta(seconds=self.locator_ttl))
            if expired or not offset.isdigit() or loc is None:
                self.locators.pop(locator_id, None)
                return self._limited(sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator"))
            return self._limited(self._serve(loc.rows, loc.fields, int(offset), token, self._page_size(req),
                                             req.params["ver"], locator_id))

