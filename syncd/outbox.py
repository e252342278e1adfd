"""What to stage and when: dirty leads become batches of ``cxone.batch_size`` before any call.

Between pages only full batches are staged (a page adds at most its own leads, so the pending
count is bounded without counting the index on every page); at the end of a run everything left.
A batch's id is deterministic (kind, run, sequence), so a replayed or resumed batch keeps it.
"""

from __future__ import annotations

import logging

from syncd.context import RunContext
from syncd.errors import StateError
from syncd.failpoints import failpoint

log = logging.getLogger(__name__)


def sendable_kinds(can_remove: bool) -> tuple[str, ...]:
    """The batch kinds a sink can be sent: never stage a batch it cannot deliver."""
    return ("upsert", "remove") if can_remove else ("upsert",)


class Outbox:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._seq = 0
        # Per kind, at most this many leads wait to be staged (absent: unknown). Counting the pending
        # index on every page cost more than the rest of staging; a page adds at most its leads of
        # that kind. A batch that closes (ack, failure, removal) can make leads pending again, so
        # the bounds hold only while the store's count of closed batches stays where it was.
        self._pending_at_most: dict[str, int] = {}
        self._bounds_at_closed = ctx.store.batches_closed

    def kinds(self) -> tuple[str, ...]:
        return sendable_kinds(self.ctx.sink.can_remove)

    def added(self, eligible: int, skipped: int) -> None:
        """A page was applied: only an eligible lead can start waiting for an upsert, only a skipped one
        for a removal."""
        for kind, added in (("upsert", eligible), ("remove", skipped)):
            if kind in self._pending_at_most:
                self._pending_at_most[kind] += added

    def stage(self, final: bool) -> None:
        store, size = self.ctx.store, self.ctx.cfg.cxone.batch_size
        if store.batches_closed != self._bounds_at_closed:
            self._pending_at_most.clear()
            self._bounds_at_closed = store.batches_closed
        for kind in self.kinds():
            while True:
                if not final and self._pending_at_most.get(kind, size) < size:
                    break
                waiting = store.count_pending(kind, up_to=size)
                if waiting < size:
                    self._pending_at_most[kind] = waiting
                if waiting == 0 or (not final and waiting < size):
                    break
                self._pending_at_most.pop(kind, None)
                staged = self._stage_batch(kind, size)
                if staged < min(waiting, size):
                    # The index said more leads wait than a batch could take: the file is damaged, and
                    # staging again would loop on it (one-row batches, forever).
                    raise StateError(f"the state database {store.path} counts {waiting} leads waiting to be "
                                     f"staged but only {staged} could be; its index is damaged (run "
                                     "`syncd doctor`; restore a backup or move the file away)")

    def _stage_batch(self, kind: str, size: int) -> int:
        ctx = self.ctx
        self._seq += 1
        batch_id = f"{kind[0]}{ctx.run_id:06d}-{self._seq:04d}"  # runs and their sequence never repeat
        staged = ctx.store.stage_pending(batch_id, kind, f"syncd-{batch_id}.csv", size, ctx.run_id, ctx.now())
        log.debug("staged %s batch %s with %d leads", kind, batch_id, staged)
        failpoint("batch_staged")
        return staged

    def waiting(self, retries: bool = False) -> bool:
        """Whether a lead waits for a batch of the kinds sent: one an ack left dirty (changed in flight),
        or, with ``retries``, also one a failed delivery put back that has attempts left."""
        return self.ctx.store.changed_in_flight(self.kinds(), retries=retries)
