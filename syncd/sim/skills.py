"""Simulated CXone skills (`GET skills/{skillId}` of the Admin API), for `syncd doctor`'s skill check.

The answer's shape (``{"skills": [{"skillId", "skillName", "mediaTypeName", "isOutbound", "isActive"}]}``)
follows the Admin API's public reference; no public document pins it for every version, so syncd reads
the three facts it needs and treats a field that is absent as unknown, never as a failure.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from syncd.sim.http import Request, Response, Router

# The list's skill, an inbound one, and an outbound skill that is switched off.
DEFAULT_SKILLS: dict[int, dict[str, Any]] = {
    5678: {"skillName": "Salesforce Leads outbound", "mediaTypeName": "Phone Call", "isOutbound": True,
           "isActive": True},
    1111: {"skillName": "Inbound support", "mediaTypeName": "Phone Call", "isOutbound": False, "isActive": True},
    2222: {"skillName": "Retired campaign", "mediaTypeName": "Phone Call", "isOutbound": True, "isActive": False},
}


@dataclass
class SkillSim:
    lock: threading.RLock
    authed: Any
    skills: dict[int, dict[str, Any]] = field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_SKILLS.items()})

    def routes(self, r: Router) -> None:
        r.add("GET", "/inContactAPI/services/v{ver}/skills/{skill_id}", "cxone.skill", self.skill)

    def skill(self, req: Request) -> Response:
        if not self.authed(req):
            return Response(401, {"error": "Unauthorized"})
        key = req.params["skill_id"]
        with self.lock:
            found = self.skills.get(int(key)) if key.isdigit() else None
            if found is None:
                return Response(404, {"error": "skill not found"})
            return Response(200, {"skills": [{"skillId": int(key), **found}]})
