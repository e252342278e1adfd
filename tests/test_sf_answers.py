"""Salesforce as it really answers (issue 14): refresh-token rotation kept across restarts, the JWT's
audience and expiry, ConcurrentRequests, QUERY_TIMEOUT read in parts, and Salesforce's clock."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from syncd.config import config_from_text
from syncd.errors import StateError
from syncd.report import status
from syncd.salesforce import SalesforceClient
from syncd.salesforce.tokens import token_file_for
from syncd.secrets import load_secrets
from syncd.sim import SIM_SECRETS
from syncd.sim import salesforce as sfsim
from tests import oracle
from tests.conftest import Env

OPEN = {"Status": "Open - Not Contacted", "IsConverted": False, "DoNotCall": False, "IsDeleted": False}


def ago(seconds: float = 5) -> datetime:
    return datetime.now(timezone.utc) - timedelta(seconds=seconds)


def use_auth(env: Env, auth: str, extra: str = "") -> None:
    text = env.config_path.read_text().replace('auth = "client_credentials"', f'auth = "{auth}"\n{extra}')
    env.config_path.write_text(text)


def run(env: Env, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    environ = env.subprocess_env(**extra)
    return subprocess.run([sys.executable, "-m", "syncd", *args, "--config", str(env.config_path)],
                          capture_output=True, text=True, timeout=120, env=environ, cwd=env.tmp)


def rotating(env: Env, phone: str | None = None) -> dict[str, str]:
    """Refresh-token rotation on in the simulator, auth = refresh_token in the config; the secret to pass."""
    env.post("/_sim/salesforce/config", {"rotate_refresh": True})
    if phone is not None:
        env.sim.upsert_leads([{**OPEN, "Phone": phone}], modstamp=ago())
    env.write_config()
    use_auth(env, "refresh_token")
    return {"SYNCD_SALESFORCE_REFRESH_TOKEN": sfsim.REFRESH_TOKEN}


def test_a_rotated_refresh_token_survives_a_restart_and_a_401(env: Env) -> None:
    token = rotating(env, "(415) 555-0101")
    first = run(env, "sync", **token)
    assert first.returncode == 0, first.stdout + first.stderr
    saved = token_file_for(env.tmp / "state" / "syncd.db")
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    rotated = json.loads(saved.read_text())["token"]
    assert sfsim.REFRESH_TOKEN not in env.sim.sf.auth.refresh_tokens  # the configured one is dead now
    # A new process (a restart) presents the rotated token, and again after its session is revoked.
    env.sim.upsert_leads([{**OPEN, "Phone": "(415) 555-0102"}], modstamp=ago())
    env.post("/_sim/faults", {"route": "sf.queryAll", "kind": "session", "count": 1})
    second = run(env, "sync", **token)
    assert second.returncode == 0, second.stdout + second.stderr
    assert env.list_phones() == oracle.expected(env.sim.leads())
    assert env.sim.sf.auth.grants.count("refresh_token") >= 3
    doctor = run(env, "doctor", **token)
    assert "refresh token rotated (saved" in doctor.stdout
    # The token is a secret: never in the database, the output, or the logs.
    newest = json.loads(saved.read_text())["token"]
    for secret in (sfsim.REFRESH_TOKEN, rotated, newest):
        assert secret not in first.stdout + first.stderr + second.stdout + second.stderr + doctor.stdout
        for db in (env.tmp / "state").glob("syncd.db*"):
            if db != saved:
                assert secret.encode() not in db.read_bytes()


def test_a_newly_configured_refresh_token_replaces_the_rotated_one(env: Env) -> None:
    assert run(env, "sync", **rotating(env)).returncode == 0
    env.sim.sf.auth.refresh_tokens.add("freshly-issued-token")  # the operator authorised the app again
    again = run(env, "sync", SYNCD_SALESFORCE_REFRESH_TOKEN="freshly-issued-token")
    assert again.returncode == 0, again.stdout
    assert "freshly-issued-token" not in env.sim.sf.auth.refresh_tokens  # used, and rotated away


def test_a_damaged_token_file_is_a_clear_error(env: Env) -> None:
    env.write_config()
    use_auth(env, "refresh_token")
    path = token_file_for(env.tmp / "state" / "syncd.db")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    config = config_from_text(env.config_path.read_text(), "x")
    secrets = load_secrets(config, env={**SIM_SECRETS, "SYNCD_SALESFORCE_REFRESH_TOKEN": sfsim.REFRESH_TOKEN})
    with pytest.raises(StateError, match=r"rotated refresh token file .* is damaged"):
        SalesforceClient(config.salesforce, secrets, __import__("requests").Session(), token_file=path)


@pytest.mark.parametrize(("login", "audience"), [
    ("", "https://login.salesforce.com"),  # the simulator's URL stands for My Domain: never the audience
    ('jwt_audience = "https://test.salesforce.com"', "https://test.salesforce.com"),
])
def test_the_jwt_carries_salesforces_audience_and_a_short_exp(env: Env, tmp_path: Path, login: str,
                                                               audience: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    key_file = tmp_path / "server.key"
    key_file.write_bytes(pem)
    env.post("/_sim/salesforce/config", {"jwt_public_key": public, "jwt_audiences": [audience]})
    env.write_config()
    use_auth(env, "jwt_bearer", f'username = "integration@example.com"\n{login}')
    seen: list[dict[str, object]] = []
    original = env.sim.sf.auth._jwt

    def spy(assertion: str, now: float) -> object:
        seen.append(jwt.decode(assertion, options={"verify_signature": False}))
        return original(assertion, now)

    env.sim.sf.auth._jwt = spy  # type: ignore[method-assign,assignment]
    proc = run(env, "sync", SYNCD_SALESFORCE_PRIVATE_KEY_FILE=str(key_file))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert seen
    assert seen[0]["aud"] == audience
    assert seen[0]["iss"] == sfsim.CLIENT_ID
    exp = seen[0]["exp"]
    assert isinstance(exp, int)
    assert 0 < exp - datetime.now(timezone.utc).timestamp() <= 300


def test_concurrent_requests_is_transient_and_waited_out(env: Env) -> None:
    env.sim.seed_leads(200, seed=8)
    env.post("/_sim/faults", {"route": "sf.queryAll", "kind": "concurrent", "count": 2})
    waits: list[float] = []
    result = env.sync(salesforce_sleep=waits.append)
    assert result.ok, result.error
    assert waits[:2] == [2.0, 8.0]
    assert env.list_phones() == oracle.expected(env.sim.leads())
    env.post("/_sim/faults", {"route": "sf.queryAll", "kind": "concurrent", "count": 10})
    env.sim.upsert_leads([{**OPEN, "Phone": "(415) 555-0177"}], modstamp=ago())
    stuck = env.sync(salesforce_sleep=lambda s: None)
    assert not stuck.ok
    assert stuck.error is not None
    assert "ConcurrentRequests, not the daily allocation" in stuck.error


def test_a_window_that_times_out_is_read_in_parts_and_nothing_is_lost(env: Env) -> None:
    env.sim.seed_leads(3000, seed=9)
    env.sim.sf.timeout_rows = 700  # any query matching more rows times out, as on a large org
    first = env.sync()
    assert first.ok, first.error
    assert env.list_phones() == oracle.expected(env.sim.leads())
    assert first.read == 3000
    for n, age in enumerate((40, 25, 10)):  # 900 changes over three seconds: no second holds 700
        env.sim.mutate(300, seed=10 + n, modstamp=ago(age))
    second = env.sync()
    assert second.ok, second.error
    assert env.list_phones() == oracle.expected(env.sim.leads())


def test_a_host_clock_a_day_fast_loses_nothing(env: Env) -> None:
    env.sim.seed_leads(300, seed=12)
    fast = timedelta(days=1)
    # Salesforce's clock stands still through each run at the run's start, in whole seconds (as its Date
    # header is), and the host's a day ahead of it: the offset syncd measures is exactly that day.
    salesforce_time = datetime.now(timezone.utc).replace(microsecond=0)
    real_clock = env.sim.sf.now
    env.sim.sf.now = lambda: salesforce_time
    try:
        assert env.sync(now=lambda: salesforce_time + fast, keep_salesforce_clock=True).ok
        # While the host is a day fast, leads change; then its clock is fixed.
        env.sim.mutate(60, seed=13, modstamp=ago(30))
        salesforce_time = datetime.now(timezone.utc).replace(microsecond=0)
        assert env.sync(now=lambda: salesforce_time + fast, keep_salesforce_clock=True).ok
    finally:
        env.sim.sf.now = real_clock
    assert status(env.config())["salesforce_clock_skew_seconds"] == -fast.total_seconds()
    env.sim.mutate(60, seed=14, modstamp=ago(10))
    assert env.sync().ok
    assert env.list_phones() == oracle.expected(env.sim.leads())


def test_a_salesforce_clock_ten_minutes_behind_loses_nothing(env: Env) -> None:
    behind = timedelta(minutes=10)
    env.sim.sf.now = lambda: datetime.now(timezone.utc) - behind  # its stamps and its Date header
    env.sim.seed_leads(300, seed=15)
    assert env.sync().ok
    for seed in (16, 17):
        env.sim.mutate(50, seed=seed, modstamp=env.sim.sf.now() - timedelta(seconds=5))
        assert env.sync().ok
    assert env.list_phones() == oracle.expected(env.sim.leads())


def test_a_watermark_ahead_of_salesforce_is_refused_naming_both_times(env: Env) -> None:
    env.sim.seed_leads(50, seed=18)
    assert env.sync().ok
    from syncd.store import Store

    store = Store(env.tmp / "state" / "syncd.db")
    try:
        with store.transaction() as c:
            c.execute("UPDATE sync_state SET watermark = ?", ((datetime.now(timezone.utc) + timedelta(days=1))
                                                              .isoformat(),))
    finally:
        store.close()
    result = env.sync()
    assert not result.ok
    assert result.error is not None
    assert "is ahead of Salesforce's time" in result.error
    assert "syncd reset" in result.error


def test_a_dry_run_keeps_the_token_it_rotated(env: Env) -> None:
    token = rotating(env, "(415) 555-0103")
    dry = run(env, "sync", "--dry-run", **token)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    real = run(env, "sync", **token)  # the dry run's rotation is what this process must present
    assert real.returncode == 0, real.stdout + real.stderr
    assert env.list_phones() == oracle.expected(env.sim.leads())


def test_the_delete_log_is_asked_in_spans_short_enough_for_its_id_limit(env: Env) -> None:
    ids = env.sim.upsert_leads([{**OPEN, "Phone": f"(415) 555-02{i:02d}"} for i in range(10)], modstamp=ago(7200))
    for i, lead_id in enumerate(ids):
        env.sim.org.delete([lead_id], hard=True, at=ago(3000 - 300 * i))
    env.sim.sf.max_deleted_ids = 3  # an answer may hold 3 ids: more is EXCEEDED_ID_LIMIT
    config = env.config()
    client = SalesforceClient(config.salesforce, env.secrets(config), __import__("requests").Session())
    found = client.deleted(ago(3600), ago(0))
    assert set(found.ids) == set(ids)
    assert found.earliest is not None
    assert env.sim.stats["sf.deleted"] > 1
