"""Simulated NICE CXone: Admin API calling lists (with OpenID discovery), DNC groups and the v2 contacts
batch API. How a list's records behave (and which of them a dialer would call) is in ``calllist.py``."""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
import re
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt

from syncd.sim.calllist import CallList, Readings, expiry_moment
from syncd.sim.dnc import DncGroup, DncSim
from syncd.sim.http import Request, Response, Router
from syncd.sim.skills import SkillSim

CLIENT_ID = "sim-cxone-client"
CLIENT_SECRET = "sim-cxone-secret-41f0"
ACCESS_KEY_ID = "sim-access-key-id"
ACCESS_KEY_SECRET = "sim-access-key-secret-9b7e"
TENANT_ID = "11eb0000-sim0-tenant"
BATCH_SCOPE = "contact-center:contacts:write"
DEFAULT_COLUMNS = ["ExternalId", "PhoneNumber", "FirstName", "LastName", "Company", "Email", "Status", "City",
                   "State", "Zip"]
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
MAX_RECORD = 512
MAX_BATCH = 500
SCRATCH_LIST = 4321  # a second list, for `syncd doctor --probe --list-id 4321`
DNC_GROUP = 77


def iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Job:
    job_id: str
    submitted: datetime
    complete_at: datetime | None  # None: never completes
    rows: list[dict[str, str]]
    file_name: str = ""
    list_id: int = 0
    cancelled: bool = False
    applied: bool = False
    failed_records: int = 0
    reported: bool = False  # a poll has answered it complete or cancelled
    skill: int = 0
    expiration: str = ""


