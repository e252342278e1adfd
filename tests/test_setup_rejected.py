"""A CXone refusal about the configuration fails the run and parks nothing; fixed, the leads go (issue 16)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from syncd.metrics import Live, StateCollector
from syncd.report import status
from tests import oracle
from tests.conftest import Env


def cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syncd", *args, "--config", str(env.config_path)],
                          capture_output=True, text=True, timeout=120, env=env.subprocess_env(), cwd=env.tmp)


def _last_success(env: Env) -> float | None:
    for family in StateCollector(env.config().state.path, Live()).collect():
        if family.name == "syncd_last_success_timestamp_seconds":
            return family.samples[0].value if family.samples else None
    return None


@pytest.mark.parametrize(("settings", "names"), [
    ({"list_id": 9999}, "cxone.call_lists.list_id"),
    ({"columns": 'PhoneNumber = "Mobile"'}, "cxone.call_lists.columns and fields"),
])
def test_a_wrong_list_or_header_fails_the_run_parks_nothing_and_goes_once_fixed(
        env: Env, settings: dict[str, Any], names: str) -> None:
    env.sim.seed_leads(300, seed=161)
    env.settings.update(settings)
    env.write_config(batch_size=100)
    proc = cli(env, "sync")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert names in proc.stdout
    s = status(env.config(batch_size=100))
    assert s["last_run"]["status"] == "failed"
    assert s["leads"]["parked"] == 0
    assert s["batches"]["failed"] == 0
    assert s["batches"]["staged"] >= 1
    assert env.list_phones() == {}
    assert _last_success(env) is None  # the last-success metric does not advance

    env.settings.clear()  # the operator fixes the setting
    env.write_config(batch_size=100)
    proc = cli(env, "sync")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert env.list_phones() == oracle.expected(env.sim.leads())
    assert status(env.config())["leads"]["parked"] == 0


# A 403, and a 401 twice in a row (the second after a fresh token): both are the API user's rights.
@pytest.mark.parametrize(("kind", "count", "seed", "code"), [("forbidden", 1, 162, "(403)"),
                                                              ("unauthorized", 2, 173, "(401)")])
def test_a_403_or_a_401_after_a_fresh_token_on_upload_is_about_the_setup(env: Env, kind: str, count: int,
                                                                         seed: int, code: str) -> None:
    env.sim.seed_leads(120, seed=seed)
    env.sim.faults.add({"route": "cxone.upload", "kind": kind, "count": count})
    result = env.sync(batch_size=100)
    assert not result.ok
    assert result.error is not None
    assert "CXone refuses this API user the upload to list 1234" in result.error
    assert "give its role the right" in result.error
    assert code in result.error
    assert status(env.config())["leads"]["parked"] == 0
    assert env.sync(batch_size=100).ok
    assert env.list_phones() == oracle.expected(env.sim.leads())


def test_a_400_on_one_batch_while_others_go_parks_that_batch_only(env: Env) -> None:
    # The refused batch is the second: it is parked once another upload was accepted.
    env.sim.seed_leads(400, seed=163)
    env.sim.faults.add({"route": "cxone.upload", "kind": "reject", "count": 1, "after": 1})
    result = env.sync(batch_size=100)
    assert result.ok, result.error
    s = status(env.config(batch_size=100))
    assert s["leads"]["parked"] == 100
    assert len(env.list_phones()) == len(oracle.expected(env.sim.leads())) - 100


def test_replay_parked_releases_every_parked_lead_at_once(env: Env) -> None:
    env.sim.seed_leads(500, seed=164)
    env.sim.faults.add({"route": "cxone.upload", "kind": "reject", "count": 2, "after": 1})
    assert env.sync(batch_size=100).ok
    env.write_config(batch_size=100)
    parked = status(env.config(batch_size=100))["leads"]["parked"]
    failed = json.loads(cli(env, "jobs", "--state", "failed", "--json").stdout)
    assert len(failed) == 2
    assert parked == sum(b["parked"] for b in failed) > 100

    both = cli(env, "replay-job", failed[0]["id"], "--parked")
    assert both.returncode == 2
    assert "not both" in both.stderr
    proc = cli(env, "replay-job", "--parked")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"released {parked} parked leads of 2 batches")
    assert status(env.config(batch_size=100))["leads"]["parked"] == 0
    assert env.sync(batch_size=100).ok
    assert env.list_phones() == oracle.expected(env.sim.leads())
    again = cli(env, "replay-job", "--parked")
    assert again.returncode == 0
    assert "no lead is parked" in again.stdout


@pytest.mark.parametrize(("settings", "check", "expected"), [
    ({"list_id": 9999}, "cxone call-lists", "cxone.call_lists.list_id = 9999: CXone has no such list (404)"),
    ({"skill_id": 4444}, "cxone skill", "cxone.call_lists.skill_id = 4444: CXone has no such skill (404)"),
    ({"skill_id": 1111}, "cxone skill", "cxone.call_lists.skill_id = 1111 ('Inbound support') is not an outbound"),
    ({"skill_id": 2222}, "cxone skill", "cxone.call_lists.skill_id = 2222 ('Retired campaign') is inactive"),
])
def test_doctor_checks_the_list_id_and_the_skill(env: Env, settings: dict[str, Any], check: str,
                                                 expected: str) -> None:
    env.write_config()
    good = json.loads(cli(env, "doctor", "--json").stdout)["checks"]
    assert {c["name"]: c["ok"] for c in good}["cxone skill"] is True
    env.write_config(**settings)
    proc = cli(env, "doctor", "--json")
    assert proc.returncode == 1
    found = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert found[check]["ok"] is False
    assert found[check]["detail"].startswith(expected), found[check]["detail"]


def test_a_removal_from_a_list_name_cxone_does_not_have_names_the_setting(env: Env) -> None:
    env.sim.seed_leads(200, seed=172)
    assert env.sync().ok
    leaving = sorted(env.list_phones())[:10]
    env.sim.upsert_leads([{"Id": i, "Status": "Closed - Not Converted"} for i in leaving],
                         modstamp=datetime.now(timezone.utc) - timedelta(seconds=2))
    env.write_config()
    env.config_path.write_text(env.config_path.read_text().replace('list_name = "Salesforce Leads"',
                                                                   'list_name = "Salesforce Lead"'))
    proc = cli(env, "sync")
    assert proc.returncode == 1
    assert "CXone has no list named 'Salesforce Lead' to remove prospects from: set cxone.call_lists.source_name" \
        in proc.stdout
    assert status(env.config())["leads"]["parked"] == 0
    assert set(leaving) <= set(env.list_phones())  # not removed yet, and nothing lost: fixed, they go
    env.write_config()  # the right list name again
    assert cli(env, "sync").returncode == 0
    assert env.list_phones() == oracle.expected(env.sim.leads())


@pytest.mark.parametrize("route", ["cxone.openid", "cxone.discovery"])
def test_a_refused_discovery_document_is_not_called_the_api_users_rights(env: Env, route: str) -> None:
    """Seen in the chaos run: a 401 on /.well-known/openid-configuration was reported as the role's
    missing right to upload, which would send the operator to the wrong screen."""
    env.sim.seed_leads(120, seed=174)
    env.sim.faults.add({"route": route, "kind": "unauthorized", "count": 1})
    result = env.sync(batch_size=100)
    assert not result.ok
    assert result.error is not None
    assert "discovery document" in result.error
    assert "cxone.call_lists.issuer" in result.error
    assert "give its role the right" not in result.error
    assert status(env.config())["leads"]["parked"] == 0
    assert env.sync(batch_size=100).ok
    assert env.list_phones() == oracle.expected(env.sim.leads())
