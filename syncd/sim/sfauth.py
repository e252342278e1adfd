"""The simulated Salesforce token endpoint: client credentials, refresh tokens (with rotation), JWT bearer.

- ``rotate_refresh``: every refresh answer carries a new refresh token and the one used dies at once,
  as with Salesforce's refresh-token rotation.
- JWT bearer: ``iss`` must be the client id, ``aud`` one of ``jwt_audiences`` (never the My Domain URL),
  ``exp`` in the future and at most 300 s ahead of the simulator's clock, and the RS256 signature must
  verify against ``jwt_public_key`` when one is set.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

import jwt

from syncd.sim.http import Request, Response

CLIENT_ID = "sim-sf-client"
CLIENT_SECRET = "sim-sf-secret-8c1d"
REFRESH_TOKEN = "sim-sf-refresh-5e2a"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _refused(code: str, why: str) -> Response:
    return Response(400, {"error": code, "error_description": why})


@dataclass
class TokenEndpoint:
    refresh_tokens: set[str] = field(default_factory=lambda: {REFRESH_TOKEN})
    rotate_refresh: bool = False
    jwt_audiences: tuple[str, ...] = ("https://login.salesforce.com",)
    jwt_public_key: str | None = None
    grants: list[str] = field(default_factory=list)  # what each token call asked for (the tests read it)

    def check(self, req: Request, now: float) -> Response | dict[str, Any]:
        """The grant's refusal, or the extra fields of its answer (a rotated refresh token)."""
        form = req.form()
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = req.headers.get("authorization", "")
        if basic.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
        grant = form.get("grant_type", "")
        self.grants.append(grant)
        if grant == "client_credentials":
            if client_id != CLIENT_ID or client_secret != CLIENT_SECRET:
                return _refused("invalid_client", "invalid client credentials")
            return {}
        if grant == "refresh_token":
            used = form.get("refresh_token", "")
            if client_id != CLIENT_ID:
                return _refused("invalid_client", "invalid client credentials")
            if used not in self.refresh_tokens:
                return _refused("invalid_grant", "expired access/refresh token")
            if not self.rotate_refresh:
                return {}
            fresh = "sim-sf-refresh-" + secrets.token_urlsafe(12)
            self.refresh_tokens.discard(used)
            self.refresh_tokens.add(fresh)
            return {"refresh_token": fresh}
        if grant == JWT_GRANT:
            return self._jwt(form.get("assertion", ""), now)
        return _refused("unsupported_grant_type", "grant type not supported")

    def _jwt(self, assertion: str, now: float) -> Response | dict[str, Any]:
        try:
            if self.jwt_public_key:
                claims = jwt.decode(assertion, self.jwt_public_key, algorithms=["RS256"],
                                    options={"verify_exp": False, "verify_aud": False})
            else:
                claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return _refused("invalid_grant", "invalid assertion")
        if claims.get("iss") != CLIENT_ID:
            return _refused("invalid_client_id", "client identifier invalid")
        if claims.get("aud") not in self.jwt_audiences:
            return _refused("invalid_grant", "audience is invalid")
        exp = claims.get("exp")
        if not isinstance(exp, int) or not now < exp <= now + 300:
            return _refused("invalid_grant", "expired authorization code")
        if not claims.get("sub"):
            return _refused("invalid_grant", "user hasn't approved this consumer")
        return {}
