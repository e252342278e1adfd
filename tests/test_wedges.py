"""Failures that used to wedge the service or give a wrong answer (issue 12, items 1-14): each test
fails on the code before its fix."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from syncd import http
from syncd.config import config_from_text
from syncd.daemon import Daemon
from syncd.errors import ConfigError, LockHeld, RemoteUnavailable, StateError
from syncd.lock import StateLock
from syncd.report import status
from syncd.sim import SIM_SECRETS
from syncd.store import Store
from tests import oracle
from tests.conftest import Env
from tests.test_admin import syncd
from tests.test_faults import HTTP, fault
from tests.test_resume import killed_after_its_job_id_committed


def soon() -> datetime:
    return datetime.now(timezone.utc) - timedelta(seconds=2)


def test_1_a_job_cxone_forgot_fails_and_its_leads_go_again(env: Env) -> None:
    killed_after_its_job_id_committed(env, 150, seed=81)
    with env.sim.lock:
        env.sim.cx.jobs.clear()  # CXone no longer knows the job: every poll answers 404
    result = env.sync()
    assert result.ok, result.error
    assert env.list_phones() == oracle.expected(env.sim.leads())
    failed = [b for b in json.loads(syncd(env, "jobs", "--json").stdout) if b["state"] == "failed"]
    assert [b["error"] for b in failed] == [f"CXone no longer knows job {failed[0]['job_id']} (404)"]


def test_1_a_job_whose_polls_keep_failing_past_its_timeout_fails(env: Env) -> None:
    env.sim.seed_leads(80, seed=82)
    env.overrides = HTTP
    env.write_config()
    env.config_path.write_text(env.config_path.read_text().replace("job_timeout_seconds = 120",
                                                                   "job_timeout_seconds = 0.1"))
    env.sim.faults.add({"route": "cxone.job", "kind": "503", "rate": 1.0})
    proc = syncd(env, "sync")
    assert proc.returncode == 0, proc.stderr  # not a run that fails again and again on the same job
    listed = json.loads(syncd(env, "jobs", "--json").stdout)
    assert {b["state"] for b in listed} == {"failed"}
    assert all(b["error"].startswith(f"job {b['job_id']} could not be polled within 0.1s") for b in listed)
    env.sim.faults.clear()
    assert syncd(env, "replay-job", listed[0]["id"]).returncode == 0
    assert syncd(env, "sync").returncode == 0
    assert env.list_phones() == oracle.expected(env.sim.leads())


def test_2_a_lone_surrogate_in_a_text_field_is_dropped_not_fatal(env: Env) -> None:
    env.sim.seed_leads(50, seed=83)
    target = next(iter(oracle.expected(env.sim.leads())))
    env.sim.upsert_leads([{"Id": target, "FirstName": "Jo\ud800sé", "Company": "\udfffAcme"}], modstamp=soon())
    result = env.sync()
    assert result.ok, result.error
    assert env.list_records()[target]["FirstName"] == "José"
    assert env.list_records()[target]["Company"] == "Acme"


def test_2_an_unexpected_error_is_a_failed_run_never_left_running(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.sim.seed_leads(50, seed=84)

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("Jane Doe's private value that must stay out")

    monkeypatch.setattr("syncd.engine.page_updates", broken)
    result = env.sync()
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.startswith("unexpected KeyError at test_wedges.py:")
    assert "Jane Doe" not in result.error
    last = status(env.config())["last_run"]
    assert (last["status"], last["error"]) == ("failed", result.error)

    def leaky(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"refused token {SIM_SECRETS['SYNCD_SALESFORCE_CLIENT_SECRET']} at step 3")

    monkeypatch.setattr("syncd.engine.page_updates", leaky)
    result = env.sync()
    assert result.error is not None
    assert result.error.endswith(": refused token [REDACTED] at step 3 (a bug: please report it)")
    monkeypatch.undo()
    assert env.sync().ok
    assert env.list_phones() == oracle.expected(env.sim.leads())


def test_3_replay_on_contacts_batch_never_stages_a_removal(env: Env) -> None:
    env.api = "contacts-batch"
    env.sim.seed_leads(60, seed=85)
    assert env.sync().ok
    first = json.loads(syncd(env, "jobs", "--json").stdout)[-1]
    members = list(env.batch_phones())
    env.sim.upsert_leads([{"Id": i, "DoNotCall": True} for i in members], modstamp=soon())
    assert env.sync().ok  # they cannot be removed by this API: reported as pending removal
    proc = syncd(env, "replay-job", first["id"])
    assert proc.returncode == 2
    assert proc.stderr == (f"syncd: batch {first['id']} holds {len(members)} removals, which the contacts-batch "
                           "API cannot send; nothing was staged (they stay pending removal, see `syncd status`)\n")
    assert env.sync().ok  # and later runs are not wedged


def test_3_a_staged_removal_the_sink_cannot_send_is_abandoned_not_raised(env: Env) -> None:
    env.sim.seed_leads(60, seed=86)
    assert env.sync().ok
    on_list = sorted(env.list_phones())[:5]
    env.sim.upsert_leads([{"Id": i, "DoNotCall": True} for i in on_list], modstamp=soon())
    env.write_config()
    store = Store(env.tmp / "state" / "syncd.db")
    # What a call-lists syncd left behind before cxone.api changed: a staged removal batch.
    from syncd.store import Member
    store.stage("r-old", "remove", "r.csv", [Member(i, None, None) for i in on_list], None, datetime.now(timezone.utc))
    store.close()
    env.api = "contacts-batch"
    result = env.sync()
    assert result.ok, result.error
    old = next(b for b in json.loads(syncd(env, "jobs", "--json").stdout) if b["id"] == "r-old")
    assert (old["state"], old["error"]) == ("failed", "the contacts-batch API cannot remove leads")


def test_4_done_false_without_a_next_url_is_read_again_not_taken_as_the_end(env: Env) -> None:
    env.sim.seed_leads(600, seed=87)
    env.sim.sf.max_page_size = 100
    fault(env, "sf.next", "nonext")
    result = env.sync(batch_size=100)
    assert result.ok, result.error
    assert result.read == 600
    assert env.list_phones() == oracle.expected(env.sim.leads())


RSS_SCRIPT = """
import gc, json, sys, requests
from syncd.config_file import load_config
from syncd.runner import run_engine
from syncd.secrets import load_secrets
config = load_config(__import__("pathlib").Path(sys.argv[1]))
secrets = load_secrets(config)
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
marks = {}
for run in range(1, 51):
    requests.post(sys.argv[2] + "/_sim/mutate", json={"count": 40, "seed": run, "new": 5}, timeout=30)
    result = run_engine(config, secrets)
    assert result.ok, result.error
    if run in (10, 50):
        marks[run] = rss()
        marks[f"frozen{run}"] = gc.get_freeze_count()
