"""The real CLI in subprocesses against the simulator: output shapes and exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from syncd.lock import StateLock
from tests import oracle
from tests.conftest import Env


def syncd(env: Env, *args: str, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syncd", *args, "--config", str(env.config_path)],
                          capture_output=True, text=True, timeout=timeout, env=env.subprocess_env(**extra),
                          cwd=env.tmp)


def test_sync_status_and_skipped(env: Env) -> None:
    env.sim.seed_leads(600, seed=21)
    env.write_config()
    proc = syncd(env, "sync")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("run 1 ok: read 600, sent ")
    assert env.list_phones() == oracle.expected(env.sim.leads())

    status = json.loads(syncd(env, "status", "--json").stdout)
    assert status["last_run"]["status"] == "ok"
    assert status["last_run"]["read"] == 600
    assert status["leads"]["tracked"] == len(env.list_phones())
    assert status["daemon"]["running"] is False

    table = syncd(env, "status")
    assert table.returncode == 0
    assert "watermark" in table.stdout
    assert "last run" in table.stdout

    rows = list(csv.DictReader(io.StringIO(syncd(env, "skipped", "--csv").stdout)))
    assert len(rows) == 600 - len(env.list_phones())
    assert {r["reason"] for r in rows} <= {"deleted", "converted", "do_not_call", "status", "no_phone",
                                           "invalid_phone", "too_long", "malformed", "invalid_id"}
    assert {"status", "do_not_call", "invalid_phone"} <= {r["reason"] for r in rows}


def test_a_second_writer_exits_3_while_status_still_works(env: Env) -> None:
    env.sim.seed_leads(50, seed=22)
    env.write_config()
    assert syncd(env, "sync").returncode == 0
    lock = StateLock(Path(env.tmp / "state" / "syncd.db"))
    lock.acquire()
    try:
        proc = syncd(env, "sync")
        assert proc.returncode == 3
        assert "holds the state lock" in proc.stderr
        status = syncd(env, "status", "--json")
        assert status.returncode == 0
        shown = json.loads(status.stdout)
        assert shown["lock_holder"] == os.getpid()
        assert shown["daemon"]["running"] is False  # a lock held by a one-off sync is not a daemon
    finally:
        lock.release()


def test_status_without_state_says_so(env: Env) -> None:
    env.write_config()
    proc = syncd(env, "status")
    assert proc.returncode == 1
    line = proc.stderr.strip()
    assert line.startswith(f"syncd: no state at {env.tmp / 'state' / 'syncd.db'} yet.")
    assert "pass the same --config" in line
    assert "run `syncd sync` first" not in line


def test_failed_run_exits_1_with_the_cause(env: Env) -> None:
    env.write_config()
    proc = syncd(env, "sync", SYNCD_SALESFORCE_CLIENT_SECRET="wrong")
    assert proc.returncode == 1
    assert "salesforce POST /services/oauth2/token: 400 invalid_client: credentials refused" in proc.stdout
    assert "wrong" not in proc.stdout + proc.stderr


def test_demo_runs_small(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "syncd", "demo", "--leads", "1500", "--changes", "60"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "initial" in proc.stdout
    assert "incremental" in proc.stdout
    assert "leads not on the list, by reason" in proc.stdout


def test_doctor_checks_every_part(env: Env) -> None:
    env.write_config()
    proc = syncd(env, "doctor")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["ok    config", "ok    state", "ok    salesforce auth",
                                                      "ok    salesforce clock", "ok    salesforce fields",
                                                      "ok    salesforce query", "ok    cxone call-lists",
                                                      "ok    cxone skill"]
    assert "list 1234 'Salesforce Leads'" in lines[-2]
    assert lines[-1] == "ok    cxone skill: skill 5678 'Salesforce Leads outbound', Phone Call, outbound"
    bad = syncd(env, "doctor", SYNCD_CXONE_ACCESS_KEY_SECRET="nope")
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[-2].startswith("FAIL  cxone call-lists: cxone POST /auth/token: 400 invalid_grant")


def test_doctor_names_unknown_fields_and_formulas(env: Env) -> None:
    env.write_config(where="Rating__c = 'Hot' AND Owner.Name != null", fields='Band = "Score_Band__c"\nX = "Nope__c"')
    proc = syncd(env, "doctor")
    assert proc.returncode == 1
    assert "FAIL  salesforce fields: Lead has no field Rating__c, Nope__c" in proc.stdout
    env.write_config(fields='Band = "Score_Band__c"\nOwner = "Owner.Name"')
    good = syncd(env, "doctor")
    assert good.returncode == 0, good.stdout
    assert "Score_Band__c is a formula: changes reach CXone at the next full refresh" in good.stdout
