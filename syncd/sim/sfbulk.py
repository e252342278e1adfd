"""Simulated Salesforce Bulk API 2.0 query jobs (API-CONTRACTS.md, "Bulk API 2.0 query").

- ``POST /services/data/v{ver}/jobs/query`` ``{"operation": "query" | "queryAll", "query": SOQL}`` creates a
  job (``UploadComplete``); its rows are the org as it is then. It is ``InProgress`` for ``delay`` seconds
  from its creation, then ``JobComplete``, or ``Failed`` with an ``errorMessage`` when ``fail_jobs`` > 0 (one per job).
- ``GET .../jobs/query/{id}``: the job's state.
- ``GET .../jobs/query/{id}/results?maxRecords=N[&locator=L]``: one chunk as CSV (a header row of the
  columns in the order asked, ``true``/``false``, ``...Z`` datetimes, empty for null); ``Sforce-Locator``
  names the next chunk (``null`` on the last) and ``Sforce-NumberOfRecords`` counts this one's rows. A
  chunk holds at most ``chunk_cap`` rows whatever ``maxRecords`` asks (Salesforce may send fewer). Another
  API version than the job's answers 409; a job whose results expired (``expire()``) answers 404.
Each call counts against the org's API allocation, as the REST calls do.
"""

from __future__ import annotations

import base64
import csv
import functools
import io
import secrets
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

from syncd.sim import soql
from syncd.sim.data import BY_STAMP, LEAD_FIELDS
from syncd.sim.http import Request, Response, Router

if TYPE_CHECKING:
    from syncd.sim.salesforce import SalesforceSim

DEFAULT_MAX_RECORDS = 100_000


def utc_millis(value: datetime) -> str:
    """The UTC moment to the millisecond (truncated), no offset: what both of Salesforce's forms start with."""
    utc = value if value.tzinfo is timezone.utc else value.astimezone(timezone.utc)
    return utc.isoformat(timespec="milliseconds")[:-6]


def bulk_value(value: Any) -> str:
    """A value as Bulk API CSV writes it."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return utc_millis(value) + "Z"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


@functools.lru_cache(maxsize=64)
def field_plan(fields: tuple[str, ...]) -> tuple[tuple[str, str, str], ...]:
    """A query's fields split once: (field, relationship, its field), the relationship "" if plain."""
    out = []
    for f in fields:
        rel, dot, sub = f.partition(".")
        out.append((f, rel, sub) if dot else (f, "", ""))
    return tuple(out)


@dataclass
class Job:
    id: str
    operation: str
    version: str
    fields: list[str]
    rows: list[dict[str, Any]]  # the leads as they were when the job was made (shallow copies)
    ready_at: float
    error: str | None = None
    expired: bool = False
    served: int = 0  # results calls answered


