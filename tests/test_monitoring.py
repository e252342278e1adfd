"""The alert rules and the dashboard: promtool checks and unit-tests the rules, and every metric they use
is one syncd really exports (scraped from a real state, not read from a list)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from syncd.metrics import Live, StateCollector
from syncd.runner import verify_now
from tests.conftest import Env

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
RULES = DEPLOY / "prometheus" / "syncd.rules.yml"
DASHBOARD = DEPLOY / "grafana" / "syncd.json"
PROMTOOL = shutil.which("promtool")
METRIC = re.compile(r"\bsyncd_[a-z_]+\b")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=RULES.parent)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed here (Debian package prometheus; "
                                             ".ci/run installs it)")
def test_the_rules_pass_promtool_check_and_their_unit_tests() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "syncd.rules.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_the_rules_alert_on_what_operators_need() -> None:
    alerts = set(re.findall(r"(?m)^\s+- alert: (\w+)$", RULES.read_text()))
    assert alerts == {"SyncdDown", "SyncdNoSuccessfulRun", "SyncdNeverSucceeded", "SyncdLeadsParked",
                      "SyncdLeadsUnremovable", "SyncdListDrift", "SyncdSalesforceApiUsageHigh"}
    tests = (RULES.parent / "syncd.rules.test.yml").read_text()
    assert alerts <= set(re.findall(r"alertname: (\w+)", tests)), "every alert has a promtool unit test"


def _exported(env: Env) -> set[str]:
    env.sim.seed_leads(200, seed=167)
    assert env.sync().ok
    config = env.config()
    verify_now(config, env.secrets(config))
    registry = CollectorRegistry()
    registry.register(StateCollector(config.state.path, Live(api_used=10, api_limit=100), 300.0))
    text = generate_latest(registry).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line.startswith("syncd_")}


def test_every_metric_the_rules_and_the_dashboard_use_is_exported(env: Env) -> None:
    exported = _exported(env)
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if isinstance(v.get("query"), dict)]
    used = set(METRIC.findall(RULES.read_text())) | {m for e in exprs for m in METRIC.findall(e)}
    assert used, "no metric found: the pattern or the files are wrong"
    assert used <= exported, f"used but not exported: {sorted(used - exported)}"


def test_the_dashboard_shows_what_the_issue_names() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    text = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for needle in ("syncd_last_success_timestamp_seconds", 'state="on_list"', "dirty", 'state="parked"',
                   'state="unremovable"', "syncd_verify_drift", "syncd_last_run_duration_seconds",
                   "syncd_salesforce_api_requests", "syncd_jobs_in_flight"):
        assert needle in text, needle
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
