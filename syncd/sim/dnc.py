"""Simulated CXone DNC groups (API-CONTRACTS.md, "Suppression: DNC groups").

A group holds phone numbers (digits only, country code included) and the skills it scrubs: a skill
that a group scrubs never dials a number in it, on any list. Adding takes ``phoneNumber`` as an
integer; expiring (``DELETE .../records``) takes it as a string, as the published schema says.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from syncd.sim.http import Request, Response, Router

API = "/inContactAPI/services/v{ver}/dnc-groups"


def digits(phone: str) -> str:
    return "".join(c for c in phone if c.isdigit())


@dataclass
class DncGroup:
    group_id: int
    name: str
    description: str = ""
    skills: set[int] = field(default_factory=set)
    numbers: dict[str, datetime] = field(default_factory=dict)  # digits → when added (active records only)


@dataclass
class DncSim:
    now: Callable[[], datetime]
    lock: threading.RLock
    authed: Callable[[Request], bool]
    groups: dict[int, DncGroup] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)  # every add and expire, in order
    next_id: int = 100

    def routes(self, r: Router) -> None:
        r.add("POST", API, "dnc.create", self.create)
        r.add("POST", API + "/search", "dnc.search", self.search)
        r.add("GET", API + "/{group_id}/scrubbed-skills", "dnc.skills", self.skills)
        r.add("POST", API + "/{group_id}/scrubbed-skills/{skill_id}", "dnc.scrub", self.scrub)
        r.add("POST", API + "/{group_id}/records", "dnc.add", self.add)
        r.add("DELETE", API + "/{group_id}/records", "dnc.expire", self.expire)

    def blocked(self, phone: str, skill: int) -> bool:
        number = digits(phone)
        return any(number in g.numbers for g in self.groups.values() if skill in g.skills)

    def numbers(self, group_id: int) -> set[str]:
        with self.lock:
            group = self.groups.get(group_id)
            return set(group.numbers) if group else set()

    def _group(self, req: Request) -> DncGroup | Response:
        if not self.authed(req):
            return Response(401, {"error": "Unauthorized"})
        key = req.params.get("group_id", "")
        group = self.groups.get(int(key)) if key.isdigit() else None
        return group if group is not None else Response(404, {"error": "DNC group not found"})

    def create(self, req: Request) -> Response:
        if not self.authed(req):
            return Response(401, {"error": "Unauthorized"})
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("dncGroupName"), str) or not body["dncGroupName"]:
            return Response(400, {"error": "dncGroupName is required"})
        with self.lock:
            self.next_id += 1
            group = DncGroup(self.next_id, body["dncGroupName"], str(body.get("dncGroupDescription", "")))
            self.groups[group.group_id] = group
        return Response(200, {"dncGroupId": group.group_id, "dncGroupName": group.name})

    def scrub(self, req: Request) -> Response:
        with self.lock:
            group = self._group(req)
            if isinstance(group, Response):
                return group
            group.skills.add(int(req.params["skill_id"]))
        return Response(200, {})

    def skills(self, req: Request) -> Response:
        with self.lock:
            group = self._group(req)
            if isinstance(group, Response):
                return group
            return Response(200, {"scrubbedSkills": [{"skillId": s} for s in sorted(group.skills)]})

    def _records(self, req: Request, kind: type) -> list[Any] | Response:
        body = req.json()
        records = body.get("dncGroupRecords") if isinstance(body, dict) else None
        if not isinstance(records, list) or not records:
            return Response(400, {"error": "dncGroupRecords is required"})
        numbers = []
        for item in records:
            value = item.get("phoneNumber") if isinstance(item, dict) else None
            if type(value) is not kind:
                return Response(400, {"error": f"phoneNumber must be {'an integer' if kind is int else 'a string'}"})
            numbers.append(value)
        return numbers

    def add(self, req: Request) -> Response:
        with self.lock:
            group = self._group(req)
            if isinstance(group, Response):
                return group
            numbers = self._records(req, int)
            if isinstance(numbers, Response):
                return numbers
            results = []
            for value in numbers:
                number = str(value)
                ok = 7 <= len(number) <= 15
                if ok:
                    group.numbers.setdefault(number, self.now())
                results.append({"success": ok, "error": None if ok else "invalid phone number",
                                "formattedPhone": number, "phoneNumber": value})
            self.log.append({"op": "add", "group": group.group_id, "numbers": [str(n) for n in numbers]})
            return Response(200, {"resultSet": {"errorCount": sum(not r["success"] for r in results),
                                                "recordResults": results}})

    def expire(self, req: Request) -> Response:
        with self.lock:
            group = self._group(req)
            if isinstance(group, Response):
                return group
            numbers = self._records(req, str)
            if isinstance(numbers, Response):
                return numbers
            results = []
            for number in numbers:
                group.numbers.pop(digits(number), None)
                results.append({"success": True, "error": None, "formattedPhone": number, "phoneNumber": number})
            self.log.append({"op": "expire", "group": group.group_id, "numbers": list(numbers)})
            return Response(200, {"resultSet": {"errorCount": 0, "recordResults": results}})

    def search(self, req: Request) -> Response:
        if not self.authed(req):
            return Response(401, {"error": "Unauthorized"})
        number = digits(req.arg("phoneNumber"))
        with self.lock:
            found = [{"dncGroupId": g.group_id, "phoneNumber": number} for g in self.groups.values()
                     if number in g.numbers]
        return Response(200, {"dncGroupRecords": found})
