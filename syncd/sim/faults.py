"""Faults the simulator injects on demand, per route, by count or by seeded rate.

A rule is ``{"route": "sf.next" | "sf.*" | "*", "kind": KIND, "count": N}`` (the next N matching
calls) or ``{"route": ..., "kind": ..., "rate": 0.1, "seed": 7}`` (each matching call with that
probability); ``"after": K`` lets the first K matching calls through first. Kinds:

=================  ==============================================================================
``429``            429 with ``Retry-After: 1``          ``429-bare``  429 without Retry-After
``500`` ``502``    ``503`` ``504``                      plain server errors
``drop``           the connection is closed without an answer
``slow``           the answer comes only after ``slow_seconds`` (longer than the client timeout)
``badjson``        200 with a body that is not JSON
``cut``            200 whose body stops halfway (Content-Length promises more) and the connection closes
``session``        Salesforce 401 INVALID_SESSION_ID (the session is revoked, as an admin would)
``locator``        Salesforce 400 INVALID_QUERY_LOCATOR
``limit``          Salesforce 403 REQUEST_LIMIT_EXCEEDED (the daily allocation)
``concurrent``     Salesforce 403 REQUEST_LIMIT_EXCEEDED naming ConcurrentRequests (transient)
``query-timeout``  Salesforce 400 QUERY_TIMEOUT
``unauthorized``   CXone 401 (its tokens are revoked)
``reject``         400 for the request itself (e.g. an upload CXone refuses)
``forbidden``      403 (the API user lacks the right)
``partial``        removeProspects answers with every second prospect failed
``nonext``         Salesforce page that says ``done: false`` but has no ``nextRecordsUrl``
``deepjson``       200 whose JSON nests 100,000 arrays deep
``bigpage``        Salesforce page of 2,500 records (more than a page ever holds)
``trickle``        the real answer, one byte every ``trickle_seconds``
``redirect``       307 to ``redirect_to`` (a host nobody configured)
``cut-after``      ``cut``, but after the call took effect (an upload CXone took, its answer lost)
``badjson-after``  ``badjson``, after the call took effect
``decoy``          the real Salesforce page, its first record holding a subquery-like object whose
                   ``nextRecordsUrl`` names a locator that does not exist
``hold``           the real answer, held until ``calls`` more calls matching ``until`` have come in
                   (at most ``hold_seconds``): whether the client goes on while it waits
=================  ==============================================================================
"""

from __future__ import annotations

import fnmatch
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from syncd.sim.http import Response

KINDS = ("cut-after", "badjson-after",
         "429", "429-bare", "500", "502", "503", "504", "drop", "slow", "badjson", "cut", "session", "locator",
         "limit", "concurrent", "query-timeout",
         "unauthorized", "reject", "forbidden", "partial", "nonext", "deepjson", "bigpage", "trickle", "redirect",
         "decoy", "hold")


@dataclass
class Rule:
    route: str
    kind: str
    count: int | None = None
    rate: float | None = None
    rng: random.Random = field(default_factory=random.Random)
    after: int = 0
    until: str = ""  # hold: the route pattern whose calls release the answer
    calls: int = 0  # hold: how many of them

    def fires(self, route: str) -> bool:
        if not fnmatch.fnmatchcase(route, self.route):
            return False
        if self.after > 0:
            self.after -= 1
            return False
        if self.count is not None:
            if self.count <= 0:
                return False
            self.count -= 1
            return True
        return self.rate is not None and self.rng.random() < self.rate


def parse_fault(spec: str, seed: int) -> dict[str, Any]:
    """``ROUTE=KIND:COUNT`` or ``ROUTE=KIND@RATE`` (``syncd sim --fault``) as a rule for ``Faults.add``."""
    route, _, rest = spec.partition("=")
    kind, at, rate = rest.partition("@")
    kind, _, count = kind.partition(":")
    return {"route": route, "kind": kind, "rate": float(rate) if at else None,
            "count": None if at else int(count or 1), "seed": seed}


def sf_error(status: int, code: str, message: str) -> Response:
    return Response(status, [{"message": message, "errorCode": code, "fields": []}])


