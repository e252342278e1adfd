"""One rule finds the state for the service and every admin command, from any directory (issue 16)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from syncd.config_file import load_config
from syncd.errors import ConfigError
from tests import oracle
from tests.conftest import Env
from tests.test_daemon import wait_for


def _write(env: Env, where: Path, state_line: str | None) -> Path:
    text = env.sim.config_toml(poll_interval=0.05, read_api="rest", interval_seconds=2)
    if state_line is None:
        text = text.replace('[state]\npath = "state/syncd.db"\n', "[state]\n")
    else:
        text = text.replace('path = "state/syncd.db"', state_line)
    where.mkdir(parents=True, exist_ok=True)
    path = where / "syncd.toml"
    path.write_text(text)
    return path


def test_a_relative_state_path_is_read_from_the_config_files_directory(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    etc = env.tmp / "etc" / "syncd"
    _write(env, etc, 'path = "pipelines/emea.db"')
    elsewhere = env.tmp / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    assert load_config(Path("../../etc/syncd/syncd.toml"), env={}).state.path == etc / "pipelines" / "emea.db"
    _write(env, etc, None)  # unset: state/syncd.db beside the file, never under the working directory
    assert load_config(etc / "syncd.toml", env={}).state.path == etc / "state" / "syncd.db"
    _write(env, etc, f'path = "{env.tmp}/abs/syncd.db"')
    assert load_config(etc / "syncd.toml", env={}).state.path == env.tmp / "abs" / "syncd.db"


def test_under_systemd_a_state_outside_the_state_directory_is_refused_with_the_line_to_use(env: Env) -> None:
    etc = env.tmp / "etc"
    lib = env.tmp / "var" / "lib" / "syncd"
    config = _write(env, etc, None)
    with pytest.raises(ConfigError) as e:
        load_config(config, env={"STATE_DIRECTORY": str(lib)})
    assert e.value.problems == [
        f"{config}: state.path resolves to {etc / 'state' / 'syncd.db'}, outside the unit's StateDirectory {lib}: "
        f'set `path = "{lib / "syncd.db"}"` under [state] so the service and the admin commands use the same state']
    _write(env, etc, 'path = "../var/lib/syncd/syncd.db"')
    assert load_config(config, env={"STATE_DIRECTORY": str(lib)}).state.path == lib / "syncd.db"


def test_admin_commands_from_another_directory_see_the_running_daemons_state(env: Env) -> None:
    """As the README deploys it: the unit runs in / with $STATE_DIRECTORY, an operator elsewhere without it."""
    env.sim.seed_leads(400, seed=165)
    lib = env.tmp / "var" / "lib" / "syncd"
    config = _write(env, env.tmp / "etc" / "syncd", f'path = "{lib}/syncd.db"')
    unit_cwd, operator_cwd = env.tmp / "unit-cwd", env.tmp / "home" / "operator"
    unit_cwd.mkdir()
    operator_cwd.mkdir(parents=True)
    daemon = subprocess.Popen([sys.executable, "-m", "syncd", "run", "--config", str(config)], cwd=unit_cwd,
                              env=env.subprocess_env(STATE_DIRECTORY=str(lib)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)

    def admin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "syncd", *args, "--config", str(config)], cwd=operator_cwd,
                              env=env.subprocess_env(), capture_output=True, text=True, timeout=60)

    try:
        wait_for(lambda: env.list_phones() and env.list_phones() == oracle.expected(env.sim.leads()), 60,
                 "the daemon's first sync")
        shown = json.loads(admin("status", "--json").stdout)
        assert shown["state_path"] == str(lib / "syncd.db")
        assert shown["daemon"]["running"] is True
        assert shown["daemon"]["pid"] == daemon.pid
        assert shown["leads"]["on_list"] == len(env.list_phones())
        assert shown["schema_version"].startswith("m0")
        assert shown["version"]
        assert str(lib / "syncd.db") in admin("status").stdout
        jobs = json.loads(admin("jobs", "--json").stdout)
        assert jobs
        assert all(b["state"] in ("completed", "submitted") for b in jobs)
        assert admin("skipped", "--csv").stdout.startswith("lead_id,reason")
        assert "no lead is parked" in admin("replay-job", "--parked").stdout
        second = admin("sync")
        assert second.returncode == 3, second.stderr  # the same state, so the same lock: no second writer
        assert not (operator_cwd / "state").exists()
        assert not (env.tmp / "etc" / "syncd" / "state").exists()
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=60)  # a hang guard, not a timing
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()


def test_verify_without_a_state_creates_none(env: Env) -> None:
    env.write_config()
    proc = subprocess.run([sys.executable, "-m", "syncd", "verify", "--config", str(env.config_path)],
                          capture_output=True, text=True, timeout=60, env=env.subprocess_env(), cwd=env.tmp)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"syncd: no state at {env.tmp / 'state' / 'syncd.db'} yet.")
    assert not (env.tmp / "state").exists()
