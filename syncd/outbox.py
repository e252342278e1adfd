"""What to stage and when: dirty leads become batches of ``cxone.batch_size`` before any call.

Between pages only full batches are staged (a page adds at most its own leads, so the pending
count is bounded without counting the index on every page); at the end of a run everything left.
A batch's id is deterministic (kind, run, sequence), so a replayed or resumed batch keeps it.
"""

from __future__ import annotations

import logging

from syncd.config import Config
from syncd.context import RunContext
from syncd.errors import MassRemoval, Refused, StateError
from syncd.failpoints import failpoint

log = logging.getLogger(__name__)


SNAPSHOT_LIMIT = 500_000  # records in one call-list file


def sendable_kinds(config: Config) -> tuple[str, ...]:
    """The batch kinds the configured sink is sent: never stage a batch it cannot (or must not) deliver.
    Removals go by removeProspects only with ``removal = "remove-prospects"`` on an upserting list; with
    ``expire-only`` expiry takes leads off, and a snapshot leaves them out of the file."""
    cl = config.cxone.call_lists
    removes = (config.cxone.api == "call-lists" and cl is not None and cl.removal == "remove-prospects"
               and cl.upload_mode == "upsert")
    return ("upsert", "remove") if removes else ("upsert",)


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
        return sendable_kinds(self.ctx.cfg) if self.ctx.sink.can_remove else ("upsert",)

    @property
    def snapshot(self) -> bool:
        cl = self.ctx.cfg.cxone.call_lists
        return self.ctx.cfg.cxone.api == "call-lists" and cl is not None and cl.upload_mode == "snapshot"

    def guard(self, allow: bool) -> None:
        """The mass-removal guard: stop before sending any removal or suppression when they would take
        more than ``max_removal_percent`` of the list off (unless ``allow``)."""
        store, cfg = self.ctx.store, self.ctx.cfg
        removals = "remove" in self.kinds() or self.snapshot
        cl = cfg.cxone.call_lists
        suppressing = cfg.cxone.api == "call-lists" and cl is not None and bool(cl.dnc_group_id)
        # Cheap counts first: most runs have nothing to take off, and they pay no scan of the list.
        if allow or not ((store.count_pending("remove") if removals else 0)
                         + (store.count_to_suppress() if suppressing else 0)):
            return
        # Only what is on the list counts: the numbers of new Do Not Call leads take nothing off it
        # (a first run, or a data load of leads some of whom said no, is not a mass removal).
        leaving = store.count_leaving(removals, suppressing)
        size = store.on_list()
        share = cfg.cxone.max_removal_percent
        if not size or not leaving or leaving * 100 <= size * share:
            return
        raise MassRemoval(f"this run would remove or suppress {leaving:,} of the {size:,} leads on the list "
                          f"({leaving * 100 / size:.1f}%, more than cxone.max_removal_percent = {share:g}); nothing "
                          "of it was sent. Check the Salesforce side (a status or where change?), then run "
                          "`syncd sync --allow-mass-removal` if it is meant")

    def added(self, eligible: int, skipped: int) -> None:
        """A page was applied: only an eligible lead can start waiting for an upsert, only a skipped one
        for a removal."""
        for kind, added in (("upsert", eligible), ("remove", skipped)):
            if kind in self._pending_at_most:
                self._pending_at_most[kind] += added

    def stage(self, final: bool) -> None:
        """Stage what waits: between pages only full upsert batches (removals wait for the guard at the
        end of the read), at the end everything; in snapshot mode one whole file at the end."""
        store, size = self.ctx.store, self.ctx.cfg.cxone.batch_size
        if self.snapshot:
            if final:
                self._stage_snapshot()
            return
        if store.batches_closed != self._bounds_at_closed:
            self._pending_at_most.clear()
            self._bounds_at_closed = store.batches_closed
        for kind in self.kinds():
            if kind == "remove" and not final:
                continue
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

    def _stage_snapshot(self) -> None:
        ctx = self.ctx
        store = ctx.store
        if store.batches("staged", "submitted") or not (store.count_pending("upsert", up_to=1)
                                                         or store.count_pending("remove", up_to=1)):
            return
        self._seq += 1
        batch_id = f"s{ctx.run_id:06d}-{self._seq:04d}"
        eligible = store.stage_snapshot(batch_id, f"syncd-{batch_id}.csv", SNAPSHOT_LIMIT, ctx.run_id, ctx.now())
        if eligible > SNAPSHOT_LIMIT:
            raise Refused(f"upload_mode = \"snapshot\" sends the whole eligible set as one file of at most "
                          f"{SNAPSHOT_LIMIT:,} records, and {eligible:,} leads are eligible; narrow the scope "
                          "(eligible_statuses, where) or use a tenant where upload_mode = \"upsert\" holds")
        log.info("staged snapshot %s with all %d eligible leads", batch_id, eligible)
        failpoint("batch_staged")

    def waiting(self, retries: bool = False) -> bool:
        """Whether a lead waits for a batch of the kinds sent: one an ack left dirty (changed in flight),
        or, with ``retries``, also one a failed delivery put back that has attempts left."""
        return self.ctx.store.changed_in_flight(self.kinds(), retries=retries)
