"""Pre-built crash states resume correctly: each is the state a kill at one boundary leaves."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

from syncd.cxone import make_sink
from syncd.engine import Engine, utcnow
from syncd.http import make_session
from syncd.salesforce import SalesforceClient
from syncd.soql import select_fields, window_query
from syncd.store import LeadUpdate, Store
from syncd.window import Window
from tests import oracle
from tests.conftest import Env


def engine(env: Env, store: Store) -> Engine:
    config = env.config()
    secrets = env.secrets(config)
    session = make_session()
    return Engine(config, store, SalesforceClient(config.salesforce, secrets, session),
                  make_sink(config, secrets, session, utcnow))


def test_a_staged_batch_without_a_job_id_is_uploaded_as_it_was(env: Env) -> None:
    env.sim.seed_leads(300, seed=31)
    first = env.sync()
    assert first.ok
    env.sim.mutate(60, seed=32, modstamp=datetime.now(timezone.utc) - timedelta(seconds=2))
    store = Store(env.tmp / "state" / "syncd.db")
    eng = engine(env, store)
    # Read and stage, as a run would before it was killed ahead of the upload.
    eng.run_id = store.start_run(1, utcnow())
    eng.read_window()
    eng.outbox.stage(final=True)
    staged = store.batches("staged")
    assert staged
    rows_before = {b.id: [(m.lead_id, m.hash, m.payload) for m in store.members(b.id)] for b in staged}
    store.close()
    uploads = len(env.sim.cx.uploads)

    again = env.sync()
    assert again.ok
    sent = env.sim.cx.uploads[uploads:]
    upserts = [b for b in staged if b.kind == "upsert"]
    assert upserts
    assert any(b.kind == "remove" for b in staged)
    assert [u["fileName"] for u in sent[: len(upserts)]] == [f"syncd-{b.id}.csv" for b in upserts]
    store = Store(env.tmp / "state" / "syncd.db")
    for b in staged:
        assert [(m.lead_id, m.hash) for m in store.members(b.id)] == [(i, h) for i, h, _ in rows_before[b.id]]
    assert store.batches("staged", "submitted") == []
    assert env.list_phones() == oracle.expected(env.sim.leads())


def killed_after_its_job_id_committed(env: Env, leads: int, seed: int) -> list[str]:
    """The state a run leaves when killed right after committing the job id of its one batch, never
    polled; returns that batch's lead ids."""
    env.sim.seed_leads(leads, seed=seed)
    store = Store(env.tmp / "state" / "syncd.db")
    eng = engine(env, store)
    eng.run_id = store.start_run(1, utcnow())
    eng.read_window()
    eng.outbox.stage(final=True)
    (batch,) = store.batches("staged")
    job = eng.sink.upload(batch.file_name, store.rows(batch.id))
    store.mark_submitted(batch.id, job, utcnow(), eng.run_id)
    lead_ids = [m.lead_id for m in store.members(batch.id)]
    store.close()  # killed here
    return lead_ids


def test_a_job_id_never_polled_is_polled_not_uploaded_again(env: Env) -> None:
    killed_after_its_job_id_committed(env, 200, seed=33)

    result = env.sync()
    assert result.ok
    assert len(env.sim.cx.uploads) == 1, "the batch must not be uploaded a second time"
    assert env.list_phones() == oracle.expected(env.sim.leads())


def first_page_committed(env: Env, leads: int, seed: int) -> Store:
    """The state a run leaves when killed right after committing its first page (store left open)."""
    env.sim.seed_leads(leads, seed=seed)
    env.sim.sf.max_page_size = 200
    config = env.config()
    store = Store(env.tmp / "state" / "syncd.db")
    eng = engine(env, store)
    eng.run_id = store.start_run(1, utcnow())
    end = utcnow().replace(microsecond=0)
    store.open_window(None, end, eng.run_id)
    page = eng.sf.query_all(window_query(select_fields(config.salesforce.phone_fields), None, end))
    eng.extractor.window_id = eng.run_id  # as open() sets it
    eng._apply(page, Window(None, end))  # the page is committed with its position and nextRecordsUrl
    state = store.sync_state()
    assert state.next_url is not None
    assert state.pos_id is not None
    return store


