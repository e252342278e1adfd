"""Salesforce authentication: the four flows, and where a bearer token may be sent."""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import requests

from syncd.config import SalesforceConfig, check_url, is_loopback
from syncd.errors import AuthFailed, ProtocolError, SyncdError
from syncd.http import json_body, json_object, path_of, raise_for_status, send
from syncd.salesforce.tokens import RefreshTokenFile, remember
from syncd.secrets import Secrets

log = logging.getLogger(__name__)
REMOTE = "salesforce"
SALESFORCE_DOMAINS = (".salesforce.com", ".force.com")
# A JWT lives this long by Salesforce's clock (it accepts at most 300 s ahead).
JWT_LIFETIME = 180


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
        token_file: Path | None = None,
    ) -> None:
        self.cfg = cfg
        self.secrets = secrets
        self.session = session
        self.now = now
        self._token: str | None = None
        self.instance_url: str | None = None
        self.api_usage: tuple[int, int] | None = None
        # Salesforce's clock minus the host's, from the Date header of its last answer.
        self.clock_offset: timedelta | None = None
        self.sleep: Callable[[float], None] = time.sleep
        self.token_file = RefreshTokenFile(token_file) if token_file is not None else None
        self._refresh: str | None = None
        self.refresh_source = "configured"
        if cfg.auth == "refresh_token" and secrets.salesforce_refresh_token is not None:
            self._refresh = secrets.salesforce_refresh_token.get_secret_value()
            rotated = self.token_file.load(self._refresh) if self.token_file else None
            if rotated is not None:
                self._refresh, self.refresh_source = rotated.token, f"rotated (saved {rotated.saved_at})"

    # -- Salesforce's clock ---------------------------------------------------------------
    def note_clock(self, resp: requests.Response) -> None:
        """Learn Salesforce's time from an answer's Date header (whole seconds)."""
        try:
            when = email.utils.parsedate_to_datetime(resp.headers.get("Date", ""))
        except (TypeError, ValueError):
            return
        if when.tzinfo is not None:
            self.clock_offset = when - self.now()

    def server_now(self) -> datetime:
        """Salesforce's time now: the host's clock corrected by the last offset seen (the host's alone
        until Salesforce has answered)."""
        return self.now() + (self.clock_offset or timedelta(0))

    def ensure_session(self) -> None:
        """Authenticate unless a session is held; learn Salesforce's clock (the token answer tells it)."""
        if self._token is None:
            self.authenticate()
        self.learn_clock()

    def learn_clock(self) -> None:
        """Ask Salesforce for its time when no answer has told it yet (an unauthenticated call)."""
        if self.clock_offset is not None:
            return
        base = self.instance_url or self.cfg.login_url
        try:
            resp = send(self.session, "GET", f"{base}/services/data/", REMOTE)
        except SyncdError as e:
            log.info("salesforce: its clock is unknown (%s); using the host's", e)
            return
        self.note_clock(resp)

    # -- authentication -------------------------------------------------------------------
    def _grant(self) -> dict[str, str]:
        cfg, sec = self.cfg, self.secrets
        if cfg.auth == "client_credentials":
            assert sec.salesforce_client_secret is not None
            return {"grant_type": "client_credentials", "client_id": cfg.client_id,
                    "client_secret": sec.salesforce_client_secret.get_secret_value()}
        if cfg.auth == "refresh_token":
            assert self._refresh is not None
            form = {"grant_type": "refresh_token", "client_id": cfg.client_id, "refresh_token": self._refresh}
            if sec.salesforce_client_secret is not None:
                form["client_secret"] = sec.salesforce_client_secret.get_secret_value()
            return form
        assert sec.salesforce_private_key is not None
        # exp by Salesforce's clock, not the host's: a host a few minutes fast or slow still signs a JWT
        # Salesforce accepts (it takes exp at most 300 s ahead of its own time).
        self.learn_clock()
        import jwt  # the JWT flow only: PyJWT loads cryptography (~60 ms)

        claims = {"iss": cfg.client_id, "sub": cfg.username, "aud": cfg.audience,
                  "exp": int(self.server_now().timestamp()) + JWT_LIFETIME}
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
        self.note_clock(resp)
        if resp.status_code == 400 and self._newer_refresh_token():
            resp = send(self.session, "POST", url, REMOTE, data=self._grant())
        if resp.status_code in (400, 401, 403):
            body = json_body(resp, REMOTE) if resp.content else {}
            code = body.get("error", "") if isinstance(body, dict) else ""
            hint = {"refresh_token": f"the {self.refresh_source} refresh token was refused (revoked, or used "
                                     "twice under refresh-token rotation); configure a freshly issued one",
                    "jwt_bearer": f"check the consumer key, username, certificate and jwt_audience "
                                  f"({self.cfg.audience})"}.get(
                self.cfg.auth, "check the client id and secret (and that login_url is the org's My Domain URL)")
            raise AuthFailed(f"credentials refused for auth = {self.cfg.auth}; {hint}",
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
        rotated = body.get("refresh_token")
        if self.cfg.auth == "refresh_token" and isinstance(rotated, str) and rotated and rotated != self._refresh:
            self._rotate(rotated)
        log.info("salesforce: authenticated (%s)", self.cfg.auth)

    def _newer_refresh_token(self) -> bool:
        """After a refused refresh: has another syncd process (doctor beside the daemon) rotated the token
        since? Then its newer one, from the file, is taken."""
        sec = self.secrets.salesforce_refresh_token
        if self.cfg.auth != "refresh_token" or self.token_file is None or sec is None:
            return False
        saved = self.token_file.load(sec.get_secret_value(), from_file=True)
        if saved is None or saved.token == self._refresh:
            return False
        log.info("salesforce: another syncd process rotated the refresh token; using the one it saved")
        self._refresh, self.refresh_source = saved.token, f"rotated (saved {saved.saved_at})"
        remember(saved.token, sec.get_secret_value())
        return True

    def _rotate(self, token: str) -> None:
        """Refresh-token rotation: the old token died with this answer; the new one is used from now on."""
        self._refresh, self.refresh_source = token, "rotated (this process)"
        assert self.secrets.salesforce_refresh_token is not None
        remember(token, self.secrets.salesforce_refresh_token.get_secret_value())
        if self.token_file is None:
            log.warning("salesforce: the refresh token was rotated and there is no state file to keep it in; "
                        "the configured one is dead after this process")
            return
        self.token_file.save(token, self.secrets.salesforce_refresh_token.get_secret_value())
        log.info("salesforce: the refresh token was rotated; the new one is kept in %s", self.token_file.path)

    # -- calls ----------------------------------------------------------------------------
