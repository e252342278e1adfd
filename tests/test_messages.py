"""Operator mistakes get one line naming the path and the fix, never a traceback (issue 16).

Permission problems need a user without the rights: as root, the command runs in a forked child that
drops to ``nobody`` (root reads everything); as anyone else, the directory's mode takes the rights away.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import syncd.admin
import syncd.cli
import syncd.report
import syncd.runner
from syncd.errors import os_error_line
from syncd.sim import SIM_SECRETS
from tests.conftest import Env

ROOT = os.geteuid() == 0
NOBODY = 65534
# The commands import these lazily; a child that dropped its rights may no longer read them.
for _name in ("html.entities", "syncd.doctor", "syncd.daemon", "syncd.packaged", "syncd.secrets"):
    __import__(_name)


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Path]:
    """A directory another user can reach (pytest's own are 0700)."""
    with tempfile.TemporaryDirectory(prefix="syncd-perm-") as d:
        os.chmod(d, 0o755)  # noqa: S103 - the point: a second user must reach it
        yield Path(d)


def as_other_user(args: list[str], locked: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run the CLI as a user who may not enter ``locked``; returns (exit code, output)."""
    if not ROOT:
        mode = locked.stat().st_mode
        locked.chmod(0)
        try:
            r = CliRunner().invoke(syncd.cli.app, args, env=env)
            return r.exit_code, r.output + ("" if r.exception is None or isinstance(r.exception, SystemExit)
                                            else f"TRACEBACK {r.exception!r}")
        finally:
            locked.chmod(stat.S_IMODE(mode))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            r = CliRunner().invoke(syncd.cli.app, args, env=env)
            text = r.output + ("" if r.exception is None or isinstance(r.exception, SystemExit)
                               else f"TRACEBACK {r.exception!r}")
            os.write(write, f"{r.exit_code}\n{text}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read().decode()
    os.waitpid(pid, 0)
    code, _, text = data.partition("\n")
    return int(code), text


def _config(env: Env, base: Path) -> Path:
    state = base / "state"
    state.mkdir(mode=0o700)
    path = base / "syncd.toml"
    path.write_text(env.sim.config_toml(state_path=str(state / "syncd.db"), read_api="rest"))
    path.chmod(0o644)
    return path


def test_state_of_another_user_is_one_line_naming_the_path(env: Env, shared: Path) -> None:
    config = _config(env, shared)
    env.sim.seed_leads(50, seed=166)
    done = subprocess.run([sys.executable, "-m", "syncd", "sync", "--config", str(config)], env=env.subprocess_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("status", "jobs", "skipped", "sync", "reset"):
        code, text = as_other_user([command, "--config", str(config), *(["--yes"] if command == "reset" else [])],
                                   shared / "state", dict(SIM_SECRETS))
        assert "TRACEBACK" not in text, text
        assert "Traceback" not in text, text
        assert code == 1, (command, text)
        assert str(shared / "state") in text, text
        assert "ermission denied" in text, text
        assert len(text.strip().splitlines()) == 1, text


def test_an_unreadable_credentials_directory_is_said_once(env: Env, shared: Path) -> None:
    config = _config(env, shared)
    creds = shared / "credentials"
    creds.mkdir(mode=0o700)
    (creds / "syncd_cxone_client_secret").write_text("x")
    secrets = {k: v for k, v in SIM_SECRETS.items() if k != "SYNCD_CXONE_CLIENT_SECRET"}
    code, text = as_other_user(["sync", "--config", str(config)], creds,
                               {**secrets, "CREDENTIALS_DIRECTORY": str(creds)})
    assert code == 2, text
    assert text.strip() == (f"syncd: config: credentials directory {creds} cannot be read by this user "
                            "($CREDENTIALS_DIRECTORY): run as the user the service runs as, or fix the directory's "
                            "owner and mode")


@pytest.mark.skipif(not ROOT, reason="a file's own mode stops only another user; this user owns it")
def test_a_config_file_that_cannot_be_read(env: Env, shared: Path) -> None:
    config = _config(env, shared)
    config.chmod(0o600)
    code, text = as_other_user(["status", "--config", str(config)], shared / "state", {})
    assert code == 2, text
    assert text.strip() == (f"syncd: config: {config}: permission denied (run as the user the service runs as, "
                            "e.g. `sudo -u syncd syncd ...`, or make the file readable by it)")


def test_a_simulator_port_already_taken(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "syncd", "sim", "--port", str(port), "--leads", "1"],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"syncd: 127.0.0.1:{port} is already in use (another `syncd sim`?); stop it, or "
                                   "pick another port with --port (0 picks a free one)")


@pytest.mark.parametrize(("code", "expected"), [
    (errno.EROFS, "/var/lib/syncd/syncd.db: the file system is read-only here; point [state] path at a writable "
                  "directory (under systemd, inside the unit's StateDirectory, /var/lib/syncd)"),
    (errno.ENOSPC, "/var/lib/syncd/syncd.db: no space left on the device (or its quota is spent); free space and "
                   "run again: nothing is lost"),
])
def test_read_only_and_full_file_systems_name_the_path_and_the_fix(code: int, expected: str) -> None:
    # A read-only mount or a full disk cannot be made here without privileges: the line is built from the
    # errno the kernel gives (the SQLite side of a full disk is tests/test_wedges.py's).
    assert os_error_line(OSError(code, os.strerror(code), "/var/lib/syncd/syncd.db")) == expected


@pytest.mark.skipif(not ROOT, reason="needs another user than the directory's owner")
def test_a_state_directory_this_user_may_not_write_stops_a_writer_with_one_line(env: Env, shared: Path) -> None:
    config = _config(env, shared)
    (shared / "state").chmod(0o755)  # others may enter and read, not write
    code, text = as_other_user(["sync", "--config", str(config)], shared / "state", dict(SIM_SECRETS))
    assert code == 1, text
    assert "Traceback" not in text, text
    assert len(text.strip().splitlines()) == 1, text
    assert str(shared / "state") in text