print(json.dumps(marks))
"""


def test_5_fifty_daemon_runs_in_one_process_do_not_grow_its_memory(env: Env) -> None:
    env.sim.seed_leads(3000, seed=88)
    env.write_config(lag_seconds=0)
    proc = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(env.config_path), env.sim.url],
                          capture_output=True, text=True, timeout=600, env=env.subprocess_env(), cwd=env.tmp)
    assert proc.returncode == 0, proc.stderr
    marks = json.loads(proc.stdout)
    # Frozen objects are never collected: the set frozen at the first run must not grow with each run
    # (freezing at every run pinned each run's leftover garbage, ~280 objects a run here, for good).
    # (It may shrink: a frozen object whose last reference goes is freed all the same.)
    assert marks["frozen50"] <= marks["frozen10"]
    growth_kib = marks["50"] - marks["10"]
    # Each run's leftovers are collectable: forty more runs may not add what forty runs allocate.
    assert growth_kib < 6 * 1024, f"RSS grew {growth_kib} KiB from run 10 to run 50"


def test_6_status_never_makes_a_writer_fail(tmp_path: Path) -> None:
    db = tmp_path / "syncd.db"
    first = StateLock(db)
    first.acquire()  # creates the lock file
    first.release()
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            StateLock(db).held_by_other()

    askers = [threading.Thread(target=ask) for _ in range(2)]
    for t in askers:
        t.start()
    refused = 0
    try:
        for _ in range(3000):
            lock = StateLock(db)
            try:
                lock.acquire()
            except LockHeld:
                refused += 1
            else:
                lock.release()
    finally:
        stop.set()
        for t in askers:
            t.join()
    assert refused == 0


def test_7_a_full_disk_is_reported_as_such_and_rolls_back(tmp_path: Path) -> None:
    store = Store(tmp_path / "syncd.db")
    run = store.start_run(1, datetime.now(timezone.utc))
    pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    store.conn.execute(f"PRAGMA max_page_count = {pages + 2}")
    from syncd.store import LeadUpdate
    updates = [LeadUpdate(f"00Q{i:015d}", None, i.to_bytes(16, "big"), "x" * 400) for i in range(2000)]
    with pytest.raises(StateError, match=r"cannot grow: the disk \(or its quota\) is full") as info:
        store.apply_page(updates, run, None, None, None, None)
    assert "no transaction is active" not in str(info.value)
    assert not store.conn.in_transaction
    assert store.lead_ids() == []


def test_7_an_integrity_error_leaves_as_a_state_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "syncd.db")
    with pytest.raises(StateError, match="refused a write that contradicts its contents"), store.transaction() as c:
        c.execute("INSERT INTO sync_state (id) VALUES (1)")
    assert not store.conn.in_transaction


DAEMON_SCRIPT = """
import sys, logging
from pathlib import Path
from syncd import logs
from syncd.config_file import load_config
from syncd.daemon import Daemon
from syncd.secrets import load_secrets
logs.setup(logging.INFO)
config = load_config(Path(sys.argv[1]))
sys.exit(Daemon(config, load_secrets(config), stop_wait=float(sys.argv[2])).run())
"""


def stderr_line(proc: subprocess.Popen[str], text: str, what: str) -> str:
    """The first line of the process's stderr holding ``text`` (a hang guard of 60 s, not a timing)."""
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while text not in (line := proc.stderr.readline()):
        assert line, f"the process ended before {what}"
        if time.monotonic() > deadline:
            pytest.fail(f"waited 60 s for {what}")
    return line


