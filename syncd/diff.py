"""What changed: the canonical form of a contact, its hash, and the rules that decide what moves.

Each lead carries two digests: ``seen`` (the eligible contact Salesforce shows now, None when the
lead is not callable) and ``acked`` (what CXone confirmed, None when it is not on the list).

- **dirty**: ``seen != acked``: the lead must move.
- **pending upsert**: dirty, eligible (``seen`` set), in no open batch and not parked.
- **pending removal**: dirty, not eligible (``seen`` None, so ``acked`` set), in no batch, not parked.
- **observe** (a page shows the lead): new content resets its failed attempts and releases it
  from parking; the same content changes neither.
- **ack**: ``acked`` becomes exactly the hash that was sent (a lead changed meanwhile stays dirty).
- **fail**: attempts + 1; at ``max_attempts`` a lead still dirty is parked until ``replay-job``.
- **keep-alive**: a lead whose confirmed content is current and whose record expires by
  ``refresh_until`` (today + ``refresh_before_days``) gets ``acked`` = ``STALE``: dirty, so it is sent
  again, and still on the list (were it to turn uncallable meanwhile, it is a pending removal).
- **expired**: a record past its last day is off the list: ``acked`` becomes None.

The store runs these rules as SQL (``syncd/store/leads.py``, ``outbox.py``); ``tests/test_diff.py``
holds the two equal. ``HASH_VERSION`` names the canonical form (the rendered row): change the form, bump
it, and add a migration that rehashes the stored digests so that an upgrade sends nothing again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from syncd.store.leads import STALE, LeadUpdate
from syncd.transform import Contact, Rules, Skip, dnc_numbers, transform

HASH_VERSION = 2  # 1: sorted-key JSON of the whole Contact (phone_type too); 2: the row as the sink receives it
# Skip reasons checked before (or at) Do Not Call: only these can hide a lead flagged Do Not Call.
_MAY_BE_DNC = frozenset({"deleted", "merged", "converted", "do_not_call"})


def content_hash(row: str) -> bytes:
    """The digest of a contact's canonical form: the exact row its sink sends (a call list's CSV line,
    a contacts-batch JSON object). What CXone cannot see (a call list has no phone type) changes no
    hash and sends nothing; a sink or column change alters each lead's hash when it is next read. m010
    rehashed the state's version-1 digests to this form."""
    return hashlib.blake2b(row.encode("utf-8"), digest_size=16).digest()


@dataclass(frozen=True)
class LeadState:
    """A lead's row as the rules see it."""

    seen: bytes | None = None
    acked: bytes | None = None
    in_batch: bool = False
    attempts: int = 0
    parked: bool = False


def is_dirty(lead: LeadState) -> bool:
    return lead.seen != lead.acked


def is_pending_upsert(lead: LeadState) -> bool:
    return is_dirty(lead) and lead.seen is not None and not lead.in_batch and not lead.parked


def is_pending_removal(lead: LeadState) -> bool:
    return is_dirty(lead) and lead.seen is None and not lead.in_batch and not lead.parked


def observe(lead: LeadState, seen: bytes | None) -> LeadState:
    if seen == lead.seen:
        return lead
    return replace(lead, seen=seen, attempts=0, parked=False)


def ack(lead: LeadState, sent: bytes | None) -> LeadState:
    return replace(lead, acked=sent, in_batch=False, attempts=0)


def fail(lead: LeadState, max_attempts: int) -> LeadState:
    attempts = lead.attempts + 1
    parked = lead.parked or (attempts >= max_attempts and is_dirty(lead))
    return replace(lead, in_batch=False, attempts=attempts, parked=parked)


def is_due_refresh(lead: LeadState, expires_on: str | None, refresh_until: str) -> bool:
    return (lead.acked is not None and lead.acked == lead.seen and not lead.in_batch and expires_on is not None
            and expires_on <= refresh_until)


def refresh(lead: LeadState) -> LeadState:
    return replace(lead, acked=STALE)


def page_updates(records: Iterable[Any], rules: Rules, render: Callable[[Contact], str],
                 max_chars: int | None) -> list[LeadUpdate]:
    """Each record of a page as the update the store compares: a hash and the exact row, or a skip."""
    updates: list[LeadUpdate] = []
    add = updates.append
    for record in records:
        outcome = transform(record, rules)
        modstamp = record.get("SystemModstamp") if isinstance(record, dict) else None
        # Kept for the audit only: a Salesforce datetime is short ASCII; anything else is not one.
        stamp = modstamp if isinstance(modstamp, str) and len(modstamp) <= 40 and modstamp.isascii() else None
        if type(outcome) is Contact:
            payload = render(outcome)
            if max_chars is None or len(payload) <= max_chars:
                add(LeadUpdate(outcome.external_id, stamp, content_hash(payload), payload, phone=outcome.phone))
                continue
            outcome = Skip(outcome.external_id, "too_long", f"{len(payload)} > {max_chars} characters")
        assert isinstance(outcome, Skip)
        add(LeadUpdate(outcome.lead_id, stamp, reason=outcome.reason, detail=outcome.detail,
                       dnc=dnc_numbers(record, rules) if outcome.reason in _MAY_BE_DNC else ()))
    return updates
