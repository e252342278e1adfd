"""Failures that are not crashes, and the admin commands: exact messages and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from syncd.lock import StateLock
from syncd.report import status
from syncd.store import Store
from tests import oracle
from tests.conftest import Env


def syncd(env: Env, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syncd", *args, "--config", str(env.config_path)],
                          capture_output=True, text=True, timeout=120, env=env.subprocess_env(), cwd=env.tmp,
                          input=stdin)


def test_cancelled_jobs_retry_then_park_and_replay_job_sends_them(env: Env) -> None:
    env.sim.seed_leads(120, seed=51)
    env.sim.cx.cancel_next = 3  # max_attempts = 3 in the test config
    expected = oracle.expected(env.sim.leads())
    result = env.sync()
    # A cancelled job is not a failed run: its leads go again in the same run, up to max_attempts.
    assert result.ok
    assert len(env.sim.cx.uploads) == 3
    s = status(env.config())
    assert s["leads"]["dirty"] == len(expected)
    assert s["leads"]["parked"] == len(expected)
    assert env.list_phones() == {}
    uploads = len(env.sim.cx.uploads)
    assert env.sync().ok
    assert len(env.sim.cx.uploads) == uploads, "parked leads are not sent until replayed"

    listed = json.loads(syncd(env, "jobs", "--json").stdout)
    failed = [b for b in listed if b["state"] == "failed"]
    assert len(failed) == 3
    assert all(b["error"] == f"job {b['job_id']} failed: cancelled by CXone" for b in failed)
    assert failed[0]["parked"] == len(expected)  # newest first: the last failure parked them
    table = syncd(env, "jobs", "--state", "failed")
    assert table.returncode == 0
    assert failed[0]["job_id"] in table.stdout

    proc = syncd(env, "replay-job", failed[0]["job_id"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (f"staged upsert batch replay1-u-{failed[0]['id']} with {len(expected)} leads; "
                           "the next run (or the running daemon) sends it\n")
    assert status(env.config())["leads"]["parked"] == 0
    assert env.sync().ok
    assert env.list_phones() == expected
    assert status(env.config())["leads"]["dirty"] == 0


def test_a_job_that_never_completes_times_out_and_its_leads_are_retried_then_parked(env: Env) -> None:
    env.sim.seed_leads(60, seed=52)
    env.sim.cx.job_delay = -1  # never completes
    env.overrides = ""
    env.write_config()
    text = env.config_path.read_text().replace("job_timeout_seconds = 120", "job_timeout_seconds = 0.3")
    env.config_path.write_text(text)
    proc = syncd(env, "sync")
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(syncd(env, "jobs", "--json").stdout)
    assert [b["state"] for b in listed] == ["failed"] * 3  # tried max_attempts times in that one run
    assert all(b["error"] == f"job {b['job_id']} did not complete within 0.3s" for b in listed)
    s = json.loads(syncd(env, "status", "--json").stdout)
    assert s["leads"]["dirty"] == s["leads"]["parked"] == len(oracle.expected(env.sim.leads()))
    env.sim.cx.job_delay = 0.01
    assert syncd(env, "replay-job", listed[0]["id"]).returncode == 0
    assert syncd(env, "sync").returncode == 0
    assert env.list_phones() == oracle.expected(env.sim.leads())


def test_replay_job_refusals(env: Env) -> None:
    env.sim.seed_leads(40, seed=53)
    assert env.sync().ok
    proc = syncd(env, "replay-job", "nope")
    assert (proc.returncode, proc.stderr) == (2, "syncd: no batch or CXone job with id 'nope' (see `syncd jobs`)\n")
    db = env.tmp / "state" / "syncd.db"
    store = Store(db)
    with store.transaction() as c:
        c.execute("UPDATE batches SET state = 'submitted'")
    batch = store.list_batches(None, 1)[0]
    store.close()
    proc = syncd(env, "replay-job", batch["job_id"])
    assert proc.returncode == 2
    assert proc.stderr == (f"syncd: batch {batch['id']} is still in flight (submitted as CXone job "
                           f"{batch['job_id']}); replay it once it has completed or failed\n")
    bad = syncd(env, "jobs", "--state", "done")
    assert (bad.returncode, bad.stderr) == (2, "syncd: --state must be one of staged, submitted, completed, "
                                               "failed, not 'done'\n")


def test_replay_of_a_completed_job_resends_its_leads_current_content(env: Env) -> None:
    env.sim.seed_leads(80, seed=54)
    assert env.sync().ok
    (batch,) = json.loads(syncd(env, "jobs", "--json").stdout)
    with env.sim.lock:  # CXone lost the records
        env.sim.cx.lists[1234].records.clear()
    assert syncd(env, "replay-job", batch["id"]).returncode == 0
    assert syncd(env, "sync").returncode == 0
    assert env.list_phones() == oracle.expected(env.sim.leads())


def test_reset_asks_then_rewinds_and_the_resync_sends_only_what_differs(env: Env) -> None:
    env.sim.seed_leads(150, seed=55)
    assert env.sync().ok
    watermark = status(env.config())["watermark"]
    no = syncd(env, "reset", stdin="n\n")
    assert no.returncode == 1
    assert no.stderr.endswith("syncd: reset cancelled; nothing changed\n")
    assert status(env.config())["watermark"] == watermark
    yes = syncd(env, "reset", "--yes")
    assert yes.returncode == 0
    assert yes.stdout == (f"watermark {watermark} cleared; the next run reads the whole org and sends only what "
                          "CXone does not already have\n")
    assert status(env.config())["watermark"] is None
    uploads = len(env.sim.cx.uploads)
    again = env.sync()
    assert again.read == 150
    assert again.sent == 0
    assert len(env.sim.cx.uploads) == uploads


def test_the_lock_message_and_exit_code(env: Env) -> None:
    env.sim.seed_leads(10, seed=56)
    env.write_config()
    lock = StateLock(env.tmp / "state" / "syncd.db")
    lock.acquire()
    try:
        proc = syncd(env, "sync")
        assert proc.returncode == 3
        assert proc.stderr == (f"syncd: another syncd (pid {os.getpid()}) holds the state lock "
                               f"{env.tmp / 'state' / 'syncd.db.lock'}\n")
    finally:
        lock.release()