def test_8_a_sync_that_will_not_stop_keeps_the_lock_until_the_process_is_gone(env: Env) -> None:
    env.sim.seed_leads(100, seed=89)
    env.write_config()
    proc = subprocess.Popen([sys.executable, "-c", DAEMON_SCRIPT, str(env.config_path), "0.5"],
                            env=env.subprocess_env(SYNCD_FAILPOINTS="polling:1:hang"), cwd=env.tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = StateLock(env.tmp / "state" / "syncd.db")
    try:
        stderr_line(proc, "failpoint polling:1 reached", "its sync to reach the hang")
        proc.send_signal(signal.SIGTERM)
        seen_free_while_alive = False
        while proc.poll() is None:
            if lock.held_by_other() is None and proc.poll() is None:
                # The kernel frees the lock while the process exits, a moment before it can be reaped:
                # only a process still alive well after that moment held it too briefly.
                time.sleep(0.3)
                seen_free_while_alive = seen_free_while_alive or proc.poll() is None
            time.sleep(0.01)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1
    assert "did not reach a safe point in 0.5s; exiting without waiting" in err
    assert not seen_free_while_alive, "the lock was released while the stuck sync could still write"


def test_9_a_cron_the_scheduler_refuses_is_a_config_error(env: Env) -> None:
    text = env.sim.config_toml().replace("interval_seconds = 60", 'cron = "61 * * * *"')
    with pytest.raises(ConfigError, match=r"schedule: cron '61 \* \* \* \*' is not valid: .*59"):
        config_from_text(text, "syncd.toml")
    env.write_config()
    env.config_path.write_text(text)
    proc = syncd(env, "run")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_10_a_completed_contacts_batch_with_failed_records_is_not_acked(env: Env) -> None:
    env.api = "contacts-batch"
    env.sim.seed_leads(120, seed=90)
    env.sim.cx.fail_contacts_next = 4
    eligible = len(oracle.expected(env.sim.leads()))
    result = env.sync()
    assert result.ok, result.error
    assert env.batch_phones() == oracle.expected(env.sim.leads())  # the failed four went again
    failed = [b for b in json.loads(syncd(env, "jobs", "--json").stdout) if b["state"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["error"] == f"job {failed[0]['job_id']} failed: 4 of {eligible} contacts failed"


def test_12_a_pending_network_call_counts_as_progress(env: Env) -> None:
    env.sim.faults.slow_seconds = 1.0
    fault(env, "cxone.openid", "slow")
    session = http.make_session(retries=0, timeout=(2.0, 5.0))
    seen: list[float] = []
    def call() -> None:
        with contextlib.suppress(RemoteUnavailable):  # the slow fault then drops the connection
            http.send(session, "GET", f"{env.sim.url}/.well-known/openid-configuration", "cxone")

    worker = threading.Thread(target=call)
    worker.start()
    while worker.is_alive():
        seen.append(http.network_wait_until() - time.monotonic())
        time.sleep(0.05)
    worker.join()
    assert seen
    assert max(seen) > 0  # the pacer treats the sync as alive while it waits on a remote
    assert http.network_wait_until() == 0.0  # and not once the call has ended


def test_13_the_daemon_store_honours_busy_timeout(env: Env) -> None:
    env.sim.seed_leads(20, seed=91)
    assert env.sync().ok
    env.write_config()
    env.config_path.write_text(env.config_path.read_text().replace(
        '[state]\n', '[state]\nbusy_timeout_seconds = 0.3\n'))
    blocker = Store(env.tmp / "state" / "syncd.db")
    blocker.conn.execute("BEGIN IMMEDIATE")  # another writer holds SQLite's write lock
    proc = subprocess.Popen([sys.executable, "-m", "syncd", "run", "--config", str(env.config_path)],
                            env=env.subprocess_env(), cwd=env.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = stderr_line(proc, "could not record the daemon state", "it to try to write")
        assert "gave up after 0.3s (state.busy_timeout_seconds)" in line
    finally:
        blocker.conn.execute("ROLLBACK")
        blocker.close()
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:  # never leave a daemon behind, whatever failed
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err  # a SIGTERM while it was still starting stops it cleanly too


def test_14_a_cancelled_job_is_retried_in_the_same_run(env: Env) -> None:
    env.sim.seed_leads(200, seed=92)
    env.sim.cx.cancel_next = 1
    result = env.sync()
    assert result.ok, result.error
    assert env.list_phones() == oracle.expected(env.sim.leads())  # not a run later
    assert status(env.config())["leads"]["dirty"] == 0


def damage(db: Path) -> None:
    """Overwrite pages in the middle of the file (lead rows and indexes; the header and schema stay readable)."""
    middle = db.stat().st_size // 2 // 4096 * 4096
    with db.open("r+b") as f:
        f.seek(middle)
        f.write(os.urandom(4 * 4096))


def test_integrity_is_checked_after_an_unclean_stop(env: Env) -> None:
    env.sim.seed_leads(2000, seed=93)
    assert env.sync().ok
    db = env.tmp / "state" / "syncd.db"
    damage(db)
    (env.tmp / "state" / "syncd.db.lock").write_text("4242 open")  # its last writer died with it open
    Path(f"{db}-wal").write_bytes(b"")  # a WAL was there (empty after its checkpoint)
    proc = syncd(env, "sync")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    [problem] = [line for line in proc.stderr.splitlines() if line.startswith("syncd: ")]
    assert problem.startswith(f"syncd: the state database {db} failed its integrity check (")
    assert f"restore {db} from a backup, or move it (and its -wal) away" in problem
    assert syncd(env, "sync").returncode == 1  # the mark stays until a check passes


def test_a_page_found_damaged_mid_run_is_one_line(env: Env) -> None:
    env.sim.seed_leads(2000, seed=95)
    assert env.sync().ok
    db = env.tmp / "state" / "syncd.db"
    damage(db)  # a clean stop before: nothing checks the file at open
    env.sim.mutate(1500, seed=96, modstamp=soon())  # the run reads and writes most lead rows
    proc = syncd(env, "sync")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    # The run ends failed, with the cause in its one summary line (and in `syncd status`).
    assert proc.stdout.startswith("run 2 failed: read 0")
    assert f"the state database {db} is damaged (database disk image is malformed); restore {db} from a " \
           "backup" in proc.stdout
    assert proc.stdout.count("\n") == 1


def test_a_missing_wal_after_an_unclean_stop_is_noticed(env: Env) -> None:
    env.sim.seed_leads(100, seed=94)
    assert env.sync().ok
    db = env.tmp / "state" / "syncd.db"
    assert not Path(f"{db}-wal").exists()  # a clean close checkpoints and removes it
    (env.tmp / "state" / "syncd.db.lock").write_text("4242 open")
    proc = syncd(env, "sync")
    assert proc.returncode == 1
    assert proc.stderr == (f"syncd: the state database {db} was not closed cleanly and its write-ahead log "
                           f"{db}-wal is missing: the changes committed last are lost with it. Restore the .db and "
                           "its -wal together from one backup, or accept the loss with `syncd reset` (a full "
                           "re-read that sends only what CXone lacks)\n")
    assert syncd(env, "reset", "--yes").returncode == 0
    assert syncd(env, "sync").returncode == 0
    assert env.list_phones() == oracle.expected(env.sim.leads())


@pytest.mark.parametrize(("damage_sql", "says"), [
    ("DROP TABLE skips", "lacks the table skips"),
    ("DELETE FROM sync_state", "lacks its sync_state row"),
    ("UPDATE sync_state SET watermark = 'last tuesday'", "the sync_state row of {db} is unreadable"),
])
def test_broken_state_is_one_line_and_nothing_is_lost_once_fixed(env: Env, damage_sql: str, says: str) -> None:
    env.sim.seed_leads(120, seed=97)
    assert env.sync().ok
    db = env.tmp / "state" / "syncd.db"
    raw = sqlite3.connect(db)
    raw.execute(damage_sql)
    raw.commit()
    raw.close()
    for command in ("sync", "status"):
        proc = syncd(env, command)
        assert proc.returncode == 1, (command, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        text = proc.stderr + proc.stdout
        assert says.format(db=db) in text, text
    db.unlink()  # the way back the message names: move the file away (here: remove it)
    assert syncd(env, "sync").returncode == 0
    assert env.list_phones() == oracle.expected(env.sim.leads())


def test_doctor_runs_the_integrity_check(env: Env) -> None:
    env.sim.seed_leads(2000, seed=98)
    assert env.sync().ok
    assert "passed its integrity check" in syncd(env, "doctor").stdout
    damage(env.tmp / "state" / "syncd.db")
    proc = syncd(env, "doctor")
    assert proc.returncode == 1
    assert "FAIL  state: the state database" in proc.stdout
    assert "failed its integrity check" in proc.stdout


def test_the_daemon_checks_integrity_daily_and_stops_on_damage(env: Env) -> None:
    env.sim.seed_leads(2000, seed=99)
    assert env.sync().ok
    config = env.config()
    daemon = Daemon(config, env.secrets(config))
    daemon.store = Store(config.state.path)
    daemon._integrity_job()
    assert (daemon.exit_code, daemon.stop.is_set()) == (0, False)
    daemon.store.close()
    damage(config.state.path)
    daemon.store = Store(config.state.path)
    daemon._integrity_job()
    assert (daemon.exit_code, daemon.stop.is_set()) == (1, True)
    assert "failed its integrity check" in (daemon.store.daemon()["last_error"] or "")
    daemon.store.close()


class LyingIndex:
    """A store whose pending index says leads wait that staging cannot find (a damaged file)."""

    path = Path("/state/syncd.db")
    batches_closed = 0

    def count_pending(self, kind: str, up_to: int | None = None) -> int:
        return 5 if kind == "upsert" else 0

    def stage_pending(self, *args: object) -> int:
        return 1


def test_staging_that_cannot_shrink_the_pending_set_stops_instead_of_looping(env: Env) -> None:
    from syncd.context import RunContext
    from syncd.outbox import Outbox

    config = env.config(batch_size=5)
    ctx = RunContext(config, LyingIndex(), object(), lambda: datetime.now(timezone.utc), lambda: None)  # type: ignore[arg-type]
    ctx.sink = type("Sink", (), {"can_remove": True})()
    with pytest.raises(StateError, match="counts 5 leads waiting to be staged but only 1 could be"):
        Outbox(ctx).stage(final=True)
