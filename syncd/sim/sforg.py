"""The simulated org beyond queries: describe, limits, the delete log, and what an org does to leads
that a window query cannot show (hard deletes, recycle-bin purges, merges, formula fields, owners).

Control surface (``/_sim/salesforce/...``, JSON bodies):
- ``delete`` ``{"ids": [..], "hard": false, "at": ISO}``: soft delete (``IsDeleted``, still in ``queryAll``) or hard
  delete (gone from every query); both enter the delete log.
- ``purge`` ``{"ids": [..]}``: empty the recycle bin of those leads: ``queryAll`` never returns them again.
- ``purge-log`` ``{"before": ISO}``: the delete log loses what came before (``earliestDateAvailable``).
- ``merge`` ``{"master": id, "losers": [..], "fields": {..}}``: losers deleted with ``MasterRecordId``,
  the master updated (its ``SystemModstamp`` moves).
- ``formula`` ``{"ids": [..], "fields": {..}}``: fields change, ``SystemModstamp`` does not.
- ``owner`` ``{"id": "005..", "Name": ..}``: a related record changes; no lead's ``SystemModstamp`` moves.
- ``config`` ``{"rotate_refresh", "jwt_public_key", "jwt_audiences", "timeout_rows", "max_deleted_ids",
  "bulk_delay", "bulk_fail_jobs", "bulk_chunk_cap", "bulk_expire"}`` (Bulk jobs: ``syncd/sim/sfbulk.py``).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from syncd.sim.http import Request, Response, Router
from syncd.sim.salesforce import SalesforceSim, sf_datetime, sf_error

# Types as Salesforce's describe names them.
TYPES = {"Id": "id", "Phone": "phone", "MobilePhone": "phone", "Email": "email", "Status": "picklist",
         "LeadSource": "picklist", "IsConverted": "boolean", "DoNotCall": "boolean", "HasOptedOutOfEmail": "boolean",
         "IsDeleted": "boolean", "SystemModstamp": "datetime", "CreatedDate": "datetime",
         "LastModifiedDate": "datetime",
         "MasterRecordId": "reference", "OwnerId": "reference", "Lead_Score__c": "double",
         "Interests__c": "multipicklist", "Follow_Up__c": "date"}
REFERENCES = {"OwnerId": ("Owner", "User"), "MasterRecordId": ("MasterRecord", "Lead")}
CALCULATED = {"Score_Band__c", "Name"}


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


class Org:
    def __init__(self, sf: SalesforceSim) -> None:
        self.sf = sf

    def routes(self, r: Router) -> None:
        r.add("GET", "/services/data/", "sf.versions", self.versions)
        for slash in ("", "/"):
            r.add("GET", f"/services/data/v{{ver}}/sobjects/Lead/describe{slash}", "sf.describe", self.describe)
            r.add("GET", f"/services/data/v{{ver}}/limits{slash}", "sf.limits", self.limits)
            r.add("GET", f"/services/data/v{{ver}}/sobjects/Lead/deleted{slash}", "sf.deleted", self.deleted)
        for name in ("delete", "purge", "purge-log", "merge", "formula", "owner", "config"):
            r.add("POST", f"/_sim/salesforce/{name}", f"sim.sf.{name}", getattr(self, "c_" + name.replace("-", "_")))

    # -- the REST API ------------------------------------------------------------------------------------
    def versions(self, req: Request) -> Response:
        return Response(200, [{"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"}])

    def _authorised(self, req: Request) -> Response | None:
        token = self.sf._auth(req)
        if isinstance(token, Response):
            return token
        refused = self.sf._count_call()
        return self.sf._limited(refused) if refused else None

    def describe(self, req: Request) -> Response:
        from syncd.sim.data import LEAD_FIELDS

        with self.sf.lock:
            refused = self._authorised(req)
            if refused:
                return refused
            fields = []
            for name in LEAD_FIELDS:
                if "." in name:
                    continue
                rel = REFERENCES.get(name)
                fields.append({"name": name, "label": name.replace("__c", "").replace("_", " "),
                               "type": TYPES.get(name, "string"), "calculated": name in CALCULATED,
                               "nillable": name not in ("Id", "IsDeleted", "LastName", "Company"),
                               "relationshipName": rel[0] if rel else None,
                               "referenceTo": [rel[1]] if rel else []})
            return self.sf._limited(Response(200, {"name": "Lead", "label": "Lead", "queryable": True,
                                                   "fields": fields}))

    def limits(self, req: Request) -> Response:
        with self.sf.lock:
            refused = self._authorised(req)
            if refused:
                return refused
            left = max(0, self.sf.api_limit - self.sf.api_used)
            return self.sf._limited(Response(200, {"DailyApiRequests": {"Max": self.sf.api_limit, "Remaining": left}}))

    def deleted(self, req: Request) -> Response:
        sf = self.sf
        with sf.lock:
            refused = self._authorised(req)
            if refused:
                return refused
            try:
                start, end = _when(req.arg("start")), _when(req.arg("end"))
            except ValueError:
                return sf_error(400, "INVALID_REPLICATION_DATE", "start and end must be ISO datetimes")
            if end - start <= timedelta(minutes=1):
                return sf_error(400, "INVALID_REPLICATION_DATE", "start must precede end by more than a minute")
            earliest = sf.now() - timedelta(days=15)
            if sf.log_floor is not None and sf.log_floor > earliest:
                earliest = sf.log_floor
            found = [{"id": lead_id, "deletedDate": sf_datetime(when)} for lead_id, when in sf.delete_log
                     if start <= when < end and when >= earliest]
            if len(found) > sf.max_deleted_ids:
                return sf._limited(sf_error(400, "EXCEEDED_ID_LIMIT", "too many ids; ask for a shorter span"))
            return sf._limited(Response(200, {"deletedRecords": found, "earliestDateAvailable": sf_datetime(earliest),
                                              "latestDateCovered": sf_datetime(min(end, sf.now()))}))

    # -- what the org does ------------------------------------------------------------------------------
    def _stamp(self, lead: dict[str, Any], when: datetime) -> None:
        lead["SystemModstamp"] = lead["LastModifiedDate"] = when

    def delete(self, ids: list[str], hard: bool = False, at: datetime | None = None) -> None:
        sf, when = self.sf, (at or self.sf.now()).replace(microsecond=0)
        with sf.lock:
            for lead_id in ids:
                if lead_id not in sf.leads:
                    continue
                sf.delete_log.append((lead_id, when))
                if hard:
                    del sf.leads[lead_id]
                else:
                    lead = sf.edit(lead_id)
                    lead["IsDeleted"] = True
                    self._stamp(lead, when)
            sf.reindex()

    def c_delete(self, req: Request) -> Response:
        body = req.json() or {}
        self.delete([str(i) for i in body.get("ids", [])], bool(body.get("hard")),
                    _when(body["at"]) if body.get("at") else None)
        return Response(200, {"leads": len(self.sf.leads)})

    def c_purge(self, req: Request) -> Response:
        with self.sf.lock:
            for lead_id in (req.json() or {}).get("ids", []):
                lead = self.sf.leads.get(str(lead_id))
                if lead is not None and lead.get("IsDeleted"):
                    del self.sf.leads[str(lead_id)]
            self.sf.reindex()
        return Response(200, {"leads": len(self.sf.leads)})

    def c_purge_log(self, req: Request) -> Response:
        body = req.json() or {}
        with self.sf.lock:
            floor = _when(body["before"]) if body.get("before") else self.sf.now()
            self.sf.log_floor = floor
            self.sf.delete_log = [(i, w) for i, w in self.sf.delete_log if w >= floor]
        return Response(200, {"earliest": sf_datetime(floor)})

    def c_merge(self, req: Request) -> Response:
        body = req.json() or {}
        sf = self.sf
        when = (_when(body["at"]) if body.get("at") else sf.now()).replace(microsecond=0)
        with sf.lock:
            if str(body.get("master")) not in sf.leads:
                return Response(404, {"error": "no such master"})
            master = sf.edit(str(body.get("master")))
            master.update(body.get("fields") or {})
            self._stamp(master, when)
            for lead_id in body.get("losers", []):
                if str(lead_id) in sf.leads:
                    loser = sf.edit(str(lead_id))
                    loser.update({"IsDeleted": True, "MasterRecordId": master["Id"]})
                    self._stamp(loser, when)
                    sf.delete_log.append((loser["Id"], when))
            sf.reindex()
        return Response(200, {"master": master["Id"]})

    def c_formula(self, req: Request) -> Response:
        body = req.json() or {}
        with self.sf.lock:
            for lead_id in body.get("ids", []):
                if str(lead_id) in self.sf.leads:
                    self.sf.edit(str(lead_id)).update(body.get("fields") or {})  # SystemModstamp stays where it was
        return Response(200, {})

    def c_owner(self, req: Request) -> Response:
        body = req.json() or {}
        sf = self.sf
        with sf.lock:
            user_id = str(body.get("id"))
            if user_id not in sf.users:
                return Response(404, {"error": "no such user"})
            # A new record, linked to each lead it owns (each lead copied, as any edit): a query made
            # before keeps the owner as it was.
            changes = {k: v for k, v in body.items() if k in ("Name", "Email")}
            user = sf.users[user_id] = {**sf.users[user_id], **changes}
            for lead_id in [i for i, lead in sf.leads.items() if lead.get("OwnerId") == user_id]:
                sf.edit(lead_id)["Owner"] = user
        return Response(200, user)

    def c_config(self, req: Request) -> Response:
        body = req.json() or {}
        sf = self.sf
        with sf.lock:
            if "rotate_refresh" in body:
                sf.auth.rotate_refresh = bool(body["rotate_refresh"])
            if "jwt_public_key" in body:
                sf.auth.jwt_public_key = body["jwt_public_key"] or None
            if "jwt_audiences" in body:
                sf.auth.jwt_audiences = tuple(body["jwt_audiences"])
            for key in ("timeout_rows", "max_deleted_ids"):
                if key in body:
                    setattr(sf, key, int(body[key]))
            for key, name in (("bulk_delay", "delay"), ("bulk_fail_jobs", "fail_jobs"),
                              ("bulk_chunk_cap", "chunk_cap")):
                if key in body:
                    setattr(sf.bulk, name, float(body[key]) if name == "delay" else int(body[key]))
            if body.get("bulk_expire"):
                sf.bulk.expire()
            return Response(200, {"refresh_tokens": len(sf.auth.refresh_tokens), "grants": sf.auth.grants[-20:]})


def link_owner(sf: SalesforceSim, lead: dict[str, Any]) -> None:
    """A lead's Owner is the user record itself: a change to the user shows on every lead it owns (``c_owner``)."""
    lead["Owner"] = sf.users.get(lead.get("OwnerId") or "")

