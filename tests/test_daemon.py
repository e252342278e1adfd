"""`syncd run` as a real subprocess: schedule, status beside it, signals, notify protocol, metrics."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from syncd.report import status
from syncd.sim import SIM_SECRETS
from tests import oracle
from tests.conftest import Env


def wait_for(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def start(env: Env, *extra: str, **environ: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "syncd", "run", "--config", str(env.config_path), *extra],
                            env=env.subprocess_env(**environ), cwd=env.tmp, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NotifyListener:
    """A real AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            for field in data.decode().split("\n"):
                self.messages.append((time.monotonic(), field))

    def fields(self, prefix: str, since: float = 0.0) -> list[str]:
        return [f for t, f in list(self.messages) if f.startswith(prefix) and t >= since]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    n = NotifyListener(tmp_path / "notify.sock")
    yield n
    n.close()


def test_daemon_syncs_on_schedule_beside_status_and_stops_on_sigterm(env: Env) -> None:
    env.sim.seed_leads(800, seed=61)
    env.write_config(interval_seconds=2)
    proc = start(env)
    try:
        wait_for(lambda: env.list_phones() and env.list_phones() == oracle.expected(env.sim.leads()), 30,
                 "the first sync")
        shown = status(env.config(interval_seconds=2))
        assert shown["daemon"]["running"] is True
        assert shown["daemon"]["pid"] == proc.pid
        assert shown["daemon"]["heartbeat_age_seconds"] is not None
        env.sim.mutate(80, seed=62, new=10, modstamp=datetime.now(timezone.utc) - timedelta(seconds=2))
        wait_for(lambda: env.list_phones() == oracle.expected(env.sim.leads()), 15, "the changes to reach the list")

        second = subprocess.run([sys.executable, "-m", "syncd", "run", "--config", str(env.config_path)],
                                env=env.subprocess_env(), cwd=env.tmp, capture_output=True, text=True, timeout=30)
        assert second.returncode == 3
        assert "holds the state lock" in second.stderr

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0  # a hang guard, not a timing
        _, err = proc.communicate()
        assert "SIGTERM received: stopping at the next safe point" in err
        assert "daemon stopped" in err
        assert "did not reach a safe point" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    shown = status(env.config(interval_seconds=2))
    assert shown["daemon"]["running"] is False
    assert shown["last_run"]["status"] in ("ok", "interrupted")
    assert shown["batches"]["staged"] == 0


def test_notify_protocol_and_a_hung_sync_stops_the_watchdog(env: Env, listener: NotifyListener) -> None:
    env.sim.seed_leads(300, seed=63)
    env.write_config(interval_seconds=1)
    proc = start(env, NOTIFY_SOCKET=str(listener.path), WATCHDOG_USEC="600000")
    try:
        wait_for(lambda: listener.fields("READY=1"), 20, "READY=1")
        wait_for(lambda: any(s.startswith("STATUS=idle") for s in listener.fields("STATUS=")), 20, "an idle STATUS")
        since = time.monotonic()
        time.sleep(1.5)
        assert len(listener.fields("WATCHDOG=1", since)) >= 3  # every 0.3 s, idle or syncing
        assert any(s.startswith("STATUS=syncing") for s in listener.fields("STATUS="))
        assert any("next run" in s for s in listener.fields("STATUS=idle"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert listener.fields("STOPPING=1")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # A sync that hangs in its work loop stops feeding the watchdog, so systemd would restart it.
    listener.messages.clear()
    env.sim.mutate(50, seed=64, modstamp=datetime.now(timezone.utc) - timedelta(seconds=2))
    hung = start(env, NOTIFY_SOCKET=str(listener.path), WATCHDOG_USEC="600000",
                 SYNCD_FAILPOINTS="page_committed:1:hang")
    try:
        wait_for(lambda: listener.fields("READY=1"), 20, "READY=1")
        wait_for(lambda: listener.fields("STATUS=syncing"), 20, "the sync to start")
        assert hung.poll() is None
        time.sleep(1.5)  # the hang is now older than the watchdog interval
        since = time.monotonic()
        time.sleep(1.5)
        assert listener.fields("WATCHDOG=1", since) == []
    finally:
        hung.kill()
        hung.wait()


def test_failed_runs_are_logged_and_back_off(env: Env) -> None:
    env.write_config(interval_seconds=1)
    proc = start(env, SYNCD_SALESFORCE_CLIENT_SECRET="wrong-secret")
    try:
        time.sleep(6)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    failures = re.findall(r"run failed \((\d+) in a row\): salesforce POST /services/oauth2/token: 400 "
                          r"invalid_client: credentials refused.*; next run at (\S+)", err)
    assert [int(n) for n, _ in failures][:3] == [1, 2, 3]
    # 1 s, then 2 s, then 4 s: in 6 s a 1-second schedule ran 3 times, not 6.
    assert len(failures) <= 4
    assert "wrong-secret" not in out + err


def test_prometheus_metrics(env: Env) -> None:
    env.sim.seed_leads(400, seed=65)
    port = free_port()
    env.overrides = f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n'
    env.write_config(interval_seconds=30)
    proc = start(env, "--log-format", "json")
    try:
        wait_for(lambda: env.list_phones() == oracle.expected(env.sim.leads()) and env.list_phones(), 30,
                 "the first sync")

        def scrape() -> str:
            try:
                return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except requests.ConnectionError:
                return ""

        wait_for(lambda: "syncd_last_success_timestamp_seconds" in scrape(), 10, "metrics after the first run")
        text = scrape()
        assert re.search(r"^syncd_leads_read_total 400\.0$", text, re.M)
        assert re.search(rf"^syncd_leads_sent_total {len(env.list_phones())}\.0$", text, re.M)
        assert re.search(r"^syncd_leads_removed_total 0\.0$", text, re.M)
        assert re.search(r'^syncd_leads_skipped\{reason="do_not_call"\} \d+\.0$', text, re.M)
        assert re.search(r'^syncd_batches\{state="completed"\} 1\.0$', text, re.M)
        assert re.search(r"^syncd_jobs_in_flight 0\.0$", text, re.M)
        assert re.search(r'^syncd_salesforce_api_requests\{kind="used"\} \d+\.0$', text, re.M)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(entry["message"].startswith("run 1 ok: read=400") for entry in lines)
    assert all({"time", "level", "logger", "message", "pid"} <= set(entry) for entry in lines)
    for secret in SIM_SECRETS.values():
        assert secret not in out + err