class Faults:
    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.fired: Counter[str] = Counter()
        self.slow_seconds = 3.0
        self.trickle_seconds = 0.2
        self.redirect_to = "http://127.0.0.1:9/elsewhere"
        self.hold_seconds = 30.0
        self.holding: dict[str, Rule] = {}  # route -> the hold rule that fired last on it
        self.lock = threading.Lock()

    def add(self, spec: dict[str, Any]) -> Rule:
        kind = str(spec.get("kind", ""))
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
        count = spec.get("count")
        rate = spec.get("rate")
        if (count is None) == (rate is None):
            raise ValueError("a fault needs exactly one of count or rate")
        if kind == "hold" and not (spec.get("until") and int(spec.get("calls", 0)) > 0):
            raise ValueError("a hold fault needs until (a route pattern) and calls (how many)")
        rule = Rule(str(spec.get("route", "*")), kind, None if count is None else int(count),
                    None if rate is None else float(rate), random.Random(spec.get("seed", 0)),
                    int(spec.get("after", 0)), str(spec.get("until", "")), int(spec.get("calls", 0)))
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()

    def pick(self, route: str) -> str | None:
        with self.lock:
            for rule in self.rules:
                if rule.fires(route):
                    self.fired[f"{route}:{rule.kind}"] += 1
                    if rule.kind == "hold":
                        self.holding[route] = rule
                    return rule.kind
        return None

    def answer(self, kind: str, revoke_sf: Callable[[], None], revoke_cx: Callable[[], None],
               ) -> tuple[Response | None, Callable[[], None] | None]:
        """The faulty answer for ``kind``: a response, or an action that replaces it (drop, slow)."""
        if kind == "429":
            return Response(429, {"error": "Too Many Requests"}, headers={"Retry-After": "1"}), None
        if kind == "429-bare":
            return Response(429, {"error": "Too Many Requests"}), None
        if kind in ("500", "502", "503", "504"):
            return Response(int(kind), {"error": "server error"}), None
        if kind == "drop":
            return Response(0), lambda: None
        if kind == "slow":
            return Response(0), lambda: time.sleep(self.slow_seconds)
        if kind == "badjson":
            return Response(200, raw=b"<html><body>Service Temporarily Unavailable</body></html>",
                            headers={"Content-Type": "text/html"}), None
        if kind == "cut":
            start = b'{"totalSize": 2, "done": true, "records": [{"attributes": {"type": "Lead"}, "Id": "00Q'
            return Response(200, raw=start, headers={"Content-Type": "application/json"},
                            declared_length=4 * len(start)), None
        if kind == "session":
            revoke_sf()
            return sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid"), None
        if kind == "locator":
            return sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator"), None
        if kind == "limit":
            return sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."), None
        if kind == "concurrent":
            return sf_error(403, "REQUEST_LIMIT_EXCEEDED",
                            "ConcurrentRequests (Concurrent API Requests) Limit exceeded."), None
        if kind == "query-timeout":
            return sf_error(400, "QUERY_TIMEOUT", "Your query request was running for too long."), None
        if kind == "unauthorized":
            revoke_cx()
            return Response(401, {"error": "Unauthorized"}), None
        if kind == "reject":
            return Response(400, {"error": "rejected by the simulator's fault plan"}), None
        if kind == "forbidden":
            return Response(403, {"error": "Forbidden"}), None
        if kind == "nonext":
            return Response(200, {"totalSize": 5, "done": False, "records": []}), None
        if kind == "deepjson":
            deep = b"[" * 100_000 + b"]" * 100_000
            return Response(200, raw=deep, headers={"Content-Type": "application/json"}), None
        if kind == "bigpage":
            records = [{"attributes": {"type": "Lead"}, "Id": f"00Q{i:015d}"} for i in range(2500)]
            return Response(200, {"totalSize": 2500, "done": True, "records": records}), None
        if kind == "redirect":
            return Response(307, {"error": "moved"}, headers={"Location": self.redirect_to}), None
        return None, None  # "partial", "trickle" and "decoy" are applied by the dispatcher or the handler