@dataclass
class BulkSim:
    sf: SalesforceSim
    delay: float = 0.2  # seconds a job is InProgress
    fail_jobs: int = 0  # the next N jobs end Failed
    chunk_cap: int = 0  # > 0: at most this many rows per results chunk
    jobs: dict[str, Job] = field(default_factory=dict)

    def routes(self, r: Router) -> None:
        r.add("POST", "/services/data/v{ver}/jobs/query", "sf.bulk.create", self.create)
        r.add("GET", "/services/data/v{ver}/jobs/query/{job}", "sf.bulk.status", self.status)
        r.add("GET", "/services/data/v{ver}/jobs/query/{job}/results", "sf.bulk.results", self.results)

    def expire(self) -> None:
        """Every job's results are gone (kept 7 days on a real org)."""
        with self.sf.lock:
            for job in self.jobs.values():
                job.expired = True
                job.rows = []

    def _call(self, req: Request) -> Response | None:
        from syncd.sim.salesforce import sf_error

        if isinstance(self.sf._auth(req), Response):
            return sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        refused = self.sf._count_call()
        return self.sf._limited(refused) if refused else None

    def _state(self, job: Job) -> str:
        if time.monotonic() < job.ready_at:
            return "InProgress"
        return "Failed" if job.error else "JobComplete"

    def _info(self, job: Job) -> dict[str, Any]:
        state = self._state(job)
        info: dict[str, Any] = {"id": job.id, "operation": job.operation, "object": "Lead", "state": state,
                                "concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": float(job.version),
                                "lineEnding": "LF", "columnDelimiter": "COMMA"}
        if state == "JobComplete":
            info["numberRecordsProcessed"] = len(job.rows)
        if state == "Failed":
            info["errorMessage"] = job.error
        return info

    def create(self, req: Request) -> Response:
        from syncd.sim.salesforce import sf_error

        # The job's processing time runs from its creation, the simulator's own query work included.
        ready_at = time.monotonic() + self.delay
        with self.sf.lock:
            refused = self._call(req)
            if refused:
                return refused
            try:
                body = req.json()
            except ValueError:
                body = None
            if not isinstance(body, dict) or body.get("operation") not in ("query", "queryAll") or not isinstance(
                    body.get("query"), str):
                return self.sf._limited(sf_error(400, "INVALIDJOB", "operation must be query or queryAll, "
                                                 "with a query"))
            if body.get("columnDelimiter", "COMMA") != "COMMA" or body.get("lineEnding", "LF") not in ("LF", "CRLF"):
                return self.sf._limited(sf_error(400, "INVALIDJOB", "this simulator writes COMMA-delimited CSV"))
            self.sf.query_log = [*self.sf.query_log[-99:], body["query"]]
            try:
                q = soql.parse(body["query"], LEAD_FIELDS)
                include_deleted = body["operation"] == "queryAll"
                pool = [lead for lead in self.sf._candidates(q.since) if include_deleted or not lead.get("IsDeleted")]
                rows = soql.run(q, pool, BY_STAMP)
            except soql.SoqlError as e:
                return self.sf._limited(sf_error(400, e.code, str(e)))
            job = Job("750SIM" + secrets.token_hex(6).upper(), body["operation"], req.params["ver"], q.fields,
                      rows, ready_at)
            if self.fail_jobs > 0:
                self.fail_jobs -= 1
                job.error, job.rows = "InternalServerError: the query job failed (simulated)", []
            self.jobs[job.id] = job
            return self.sf._limited(Response(200, {**self._info(job), "state": "UploadComplete"}))

    def _job(self, req: Request) -> Job | Response:
        """The call authorised and counted, then the job it names (or the answer that refuses it)."""
        from syncd.sim.salesforce import sf_error

        refused = self._call(req)
        if refused:
            return refused
        job = self.jobs.get(req.params["job"])
        if job is None or job.expired:
            return self.sf._limited(sf_error(404, "NOT_FOUND", "The requested resource does not exist"))
        if req.params["ver"] != job.version:
            return self.sf._limited(sf_error(409, "INVALIDJOBSTATE",
                                             f"the job was made with API v{job.version}; use the same version"))
        return job

    def status(self, req: Request) -> Response:
        with self.sf.lock:
            job = self._job(req)
            return job if isinstance(job, Response) else self.sf._limited(Response(200, self._info(job)))

    def results(self, req: Request) -> Response:
        from syncd.sim.salesforce import sf_error

        with self.sf.lock:
            job = self._job(req)
            if isinstance(job, Response):
                return job
            if self._state(job) != "JobComplete":
                return self.sf._limited(sf_error(400, "INVALIDJOBSTATE", "the job is not complete"))
            try:
                size = int(req.arg("maxRecords") or DEFAULT_MAX_RECORDS)
                locator = req.arg("locator")
                offset = int(base64.b64decode(locator + "=" * (-len(locator) % 4)).decode()) if locator else 0
            except ValueError:
                return self.sf._limited(sf_error(400, "INVALIDLOCATOR", "invalid locator or maxRecords"))
            if size < 1 or offset < 0 or offset > len(job.rows):
                return self.sf._limited(sf_error(400, "INVALIDLOCATOR", "invalid locator or maxRecords"))
            size = min(size, self.chunk_cap) if self.chunk_cap else size
            chunk = job.rows[offset:offset + size]
            job.served += 1
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(job.fields)
        plan = field_plan(tuple(job.fields))
        writer.writerows([bulk_value(_get(lead, f, rel, sub)) for f, rel, sub in plan] for lead in chunk)
        end = offset + len(chunk)
        locator = base64.b64encode(str(end).encode()).decode().rstrip("=") if end < len(job.rows) else "null"
        headers = {"Content-Type": "text/csv", "Sforce-Locator": locator, "Sforce-NumberOfRecords": str(len(chunk))}
        return self.sf._limited(Response(200, raw=out.getvalue().encode("utf-8"), headers=headers))


def _get(lead: dict[str, Any], name: str, rel: str, sub: str) -> Any:
    if rel:
        related = lead.get(rel)
        return related.get(sub) if isinstance(related, dict) else None
    return lead.get(name)
