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
holds the two equal. ``HASH_VERSION`` names the canonical form: change the form, bump it.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from syncd.store.leads import STALE, LeadUpdate
from syncd.transform import Contact, Rules, Skip, dnc_numbers, transform

HASH_VERSION = 1
# Skip reasons checked before (or at) Do Not Call: only these can hide a lead flagged Do Not Call.
_MAY_BE_DNC = frozenset({"deleted", "merged", "converted", "do_not_call"})

_SORTED_FIELDS = tuple(sorted(f for f in Contact._fields if f != "extra"))
_sorted_values = operator.itemgetter(*(Contact._fields.index(name) for name in _SORTED_FIELDS))
_CANONICAL_TEMPLATE = "{" + ",".join(f'"{name}":%s' for name in _SORTED_FIELDS) + "}"
_json_string = json.encoder.encode_basestring  # what JSONEncoder(ensure_ascii=False) quotes text with


def canonical(contact: Contact) -> str:
    """``json.dumps(contact._asdict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)``,
    written out: every field is text, so the encoder's only work is quoting each value (a test holds
    the two equal). Without mapped extra columns the ``extra`` key is left out, so a contact's hash
    is the same as before columns could be mapped (no re-send of the whole list on upgrade)."""
    if contact.extra:
        return json.dumps(contact._asdict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return _CANONICAL_TEMPLATE % tuple(map(_json_string, _sorted_values(contact)))


def content_hash(contact: Contact) -> bytes:
    return hashlib.blake2b(canonical(contact).encode("utf-8"), digest_size=16).digest()


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
                add(LeadUpdate(outcome.external_id, stamp, content_hash(outcome), payload, phone=outcome.phone))
                continue
            outcome = Skip(outcome.external_id, "too_long", f"{len(payload)} > {max_chars} characters")
        assert isinstance(outcome, Skip)
        add(LeadUpdate(outcome.lead_id, stamp, reason=outcome.reason, detail=outcome.detail,
                       dnc=dnc_numbers(record, rules) if outcome.reason in _MAY_BE_DNC else ()))
    return updates
