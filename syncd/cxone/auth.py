"""Bearer tokens for CXone: cached, renewed five minutes before expiry, and once on a 401."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import requests

from syncd.errors import AuthFailed, SessionExpired
from syncd.http import json_body, path_of, raise_for_status, send

RENEW_BEFORE = timedelta(minutes=5)


class TokenCache:
    def __init__(self, fetch: Callable[[], tuple[str, int]], now: Callable[[], datetime]) -> None:
        self._fetch = fetch
        self._now = now
        self._token: str | None = None
        self._expires: datetime | None = None

    def token(self) -> str:
        if self._token is None or self._expires is None or self._now() >= self._expires - RENEW_BEFORE:
            self.renew()
        assert self._token is not None
        return self._token

    def renew(self) -> None:
        token, expires_in = self._fetch()
        self._token, self._expires = token, self._now() + timedelta(seconds=max(expires_in, 0))


def token_request(session: requests.Session, url: str, remote: str, **kwargs: Any) -> dict[str, Any]:
    """POST a token grant; refusals become AuthFailed with the OAuth error code, never the body."""
    resp = send(session, "POST", url, remote, **kwargs)
    if resp.status_code in (400, 401, 403):
        body = json_body(resp, remote) if resp.content else {}
        code = str(body.get("error", "")) if isinstance(body, dict) else ""
        raise AuthFailed("credentials refused; check the client id/secret and access key", remote=remote,
                         method="POST", path=path_of(url), status=resp.status_code, code=code[:60])
    raise_for_status(resp, remote)
    body = json_body(resp, remote)
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise AuthFailed("token answer has no access_token", remote=remote, method="POST", path=path_of(url))
    return body


def authorised(
    session: requests.Session, tokens: TokenCache, method: str, url: str, remote: str, **kwargs: Any
) -> requests.Response:
    """Send with a bearer token; on 401 renew once and repeat."""
    extra = kwargs.pop("headers", {})
    for attempt in (1, 2):
        headers = {"Authorization": f"Bearer {tokens.token()}", **extra}
        resp = send(session, method, url, remote, headers=headers, **kwargs)
        if resp.status_code == 401 and attempt == 1:
            tokens.renew()
            continue
        raise_for_status(resp, remote)
        return resp
    raise SessionExpired("still not authorised after a new token", remote=remote, method=method, path=path_of(url))
