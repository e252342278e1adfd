"""Chaos: 20,000 leads with about 10% of remote calls faulted at random (seeded, printed).

Runs in the unparallelised `-s` step of `make test` (marker ``soak``) so its figures reach the log.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter

import pytest

from tests import oracle
from tests.conftest import Env

KINDS = ["429", "429-bare", "500", "502", "503", "504", "drop", "slow", "badjson", "cut", "session", "locator",
         "unauthorized"]
HTTP = """
[http]
connect_timeout_seconds = 2
read_timeout_seconds = 1.0
retries = 4
backoff_seconds = 0.02
max_backoff_seconds = 0.3
"""


@pytest.mark.soak
def test_chaos_ends_with_the_list_equal_to_the_oracle(env: Env) -> None:
    seed = int(os.environ.get("SYNCD_CHAOS_SEED") or random.SystemRandom().randrange(1, 10**6))
    print(f"\nchaos: seed {seed} (replay with SYNCD_CHAOS_SEED={seed})")
    env.sim.seed_leads(20_000, seed=seed)
    env.sim.sf.max_page_size = 200
    env.sim.faults.slow_seconds = 1.5
    for i, kind in enumerate(KINDS):
        # Session revocations and dead locators hit Salesforce only; the rest hit every remote route.
        route = "sf.*" if kind in ("session", "locator") else "cxone.*" if kind == "unauthorized" else "*"
        env.sim.faults.add({"route": route, "kind": kind, "rate": 0.1 / len(KINDS), "seed": seed * 100 + i})
    env.overrides = HTTP
    started = time.monotonic()
    runs = []
    for _ in range(15):
        result = env.sync(batch_size=500)
        runs.append(result)
        if result.ok:
            break
    elapsed = time.monotonic() - started
    calls = sum(n for name, n in env.sim.stats.items() if not name.startswith("sim."))
    fired = Counter({k.split(":")[1]: 0 for k in env.sim.faults.fired})
    for key, n in env.sim.faults.fired.items():
        fired[key.split(":")[1]] += n
    print(f"chaos: {len(runs)} runs ({sum(not r.ok for r in runs)} failed) in {elapsed:.1f}s; "
          f"{calls} remote calls, {sum(fired.values())} faulted ({sum(fired.values()) / calls:.1%}): "
          + ", ".join(f"{k} {v}" for k, v in fired.most_common()))
    for r in runs:
        if not r.ok:
            print(f"chaos: run {r.run_id} failed after {r.seconds:.1f}s: {r.error}")
    assert runs[-1].ok
    assert env.list_phones() == oracle.expected(env.sim.leads())
