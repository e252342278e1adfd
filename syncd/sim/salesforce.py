"""Simulated Salesforce REST: OAuth token, query/queryAll with snapshot paging, deleted records."""

from __future__ import annotations

import base64
import bisect
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from syncd.sim import soql
from syncd.sim.data import LEAD_FIELDS
from syncd.sim.http import Request, Response, Router

CLIENT_ID = "sim-sf-client"
CLIENT_SECRET = "sim-sf-secret-8c1d"
REFRESH_TOKEN = "sim-sf-refresh-5e2a"
DATE_FIELDS = {"SystemModstamp", "CreatedDate", "LastModifiedDate"}


def sf_datetime(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def sf_error(status: int, code: str, message: str) -> Response:
    return Response(status, [{"message": message, "errorCode": code, "fields": []}])


@dataclass
class Locator:
    rows: list[dict[str, Any]]
    token: str
    last_used: datetime


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
    # (SystemModstamp, Id) of every lead in order, rebuilt after leads change: Salesforce answers a
    # window query from its index on SystemModstamp, not by scanning the org.
    by_stamp: list[tuple[datetime, str]] = field(default_factory=list)

    def reindex(self) -> None:
        self.by_stamp = sorted((lead["SystemModstamp"], lead_id) for lead_id, lead in self.leads.items())

    def _candidates(self, since: datetime | None) -> list[dict[str, Any]]:
        if since is None:
            return list(self.leads.values())
        start = bisect.bisect_left(self.by_stamp, (since, ""))
        return [self.leads[lead_id] for _, lead_id in self.by_stamp[start:]]

    def routes(self, r: Router) -> None:
        r.add("POST", "/services/oauth2/token", "sf.token", self.token)
        r.add("GET", "/services/data/v{ver}/query", "sf.query", self.query)
        r.add("GET", "/services/data/v{ver}/queryAll", "sf.queryAll", self.query)
        r.add("GET", "/services/data/v{ver}/query/{locator}", "sf.next", self.next_page)
        r.add("GET", "/services/data/v{ver}/sobjects/Lead/deleted/", "sf.deleted", self.deleted)

    # -- auth ---------------------------------------------------------------------------------------
    def token(self, req: Request) -> Response:
        form = req.form()
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = req.headers.get("authorization", "")
        if basic.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
        grant = form.get("grant_type")
        if grant == "client_credentials":
            ok = client_id == CLIENT_ID and client_secret == CLIENT_SECRET
        elif grant == "refresh_token":
            ok = client_id == CLIENT_ID and form.get("refresh_token") == REFRESH_TOKEN
        else:
            return Response(400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"})
        if not ok:
            return Response(400, {"error": "invalid_client", "error_description": "invalid client credentials"})
        token = "00Dsim!" + secrets.token_urlsafe(24)
        with self.lock:
            self.tokens.add(token)
        issued = str(int(self.now().timestamp() * 1000))
        return Response(200, {"access_token": token, "instance_url": self.instance_url or self.base_url,
                              "token_type": "Bearer",
                              "id": f"{self.base_url}/id/00Dsim/005sim", "issued_at": issued,
                              "signature": base64.b64encode(secrets.token_bytes(32)).decode()})

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

    def _render(self, lead: dict[str, Any], fields: list[str], ver: str) -> dict[str, Any]:
        url = f"/services/data/v{ver}/sobjects/Lead/{lead['Id']}"
        out: dict[str, Any] = {"attributes": {"type": "Lead", "url": url}}
        for f in fields:
            v = lead.get(f)
            out[f] = sf_datetime(v) if isinstance(v, datetime) else v
        return out

    def query(self, req: Request) -> Response:
        with self.lock:
            token = self._auth(req)
            if isinstance(token, Response):
                return token
            refused = self._count_call()
            if refused:
                return self._limited(refused)
            try:
                q = soql.parse(req.arg("q"), LEAD_FIELDS)
            except soql.SoqlError as e:
                return self._limited(sf_error(400, e.code, str(e)))
            include_deleted = req.path.endswith("/queryAll")
            pool = [lead for lead in self._candidates(q.since) if include_deleted or not lead.get("IsDeleted")]
            try:
                rows = soql.run(q, pool)
            except soql.SoqlError as e:
                return self._limited(sf_error(400, e.code, str(e)))
            ver = req.params["ver"]
            snapshot = [self._render(lead, q.fields, ver) for lead in rows]  # a snapshot: later edits do not show
            self.queries += 1
            return self._limited(self._serve(snapshot, 0, token, self._page_size(req), ver))

    def _serve(self, rows: list[dict[str, Any]], offset: int, token: str, size: int, ver: str) -> Response:
        page = rows[offset:offset + size]
        done = offset + size >= len(rows)
        body: dict[str, Any] = {"totalSize": len(rows), "done": done, "records": page}
        if not done:
            locator = "01gSIM" + secrets.token_hex(6)
            self.locators[locator] = Locator(rows, token, self.now())
            body["nextRecordsUrl"] = f"/services/data/v{ver}/query/{locator}-{offset + size}"
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
            loc = self.locators.pop(locator_id, None)
            expired = loc is None or loc.token != token or (
                self.now() - loc.last_used > timedelta(seconds=self.locator_ttl))
            if expired or not offset.isdigit() or loc is None:
                return self._limited(sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator"))
            return self._limited(self._serve(loc.rows, int(offset), token, self._page_size(req), req.params["ver"]))

    def deleted(self, req: Request) -> Response:
        with self.lock:
            token = self._auth(req)
            if isinstance(token, Response):
                return token
            try:
                start = datetime.fromisoformat(req.arg("start").replace("Z", "+00:00"))
                end = datetime.fromisoformat(req.arg("end").replace("Z", "+00:00"))
            except ValueError:
                return sf_error(400, "INVALID_REPLICATION_DATE", "start and end must be ISO datetimes")
            if end - start <= timedelta(minutes=1):
                return sf_error(400, "INVALID_REPLICATION_DATE", "start must precede end by more than a minute")
            earliest = self.now() - timedelta(days=15)
            found = [{"id": lead["Id"], "deletedDate": sf_datetime(lead["SystemModstamp"])}
                     for lead in self.leads.values()
                     if lead.get("IsDeleted") and start <= lead["SystemModstamp"] < end]
            return self._limited(Response(200, {"deletedRecords": found, "earliestDateAvailable": sf_datetime(earliest),
                                                "latestDateCovered": sf_datetime(min(end, self.now()))}))
