"""Salesforce authentication: the four flows, and where a bearer token may be sent."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from urllib.parse import urlsplit

import jwt
import requests

from syncd.config import SalesforceConfig, check_url, is_loopback
from syncd.errors import AuthFailed, ProtocolError
from syncd.http import json_body, json_object, path_of, raise_for_status, send
from syncd.secrets import Secrets

log = logging.getLogger(__name__)
REMOTE = "salesforce"
SALESFORCE_DOMAINS = (".salesforce.com", ".force.com")


def trusted_instance(host: str, login_host: str) -> bool:
    """Where a Salesforce bearer token may go: the login host, a Salesforce domain, or loopback when
    the login host is loopback too (the simulator)."""
    host, login_host = host.lower().rstrip("."), login_host.lower().rstrip(".")
    if host == login_host or host.endswith(SALESFORCE_DOMAINS):
        return True
    return is_loopback(host) and is_loopback(login_host)


class SalesforceAuth:
    """The token and instance of one Salesforce org, renewed on demand."""

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
