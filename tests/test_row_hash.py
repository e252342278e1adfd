"""Hash version 2: a lead's digest is of the row its sink receives, over real HTTP and a real state file.

A change CXone cannot see sends nothing, and a state written under version 1 (the whole contact's
sorted-key JSON) is rehashed in place by m010, so an upgrade sends nothing either.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from syncd.admin import reset
from syncd.transform import Contact, rules_for, transform
from tests import oracle
from tests.conftest import Env

ORG = 400


def _past(seconds: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(seconds=seconds)


def work_phone_leads(env: Env) -> list[dict[str, object]]:
    """Callable leads dialled on their Phone (no MobilePhone): moving the number to MobilePhone changes
    only the contact's phone type."""
    callable_ids = set(oracle.expected(env.sim.leads()))
    return [lead for lead in env.sim.leads() if lead["Id"] in callable_ids and not lead.get("MobilePhone")]


@pytest.mark.parametrize("api", ["call-lists", "contacts-batch"])
def test_a_change_only_the_contact_shows_is_sent_only_where_the_sink_holds_it(env: Env, api: str) -> None:
    env.api = api
    env.sim.seed_leads(ORG, seed=21)
    assert env.sync().ok
    moved = work_phone_leads(env)[:25]
    assert len(moved) == 25
    uploads = len(env.sim.cx.uploads)
    env.sim.upsert_leads([{"Id": lead["Id"], "MobilePhone": lead["Phone"], "Phone": None} for lead in moved],
                         modstamp=_past(2))
    result = env.sync()
    assert result.ok, result.error
    assert result.read >= len(moved)  # the window did return them
    sent = env.uploaded_ids(uploads)
    if api == "call-lists":
        assert sent == [], "a call list's row has no phone type: the same row was sent again"
    else:
        assert sorted(sent) == sorted(str(lead["Id"]) for lead in moved)  # the contact's phone type is in the object
    assert env.on_list() == oracle.expected(env.sim.leads())


def version_1_hash(contact: Contact) -> bytes:
    """The released version-1 digest: sorted-key compact JSON of the contact without its extra columns."""
    fields = {k: v for k, v in contact._asdict().items() if k != "extra"}
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def test_a_state_of_hash_version_1_is_rehashed_and_an_upgrade_sends_nothing(env: Env) -> None:
    env.sim.seed_leads(ORG, seed=22)
    assert env.sync().ok
    config = env.config()
    rules = rules_for(config)
    # The state as syncd before m010 left it: every digest of version 1, m010 not applied.
    contacts = {c.external_id: c for c in (transform(lead, rules) for lead in env.sim.leads()) if type(c) is Contact}
    conn = sqlite3.connect(config.state.path, isolation_level=None)
    ids = [r[0] for r in conn.execute("SELECT id FROM leads WHERE acked_hash = seen_hash")]
    assert set(ids) == set(contacts)
    conn.executemany("UPDATE leads SET seen_hash = ?1, acked_hash = ?1 WHERE id = ?2",
                     [(version_1_hash(contacts[i]), i) for i in ids])
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm010_row_hash'")
    conn.close()
    reset(config)  # the next run reads the whole org again: every lead's digest is taken anew
    uploads = len(env.sim.cx.uploads)

    again = env.sync()
    assert again.ok, again.error
    assert again.read == ORG
    assert env.uploaded_ids(uploads) == [], "an upgrade re-sent leads whose rows CXone already holds"
    # Rehashed, not merely skipped: a real change after the upgrade still goes out, alone.
    changed = ids[0]
    env.sim.upsert_leads([{"Id": changed, "FirstName": "Upgraded"}], modstamp=_past(2))
    assert env.sync().ok
    assert env.uploaded_ids(uploads) == [changed]
    assert env.on_list() == oracle.expected(env.sim.leads())


def test_after_a_switch_of_sink_a_full_re_read_sends_every_lead_in_the_new_form(env: Env) -> None:
    """The hash is of the sink's row, so the contacts-batch API gets every callable lead once the org is
    read again: under version 1 the digests matched and it got none."""
    env.sim.seed_leads(ORG, seed=23)
    assert env.sync().ok
    assert env.list_phones() == oracle.expected(env.sim.leads())
    env.api = "contacts-batch"
    reset(env.config())
    result = env.sync()
    assert result.ok, result.error
    assert result.read == ORG
    assert env.batch_phones() == oracle.expected(env.sim.leads())
