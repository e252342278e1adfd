"""The tutorial's v2 contacts batch API (``cxone.api = "contacts-batch"``). It cannot remove."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

from syncd.config import ContactsBatchConfig
from syncd.cxone import JobResult
from syncd.cxone.auth import TokenCache, authorised, token_request
from syncd.cxone.render import batch_contact
from syncd.errors import ProtocolError
from syncd.http import json_object
from syncd.secrets import Secrets
from syncd.transform import Contact

REMOTE = "cxone-batch"
SCOPE = "contact-center:contacts:write contact-center:contacts:read contact-center:lists:write"


class ContactsBatchSink:
    name = "contacts-batch"
    can_remove = False
    can_read_back = False  # the API offers no way to read the contacts back
    max_record_chars: int | None = None

    def __init__(self, cfg: ContactsBatchConfig, secrets: Secrets, session: requests.Session,
                 now: Callable[[], datetime]) -> None:
        self.cfg = cfg
        self.secrets = secrets
        self.session = session
        self.tokens = TokenCache(self._fetch_token, now)

    def _fetch_token(self) -> tuple[str, int]:
        assert self.secrets.cxone_client_secret is not None
        body = token_request(self.session, self.cfg.token_url, REMOTE, data={
            "grant_type": "client_credentials", "client_id": self.cfg.client_id,
            "client_secret": self.secrets.cxone_client_secret.get_secret_value(), "scope": SCOPE})
        expires = body.get("expires_in", 3600)
        return str(body["access_token"]), int(expires) if isinstance(expires, int | float) else 3600

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        resp = authorised(self.session, self.tokens, method, f"{self.cfg.base_url}{path}", REMOTE, **kwargs)
        return json_object(resp, REMOTE, "job_id", "status")

    def render(self, contact: Contact) -> str:
        return json.dumps(batch_contact(contact, list(self.cfg.fields)), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False)

    def upload(self, file_name: str, payloads: Sequence[str]) -> str:
        contacts = [json.loads(p) for p in payloads]
        body = self._call("POST", "/v2/contact-center/contacts/batch", json={"contacts": contacts})
        return str(body["job_id"])

    def expires_on(self, sent_at: datetime) -> str | None:
        return None  # contacts carry no expiration

    def job_status(self, job_id: str) -> JobResult:
        body = self._call("GET", f"/v2/contact-center/contacts/batch/{quote(job_id, safe='')}")
        status = body["status"]
        if status == "COMPLETED":
            failed = body.get("failed_records", 0)
            if not isinstance(failed, int) or isinstance(failed, bool) or failed < 0:
                raise ProtocolError("failed_records is not a count", remote=REMOTE, method="GET",
                                    path="/v2/contact-center/contacts/batch")
            if failed:
                # The API does not say which: none of the batch is confirmed, so all of it goes again
                # (an upsert by external_id is harmless to repeat) and a lead that keeps failing parks.
                return JobResult("failed", f"{failed} of {body.get('total_records', '?')} contacts failed")
            return JobResult("completed")
        if status == "FAILED":
            return JobResult("failed", "CXone reported the batch FAILED")
        if status in ("PROCESSING", "PENDING", "QUEUED"):
            return JobResult("pending")
        raise ProtocolError(f"unknown batch status {str(status)[:30]!r}", remote=REMOTE, method="GET",
                            path="/v2/contact-center/contacts/batch")

    def remove(self, external_ids: Sequence[str]) -> tuple[list[str], list[str]]:
        raise NotImplementedError("the contacts-batch API has no removal call")

    def describe(self) -> dict[str, object]:
        return {"api": "contacts-batch", "base_url": self.cfg.base_url}
