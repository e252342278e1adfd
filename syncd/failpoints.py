"""Crash injection for the crash tests: ``SYNCD_FAILPOINTS=name[:n],...``.

At the n-th pass (default 1) of a named point the process ends at once with ``os._exit(137)``,
as a ``kill -9`` would: no cleanup, no flush, no rollback beyond what SQLite itself guarantees.
Passes are counted in the process, or across processes in the JSON file named by
``SYNCD_FAILPOINTS_COUNTER`` (so a point passed once per run can fail at its n-th run).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ENV = "SYNCD_FAILPOINTS"
COUNTER_ENV = "SYNCD_FAILPOINTS_COUNTER"
_plan: dict[str, int] | None = None
_passes: dict[str, int] = {}


def parse(spec: str) -> dict[str, int]:
    plan: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, count = part.partition(":")
        plan[name] = int(count) if count else 1
    return plan


def reset() -> None:
    """Forget the parsed plan and the pass counts (tests change the environment)."""
    global _plan
    _plan = None
    _passes.clear()


def _count(name: str) -> int:
    counter = os.environ.get(COUNTER_ENV)
    if not counter:
        _passes[name] = _passes.get(name, 0) + 1
        return _passes[name]
    path = Path(counter)
    counts = json.loads(path.read_text()) if path.exists() else {}
    counts[name] = counts.get(name, 0) + 1
    path.write_text(json.dumps(counts))
    return int(counts[name])


def failpoint(name: str) -> None:
    global _plan
    if _plan is None:
        _plan = parse(os.environ.get(ENV, ""))
    if name not in _plan:
        return
    if _count(name) == _plan[name]:
        sys.stderr.write(f"syncd: failpoint {name}:{_plan[name]} reached, exiting 137\n")
        sys.stderr.flush()
        os._exit(137)
