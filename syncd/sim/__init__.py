"""The Salesforce + CXone simulator: one loopback HTTP server, real protocol, a ``/_sim`` control surface.

Used by ``syncd sim``, ``syncd demo``, the tests and ``bench/``. It behaves as API-CONTRACTS.md says
(relative ``nextRecordsUrl``, snapshots, error arrays, locators that die with their session, jobs
that finish later), not as the client happens to need.
"""

from __future__ import annotations

import fnmatch
import random
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timezone
from typing import Any

from syncd.sim import config_text, data
from syncd.sim import cxone as cx
from syncd.sim import salesforce as sf
from syncd.sim.faults import Faults
from syncd.sim.http import Handler, Request, Response, Router, Server
from syncd.sim.sforg import Org, link_owner

SIM_SECRETS = {
    "SYNCD_SALESFORCE_CLIENT_SECRET": sf.CLIENT_SECRET,
    "SYNCD_CXONE_CLIENT_SECRET": cx.CLIENT_SECRET,
    "SYNCD_CXONE_ACCESS_KEY_ID": cx.ACCESS_KEY_ID,
    "SYNCD_CXONE_ACCESS_KEY_SECRET": cx.ACCESS_KEY_SECRET,
}


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _to_value(field: str, value: Any) -> Any:
    if field in sf.DATE_FIELDS and isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(microsecond=0)
    if field in sf.DAY_FIELDS and isinstance(value, str):
        return date.fromisoformat(value)
    return value


def _from_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


