"""NICE CXone Admin API calling lists: upload a CSV, poll its job, remove prospects, read the list back,
and (``dnc.py``) suppress numbers in a DNC group."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests

from syncd.config import CallListsConfig, check_url
from syncd.cxone import JobResult
from syncd.cxone.auth import TokenCache, authorised, token_request
from syncd.cxone.dnc import DncGroups
from syncd.cxone.download import ListRecord, records
from syncd.cxone.render import csv_line, csv_values
from syncd.errors import AuthFailed, ProtocolError
from syncd.http import json_object, path_of, raise_for_status, send
from syncd.secrets import Secrets
from syncd.transform import Contact

REMOTE = "cxone"
MAX_RECORD_CHARS = 512
# removeProspects result codes that mean "no such prospect" (compared lower-case, without underscores).
NOT_ON_LIST = frozenset({"notfound", "recordnotfound", "prospectnotfound"})


class CallListsSink:
    name = "call-lists"
    can_remove = True
    can_read_back = True
    max_record_chars: int | None = MAX_RECORD_CHARS

    def __init__(self, cfg: CallListsConfig, secrets: Secrets, session: requests.Session,
                 now: Callable[[], datetime]) -> None:
        self.cfg = cfg
        self.secrets = secrets
        self.session = session
        self.now = now
        self.header = csv_line(cfg.header())
        self.api_endpoint = cfg.api_endpoint or None
        self.tokens = TokenCache(self._fetch_token, now)

    # -- auth and discovery ---------------------------------------------------------------------
    def _discover(self, suffix: str, *keys: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        url = f"{self.cfg.issuer}/.well-known/{suffix}"
        resp = send(self.session, "GET", url, REMOTE, params=params)
        if resp.status_code in (401, 403):
            # Discovery needs no credentials: a refusal is not the API user's rights (as token_request
            # names the credentials for the token endpoint's).
            raise AuthFailed(f"the discovery document needs no credentials, so the issuer {self.cfg.issuer} "
                             "(cxone.call_lists.issuer) is wrong or a proxy is in the way", remote=REMOTE,
                             method="GET", path=path_of(url), status=resp.status_code)
        raise_for_status(resp, REMOTE)
        return json_object(resp, REMOTE, *keys)

    def _fetch_token(self) -> tuple[str, int]:
        token_endpoint = self._discover("openid-configuration", "token_endpoint")["token_endpoint"]
        try:
            token_endpoint = check_url(str(token_endpoint))
        except ValueError as e:
            raise ProtocolError("token_endpoint from discovery is not usable", remote=REMOTE) from e
        s = self.secrets
        assert s.cxone_client_secret is not None
        assert s.cxone_access_key_id is not None
        assert s.cxone_access_key_secret is not None
        body = token_request(
            self.session, token_endpoint, REMOTE,
            data={"grant_type": "password", "username": s.cxone_access_key_id.get_secret_value(),
                  "password": s.cxone_access_key_secret.get_secret_value()},
            auth=(self.cfg.client_id, s.cxone_client_secret.get_secret_value()))
        if self.api_endpoint is None:
            self.api_endpoint = self._endpoint_for(body.get("id_token"))
        expires = body.get("expires_in", 3600)
        return str(body["access_token"]), int(expires) if isinstance(expires, int | float) else 3600

    def _endpoint_for(self, id_token: Any) -> str:
        # The id_token came straight from the token endpoint over TLS: its claims are read unverified.
        import jwt  # here, once a process: PyJWT loads cryptography (~60 ms) that no other command needs

        try:
            claims = jwt.decode(str(id_token), options={"verify_signature": False})
            tenant = str(claims["tenantId"])
        except (jwt.PyJWTError, KeyError) as e:
            raise AuthFailed("the token answer has no id_token with a tenantId; set cxone.call_lists."
                             "api_endpoint to skip discovery", remote=REMOTE) from e
        found = self._discover("cxone-configuration", "api_endpoint", params={"tenantId": tenant})
        try:
            return check_url(str(found["api_endpoint"]))
        except ValueError as e:
            raise ProtocolError("api_endpoint from cxone-configuration is not usable", remote=REMOTE) from e

    def _url(self, path: str) -> str:
        self.tokens.token()  # discovery happens with the first token
        return f"{self.api_endpoint}/inContactAPI/services/v{self.cfg.api_version}/{path}"

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = self._url(path)
        return authorised(self.session, self.tokens, method, url, REMOTE, **kwargs)

    # -- the sink -------------------------------------------------------------------------------
    def render(self, contact: Contact) -> str:
        return csv_line(csv_values(contact))

    def expires_on(self, sent_at: datetime) -> str | None:
        """The expirationDate an upload at ``sent_at`` carries (its records' last day), or None."""
        if not self.cfg.expiration_days:
            return None
        return (sent_at + timedelta(days=self.cfg.expiration_days)).strftime("%Y-%m-%d")

    def upload(self, file_name: str, payloads: Sequence[str], list_id: int | None = None,
               expiration: str | None = None) -> str:
        text = self.header + "\r\n" + "\r\n".join(payloads) + "\r\n"
        if expiration is None:
            expiration = self.expires_on(self.now()) or ""
        fields = {
            "fileName": file_name,
            "skillId": self.cfg.skill_id,
            "forceOverwrite": True,
            "expirationDate": expiration,
            "startSkill": self.cfg.start_skill,
            "sendEmail": False,
            "defaultTimeZone": self.cfg.default_time_zone,
        }
        # The file goes as base64, which a JSON string holds as it is: spliced in, not scanned
        # character by character by the encoder (about 700 KB a batch of 5,000).
        list_file = base64.b64encode(text.encode("utf-8"))
        body = json.dumps(fields).encode("ascii")[:-1] + b', "listFile": "' + list_file + b'"}'
        resp = self._call("POST", f"lists/call-lists/{list_id or self.cfg.list_id}/upload", data=body,
                          headers={"Content-Type": "application/json"})
        job = json_object(resp, REMOTE, "jobId")["jobId"]
        if not isinstance(job, int | str) or isinstance(job, bool) or str(job) == "":
            raise ProtocolError("jobId is not an id", remote=REMOTE, method="POST", path="upload")
        return str(job)

    def job_status(self, job_id: str) -> JobResult:
        resp = self._call("GET", f"lists/call-lists/jobs/{quote(job_id, safe='')}")
        jobs = json_object(resp, REMOTE, "uploadJobs")["uploadJobs"]
        job = next((j for j in jobs if isinstance(j, dict) and str(j.get("jobId")) == job_id), None) \
            if isinstance(jobs, list) else None
        if job is None:
            raise ProtocolError(f"job {job_id} is not in the answer", remote=REMOTE, method="GET",
                                path="lists/call-lists/jobs")
        if job.get("isCancelled") is True:
            return JobResult("failed", "cancelled by CXone")
        if job.get("isComplete") is True:
            return JobResult("completed")
        return JobResult("pending")

    def remove(self, external_ids: Sequence[str], source: str | None = None) -> tuple[list[str], list[str]]:
        body = {"prospectsToRemove": [{"externalId": i} for i in external_ids]}
        resp = self._call("DELETE", f"lists/call-lists/{quote(source or self.cfg.source, safe='')}/removeProspects",
                          json=body)
        answer = json_object(resp, REMOTE)
        asked = set(external_ids)
        ok = {str(r.get("externalId")) for r in answer.get("successfulRecords") or [] if isinstance(r, dict)}
        # A prospect CXone does not have is off the list: the goal of the removal is reached.
        ok |= {str(r.get("externalId")) for r in answer.get("failedRecords") or []
               if isinstance(r, dict) and str(r.get("resultCode", "")).lower().replace("_", "") in NOT_ON_LIST}
        removed = [i for i in external_ids if i in ok]
        # Anything not confirmed stays pending removal: silence is not success.
        failed = [i for i in external_ids if i not in ok]
        assert set(removed) | set(failed) == asked
        return removed, failed

    def download(self, deadline_seconds: float, list_id: int | None = None) -> Iterator[ListRecord]:
        """Every record of the list as CXone holds it, streamed (see ``download.py``)."""
        target = list_id or self.cfg.list_id
        deadline = time.monotonic() + deadline_seconds
        resp = self._call("GET", f"lists/call-lists/{target}", params={"includeRecords": "true"}, stream=True)
        count = 0
        for record in records(resp, self.now(), deadline):
            count += 1
            yield record
        if count == 0 and str(self.describe(target).get("validRecords") or 0) not in ("0", "None"):
            # An answer without its records must not read as an empty list (every lead "missing").
            raise ProtocolError("the list download held no records while the list counts some", remote=REMOTE,
                                method="GET", path="lists/call-lists")

    def dnc(self, group_id: int | None = None) -> DncGroups:
        return DncGroups(self._call, group_id or self.cfg.dnc_group_id)

    def describe(self, list_id: int | None = None) -> dict[str, object]:
        resp = self._call("GET", f"lists/call-lists/{list_id or self.cfg.list_id}")
        result = json_object(resp, REMOTE, "resultSet")["resultSet"]
        return dict(result) if isinstance(result, dict) else {}

    def skill(self, skill_id: int | None = None) -> dict[str, object]:
        """The skill as the Admin API describes it (``GET skills/{id}``); ``{}`` when the answer lists none."""
        resp = self._call("GET", f"skills/{skill_id or self.cfg.skill_id}")
        found = json_object(resp, REMOTE, "skills")["skills"]
        first = found[0] if isinstance(found, list) and found else None
        return dict(first) if isinstance(first, dict) else {}
