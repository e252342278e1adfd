"""Suppression: numbers of Do Not Call leads into the DNC group that scrubs the list's skill.

The state knows which numbers must be blocked (``dnc_links``, written with each page) and which
syncd added (``suppressions``). Each delivery pass adds the missing ones before anything else is
sent, and expires the ones syncd added that no lead needs any more; never a number it did not add.
The add is committed after CXone answers: a crash in between adds it again, which is harmless.

While pages are still read, a full chunk of numbers that take nothing off the list (no lead linked
to one is on it, or in a batch that may put it there: the mass-removal guard does not count them)
is added in the background (``syncd/load.py``), so a large first sync does not wait for them after
its last page. Whatever is left, and every number the guard counts, is added after the guard passed.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Sequence

from syncd.context import RunContext
from syncd.cxone.dnc import DncGroups
from syncd.errors import SyncdError
from syncd.failpoints import failpoint
from syncd.store import Store

log = logging.getLogger(__name__)
CHUNK = 500  # numbers per DNC call
Added = tuple[list[str], list[str]]  # (suppressed, refused)


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
        self._early = self.group is not None  # numbers may be added while pages are read
        self._noted: set[str] = set()  # numbers pages linked this run, not yet looked up
        self._ready: dict[str, None] = {}  # of those, the ones the guard does not count, in order

    def pump(self) -> None:
        if self.group is None or self.stalled:
            return
        store = self.ctx.store
        after = ""
        while phones := store.to_suppress(CHUNK, after):
            after = phones[-1]
            if not self._took(self.add(phones, store)):
                return
        after = ""
        while phones := store.to_release(CHUNK, after):
            after = phones[-1]
            released, failed = self.group.expire(phones)
            store.released(released)
            log.info("released %d numbers no lead needs suppressed any more", len(released))
            if failed:
                break

    def noted(self, phones: Iterable[str]) -> None:
        """A page linked these Do Not Call numbers: candidates to add while pages are read."""
        if self._early:
            self._noted.update(phones)

    def early(self) -> list[str]:
        """A full chunk of noted numbers the guard does not count, to add now; [] while fewer wait.
        Each noted number is looked up once: the others wait for the guard."""
        if not self._early or self.stalled:
            return []
        if len(self._noted) >= CHUNK:
            self._ready.update(dict.fromkeys(self.ctx.store.neutral_to_suppress(self._noted)))
            self._noted.clear()
        if len(self._ready) < CHUNK:
            return []
        chunk = list(itertools.islice(self._ready, CHUNK))
        for phone in chunk:
            del self._ready[phone]
        return chunk

    def add(self, phones: Sequence[str], store: Store) -> Added:
        """Add ``phones`` to the group and commit those it took (on ``store``: the caller's thread's)."""
        assert self.group is not None
        failpoint("before_suppress")
        added, failed = self.group.add(phones)
        store.suppressed(added, self.ctx.run_id, self.ctx.now())
        failpoint("suppress_committed")
        return added, failed

    def added_early(self, answer: Callable[[], Added]) -> None:
        """Take the answer of a chunk added in the background. A failure only ends adding early: the
        same numbers go after the guard, in line, where a failure is the run's."""
        try:
            outcome = answer()
        except SyncdError as e:
            log.warning("suppressing numbers while pages are read failed (%s); they go after the read", e)
            self._early = False
            self._noted.clear()
            self._ready.clear()
            return
        self._took(outcome)

    def _took(self, outcome: Added) -> bool:
        """Log what the group took; False (and stalled for the run) when it refused numbers."""
        assert self.group is not None
        added, failed = outcome
        log.info("suppressed %d numbers in DNC group %d", len(added), self.group.group_id)
        if not failed:
            return True
        self.failed += len(failed)
        log.error("DNC group %d refused %d numbers; their leads stay exposed until it takes them",
                  self.group.group_id, len(failed))
        self.stalled = True
        return False
