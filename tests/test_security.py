"""Secrets and tokens never reach output, logs, status or the state file; state is private; TLS stays on."""

from __future__ import annotations

import ast
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from syncd.http import make_session
from syncd.sim import SIM_SECRETS
from tests.conftest import Env


def run(env: Env, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "syncd", *args, "--config", str(env.config_path)],
                          capture_output=True, timeout=120, env=env.subprocess_env(), cwd=env.tmp)


@pytest.mark.parametrize("api", ["call-lists", "contacts-batch"])
def test_no_secret_or_token_anywhere(env: Env, api: str) -> None:
    env.api = api
    env.sim.seed_leads(500, seed=81)
    env.write_config()
    sync = run(env, "sync", "--verbose")  # DEBUG: the most the logs ever say
    assert sync.returncode == 0, sync.stderr
    env.sim.mutate(50, seed=82)
    env.sim.faults.add({"route": "sf.next", "kind": "session", "count": 1})  # a re-auth mid-run, too
    outputs = [sync.stdout, sync.stderr]
    for args in (("sync", "--verbose"), ("status", "--json"), ("status",), ("jobs", "--json"), ("skipped", "--csv"),
                 ("doctor",)):
        proc = run(env, *args)
        outputs += [proc.stdout, proc.stderr]
    state = env.tmp / "state"
    files = [p.read_bytes() for p in state.iterdir() if p.is_file()]
    with env.sim.lock:
        tokens = set(env.sim.sf.tokens) | set(env.sim.cx.tokens)
    assert tokens, "the run must have used tokens for this test to mean anything"
    needles = [s.encode() for s in [*SIM_SECRETS.values(), *tokens]]
    for blob in outputs + files:
        for needle in needles:
            assert needle not in blob


def test_state_files_are_private(env: Env) -> None:
    env.sim.seed_leads(50, seed=83)
    assert env.sync().ok
    for path in (env.tmp / "state").iterdir():
        if path.name.startswith("syncd.db"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def disables_verification(node: ast.AST) -> bool:
    """A ``verify=<falsy constant>`` keyword, or an assignment of one to something's ``verify``."""
    if isinstance(node, ast.keyword) and node.arg == "verify":
        return isinstance(node.value, ast.Constant) and not node.value.value
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Attribute) and t.attr == "verify" for t in node.targets) and (
            not isinstance(node.value, ast.Constant) or not node.value.value)
    return False


def test_tls_verification_is_always_on() -> None:
    assert make_session().verify is True
    # No configuration key, environment variable or code path turns it off anywhere in the package.
    package = Path(__file__).resolve().parent.parent / "syncd"
    offenders = [f"{path}:{getattr(node, 'lineno', '?')}" for path in package.rglob("*.py")
                 for node in ast.walk(ast.parse(path.read_text())) if disables_verification(node)]
    assert offenders == []
    assert disables_verification(ast.parse("s.get(u, verify=0)").body[0].value.keywords[0])  # type: ignore[attr-defined]


def test_unwritable_state_location(env: Env) -> None:
    blocker = env.tmp / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    env.write_config(state_path=str(blocker / "syncd.db"))
    proc = run(env, "sync")
    assert proc.returncode == 1
    assert proc.stderr.decode().strip() == (f"syncd: cannot create the state lock {blocker / 'syncd.db.lock'} "
                                            f"({blocker} is a file, not a directory)")


def test_a_state_file_that_is_not_sqlite_is_left_untouched(env: Env) -> None:
    path = env.tmp / "state" / "syncd.db"
    path.parent.mkdir()
    path.write_bytes(b"id,phone\n1,555\n")
    env.write_config()
    proc = run(env, "sync")
    assert proc.returncode == 1
    assert proc.stderr.decode().strip() == (f"syncd: {path} is not a SQLite database; refusing to touch it "
                                            "(point state.path elsewhere, or move the file away)")
    assert path.read_bytes() == b"id,phone\n1,555\n"


def test_a_database_locked_past_the_busy_timeout(env: Env) -> None:
    env.sim.seed_leads(20, seed=84)
    assert env.sync().ok
    env.overrides = ""
    env.write_config()
    text = env.config_path.read_text().replace('[state]\n', '[state]\nbusy_timeout_seconds = 0.5\n')
    env.config_path.write_text(text)
    code = ("import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
            "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(30)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(env.tmp / "state" / "syncd.db")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        proc = run(env, "sync")
        assert proc.returncode == 1
        assert proc.stderr.decode() == (
            f"syncd: the state database {env.tmp / 'state' / 'syncd.db'} is locked by another process; "
            "gave up after 0.5s (state.busy_timeout_seconds). Nothing was changed.\n")
    finally:
        holder.kill()
        holder.wait()
    assert os.path.getsize(env.tmp / "state" / "syncd.db") > 0
