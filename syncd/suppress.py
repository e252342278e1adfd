"""Suppression: numbers of Do Not Call leads into the DNC group that scrubs the list's skill.

The state knows which numbers must be blocked (``dnc_links``, written with each page) and which
syncd added (``suppressions``). Each delivery pass adds the missing ones before anything else is
sent, and expires the ones syncd added that no lead needs any more; never a number it did not add.
The add is committed after CXone answers: a crash in between adds it again, which is harmless.
"""

from __future__ import annotations

import logging

from syncd.context import RunContext
from syncd.cxone.dnc import DncGroups
from syncd.failpoints import failpoint

log = logging.getLogger(__name__)
CHUNK = 500  # numbers per DNC call


def dnc_group(ctx: RunContext) -> DncGroups | None:
    """The configured DNC group's client, or None when suppression is off (or the sink has no DNC)."""
    cl = ctx.cfg.cxone.call_lists
    dnc = getattr(ctx.sink, "dnc", None)
    if cl is None or not cl.dnc_group_id or dnc is None:
        return None
    group = dnc()
    assert isinstance(group, DncGroups)
    return group


class Suppressor:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.group = dnc_group(ctx)
        self.failed = 0
        self.stalled = False  # CXone refused numbers this run: tried again next run, not every pass

    def pump(self) -> None:
        if self.group is None or self.stalled:
            return
        store = self.ctx.store
        after = ""
        while phones := store.to_suppress(CHUNK, after):
            after = phones[-1]
            failpoint("before_suppress")
            added, failed = self.group.add(phones)
            store.suppressed(added, self.ctx.run_id, self.ctx.now())
            failpoint("suppress_committed")
            log.info("suppressed %d numbers in DNC group %d", len(added), self.group.group_id)
            if failed:
                self.failed += len(failed)
                log.error("DNC group %d refused %d numbers; their leads stay exposed until it takes them",
                          self.group.group_id, len(failed))
                self.stalled = True
                return
        after = ""
        while phones := store.to_release(CHUNK, after):
            after = phones[-1]
            released, failed = self.group.expire(phones)
            store.released(released)
            log.info("released %d numbers no lead needs suppressed any more", len(released))
            if failed:
                break
