"""Random-kill soak: SIGKILL `syncd sync` at random moments while Salesforce keeps changing.

Seeded (``SYNCD_SOAK_SEED`` to replay one); prints the seed, the kills and the duplicate row
uploads it saw. `make test` runs it on its own with ``-s`` so those figures reach the log.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from syncd.errors import StateError
from syncd.report import status
from syncd.sim.cxone import DNC_GROUP
from tests.conftest import Env
from tests.test_closed_loop import expected

LEADS = 20_000
CYCLES = 12


def state_exists(env: Env) -> bool:
    """The state file holds a database (a kill can leave it created and still empty)."""
    try:
        status(env.config(batch_size=2000))
    except StateError as e:
        if not str(e).startswith("no state at"):
            raise
        return False
    return True


@pytest.mark.soak
def test_random_kills_lose_nothing(env: Env) -> None:
    seed = int(os.environ.get("SYNCD_SOAK_SEED") or random.SystemRandom().randrange(1, 10**6))
    rng = random.Random(seed)
    print(f"\nsoak: seed {seed} (replay with SYNCD_SOAK_SEED={seed})")
    started = time.monotonic()
    env.sim.seed_leads(LEADS, seed=seed)
    env.sim.cx.job_delay = 1.0  # runs spend a while polling, where a kill leaves jobs in flight
    env.settings = {"dnc_group_id": DNC_GROUP, "verify_every_hours": 0.0001}  # every run verifies, and suppresses
    env.write_config(batch_size=2000)
    command = [sys.executable, "-m", "syncd", "sync", "--config", str(env.config_path)]
    kills = interrupted = 0
    last_id = 0
    for cycle in range(CYCLES):
        proc = subprocess.Popen(command, env=env.subprocess_env(), cwd=env.tmp, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        # The first run reads the whole org (seconds); later ones are short: aim inside each.
        time.sleep(rng.uniform(0.5, 6.0) if cycle == 0 else rng.uniform(0.5, 4.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        # Killed before the first run had created the state at all: no run to judge yet.
        last = status(env.config(batch_size=2000))["last_run"] if last_id or state_exists(env) else None
        if last is not None and last["id"] > last_id:  # this cycle's run (killed before its first commit: none)
            last_id = last["id"]
            # A run killed mid-way is shown interrupted, one that ran to its end with its own outcome. A
            # kill can also land after the run's last commit, while the process exits: that run finished.
            if proc.returncode == -signal.SIGKILL:
                assert last["status"] == "interrupted" or (
                    last["status"] in ("ok", "failed") and last["finished_at"]), (cycle, last)
            else:
                assert last["status"] == ("ok" if proc.returncode == 0 else "failed"), (cycle, proc.returncode, last)
            interrupted += last["status"] == "interrupted"
        changes = env.sim.mutate(rng.randint(50, 400), seed=seed + cycle, new=rng.randint(0, 40),
                                 modstamp=datetime.now(timezone.utc) - timedelta(seconds=2))
        print(f"soak: cycle {cycle + 1}: exit {proc.returncode}, then {sum(changes.values())} changes")
    for _ in range(3):
        final = subprocess.run(command, env=env.subprocess_env(), cwd=env.tmp, capture_output=True, text=True,
                               timeout=180)
        if final.returncode == 0:
            break
    assert final.returncode == 0, final.stderr
    assert env.list_phones() == expected(env, strict=False)

    rows = Counter((ext, digest) for u in env.sim.cx.uploads for ext, digest in zip(u["externalIds"], u["digests"],
                                                                                     strict=True))
    duplicates = sum(n - 1 for n in rows.values() if n > 1)
    # Attribute them: the same batch file sent again is the one window DESIGN allows (CXone accepted
    # the upload, the kill came before its job id was committed); anything else is a lead that left
    # the list and came back with the same content.
    seen_files: set[str] = set()
    resent = resends = 0
    for upload in env.sim.cx.uploads:
        if upload["fileName"] in seen_files:
            resent += upload["rows"]
            resends += 1
        seen_files.add(upload["fileName"])
    needless = needless_uploads(env)
    print(f"soak: {kills} kills ({interrupted} mid-run), {len(env.sim.cx.uploads)} uploads, {sum(rows.values())} "
          f"rows sent, {duplicates} duplicate row uploads ({duplicates / max(kills, 1):.0f} per kill): "
          f"{resent} from {resends} batch re-sends after a kill between "
          f"'accepted' and 'job id committed', {duplicates - resent} from leads that left the list and came back; "
          f"{time.monotonic() - started:.0f}s")
    # Only a kill between "CXone accepted" and "job id committed" re-sends a file, at most one per kill;
    # any other repeat of a lead's row must follow a removal of it (it left the list and came back).
    assert resends <= kills
    assert needless == [], f"rows sent again with no removal in between: {needless[:5]}"
    assert kills >= 3, "the soak must actually kill runs mid-way"


def needless_uploads(env: Env) -> list[tuple[str, str]]:
    """(lead, file) for each upload of a row identical to that lead's previous upload with no removal of
    the lead between them, other than a batch file sent again after a kill."""
    events: list[tuple[int, str, dict[str, Any]]] = [(u["seq"], "upload", u) for u in env.sim.cx.uploads]
    events += [(r["seq"], "removal", r) for r in env.sim.cx.removals]
    last_row: dict[str, str | None] = {}
    files_seen: set[str] = set()
    found = []
    for _, kind, event in sorted(events, key=lambda e: e[0]):
        if kind == "removal":
            for lead_id in event["removed"]:
                last_row[lead_id] = None
            continue
        again = event["fileName"] in files_seen
        files_seen.add(event["fileName"])
        for lead_id, digest in zip(event["externalIds"], event["digests"], strict=True):
            if last_row.get(lead_id) == digest and not again:
                found.append((lead_id, event["fileName"]))
            last_row[lead_id] = digest
    return found