class Simulator:
    def __init__(self, *, leads: int = 0, seed: int = 1, job_delay: float = 0.5, port: int = 0,
                 now: Callable[[], datetime] = _utcnow, scatter_ids: bool = False) -> None:
        self.lock = threading.RLock()
        self.now = now
        self.seed = seed
        self.scatter_ids = scatter_ids  # seeded leads' Ids in no order by SystemModstamp (data.generate)
        self.sf = sf.SalesforceSim(now=now, lock=self.lock)
        self.cx = cx.CXoneSim(now=now, lock=self.lock, job_delay=job_delay)
        self.faults = Faults()
        # Seconds each call waits before it is answered, by route pattern (outside the lock, as a remote would).
        self.latency: dict[str, float] = {}
        self.stats: Counter[str] = Counter()
        self.bytes_in: Counter[str] = Counter()
        self.router = Router()
        self.sf.routes(self.router)
        self.org = Org(self.sf)
        self.org.routes(self.router)
        self.cx.routes(self.router)
        self._control_routes()
        # The Date header is Salesforce's clock (tests may set ``sf.now`` apart from CXone's).
        self.server = Server(self.dispatch, port=port, now=lambda: self.sf.now())
        if leads:
            self.seed_leads(leads, seed)

    # -- lifecycle --------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> str:
        url = self.server.start()
        self.sf.base_url = self.cx.base_url = url
        return url

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def dispatch(self, req: Request) -> tuple[Response, Callable[[], None] | None]:
        found = self.router.match(req.method, req.path)
        if found is None:
            if req.path.startswith("/services/"):
                return sf.sf_error(404, "NOT_FOUND", "The requested resource does not exist"), None
            return Response(404, {"error": "not found"}), None
        name, handler, params = found
        req.params = params
        with self.lock:
            self.stats[name] += 1
            self.bytes_in[name.split(".")[0]] += len(req.body) + req.target_bytes
        # A call takes its latency in all, the simulator's own work included: the answer is held until then.
        delay = 0.0 if name.startswith("sim.") else next(
            (v for pattern, v in self.latency.items() if fnmatch.fnmatchcase(name, pattern)), 0.0)
        started = time.monotonic()
        resp, after = self._answer(name, handler, req)
        if after is not None and delay > 0:  # a dropped or stalled answer: its latency comes first
            time.sleep(max(0.0, started + delay - time.monotonic()))
        resp.not_before = started + delay if delay > 0 else 0.0
        return resp, after

    def _answer(self, name: str, handler: Handler, req: Request) -> tuple[Response, Callable[[], None] | None]:
        kind = None if name.startswith("sim.") else self.faults.pick(name)
        if kind == "partial":
            req.params["_fault"] = kind  # applied by the handler (removeProspects)
        elif kind is not None and kind.endswith("-after"):
            try:
                handler(req)  # it takes effect; then its answer is lost on the way back
            except Exception:
                traceback.print_exc()
            resp, after = self.faults.answer(kind.removesuffix("-after"), self.sf.revoke, self.cx.revoke)
            return resp or Response(500, {"error": "simulator error"}), after
        elif kind == "hold":
            return self._held(name, handler, req)
        elif kind is not None and kind != "trickle":
            resp, after = self.faults.answer(kind, self.sf.revoke, self.cx.revoke)
            if resp is not None:
                return resp, after
        try:
            resp = handler(req)
            if kind == "trickle":
                resp.trickle = self.faults.trickle_seconds
            if kind == "decoy":
                _decoy(resp)
            return resp, None
        except Exception:  # the simulator answers as a broken server would, and says why on stderr
            traceback.print_exc()
            return Response(500, {"error": "simulator error"}), None

    def _held(self, name: str, handler: Handler, req: Request) -> tuple[Response, Callable[[], None] | None]:
        """The call takes effect; its answer waits for ``calls`` more calls matching ``until`` (a client
        that waits for this answer before making them is found out after ``hold_seconds``)."""
        rule = self.faults.holding[name]
        released_at = self._calls(rule.until) + rule.calls
        try:
            resp = handler(req)
        except Exception:  # as the unheld path answers a broken handler
            traceback.print_exc()
            resp = Response(500, {"error": "simulator error"})
        deadline = time.monotonic() + self.faults.hold_seconds
        while self._calls(rule.until) < released_at and time.monotonic() < deadline:
            time.sleep(0.01)
        outcome = "released" if self._calls(rule.until) >= released_at else "timed-out"
        with self.faults.lock:
            self.faults.fired[f"{name}:hold-{outcome}"] += 1
        return resp, None

    def _calls(self, pattern: str) -> int:
        with self.lock:
            return sum(n for route, n in self.stats.items() if fnmatch.fnmatchcase(route, pattern))

    # -- configuration a client needs -----------------------------------------------------------------
    def config_toml(self, **settings: Any) -> str:
        """A config for this simulator (``syncd/sim/config_text.py`` names the settings)."""
        return config_text.config_toml(self.url, **settings)

    # -- leads ------------------------------------------------------------------------------------------
    def seed_leads(self, count: int, seed: int) -> None:
        with self.lock:
            self.sf.leads = {lead["Id"]: lead for lead in data.generate(count, seed, self.now(),
                                                                           scatter_ids=self.scatter_ids)}
            for lead in self.sf.leads.values():
                link_owner(self.sf, lead)
            self.sf.reindex()

    def upsert_leads(self, leads: list[dict[str, Any]], modstamp: datetime | None = None) -> list[str]:
        stamp = (modstamp or self.now()).replace(microsecond=0)
        ids = []
        with self.lock:
            for fields in leads:
                values = {k: _to_value(k, v) for k, v in fields.items()}
                lead_id = values.get("Id")
                if lead_id in self.sf.leads:
                    lead = self.sf.edit(lead_id)
                else:
                    rng = random.Random(f"{self.seed}:{len(self.sf.leads)}")
                    n = len(self.sf.leads) + 1
                    while data.lead_id(n) in self.sf.leads:
                        n += 1
                    lead = data.make_lead(rng, n, stamp)
                    if lead_id:
                        lead["Id"] = lead_id
                    self.sf.leads[lead["Id"]] = lead
                if values.get("IsDeleted") and not lead.get("IsDeleted"):
                    self.sf.delete_log.append((lead["Id"], values.get("SystemModstamp", stamp)))
                lead.update(values)
                link_owner(self.sf, lead)
                lead["SystemModstamp"] = lead["LastModifiedDate"] = values.get("SystemModstamp", stamp)
                ids.append(lead["Id"])
            self.sf.reindex()
        return ids

    def mutate(self, count: int, seed: int, new: int = 0, modstamp: datetime | None = None) -> dict[str, int]:
        """Apply ``count`` realistic changes and ``new`` new leads; returns how many of each kind."""
        rng = random.Random(seed)
        kinds: Counter[str] = Counter()
        with self.lock:
            live = sorted(i for i, lead in self.sf.leads.items() if not lead.get("IsDeleted"))
            changes = []
            for lead_id in rng.sample(live, min(count, len(live))):
                kind, fields = data.mutation(rng, self.sf.leads[lead_id])
                kinds[kind] += 1
                changes.append({"Id": lead_id, **fields})
            for _ in range(new):
                kinds["new"] += 1
                changes.append({})
            self.upsert_leads(changes, modstamp)
        return dict(kinds)

    def leads(self) -> list[dict[str, Any]]:
        with self.lock:
            return [{k: _from_value(v) for k, v in lead.items()} for lead in self.sf.leads.values()]

    # -- the control surface ----------------------------------------------------------------------------
    def _control_routes(self) -> None:
        r = self.router
        r.add("GET", "/_sim/info", "sim.info", lambda q: Response(200, self.info()))
        r.add("GET", "/_sim/leads", "sim.leads", lambda q: Response(200, {"leads": self.leads()}))
        r.add("POST", "/_sim/leads", "sim.upsert", self._c_upsert)
        r.add("POST", "/_sim/mutate", "sim.mutate", self._c_mutate)
        r.add("POST", "/_sim/seed", "sim.seed", self._c_seed)
        r.add("POST", "/_sim/config", "sim.config", self._c_config)
        r.add("POST", "/_sim/revoke", "sim.revoke", self._c_revoke)
        r.add("GET", "/_sim/cxone/list", "sim.list", self._c_list)
        r.add("GET", "/_sim/cxone/contacts", "sim.contacts", self._c_contacts)
        r.add("POST", "/_sim/cxone/pad", "sim.pad", self._c_pad)
        r.add("GET", "/_sim/cxone/uploads", "sim.uploads", self._c_uploads)
        r.add("POST", "/_sim/cxone/cancel", "sim.cancel", self._c_cancel)
        r.add("GET", "/_sim/stats", "sim.stats", lambda q: Response(200, self.stats_view()))
        r.add("POST", "/_sim/faults", "sim.faults", self._c_faults)
        r.add("DELETE", "/_sim/faults", "sim.faults_clear", self._c_faults_clear)

    def info(self) -> dict[str, Any]:
        return {"url": self.url, "salesforce": {"login_url": self.url, "client_id": sf.CLIENT_ID},
                "cxone": {"issuer": self.url, "client_id": cx.CLIENT_ID, "list_id": 1234, "skill_id": 5678,
                          "token_url": f"{self.url}/oauth2/token", "base_url": self.url},
                "leads": len(self.sf.leads), "job_delay": self.cx.job_delay,
                "readings": {"overwrite": self.cx.readings.overwrite, "removal": self.cx.readings.removal,
                             "readd": self.cx.readings.readd},
                "scratch_list_id": cx.SCRATCH_LIST, "dnc_group_id": cx.DNC_GROUP}

    def stats_view(self) -> dict[str, Any]:
        with self.lock:
            return {"calls": dict(self.stats), "bytes_in": dict(self.bytes_in), "api_used": self.sf.api_used,
                    "queries": self.sf.queries, "faults": dict(self.faults.fired)}

    def _c_upsert(self, req: Request) -> Response:
        body = req.json() or {}
        stamp = _to_value("SystemModstamp", body["modstamp"]) if body.get("modstamp") else None
        return Response(200, {"ids": self.upsert_leads(list(body.get("leads", [])), stamp)})

    def _c_mutate(self, req: Request) -> Response:
        body = req.json() or {}
        stamp = _to_value("SystemModstamp", body["modstamp"]) if body.get("modstamp") else None
        return Response(200, {"changes": self.mutate(int(body.get("count", 100)), int(body.get("seed", 2)),
                                                     int(body.get("new", 0)), stamp)})

    def _c_seed(self, req: Request) -> Response:
        body = req.json() or {}
        self.seed_leads(int(body.get("count", 1000)), int(body.get("seed", self.seed)))
        return Response(200, {"leads": len(self.sf.leads)})

    def _c_config(self, req: Request) -> Response:
        body = req.json() or {}
        with self.lock:
            for key, target, attr in (("job_delay", self.cx, "job_delay"), ("cancel_next", self.cx, "cancel_next"),
                                      ("max_page_size", self.sf, "max_page_size"),
                                      ("locator_ttl", self.sf, "locator_ttl"), ("api_limit", self.sf, "api_limit"),
                                      ("api_used", self.sf, "api_used")):
                if key in body:
                    setattr(target, attr, type(getattr(target, attr))(body[key]))
            try:
                for name in ("overwrite", "removal", "readd"):
                    if name in body:
                        self.cx.readings.set(name, str(body[name]))
            except ValueError as e:
                return Response(400, {"error": str(e)})
            if "reject_ids" in body:
                self.cx.reject_ids = {str(i) for i in body["reject_ids"]}
        return Response(200, self.info())

    def _c_revoke(self, req: Request) -> Response:
        which = (req.json() or {}).get("which", "all")
        if which in ("salesforce", "all"):
            self.sf.revoke()
        if which in ("cxone", "all"):
            self.cx.revoke()
        return Response(200, {"revoked": which})

    def _c_list(self, req: Request) -> Response:
        list_id = int(req.arg("list_id", "1234"))
        with self.lock:
            self.cx.settle()
            target = self.cx.lists[list_id]
            every = {ext: target.view(ext, r, self.now()) for ext, r in target.records.items()}
            return Response(200, {"callable": self.cx.callable(list_id), "records": every, "invalid": target.invalid,
                                  "dnc": {g: sorted(self.cx.dnc.numbers(g)) for g in self.cx.dnc.groups}})

    def _c_pad(self, req: Request) -> Response:
        """Fill list 1234 up to ``total`` records that syncd never sent (for the verification bench)."""
        from syncd.sim.calllist import Record

        total = int((req.json() or {}).get("total", 0))
        with self.lock:
            target = self.cx.lists[1234]
            n = 0
            while len(target.records) < total:
                n += 1
                ext = f"pad{n:012d}"
                if ext not in target.records:
                    target.records[ext] = Record({"ExternalId": ext, "PhoneNumber": f"+1555{n % 10_000_000:07d}",
                                                  "FirstName": "Pad", "LastName": str(n)}, 5678)
            return Response(200, {"records": len(target.records)})

    def set_readings(self, **readings: str) -> None:
        """Pick the answer to each UNVERIFIED CXone behaviour (see ``syncd/sim/calllist.py``)."""
        with self.lock:
            for name, value in readings.items():
                self.cx.readings.set(name, value)

    def _c_contacts(self, req: Request) -> Response:
        with self.lock:
            self.cx.settle()
            return Response(200, {"contacts": self.cx.contacts})

    def _c_uploads(self, req: Request) -> Response:
        with self.lock:
            return Response(200, {"uploads": self.cx.uploads, "removals": self.cx.removals})

    def _c_faults(self, req: Request) -> Response:
        body = req.json() or {}
        try:
            for spec in body.get("faults", [body] if "kind" in body else []):
                self.faults.add(spec)
            if "slow_seconds" in body:
                self.faults.slow_seconds = float(body["slow_seconds"])
        except ValueError as e:
            return Response(400, {"error": str(e)})
        return Response(200, {"rules": len(self.faults.rules), "fired": dict(self.faults.fired)})

    def _c_faults_clear(self, req: Request) -> Response:
        self.faults.clear()
        return Response(200, {"fired": dict(self.faults.fired)})

    def _c_cancel(self, req: Request) -> Response:
        body = req.json() or {}
        with self.lock:
            job = self.cx.jobs.get(str(body.get("job_id"))) or self.cx.batch_jobs.get(str(body.get("job_id")))
            if job is None:
                return Response(404, {"error": "job not found"})
            job.cancelled = True
            return Response(200, {"cancelled": job.job_id})


def _decoy(resp: Response) -> None:
    """The first record of a page gains a nested query result (as a subquery's) with a next URL of its own."""
    records = resp.body.get("records") if isinstance(resp.body, dict) else None
    if records:
        records[0]["Tasks"] = {"totalSize": 3, "done": False, "records": [],
                                "nextRecordsUrl": "/services/data/v60.0/query/01gDECOY000000-1"}
