"""Crash matrix: `syncd sync` killed (exit 137) at every boundary, then rerun until clean.

After every scenario the invariants of DESIGN.md hold: the list equals the oracle, no (lead, hash)
went out in two distinct batches, the database is intact, nothing is left staged or submitted,
the watermark never moved backwards, and the killed run showed as `interrupted`.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from syncd.report import status
from syncd.sim.cxone import DNC_GROUP
from tests.conftest import Env
from tests.test_closed_loop import expected

POINTS = ["page_fetched", "page_committed", "batch_staged", "before_upload", "cxone_answered", "upload_accepted",
          "job_committed", "polling", "ack_committed", "before_suppress", "suppress_committed", "before_remove",
          "removal_committed", "before_watermark", "after_watermark", "verify_downloaded"]
# Every run verifies the list (each is more than this long after the last) and Do Not Call numbers are
# suppressed: the matrix covers the closed loop's boundaries too.
CLOSED_LOOP = {"dnc_group_id": DNC_GROUP, "verify_every_hours": 0.0001}


def syncd_sync(env: Env, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syncd", "sync", "--config", str(env.config_path)],
                          capture_output=True, text=True, timeout=120, env=env.subprocess_env(**extra), cwd=env.tmp)


def recent() -> datetime:
    return datetime.now(timezone.utc) - timedelta(seconds=2)


def check_invariants(env: Env, db: Path, watermarks: list[str]) -> None:
    assert env.list_phones() == expected(env, strict=False)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # The same content of a lead goes out in one batch only; it may go again only after the lead
        # was removed in between (it left the list and came back unchanged).
        last: dict[str, tuple[str, bytes | None]] = {}
        twice = []
        for lead, kind, digest, batch in conn.execute(
                "SELECT m.lead_id, b.kind, m.hash, b.id FROM batch_members m JOIN batches b ON b.id = m.batch_id "
                "ORDER BY b.rowid"):
            if kind == "upsert" and last.get(lead, ("", None)) == ("upsert", digest):
                twice.append((lead, batch))
            last[lead] = (kind, digest)
        assert twice == [], f"the same content of a lead was staged in two batches: {twice[:5]}"
        open_batches = conn.execute("SELECT id, state FROM batches WHERE state IN ('staged', 'submitted')").fetchall()
        assert open_batches == []
    finally:
        conn.close()
    seen = [w for w in watermarks if w]
    assert seen == sorted(seen), f"the watermark moved backwards: {seen}"


# The read's own boundaries when windows are read by Bulk API jobs (chunks of 60 rows): the job made
# and saved, a chunk fetched ahead, a page of a chunk applied, a chunk's locator saved; then the rest.
BULK_POINTS = ["bulk_job_saved", "page_fetched", "page_committed", "bulk_chunk_committed", "batch_staged",
               "before_watermark", "after_watermark"]


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("point", POINTS)
def test_crash_matrix(env: Env, point: str, n: int) -> None:
    crash_and_resume(env, point, n)


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("point", BULK_POINTS)
def test_crash_matrix_bulk(env: Env, point: str, n: int) -> None:
    env.sim.sf.bulk.chunk_cap = 60
    env.sim.sf.bulk.delay = 0.05
    crash_and_resume(env, point, n, read_api="bulk")


def crash_and_resume(env: Env, point: str, n: int, read_api: str = "rest") -> None:
    env.settings = {**CLOSED_LOOP, "read_api": read_api}
    env.sim.seed_leads(300, seed=41)
    env.sim.sf.max_page_size = 40
    env.sim.cx.job_delay = 0.05
    assert env.sync(batch_size=15).ok  # a first clean sync, so the crashing run also has removals to make
    db = env.tmp / "state" / "syncd.db"
    watermarks = [status(env.config(batch_size=15))["watermark"]]
    env.sim.mutate(220, seed=42, new=20, modstamp=recent())

    counter = env.tmp / "failpoints.json"
    for attempt in range(n + 1):
        killed = syncd_sync(env, SYNCD_FAILPOINTS=f"{point}:{n}", SYNCD_FAILPOINTS_COUNTER=str(counter))
        if killed.returncode == 137:
            break
        assert killed.returncode == 0, killed.stderr
        env.sim.mutate(120, seed=43 + attempt, new=5, modstamp=recent())  # more work for the next run
    assert killed.returncode == 137, f"{point}:{n} was never reached: {json.loads(counter.read_text())}"
    assert f"failpoint {point}:{n} reached" in killed.stderr
    assert status(env.config(batch_size=15))["last_run"]["status"] == "interrupted"
    watermarks.append(status(env.config(batch_size=15))["watermark"])

    for _ in range(3):
        rerun = syncd_sync(env)
        watermarks.append(status(env.config(batch_size=15))["watermark"])
        if rerun.returncode == 0:
            break
    assert rerun.returncode == 0, rerun.stderr
    check_invariants(env, db, watermarks)
