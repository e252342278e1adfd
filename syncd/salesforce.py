"""Salesforce REST: the four auth flows, window query pages, locator resume, API usage."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests

from syncd.config import SalesforceConfig, check_url, is_loopback
from syncd.errors import (
    ApiLimitReached,
    AuthFailed,
    LocatorExpired,
    ProtocolError,
    RemoteRejected,
    SessionExpired,
)
from syncd.http import json_body, json_object, path_of, raise_for_status, send
from syncd.secrets import Secrets

log = logging.getLogger(__name__)
REMOTE = "salesforce"
USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
# Errors a repeat cannot cure: the query or the configuration is wrong.
SALESFORCE_DOMAINS = (".salesforce.com", ".force.com")
# A page holds at most 2,000 records (API-CONTRACTS.md); more is a broken or hostile answer.
MAX_PAGE_RECORDS = 2000
QUERY_ERRORS = frozenset({"MALFORMED_QUERY", "INVALID_FIELD", "INVALID_TYPE", "INVALID_QUERY_FILTER_OPERATOR"})


@dataclass(frozen=True)
class Page:
    records: list[dict[str, Any]]
    next_url: str | None
    total_size: int
    fetched_at: datetime


def trusted_instance(host: str, login_host: str) -> bool:
    """Where a Salesforce bearer token may go: the login host, a Salesforce domain, or loopback when
    the login host is loopback too (the simulator)."""
    host, login_host = host.lower().rstrip("."), login_host.lower().rstrip(".")
    if host == login_host or host.endswith(SALESFORCE_DOMAINS):
        return True
    return is_loopback(host) and is_loopback(login_host)


class SalesforceClient:
    def __init__(
        self,
        cfg: SalesforceConfig,
        secrets: Secrets,
        session: requests.Session,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.cfg = cfg
        self.secrets = secrets
        self.session = session
        self.now = now
        self._token: str | None = None
        self.instance_url: str | None = None
        self.api_usage: tuple[int, int] | None = None

    # -- authentication -------------------------------------------------------------------
    def _grant(self) -> dict[str, str]:
        cfg, sec = self.cfg, self.secrets
        if cfg.auth == "client_credentials":
            assert sec.salesforce_client_secret is not None
            return {"grant_type": "client_credentials", "client_id": cfg.client_id,
                    "client_secret": sec.salesforce_client_secret.get_secret_value()}
        if cfg.auth == "refresh_token":
            assert sec.salesforce_refresh_token is not None
            form = {"grant_type": "refresh_token", "client_id": cfg.client_id,
                    "refresh_token": sec.salesforce_refresh_token.get_secret_value()}
            if sec.salesforce_client_secret is not None:
                form["client_secret"] = sec.salesforce_client_secret.get_secret_value()
            return form
        assert sec.salesforce_private_key is not None
        claims = {"iss": cfg.client_id, "sub": cfg.username, "aud": cfg.login_url,
                  "exp": int(self.now().timestamp()) + 180}
        try:
            assertion = jwt.encode(claims, sec.salesforce_private_key.get_secret_value(), algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError) as e:
            raise AuthFailed("the private key cannot sign an RS256 JWT", remote=REMOTE) from e
        return {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}

    def authenticate(self) -> None:
        if self.cfg.auth == "access_token":
            if self._token is not None:
                raise AuthFailed("the configured access token expired; it cannot be renewed", remote=REMOTE)
            assert self.secrets.salesforce_access_token is not None
            self._token = self.secrets.salesforce_access_token.get_secret_value()
            self.instance_url = self.cfg.instance_url
            return
        url = f"{self.cfg.login_url}/services/oauth2/token"
        resp = send(self.session, "POST", url, REMOTE, data=self._grant())
        if resp.status_code in (400, 401, 403):
            body = json_body(resp, REMOTE) if resp.content else {}
            code = body.get("error", "") if isinstance(body, dict) else ""
            raise AuthFailed(f"credentials refused for auth = {self.cfg.auth}; check the client id and "
                             "secret (and that login_url is the org's My Domain URL)",
                             remote=REMOTE, method="POST", path=path_of(url), status=resp.status_code,
                             code=str(code)[:60])
        raise_for_status(resp, REMOTE)
        body = json_object(resp, REMOTE, "access_token", "instance_url")
        try:
            instance = check_url(str(body["instance_url"]))
        except ValueError as e:
            raise ProtocolError("instance_url in the token answer is not usable", remote=REMOTE,
                                method="POST", path=path_of(url)) from e
        host = urlsplit(instance).hostname or ""
        if not trusted_instance(host, urlsplit(self.cfg.login_url).hostname or ""):
            # The bearer token would go wherever this names: only to Salesforce (or the login host).
            raise AuthFailed(f"the token answer names instance_url host {host[:80]}, which is neither the "
                             "login host nor a Salesforce domain (*.salesforce.com, *.force.com); no token is "
                             "sent there", remote=REMOTE, method="POST", path=path_of(url))
        self.instance_url = instance
        self._token = str(body["access_token"])
        log.info("salesforce: authenticated (%s)", self.cfg.auth)

    # -- calls ----------------------------------------------------------------------------
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