def test_a_half_read_window_with_a_dead_locator_resumes_from_its_position(env: Env) -> None:
    first_page_committed(env, 900, seed=34).close()
    env.sim.sf.revoke()  # the session, and every locator it made, is gone
    next_calls = env.sim.stats["sf.next"]

    result = env.sync()
    assert result.ok
    assert env.sim.stats["sf.next"] > next_calls  # it tried the saved locator first ...
    # ... then re-issued the window query from the saved position (2), then read a fresh window (3).
    assert env.sim.sf.queries == 3
    assert env.list_phones() == oracle.expected(env.sim.leads())
    assert result.read < 900  # it did not start over


def test_an_old_locator_is_not_tried(env: Env) -> None:
    store = first_page_committed(env, 500, seed=35)
    with store.transaction() as c:  # the page was fetched an hour ago
        c.execute("UPDATE sync_state SET next_url_at = ?", ((utcnow() - timedelta(hours=1)).isoformat(),))
    store.close()
    next_calls = env.sim.stats["sf.next"]

    assert env.sync().ok
    assert env.sim.stats["sf.next"] == next_calls + 1  # only the re-issued query's second page
    assert env.list_phones() == oracle.expected(env.sim.leads())


def test_a_resumed_window_is_followed_by_a_fresh_one(env: Env) -> None:
    env.sim.seed_leads(200, seed=36)
    store = Store(env.tmp / "state" / "syncd.db")
    old_end = utcnow().replace(microsecond=0) - timedelta(minutes=30)
    store.open_window(None, old_end, 0)  # a run 30 minutes ago opened this window and died
    store.close()
    recent = env.sim.upsert_leads([{"Status": "Open - Not Contacted", "Phone": "(415) 555-0177",
                                    "IsConverted": False, "DoNotCall": False, "IsDeleted": False}],
                                  modstamp=utcnow() - timedelta(minutes=5))
    result = env.sync()
    assert result.ok
    assert recent[0] in env.list_phones()
    store = Store(env.tmp / "state" / "syncd.db")
    watermark = store.sync_state().watermark
    assert watermark is not None
    assert watermark > old_end


def test_leads_a_closing_batch_makes_pending_again_are_staged_before_the_run_ends(env: Env) -> None:
    config = env.config(batch_size=3)
    secrets = env.secrets(config)
    session = make_session()
    store = Store(env.tmp / "state" / "syncd.db")
    eng = Engine(config, store, SalesforceClient(config.salesforce, secrets, session),
                 make_sink(config, secrets, session, utcnow))
    eng.run_id = run = store.start_run(1, utcnow())
    ids = ["00Q000000000001EAY", "00Q000000000002EAY", "00Q000000000003EAY"]

    def apply(version: str) -> None:
        updates = [LeadUpdate(i, None, hashlib.blake2b(f"{i}{version}".encode()).digest()[:16], f"{i},{version}")
                   for i in ids]
        store.apply_page(updates, run, None, None, None, None)

    apply("v1")
    eng.outbox.stage(final=False)
    [batch] = store.batches("staged")
    store.mark_submitted(batch.id, "7", utcnow(), run)
    apply("v2")  # all three change while their batch is in flight: nothing to stage yet
    eng.outbox.stage(final=False)
    assert store.batches("staged") == []
    store.ack_batch(batch.id, utcnow())  # v1 acked: the v2 content is pending, a full batch of it
    eng.outbox.stage(final=False)
    [again] = store.batches("staged")
    assert store.rows(again.id) == [f"{i},v2" for i in ids]


def test_leads_that_changed_while_a_killed_runs_job_ran_go_in_the_run_that_acks_it(env: Env) -> None:
    env.sim.cx.job_delay = 2.0  # still running when the next run first polls it
    on_list = killed_after_its_job_id_committed(env, 200, seed=35)
    # Some of its leads change meanwhile: one becomes Do Not Call, one gets another phone.
    stamp = datetime.now(timezone.utc) - timedelta(seconds=2)
    env.sim.upsert_leads([{"Id": on_list[0], "DoNotCall": True}, {"Id": on_list[1], "Phone": "(212) 555-0188",
                                                                    "MobilePhone": None}], modstamp=stamp)

    result = env.sync()
    assert result.ok, result.error
    # The ack came only in the final wait; the leads it left dirty went in the same run.
    assert env.list_phones() == oracle.expected(env.sim.leads())
    assert result.removed == 1
