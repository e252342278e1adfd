"""CXone DNC groups: suppress a number for every list a skill dials (API-CONTRACTS.md, "Suppression").

Adding takes ``phoneNumber`` as an integer (digits, country code included); expiring takes it as a
string. A number the group already holds, or no longer holds, is where syncd wants it: success.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import requests

from syncd.errors import ProtocolError
from syncd.http import json_object

REMOTE = "cxone"
Call = Callable[..., requests.Response]


def digits(phone: str) -> str:
    return "".join(c for c in phone if c.isdigit())


class DncGroups:
    def __init__(self, call: Call, group_id: int) -> None:
        self.call = call
        self.group_id = group_id
        self.path = f"dnc-groups/{group_id}"

    def _results(self, resp: requests.Response, asked: Sequence[str]) -> tuple[list[str], list[str]]:
        answer = json_object(resp, REMOTE, "resultSet")["resultSet"]
        results = answer.get("recordResults") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise ProtocolError("DNC answer has no recordResults", remote=REMOTE, path=self.path + "/records")
        by_number = {digits(str(asked_phone)): asked_phone for asked_phone in asked}
        done: set[str] = set()
        for r in results:
            if not isinstance(r, dict):
                continue
            number = digits(str(r.get("phoneNumber", r.get("formattedPhone", ""))))
            error = str(r.get("error") or "").lower()
            if r.get("success") is True or "exist" in error or "duplicate" in error or "not found" in error:
                done.add(number)
        ok = [phone for number, phone in by_number.items() if number in done]
        return ok, [phone for phone in asked if phone not in ok]

    def add(self, phones: Sequence[str]) -> tuple[list[str], list[str]]:
        """Suppress these E.164 numbers; returns (suppressed, failed). Silence is not success."""
        body = {"dncGroupRecords": [{"phoneNumber": int(digits(p))} for p in phones]}
        return self._results(self.call("POST", self.path + "/records", json=body), phones)

    def expire(self, phones: Sequence[str]) -> tuple[list[str], list[str]]:
        """Undo the suppression of numbers syncd added; returns (released, failed)."""
        body = {"dncGroupRecords": [{"phoneNumber": digits(p)} for p in phones]}
        return self._results(self.call("DELETE", self.path + "/records", json=body), phones)

    def scrubbed_skills(self) -> set[int]:
        answer: Any = json_object(self.call("GET", self.path + "/scrubbed-skills"), REMOTE)
        skills = answer.get("scrubbedSkills", answer.get("skills", []))
        found = set()
        for s in skills if isinstance(skills, list) else []:
            value = s.get("skillId") if isinstance(s, dict) else s
            if isinstance(value, int | str) and str(value).isdigit():
                found.add(int(value))
        return found
