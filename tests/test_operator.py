"""What an operator expects of the CLI and the logs (issue 16): --version, -h, completion, `syncd config`,
`syncd init`, `syncd systemd-unit`, structured JSON logs, journald priorities, syncd's own retry lines,
the terminal (bar and log lines on one console, 80 columns, whole ids, NO_COLOR), the schedule's zone."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

import syncd.cli as cli
from syncd import __version__, logs
from syncd.config import ScheduleConfig, config_from_text, parse_config
from syncd.config_file import load_config
from syncd.context import Progress as RunProgress
from syncd.errors import ConfigError
from syncd.sim import SIM_SECRETS
from syncd.store.schema import NAMES
from tests.conftest import Env
from tests.test_daemon import wait_for

ROOT = Path(__file__).resolve().parent.parent


def run(env: Env, *args: str, cwd: Path | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syncd", *args], capture_output=True, text=True, timeout=120,
                          env=env.subprocess_env(**extra), cwd=cwd or env.tmp)


def test_version_help_and_completion(env: Env) -> None:
    proc = run(env, "--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"syncd {__version__} (state schema {NAMES[-1]})"
    for args in (["-h"], ["status", "-h"], ["replay-job", "-h"]):
        shown = run(env, *args, COLUMNS="100")
        assert shown.returncode == 0, args
        assert "Usage:" in shown.stdout, args
    assert "--parked" in run(env, "replay-job", "-h", COLUMNS="100").stdout
    # Typer detects the shell from the parent process (sh under CI); its own switch reads $SHELL instead.
    script = subprocess.run([str(Path(sys.executable).parent / "syncd"), "--show-completion", "bash"],
                            capture_output=True, text=True, timeout=60,
                            env=env.subprocess_env(SHELL="/bin/bash", _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1"))
    assert script.returncode == 0
    assert "_SYNCD_COMPLETE=complete_bash" in script.stdout
    assert "-F _syncd_completion syncd" in script.stdout


def test_config_prints_every_default_resolved_and_secrets_only_as_set_or_missing(env: Env) -> None:
    env.write_config()
    secrets = {k: v for k, v in SIM_SECRETS.items() if k != "SYNCD_CXONE_ACCESS_KEY_ID"}
    proc = subprocess.run([sys.executable, "-m", "syncd", "config", "--config", str(env.config_path)],
                          capture_output=True, text=True, timeout=60, cwd=env.tmp,
                          env={**{k: v for k, v in env.subprocess_env().items() if not k.startswith("SYNCD_")},
                               **secrets})
    assert proc.returncode == 0, proc.stderr
    for value in SIM_SECRETS.values():
        assert value not in proc.stdout
    assert "#   SYNCD_SALESFORCE_CLIENT_SECRET: set (environment)" in proc.stdout
    assert "#   SYNCD_CXONE_ACCESS_KEY_ID: missing (needed for cxone.api = call-lists)" in proc.stdout
    assert "#   SYNCD_SALESFORCE_REFRESH_TOKEN: not needed" in proc.stdout
    shown = config_from_text(proc.stdout, "printed")
    assert shown == load_config(env.config_path)  # the same configuration, every default written out
    assert 'timezone = "UTC"' in proc.stdout
    assert "busy_timeout_seconds = 10.0" in proc.stdout


def test_init_writes_a_starting_config_and_keeps_an_existing_one(env: Env) -> None:
    target = env.tmp / "etc" / "syncd.toml"
    proc = run(env, "init", str(target), "--state", "/var/lib/syncd/syncd.db")
    assert proc.returncode == 0, proc.stderr
    assert target.read_text() == (ROOT / "syncd.example.toml").read_text().replace(
        'path = "state/syncd.db"', 'path = "/var/lib/syncd/syncd.db"')
    assert load_config(target, env={}).state.path == Path("/var/lib/syncd/syncd.db")
    again = run(env, "init", str(target))
    assert again.returncode == 2
    assert "exists; it was left as it is (--force replaces it)" in again.stderr
    assert run(env, "init", str(target), "--force").returncode == 0
    assert load_config(target, env={}).state.path == target.parent / "state" / "syncd.db"


def test_systemd_unit_prints_the_packaged_units(env: Env) -> None:
    for flag, name in (([], "syncd.service"), (["--template"], "syncd@.service")):
        proc = run(env, "systemd-unit", *flag)
        assert proc.returncode == 0
        assert proc.stdout == (ROOT / "systemd" / name).read_text()
    custom = run(env, "systemd-unit", "--bin", "/opt/syncd/bin/syncd")
    assert "ExecStart=/opt/syncd/bin/syncd run --log-format json" in custom.stdout
    assert "/usr/local/bin" not in custom.stdout
    refused = run(env, "systemd-unit", "--bin", "bin/syncd")
    assert refused.returncode == 2
    assert "--bin must be an absolute path" in refused.stderr


def test_json_logs_carry_structured_fields_and_journald_priorities(env: Env) -> None:
    env.sim.seed_leads(300, seed=168)
    env.write_config(interval_seconds=3600, batch_size=100)
    read, write = os.pipe()
    st = os.fstat(write)
    proc = subprocess.Popen([sys.executable, "-m", "syncd", "run", "--log-format", "json", "--config",
                             str(env.config_path)], cwd=env.tmp, stdout=subprocess.DEVNULL, stderr=write,
                            env=env.subprocess_env(JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}"))
    os.close(write)
    lines: list[str] = []
    with os.fdopen(read, "r") as stream:
        def finished() -> bool:
            lines.append(stream.readline())
            return '"event": "run_finished"' in lines[-1]
        try:
            wait_for(finished, 60, "the first run's summary line")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)  # a hang guard, not a timing
    entries = []
    for line in filter(None, (x.rstrip("\n") for x in lines)):
        match = re.match(r"^<(\d)>(\{.*\})$", line)
        assert match, line  # every line: a journald priority, then one JSON object
        entry = json.loads(match.group(2))
        assert int(match.group(1)) == {"debug": 7, "info": 6, "warning": 4, "error": 3}[entry["level"]]
        entries.append(entry)
    summary = next(e for e in entries if e["event"] == "run_finished")
    assert summary["run_id"] == 1
    assert summary["counts"]["status"] == "ok"
    assert summary["counts"]["sent"] == sum(e["counts"]["rows"] for e in entries if e["event"] == "batch_uploaded")
    uploaded = [e for e in entries if e["event"] == "batch_uploaded"]
    assert uploaded
    assert all(e["batch_id"] and e["job_id"] and e["run_id"] == 1 for e in uploaded)
    assert {e["job_id"] for e in entries if e["event"] == "batch_acked"} == {e["job_id"] for e in uploaded}


def test_an_error_line_is_priority_3_under_journald(env: Env) -> None:
    env.sim.seed_leads(50, seed=169)
    env.write_config(list_id=9999)
    read, write = os.pipe()
    st = os.fstat(write)
    proc = subprocess.Popen([sys.executable, "-m", "syncd", "sync", "--config", str(env.config_path)], cwd=env.tmp,
                            stdout=subprocess.DEVNULL, stderr=write,
                            env=env.subprocess_env(JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}"))
    os.close(write)
    with os.fdopen(read) as stream:
        text = stream.read()
    assert proc.wait(timeout=60) == 1
    errors = [line for line in text.splitlines() if line.startswith("<3>")]
    assert errors
    assert "CXone has no call list 9999" in errors[0]


def test_retries_are_logged_by_syncd_not_by_urllib3(env: Env) -> None:
    env.sim.seed_leads(50, seed=170)
    env.write_config()
    env.sim.faults.add({"route": "cxone.upload", "kind": "503", "count": 2})
    proc = run(env, "sync", "--config", str(env.config_path))
    assert proc.returncode == 0, proc.stderr
    retries = [line for line in proc.stderr.splitlines() if "retrying" in line]
    assert len(retries) == 2, proc.stderr
    assert re.search(r"WARNING syncd\.http: POST 127\.0\.0\.1/inContactAPI/services/v33\.0/lists/call-lists/1234/"
                     r"upload: 503; retrying \(attempt 2 of 6\) in \d+\.\ds$", retries[0]), retries[0]
    assert "attempt 3 of 6" in retries[1]
    assert "Retry(total=" not in proc.stderr
    assert "urllib3" not in proc.stderr


def test_a_final_connection_failure_names_the_host(env: Env, tmp_path: Path) -> None:
    text = env.sim.config_toml(state_path=str(tmp_path / "s.db"), read_api="rest").replace(
        env.sim.url, "http://127.0.0.1:9")
    (tmp_path / "syncd.toml").write_text(text + "\n[http]\nretries = 1\nbackoff_seconds = 0\n")
    proc = run(env, "sync", "--config", str(tmp_path / "syncd.toml"))
    assert proc.returncode == 1
    assert "connection to 127.0.0.1 failed" in proc.stdout


def test_the_bar_keeps_its_counts_at_80_columns_and_log_lines_go_above_it(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=80, force_terminal=True, color_system=None)
    monkeypatch.setattr(cli, "err", console)
    bar, update = cli._progress_bar("sync")
    update(RunProgress(read=456_789, total=1_000_000, sent=123_456, removed=1_234, in_flight=4, phase="delivering"))
    console.print(bar.make_tasks_table(bar.tasks))
    line = buf.getvalue().splitlines()[-1]
    assert len(line) <= 80
    assert "456789/1000000 sent 123,456, removed 1,234, 4 in flight, delivering" in line
    logs.setup(logging.INFO, console=console)
    try:
        logging.getLogger("syncd.test").warning("a line through the console")
    finally:
        logs.setup(logging.WARNING)
    assert "WARNING syncd.test: a line through the console" in buf.getvalue()


def test_jobs_show_whole_ids_at_80_columns_and_skipped_filters_by_reason(env: Env) -> None:
    env.sim.seed_leads(400, seed=171)
    env.write_config(batch_size=100)
    assert run(env, "sync", "--config", str(env.config_path)).returncode == 0
    batches = json.loads(run(env, "jobs", "--json", "--config", str(env.config_path)).stdout)
    table = run(env, "jobs", "--config", str(env.config_path), COLUMNS="80").stdout
    for b in batches:
        assert b["id"] in table
        assert b["job_id"] in table
    assert max(len(x) for x in table.splitlines()) <= 80
    rows = list(csv.DictReader(io.StringIO(run(env, "skipped", "--csv", "--reason", "status", "--config",
                                               str(env.config_path)).stdout)))
    assert rows
    assert {r["reason"] for r in rows} == {"status"}
    bad = run(env, "skipped", "--reason", "nope", "--config", str(env.config_path))
    assert bad.returncode == 2
    assert "--reason must be one of" in bad.stderr


def test_fail_is_coloured_where_colour_is_on_and_never_under_no_color(env: Env) -> None:
    env.write_config(skill_id=4444)
    coloured = run(env, "doctor", "--config", str(env.config_path), FORCE_COLOR="1", TTY_COMPATIBLE="1")
    plain = run(env, "doctor", "--config", str(env.config_path), FORCE_COLOR="1", NO_COLOR="1")
    piped = run(env, "doctor", "--config", str(env.config_path))
    assert "\x1b[1;31mFAIL\x1b[0m  cxone skill" in coloured.stdout
    assert "\x1b[31" not in plain.stdout
    assert "\x1b[1;31m" not in plain.stdout
    assert "FAIL" in plain.stdout
    assert "\x1b[" not in piped.stdout
    assert "FAIL  cxone skill: cxone.call_lists.skill_id = 4444" in piped.stdout


def test_schedule_timezone_is_an_iana_name_and_cron_follows_it() -> None:
    with pytest.raises(ValueError, match="'Mars/Olympus' is not an IANA time zone name"):
        ScheduleConfig(timezone="Mars/Olympus")
    weekdays = ScheduleConfig(cron="*/5 7-20 * * mon-fri", timezone="America/New_York")
    assert weekdays.longest_gap() == 58 * 3600 + 5 * 60  # Friday 20:55 to Monday 7:00, New York time
    data = {"salesforce": {"client_id": "x"}, "cxone": {"call_lists": {"client_id": "c", "list_id": 1,
                                                                       "list_name": "L", "skill_id": 2}},
            "schedule": {"cron": "0 25 * * *", "timezone": "Europe/Berlin"}}
    with pytest.raises(ConfigError) as e:
        parse_config(data)
    assert "cron '0 25 * * *' is not valid" in e.value.problems[0]
