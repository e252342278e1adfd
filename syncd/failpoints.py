"""Crash injection for the crash tests: ``SYNCD_FAILPOINTS=name[:n],...``.

At the n-th pass (default 1) of a named point the process ends at once with ``os._exit(137)``,
as a ``kill -9`` would: no cleanup, no flush, no rollback beyond what SQLite itself guarantees.
``name:n:hang`` instead hangs that thread for good (a stuck sync, for the watchdog tests).
Passes are counted in the process, or across processes in the JSON file named by
``SYNCD_FAILPOINTS_COUNTER`` (so a point passed once per run can fail at its n-th run).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ENV = "SYNCD_FAILPOINTS"
COUNTER_ENV = "SYNCD_FAILPOINTS_COUNTER"
_plan: dict[str, tuple[int, str]] | None = None
_passes: dict[str, int] = {}


def parse(spec: str) -> dict[str, tuple[int, str]]:
    """``name[:n][:hang]`` items → {name: (n, action)}."""
    plan: dict[str, tuple[int, str]] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, rest = part.partition(":")
        count, _, action = rest.partition(":")
        plan[name] = (int(count) if count else 1, action or "exit")
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
    n, action = _plan[name]
    if _count(name) != n:
        return
    if action == "hang":
        sys.stderr.write(f"syncd: failpoint {name}:{n} reached, hanging\n")
        sys.stderr.flush()
        while True:
            time.sleep(3600)
    sys.stderr.write(f"syncd: failpoint {name}:{n} reached, exiting 137\n")
    sys.stderr.flush()
    os._exit(137)
