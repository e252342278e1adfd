"""Hostile remotes: every fault the simulator injects, and what syncd does about it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from syncd.engine import RunResult
from syncd.http import make_session
from syncd.report import status
from tests import oracle
from tests.conftest import Env

# Small pages and batches so every call kind happens several times; fast retries for the tests.
HTTP = """
[http]
connect_timeout_seconds = 2
read_timeout_seconds = 0.8
retries = 3
backoff_seconds = 0.02
max_backoff_seconds = 0.2
"""


@pytest.fixture
def faulty(env: Env) -> Env:
    env.sim.seed_leads(600, seed=71)
    env.sim.sf.max_page_size = 100
    env.sim.faults.slow_seconds = 1.5
    env.overrides = HTTP
    return env


def fault(env: Env, route: str, kind: str, count: int = 1) -> None:
    env.sim.faults.add({"route": route, "kind": kind, "count": count})


def sync_until_ok(env: Env, runs: int = 3) -> list[RunResult]:
    results = []
    for _ in range(runs):
        results.append(env.sync(batch_size=100))
        if results[-1].ok:
            break
    return results


def fired(env: Env) -> dict[str, int]:
    return dict(env.sim.faults.fired)


TRANSIENT = ["429", "429-bare", "500", "502", "503", "504", "drop", "slow"]
ROUTES = ["sf.token", "sf.queryAll", "sf.next", "cxone.openid", "cxone.token", "cxone.discovery", "cxone.upload",
          "cxone.job"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("kind", TRANSIENT)
def test_transient_faults_are_retried_within_the_run(faulty: Env, kind: str, route: str) -> None:
    fault(faulty, route, kind, count=2)  # fewer than the 3 retries allowed
    results = sync_until_ok(faulty, runs=1)
    assert results[-1].ok, results[-1].error
    assert fired(faulty) == {f"{route}:{kind}": 2}
    assert faulty.list_phones() == oracle.expected(faulty.sim.leads())


@pytest.mark.parametrize("route", ["sf.queryAll", "sf.next", "cxone.upload", "cxone.job"])
def test_an_answer_cut_short_loses_nothing(faulty: Env, route: str) -> None:
    fault(faulty, route, "cut")
    results = sync_until_ok(faulty)
    assert fired(faulty) == {f"{route}:cut": 1}
    failed = [r for r in results if not r.ok]
    # A poll is tried again later in the run, any page (the first too) is read again from the saved
    # position, and an upload is sent again (same batch, same file) in the same run.
    assert failed == []
    assert faulty.list_phones() == oracle.expected(faulty.sim.leads())


@pytest.mark.parametrize("route", ["cxone.upload", "cxone.token"])
def test_a_body_that_is_not_json_is_sent_again_in_the_same_run(faulty: Env, route: str) -> None:
    fault(faulty, route, "badjson")
    result = faulty.sync(batch_size=100)
    assert result.ok, result.error
    assert fired(faulty) == {f"{route}:badjson": 1}
    assert faulty.list_phones() == oracle.expected(faulty.sim.leads())


@pytest.mark.parametrize("kind", ["cut-after", "badjson-after"])
def test_an_upload_whose_answer_is_lost_is_settled_in_the_same_run(faulty: Env, kind: str) -> None:
    fault(faulty, "cxone.upload", kind)  # CXone took the upload; its answer never arrived whole
    result = faulty.sync(batch_size=100)
    assert result.ok, result.error
    names = [u["fileName"] for u in faulty.sim.cx.uploads]
    [again] = [n for n in set(names) if names.count(n) > 1]  # the same batch, under the same file name
    assert names.count(again) == 2
    assert result.verify is not None  # and verification settled what the list holds
    assert result.verify["missing"] == result.verify["unexpected"] == 0
    assert faulty.list_phones() == oracle.expected(faulty.sim.leads())


def test_a_garbled_first_page_is_queried_again_in_the_same_run(faulty: Env) -> None:
    fault(faulty, "sf.queryAll", "badjson")
    result = faulty.sync(batch_size=100)
    assert result.ok, result.error
    assert fired(faulty) == {"sf.queryAll:badjson": 1}
    assert faulty.sim.sf.queries == 1  # the garbled answer never reached the handler; the re-query did
    assert result.read == 600
    assert faulty.list_phones() == oracle.expected(faulty.sim.leads())


def test_a_garbled_page_is_read_again_from_the_position_in_the_same_run(faulty: Env) -> None:
    fault(faulty, "sf.next", "badjson", count=2)
    result = faulty.sync(batch_size=100)
    assert result.ok, result.error
    assert faulty.sim.sf.queries == 3  # the window query, then one re-query per garbled page
    assert result.read == 600  # resumed after the last committed row each time: nothing read twice
    assert faulty.list_phones() == oracle.expected(faulty.sim.leads())


def test_a_page_cut_short_is_read_again_from_the_position_in_the_same_run(faulty: Env) -> None:
    fault(faulty, "sf.next", "cut", count=2)
    result = faulty.sync(batch_size=100)
    assert result.ok, result.error
    assert faulty.sim.sf.queries == 3  # the window query, then one re-query per cut page
    assert result.read == 600
    assert faulty.list_phones() == oracle.expected(faulty.sim.leads())


def test_pages_that_stay_garbled_end_the_run(faulty: Env) -> None:
    fault(faulty, "sf.next", "badjson", count=3)  # three garbled pages in a row, re-queries in between
    result = faulty.sync(batch_size=100)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.endswith("200: answer is not JSON")
    assert faulty.sim.sf.queries == 3  # the window query and two re-queries, then it gave up
    assert faulty.sync(batch_size=100).ok
    assert faulty.list_phones() == oracle.expected(faulty.sim.leads())


def test_a_garbled_poll_answer_is_polled_again_in_the_same_run(faulty: Env) -> None:
    fault(faulty, "cxone.job", "badjson", count=2)
    result = faulty.sync(batch_size=100)
    assert result.ok, result.error
    assert fired(faulty) == {"cxone.job:badjson": 2}
    assert faulty.list_phones() == oracle.expected(faulty.sim.leads())


def test_polls_that_keep_failing_end_the_run_and_the_jobs_are_polled_next_run(faulty: Env) -> None:
    fault(faulty, "cxone.job", "badjson", count=5)
    first = faulty.sync(batch_size=600)  # one batch, so the five failures are five polls in a row
    assert first.status == "failed"
    assert first.error is not None
    assert first.error.endswith("answer is not JSON")
    assert status(faulty.config())["batches"]["submitted"] == 1
    uploads = len(faulty.sim.cx.uploads)
    assert faulty.sync(batch_size=600).ok
    assert len(faulty.sim.cx.uploads) == uploads  # the job was polled, not uploaded again
    assert faulty.list_phones() == oracle.expected(faulty.sim.leads())


def test_persistent_5xx_fails_the_run_keeping_progress(faulty: Env) -> None:
    faulty.sim.faults.add({"route": "sf.next", "kind": "503", "count": 4 + 3})  # first try + 3 retries, twice
    first = faulty.sync(batch_size=100)
    assert first.status == "failed"
    assert first.error is not None
    assert first.error.startswith("salesforce GET /services/data/v62.0/query/")
    assert first.error.endswith(": 503: still failing after retries")
    assert first.read == 100  # the first page was committed before the failure
    assert status(faulty.config())["window"]["position"] is not None
    results = sync_until_ok(faulty)
    assert results[-1].ok
    assert sum(r.read for r in results) < 600 + 100  # resumed from the position, did not start over
    assert faulty.list_phones() == oracle.expected(faulty.sim.leads())


def test_salesforce_session_revoked_mid_pagination(faulty: Env) -> None:
    fault(faulty, "sf.next", "session")
    result = faulty.sync(batch_size=100)
    assert result.ok, result.error
    assert faulty.sim.stats["sf.token"] == 2  # re-authenticated once ...
    assert faulty.sim.sf.queries == 2  # ... and the dead locator was replaced by a query from the position
    assert faulty.list_phones() == oracle.expected(faulty.sim.leads())


def test_salesforce_invalid_query_locator(faulty: Env) -> None:
    fault(faulty, "sf.next", "locator")
    result = faulty.sync(batch_size=100)
    assert result.ok, result.error
    assert faulty.sim.sf.queries == 2
    assert faulty.list_phones() == oracle.expected(faulty.sim.leads())


def test_request_limit_exceeded_stops_reading_but_delivers_what_was_read(faulty: Env) -> None:
    fault(faulty, "sf.next", "limit", count=1)
    result = faulty.sync(batch_size=100)
    assert result.status == "failed"
    assert result.error is not None
    assert re.fullmatch(r"salesforce GET /services/data/v62\.0/query/01g\w+-100: 403 REQUEST_LIMIT_EXCEEDED: the "
                        r"org's 24-hour API request allocation is spent; syncd will resume at the next run",
                        result.error)
    assert faulty.sim.stats["sf.next"] == 1  # no retry storm
    s = status(faulty.config())
    assert s["batches"]["staged"] == s["batches"]["submitted"] == 0  # what was read went out
    assert s["leads"]["on_list"] == len(faulty.list_phones()) > 0
    assert faulty.sync(batch_size=100).ok
    assert faulty.list_phones() == oracle.expected(faulty.sim.leads())


def test_api_usage_near_the_limit_stops_early(faulty: Env) -> None:
    faulty.sim.sf.api_used = 900
    faulty.sim.sf.api_limit = 1000  # max_api_usage_percent = 80: already past it
    result = faulty.sync(batch_size=100)
    assert result.status == "failed"
    assert result.error == ("salesforce: API usage 901/1000 passed max_api_usage_percent=80; stopped reading, "
                            "the window resumes next run")
    assert faulty.sim.stats["sf.next"] == 0
    faulty.sim.sf.api_limit = 100_000
    assert faulty.sync(batch_size=100).ok
    assert faulty.list_phones() == oracle.expected(faulty.sim.leads())


def test_pages_much_shorter_than_asked(faulty: Env) -> None:
    faulty.sim.sf.max_page_size = 7
    assert faulty.sync(batch_size=100).ok
    assert faulty.sim.stats["sf.next"] == 600 // 7
    assert faulty.list_phones() == oracle.expected(faulty.sim.leads())


def cli(env: Env, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syncd", *args, "--config", str(env.config_path)],
                          capture_output=True, text=True, timeout=60, env=env.subprocess_env(**extra), cwd=env.tmp)


@pytest.mark.parametrize(("secret", "expected"), [
    ("SYNCD_SALESFORCE_CLIENT_SECRET", "salesforce POST /services/oauth2/token: 400 invalid_client: credentials "
                                       "refused for auth = client_credentials; check the client id and secret (and "
                                       "that login_url is the org's My Domain URL)"),
    ("SYNCD_CXONE_CLIENT_SECRET", "cxone POST /auth/token: 401 invalid_client: credentials refused; check the "
                                  "client id/secret and access key"),
    ("SYNCD_CXONE_ACCESS_KEY_SECRET", "cxone POST /auth/token: 400 invalid_grant: credentials refused; check the "
                                      "client id/secret and access key"),
])
def test_wrong_credentials_say_what_to_fix_without_retrying(faulty: Env, secret: str, expected: str) -> None:
    faulty.write_config()
    proc = cli(faulty, "sync", **{secret: "wrong-value"})
    assert proc.returncode == 1
    assert proc.stdout.strip().endswith(expected)
    assert "wrong-value" not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    token_calls = faulty.sim.stats["sf.token"] + faulty.sim.stats["cxone.token"]
    assert token_calls <= 2  # one refused grant, never a retry loop


def test_a_malformed_query_is_a_configuration_error(faulty: Env) -> None:
    faulty.write_config(where="Rating = 'Hot'")
    proc = cli(faulty, "sync")
    assert proc.returncode == 1
    assert ("salesforce GET /services/data/v62.0/queryAll: 400 INVALID_FIELD: query refused: No such column "
            "'Rating' on entity 'Lead' (check phone_fields, salesforce.where and the mapped fields") in proc.stdout
    assert faulty.sim.stats["sf.queryAll"] == 1


def test_cxone_401_mid_run_renews_the_token(faulty: Env) -> None:
    fault(faulty, "cxone.job", "unauthorized")
    result = faulty.sync(batch_size=100)
    assert result.ok, result.error
    assert faulty.sim.stats["cxone.token"] == 2
    assert faulty.list_phones() == oracle.expected(faulty.sim.leads())


def test_cxone_token_endpoint_down_fails_the_run_and_keeps_what_was_read(faulty: Env) -> None:
    fault(faulty, "cxone.token", "503", count=100)
    first = faulty.sync(batch_size=100)
    assert first.status == "failed"
    assert first.error == "cxone POST /auth/token: 503: still failing after retries"
    # What was read was committed; reading does not wait on CXone, so it may reach the window's end
    # before the failed uploads end the run.
    assert 0 < first.read <= 600
    assert status(faulty.config())["leads"]["tracked"] > 0
    faulty.sim.faults.clear()
    results = sync_until_ok(faulty)
    assert results[-1].ok
    assert faulty.list_phones() == oracle.expected(faulty.sim.leads())


def test_remove_prospects_partial_failure_is_retried_in_the_same_run(faulty: Env) -> None:
    assert faulty.sync(batch_size=100).ok
    on_list = sorted(faulty.list_phones())
    faulty.sim.upsert_leads([{"Id": i, "DoNotCall": True} for i in on_list[:20]],
                            modstamp=datetime.now(timezone.utc) - timedelta(seconds=2))
    fault(faulty, "cxone.remove", "partial")
    assert faulty.sync(batch_size=100).ok
    removals = faulty.sim.cx.removals
    assert [len(r["failed"]) for r in removals] == [10, 0]  # the ten not confirmed went again at once
    assert status(faulty.config())["leads"]["pending_removal"] == 0
    assert faulty.list_phones() == oracle.expected(faulty.sim.leads())


def test_an_upload_rejected_with_400_parks_that_batch_only(faulty: Env) -> None:
    fault(faulty, "cxone.upload", "reject")
    result = faulty.sync(batch_size=100)
    assert result.ok, result.error
    s = status(faulty.config())
    expected = oracle.expected(faulty.sim.leads())
    assert s["leads"]["parked"] == 100
    assert len(faulty.list_phones()) == len(expected) - 100  # everything behind it went through
    faulty.write_config(batch_size=100)
    jobs: list[dict[str, Any]] = json.loads(cli(faulty, "jobs", "--json").stdout)
    rejected = [b for b in jobs if b["state"] == "failed"]
    assert len(rejected) == 1
    assert rejected[0]["parked"] == 100
    assert rejected[0]["error"] == ("upload rejected: cxone POST /inContactAPI/services/v33.0/lists/call-lists/1234/"
                                    "upload: 400: request rejected")
    assert cli(faulty, "replay-job", rejected[0]["id"]).returncode == 0
    assert faulty.sync(batch_size=100).ok
    assert faulty.list_phones() == expected


def test_dead_locators_inside_a_bulk_loaded_second_still_progress(faulty: Env) -> None:
    # A data load stamped 60 leads with one second; pages hold 10; every locator dies after one use.
    stamp = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=30)
    faulty.sim.seed_leads(0, seed=1)
    faulty.sim.upsert_leads([{"Status": "Open - Not Contacted", "Phone": f"(415) 555-01{i:02d}", "IsDeleted": False,
                              "IsConverted": False, "DoNotCall": False} for i in range(60)], modstamp=stamp)
    faulty.sim.sf.max_page_size = 10
    fault(faulty, "sf.next", "locator", count=12)
    result = faulty.sync(batch_size=100)
    assert result.ok, result.error
    # Each re-query resumes after the last (SystemModstamp, Id) committed: no row is read twice.
    assert result.read == 60
    assert faulty.list_phones() == oracle.expected(faulty.sim.leads())


def test_answers_are_read_whole_over_one_kept_connection(env: Env) -> None:
    env.sim.seed_leads(50, seed=72)
    session = make_session(retries=0)
    url = f"{env.sim.url}/_sim/stats"
    answers = [session.get(url) for _ in range(5)]
    assert all(a.status_code == 200 and isinstance(a.json(), dict) for a in answers)
    fresh = session.get(url)
    assert b"".join(fresh.iter_content(64)) == fresh.content != b""  # consumed as requests would leave it
    pools = session.get_adapter(url).poolmanager.pools  # type: ignore[attr-defined]
    # urllib3's pool container has keys() but cannot be iterated.
    assert [pools[key].num_connections for key in pools.keys()] == [1]  # noqa: SIM118
    streamed = session.get(url, stream=True)  # a caller that asks to stream still reads the raw body itself
    assert isinstance(json.loads(streamed.raw.read()), dict)
