"""Hostile remotes and broken state (issue 12, items 15-20): each test fails on the code before its fix."""

from __future__ import annotations

import datetime as dt
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from syncd import http
from syncd.errors import LockHeld, ProtocolError, TlsFailed
from syncd.lock import StateLock
from syncd.report import status
from syncd.sim import SIM_SECRETS
from tests import oracle
from tests.conftest import Env
from tests.test_faults import HTTP, fault, fired
from tests.test_wedges import soon


class Recorder(ThreadingHTTPServer):
    """A host nobody configured: it records every request that reaches it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bytes]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                recorder.seen.append((self.command, self.path, self.rfile.read(length) if length else b""))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = _any

        super().__init__(("127.0.0.1", 0), Handler)
        self.daemon_threads = True
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def elsewhere() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.shutdown()


@pytest.mark.parametrize("route", ["sf.token", "cxone.token", "cxone.upload"])
def test_15_a_redirect_is_never_followed_and_names_its_target(env: Env, elsewhere: Recorder, route: str) -> None:
    env.sim.seed_leads(50, seed=101)
    env.sim.faults.redirect_to = f"{elsewhere.url}/services/oauth2/token"
    fault(env, route, "redirect", count=10)
    result = env.sync()
    assert result.status == "failed"
    assert result.error is not None
    assert "307" in result.error
    assert "redirected to 127.0.0.1; syncd follows no redirect" in result.error
    assert elsewhere.seen == []  # nothing, and so no secret, reached the other host


def test_15_the_bearer_token_goes_only_to_a_salesforce_instance(env: Env, elsewhere: Recorder) -> None:
    env.sim.seed_leads(50, seed=102)
    env.sim.sf.instance_url = "https://evil.example.net"
    result = env.sync()
    assert result.status == "failed"
    assert result.error is not None
    assert "instance_url host evil.example.net, which is neither the login host nor a Salesforce domain" \
        in result.error
    assert http.network_wait_until() == 0.0


@pytest.mark.parametrize(("host", "login", "ok"), [
    ("na1.salesforce.com", "login.salesforce.com", True),
    ("acme.my.salesforce.com", "acme.my.salesforce.com", True),
    ("acme--dev.sandbox.my.salesforce.com", "test.salesforce.com", True),
    ("acme.lightning.force.com", "login.salesforce.com", True),
    ("salesforce.com.evil.net", "login.salesforce.com", False),
    ("evilsalesforce.com", "login.salesforce.com", False),
    ("127.0.0.1", "127.0.0.1", True),
    ("127.0.0.1", "login.salesforce.com", False),
])
def test_15_trusted_instance_hosts(host: str, login: str, ok: bool) -> None:
    from syncd.salesforce import trusted_instance
    assert trusted_instance(host, login) is ok


def test_16_a_trickling_answer_is_cut_at_its_deadline_and_retried(env: Env) -> None:
    env.sim.seed_leads(300, seed=103)
    env.overrides = HTTP.replace("read_timeout_seconds = 0.8", "read_timeout_seconds = 1")
    env.sim.faults.trickle_seconds = 0.3  # one byte every 0.3 s: each read is quick, the answer never ends
    fault(env, "sf.queryAll", "trickle")
    result = env.sync()
    assert result.ok, result.error
    assert fired(env) == {"sf.queryAll:trickle": 1}
    assert env.sim.stats["sf.queryAll"] == 2  # given up at the deadline, asked again at once
    assert env.list_phones() == oracle.expected(env.sim.leads())


def test_16_an_answer_that_always_trickles_fails_the_run_with_its_reason(env: Env) -> None:
    env.sim.seed_leads(30, seed=104)
    env.overrides = HTTP.replace("read_timeout_seconds = 0.8", "read_timeout_seconds = 0.5")
    env.sim.faults.trickle_seconds = 0.2
    fault(env, "sf.token", "trickle", count=10)
    result = env.sync()
    assert result.status == "failed"
    assert result.error == ("salesforce POST /services/oauth2/token: the whole answer did not arrive within "
                            "read_timeout_seconds (4 attempts)")


def test_18_deeply_nested_json_is_a_protocol_error_not_a_crash(env: Env) -> None:
    env.sim.seed_leads(300, seed=105)
    env.sim.sf.max_page_size = 100
    fault(env, "sf.next", "deepjson")
    result = env.sync(batch_size=100)
    assert result.ok, result.error  # the page was read again from the saved position
    assert result.read == 300
    assert env.list_phones() == oracle.expected(env.sim.leads())


def test_18_a_page_larger_than_any_page_is_refused(env: Env) -> None:
    env.sim.seed_leads(50, seed=106)
    fault(env, "sf.queryAll", "bigpage", count=5)
    result = env.sync()
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.endswith("a page of 2,500 records is more than the 2,000 Salesforce sends; refused")
    assert status(env.config())["skipped"] == {}  # none of its records was taken


def test_18_an_answer_larger_than_the_cap_is_refused(env: Env) -> None:
    session = http.make_session(retries=0)
    session.max_answer_bytes = 4096  # type: ignore[attr-defined]
    env.sim.seed_leads(200, seed=107)
    with pytest.raises(ProtocolError, match="larger than 4,096 bytes, more than one answer may hold"):
        http.send(session, "GET", f"{env.sim.url}/_sim/leads", "sim")


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_18_an_untrusted_certificate_is_named_as_such(tmp_path: Path, elsewhere: Recorder) -> None:
    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    elsewhere.socket = context.wrap_socket(elsewhere.socket, server_side=True)
    url = f"https://127.0.0.1:{elsewhere.server_address[1]}/services/oauth2/token"
    with pytest.raises(TlsFailed) as info:
        http.send(http.make_session(retries=1), "POST", url, "salesforce", data={"client_secret": "s3cret-value"})
    message = str(info.value)
    assert "TLS with 127.0.0.1 failed: its certificate is not trusted" in message
    assert "connection failed" not in message
    assert "s3cret-value" not in message


def test_19_two_paths_to_one_database_share_one_lock(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    (real / "syncd.db").touch()
    (tmp_path / "file-alias.db").symlink_to(real / "syncd.db")
    first = StateLock(real / "syncd.db")
    first.acquire()
    try:
        for other in (tmp_path / "alias" / "syncd.db", tmp_path / "file-alias.db"):
            with pytest.raises(LockHeld):
                StateLock(other).acquire()
            assert StateLock(other).held_by_other() is not None
    finally:
        first.release()


def test_20_a_removal_cxone_answers_not_found_counts_as_removed(env: Env) -> None:
    env.sim.seed_leads(200, seed=108)
    assert env.sync().ok
    gone = sorted(env.list_phones())[:6]
    with env.sim.lock:
        for lead_id in gone:  # off the list already (an operator, an expiry): CXone answers NotFound
            del env.sim.cx.lists[1234].records[lead_id]
    env.sim.upsert_leads([{"Id": i, "DoNotCall": True} for i in gone], modstamp=soon())
    result = env.sync()
    assert result.ok, result.error
    assert result.removed == 6
    leads = status(env.config())["leads"]
    assert (leads["pending_removal"], leads["parked"], leads["dirty"]) == (0, 0, 0)
    assert env.list_phones() == oracle.expected(env.sim.leads())


def test_sim_secrets_stay_secret_in_refusals(env: Env) -> None:
    env.sim.sf.instance_url = "https://evil.example.net"
    result = env.sync()
    for secret in SIM_SECRETS.values():
        assert secret not in (result.error or "")
