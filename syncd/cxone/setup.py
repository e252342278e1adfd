"""Which CXone upload refusals are about the configuration rather than the leads, in words naming the setting.

A call-list upload is judged as a whole file: CXone drops a bad record silently (API-CONTRACTS.md), so a
refused upload is about what every upload carries (the list, the skill, the header, the rights), and no
lead should be parked for it. A 401 that a fresh token does not cure, a 403, a 404 or a 413 says so
outright. A 400 is only known to be about one batch once another batch of the same run is accepted; until
then the batch stays staged, and a run whose every upload is refused fails naming the settings to check.
"""

from __future__ import annotations

from syncd.config import Config
from syncd.errors import RemoteError


def _target(cfg: Config) -> str:
    cl = cfg.cxone.call_lists
    if cfg.cxone.api == "call-lists" and cl is not None:
        return f"list {cl.list_id} (cxone.call_lists.list_id) with skill {cl.skill_id} (skill_id)"
    cb = cfg.cxone.contacts_batch
    return f"the contacts API at {cb.base_url if cb else '?'} (cxone.contacts_batch.base_url)"


def setup_problem(cfg: Config, e: RemoteError, removal: bool = False) -> str | None:
    """The configuration problem a refused upload (or removal) shows for certain, or None when it may be
    the batch's."""
    cl = cfg.cxone.call_lists
    if e.status == 404 and removal and cl is not None:
        return (f"CXone has no list named {cl.source!r} to remove prospects from: set cxone.call_lists.source_name "
                "(empty: list_name) to the list's name in CXone")
    if e.status == 404:
        if cfg.cxone.api == "call-lists" and cl is not None:
            return (f"CXone has no call list {cl.list_id}: set cxone.call_lists.list_id to the list's id "
                    "(Outbound > Lists in CXone; `syncd doctor` checks it)")
        return f"CXone answered 404 for the upload: check {_target(cfg)}"
    if e.status in (401, 403):
        return (f"CXone refuses this API user the upload to {_target(cfg)} ({e.status}): give its role the right "
                "to manage call lists, or correct the ids (`syncd doctor` checks them)")
    if e.status == 413:
        return f"CXone refuses uploads this large (413): lower cxone.batch_size (now {cfg.cxone.batch_size})"
    return None


def all_refused(cfg: Config, refused: int, e: str) -> str:
    """Every upload of a run was refused with a status that may be about a batch: it is the setup."""
    what = "the header syncd sends (cxone.call_lists.columns and fields) against the list's column mapping, " \
        "and skill_id" if cfg.cxone.api == "call-lists" else "cxone.contacts_batch.fields"
    return (f"every upload of this run was refused ({refused} batch{'es' * (refused != 1)}, last: {e}); no lead "
            f"was parked and the batches stay staged. It is about the setup, not the leads: check {what} for "
            f"{_target(cfg)}, then run again")