@dataclass
class CXoneSim:
    now: Callable[[], datetime]
    lock: threading.RLock
    base_url: str = ""
    job_delay: float = 0.5
    tokens: set[str] = field(default_factory=set)
    lists: dict[int, CallList] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    uploads: list[dict[str, Any]] = field(default_factory=list)
    removals: list[dict[str, Any]] = field(default_factory=list)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    batch_jobs: dict[str, Job] = field(default_factory=dict)
    next_job: int = 1000
    seq: int = 0  # orders uploads and removals as they happened
    cancel_next: int = 0  # the next N jobs are cancelled by "CXone"
    fail_contacts_next: int = 0  # the next contacts batch completes with this many of its contacts failed
    readings: Readings = field(default_factory=Readings)
    reject_ids: set[str] = field(default_factory=set)  # rows CXone drops silently (the job still completes)
    dnc: DncSim = field(init=False)
    skills: SkillSim = field(init=False)
    signing_key: str = field(default_factory=lambda: secrets.token_hex(32))

    def __post_init__(self) -> None:
        self.lists[1234] = CallList(1234, "Salesforce Leads", list(DEFAULT_COLUMNS))
        self.lists[SCRATCH_LIST] = CallList(SCRATCH_LIST, "syncd probe scratch", list(DEFAULT_COLUMNS))
        self.dnc = DncSim(self.now, self.lock, self._authed)
        self.skills = SkillSim(self.lock, self._authed)
        # A DNC group that scrubs the list's skill, and one that scrubs nothing (doctor must tell them apart).
        self.dnc.groups[DNC_GROUP] = DncGroup(DNC_GROUP, "syncd suppression", skills={5678})
        self.dnc.groups[DNC_GROUP + 1] = DncGroup(DNC_GROUP + 1, "unscrubbed")

    def callable(self, list_id: int = 1234) -> dict[str, dict[str, str]]:
        """The records a dialer would call now: ExternalId → the record's fields."""
        with self.lock:
            self.settle()
            found = self.lists[list_id].callable_set(self.now(), self.dnc.blocked)
            return {ext: dict(r.row) for ext, r in found.items()}

    def routes(self, r: Router) -> None:
        r.add("GET", "/.well-known/openid-configuration", "cxone.openid", self.openid)
        r.add("GET", "/.well-known/cxone-configuration", "cxone.discovery", self.discovery)
        r.add("POST", "/auth/token", "cxone.token", self.token)
        api = "/inContactAPI/services/v{ver}/lists/call-lists"
        r.add("POST", api + "/{list_id}/upload", "cxone.upload", self.upload)
        r.add("GET", api + "/jobs/{job_id}", "cxone.job", self.job)
        r.add("DELETE", api + "/{list_name}/removeProspects", "cxone.remove", self.remove)
        r.add("GET", api + "/{list_id}", "cxone.list", self.list_info)
        self.dnc.routes(r)
        self.skills.routes(r)
        r.add("POST", "/oauth2/token", "batch.token", self.batch_token)
        r.add("POST", "/v2/contact-center/contacts/batch", "batch.submit", self.batch_submit)
        r.add("GET", "/v2/contact-center/contacts/batch/{job_id}", "batch.job", self.batch_job)

    # -- auth -------------------------------------------------------------------------------------------
    def openid(self, req: Request) -> Response:
        return Response(200, {"issuer": self.base_url, "token_endpoint": f"{self.base_url}/auth/token",
                              "authorization_endpoint": f"{self.base_url}/auth/authorize",
                              "jwks_uri": f"{self.base_url}/.well-known/jwks"})

    def discovery(self, req: Request) -> Response:
        if req.arg("tenantId") != TENANT_ID:
            return Response(404, {"error": "tenant_not_found"})
        return Response(200, {"api_endpoint": self.base_url, "area": "na1", "tenantId": TENANT_ID,
                              "ui_endpoint": self.base_url})

    def token(self, req: Request) -> Response:
        basic = req.headers.get("authorization", "")
        try:
            client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            client_id = client_secret = ""
        form = req.form()
        if not basic.startswith("Basic ") or (client_id, client_secret) != (CLIENT_ID, CLIENT_SECRET):
            return Response(401, {"error": "invalid_client", "error_description": "client authentication failed"})
        if form.get("grant_type") != "password":
            return Response(400, {"error": "unsupported_grant_type", "errorDescription": "use grant_type=password"})
        if (form.get("username"), form.get("password")) != (ACCESS_KEY_ID, ACCESS_KEY_SECRET):
            return Response(400, {"error": "invalid_grant", "error_description": "invalid access key"})
        token = "cx-" + secrets.token_urlsafe(24)
        with self.lock:
            self.tokens.add(token)
        now = int(self.now().timestamp())
        id_token = jwt.encode({"iss": self.base_url, "sub": "user:sim", "tenantId": TENANT_ID, "iat": now,
                               "exp": now + 3600}, self.signing_key, algorithm="HS256")
        return Response(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600,
                              "refresh_token": "rt-" + secrets.token_urlsafe(16), "id_token": id_token})

    def revoke(self) -> None:
        with self.lock:
            self.tokens.clear()

    def _authed(self, req: Request) -> bool:
        header = req.headers.get("authorization", "")
        return header.startswith("Bearer ") and header[7:] in self.tokens

    # -- jobs ---------------------------------------------------------------------------------------------
    def settle(self) -> None:
        """Apply every job whose processing time has passed (called under the lock)."""
        now = self.now()
        for job in self.jobs.values():
            if not job.applied and not job.cancelled and job.complete_at is not None and now >= job.complete_at:
                self.lists[job.list_id].apply(job.rows, job.skill, job.expiration, self.readings)
                job.applied = True
        for job in self.batch_jobs.values():
            if not job.applied and not job.cancelled and job.complete_at is not None and now >= job.complete_at:
                for row in job.rows[job.failed_records:]:
                    self.contacts[row["external_id"]] = row
                job.applied = True

    def _new_job(self, rows: list[dict[str, Any]], **kw: Any) -> Job:
        """A job that completes ``job_delay`` seconds from now (never, when negative)."""
        self.next_job += 1
        now = self.now()
        done = now + timedelta(seconds=self.job_delay) if self.job_delay >= 0 else None
        job = Job(job_id=str(self.next_job), submitted=now, complete_at=done, rows=rows, **kw)
        if self.cancel_next > 0:
            self.cancel_next -= 1
            job.cancelled = True
        return job

    # -- call lists -----------------------------------------------------------------------------------------
    def _list(self, key: str) -> CallList | None:
        if key.isdigit() and int(key) in self.lists:
            return self.lists[int(key)]
        return next((c for c in self.lists.values() if c.name == key), None)

    def upload(self, req: Request) -> Response:
        if not self._authed(req):
            return Response(401, {"error": "Unauthorized"})
        with self.lock:
            target = self._list(req.params["list_id"])
            if target is None or not req.params["list_id"].isdigit():
                return Response(404, {"error": "list not found"})
            body = req.json()
            if not isinstance(body, dict) or not isinstance(body.get("skillId"), int) \
                    or not isinstance(body.get("listFile"), str) or not body.get("fileName"):
                return Response(400, {"error": "listFile, fileName and skillId are required"})
            try:
                text = base64.b64decode(body["listFile"], validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return Response(400, {"error": "listFile is not base64 of a UTF-8 file"})
            lines = text.splitlines()
            reader = csv.reader(io.StringIO(text))
            header = next(reader, [])
            known = header[: len(target.columns)]
            if known != target.columns[: len(known)] or not {target.columns[0], target.columns[1]} <= set(header):
                return Response(400, {"error": "the file header does not match the list's column mapping"})
            names = DEFAULT_COLUMNS[: len(known)] + header[len(known):]  # beyond the defaults: custom fields
            rows, invalid, digests = [], 0, []
            for line, values in zip(lines[1:], reader, strict=False):
                record = dict(zip(names, values, strict=False))
                phone = record.get("PhoneNumber", "")
                if len(line) > MAX_RECORD or not record.get("ExternalId") or not E164.match(phone) \
                        or record["ExternalId"] in self.reject_ids:
                    invalid += 1  # dropped silently: the job completes, only the list's counts show it
                    continue
                rows.append(record)
                digests.append(hashlib.blake2b(line.encode(), digest_size=8).hexdigest())
            expiration = body.get("expirationDate") or ""
            try:
                expiry_moment(str(expiration))
            except ValueError:
                return Response(400, {"error": "expirationDate is not a date"})
            target.invalid += invalid
            job = self._new_job(rows, file_name=str(body["fileName"]), list_id=target.list_id,
                                skill=body["skillId"], expiration=str(expiration))
            self.jobs[job.job_id] = job
            unacked = sum(1 for j in self.jobs.values()
                          if j.list_id == target.list_id and not j.reported and j is not job)
            self.seq += 1
            self.uploads.append({"jobId": job.job_id, "fileName": job.file_name, "rows": len(rows) + invalid,
                                 "unacked": unacked, "seq": self.seq,
                                 "invalid": invalid, "externalIds": [r["ExternalId"] for r in rows],
                                 "phones": [r["PhoneNumber"] for r in rows], "listId": target.list_id,
                                 "digests": digests, "bytes": len(req.body), "at": iso(job.submitted),
                                 "options": {k: v for k, v in body.items() if k != "listFile"}})
            return Response(202, {"jobId": int(job.job_id)})

    def job(self, req: Request) -> Response:
        if not self._authed(req):
            return Response(401, {"error": "Unauthorized"})
        with self.lock:
            self.settle()
            job = self.jobs.get(req.params["job_id"])
            if job is None:
                return Response(404, {"error": "job not found"})
            target = self.lists[job.list_id]
            job.reported = job.reported or job.applied or job.cancelled
            return Response(200, {"uploadJobs": [{
                "jobId": int(job.job_id), "listId": job.list_id, "listName": target.name,
                "startDate": iso(job.submitted), "submitDate": iso(job.submitted), "isComplete": job.applied,
                "isCancelled": job.cancelled,
                "completedDate": iso(job.complete_at) if job.applied and job.complete_at else None}]})

    def list_info(self, req: Request) -> Response:
        if not self._authed(req):
            return Response(401, {"error": "Unauthorized"})
        with self.lock:
            self.settle()
            target = self._list(req.params["list_id"])
            if target is None:
                return Response(404, {"error": "list not found"})
            if req.arg("includeRecords").lower() != "true":
                return Response(200, {"resultSet": target.summary(self.now())})
            return Response(200, stream=target.download(self.now(), self.lock))

    def remove(self, req: Request) -> Response:
        if not self._authed(req):
            return Response(401, {"error": "Unauthorized"})
        with self.lock:
            self.settle()
            target = self._list(req.params["list_name"])
            body = req.json()
            if target is None:
                return Response(404, {"error": "list not found"})
            if not isinstance(body, dict) or not isinstance(body.get("prospectsToRemove"), list):
                return Response(400, {"error": "prospectsToRemove is required"})
            ok, failed = [], []
            partial = req.params.get("_fault") == "partial"
            for i, item in enumerate(body["prospectsToRemove"]):
                ext = str(item.get("externalId", "")) if isinstance(item, dict) else ""
                outcome = "failed" if partial and i % 2 == 1 else target.remove(ext, self.readings)
                if outcome == "removed":
                    ok.append({"externalId": ext, "resultCode": "Success"})
                else:
                    code = {"failed": "InternalError", "missing": "NotFound"}[outcome]
                    failed.append({"externalId": ext, "resultCode": code})
            self.seq += 1
            self.removals.append({"removed": [r["externalId"] for r in ok], "failed": [r["externalId"] for r in failed],
                                  "at": iso(self.now()), "seq": self.seq})
            return Response(200, {"successfulRecords": ok, "failedRecords": failed})

    # -- contacts batch ------------------------------------------------------------------------------------
    def batch_token(self, req: Request) -> Response:
        form = req.form()
        if form.get("grant_type") != "client_credentials":
            return Response(400, {"error": "unsupported_grant_type"})
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return Response(401, {"error": "invalid_client"})
        scopes = set(form.get("scope", "").split())
        if BATCH_SCOPE not in scopes:
            return Response(403, {"error": "insufficient_scope"})
        token = "cxb-" + secrets.token_urlsafe(24)
        with self.lock:
            self.tokens.add(token)
        return Response(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600,
                              "scope": " ".join(sorted(scopes))})

    def _batch_view(self, job: Job) -> dict[str, Any]:
        status = "FAILED" if job.cancelled else "COMPLETED" if job.applied else "PROCESSING"
        view: dict[str, Any] = {"job_id": job.job_id, "status": status, "created_time": iso(job.submitted),
                                "total_records": len(job.rows),
                                "processed_records": len(job.rows) if job.applied else 0}
        if job.applied or job.cancelled:
            view["failed_records"] = len(job.rows) if job.cancelled else job.failed_records
            view["completed_time"] = iso(job.complete_at or self.now())
        return view

    def batch_submit(self, req: Request) -> Response:
        if not self._authed(req):
            return Response(401, {"error": "Unauthorized"})
        body = req.json()
        contacts = body.get("contacts") if isinstance(body, dict) else None
        if not isinstance(contacts, list) or not contacts:
            return Response(400, {"error": "contacts must be a non-empty list"})
        if len(contacts) > MAX_BATCH:
            return Response(400, {"error": f"at most {MAX_BATCH} contacts per batch"})
        seen: set[str] = set()
        for c in contacts:
            phones = c.get("phone_numbers") if isinstance(c, dict) else None
            ext = c.get("external_id") if isinstance(c, dict) else None
            if not isinstance(ext, str) or not ext or not isinstance(phones, list) or not phones \
                    or not all(isinstance(p, dict) and E164.match(str(p.get("number", ""))) for p in phones):
                return Response(400, {"error": "malformed contact"})
            if ext in seen:
                return Response(400, {"error": f"duplicate external_id {ext} in one batch"})
            seen.add(ext)
        with self.lock:
            job = self._new_job(contacts)
            job.job_id = str(uuid.uuid4())
            if self.fail_contacts_next:
                job.failed_records, self.fail_contacts_next = min(self.fail_contacts_next, len(contacts)), 0
            self.batch_jobs[job.job_id] = job
            self.uploads.append({
                "jobId": job.job_id, "fileName": "", "rows": len(contacts), "invalid": 0,
                "externalIds": [c["external_id"] for c in contacts],
                "digests": [hashlib.blake2b(json.dumps(c, sort_keys=True).encode(), digest_size=8).hexdigest()
                            for c in contacts],
                "bytes": len(req.body), "at": iso(job.submitted)})
            return Response(202, self._batch_view(job))

    def batch_job(self, req: Request) -> Response:
        if not self._authed(req):
            return Response(401, {"error": "Unauthorized"})
        with self.lock:
            self.settle()
            job = self.batch_jobs.get(req.params["job_id"])
            if job is None:
                return Response(404, {"error": "job not found"})
            return Response(200, self._batch_view(job))
