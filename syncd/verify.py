"""Verify: download the list CXone really holds, compare it with the state, and mark the drift.

The rules are in ``syncd/store/verify.py``. This module decides when (every
``cxone.verify_every_hours``, after an upload answer was lost, and on ``syncd verify``), streams the
records into the comparison a chunk at a time, and turns what the comparison found into the
message an operator needs: which setting does not match the tenant.
"""

from __future__ import annotations

import itertools
import logging
from datetime import timedelta
from typing import Any

from syncd.context import RunContext
from syncd.errors import ReadingMismatch
from syncd.failpoints import failpoint

log = logging.getLogger(__name__)
CHUNK = 10_000  # downloaded records per write into the comparison table


class Verifier:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    @property
    def possible(self) -> bool:
        return bool(getattr(self.ctx.sink, "can_read_back", False))

    def due(self) -> bool:
        """Whether ``verify_every_hours`` has passed since the last verification (or the first run)."""
        every = self.ctx.cfg.cxone.verify_every_hours
        if not every or not self.possible:
            return False
        since = self.ctx.store.last_verification_at() or self.ctx.store.first_run_at()
        return since is None or self.ctx.now() - since >= timedelta(hours=every)

    def run(self) -> dict[str, Any]:
        ctx = self.ctx
        sink: Any = ctx.sink
        cl = ctx.cfg.cxone.call_lists
        assert cl is not None
        ctx.store.verify_begin()
        records = sink.download(ctx.cfg.cxone.job_timeout_seconds)
        while chunk := list(itertools.islice(records, CHUNK)):
            ctx.store.verify_add((r.external_id, r.phone, r.state, r.expires_on) for r in chunk)
            ctx.tick()
        failpoint("verify_downloaded")
        found = ctx.store.verify_finish(ctx.run_id or None, ctx.now(), upsert_mode=cl.upload_mode == "upsert",
                                        expire_only=cl.removal == "expire-only")
        log.info("verified the list: %s", ", ".join(f"{k}={v}" for k, v in found.items()))
        return found


def mismatch(found: dict[str, Any], removal: str) -> ReadingMismatch | None:
    """The setting a verification shows to be wrong for this tenant, as the error to stop with."""
    if found.get("replaced"):
        return ReadingMismatch(
            "records acked by earlier uploads vanished after the last upload: on this tenant forceOverwrite "
            "replaces the whole list. Set cxone.call_lists.upload_mode = \"snapshot\" (see README, Proving your "
            "tenant); the missing leads are marked to be sent again")
    if found.get("unremovable") and removal == "remove-prospects":
        return ReadingMismatch(
            f"{found['unremovable']} records stay on the list after removeProspects: removal does not work on "
            "this list. Set cxone.call_lists.removal = \"expire-only\" and dnc_group_id (see README, Proving your "
            "tenant)")
    if found.get("unrestorable") and removal == "remove-prospects":
        return ReadingMismatch(
            f"{found['unrestorable']} leads that came back stay removed after they were uploaded again: on this "
            "tenant a removed record is not re-activated. Set cxone.call_lists.removal = \"expire-only\"")
    return None
