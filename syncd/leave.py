"""How leads leave (or change) without the window query showing it, read once a window's pages are done.

- **The delete log.** ``sobjects/Lead/deleted`` for the window's span: hard-deleted leads, and leads
  purged from the recycle bin, never come back through ``queryAll``. A tracked lead in the answer is
  removed like a deleted one, unless syncd read it at or after its deletion date (the window showed
  what became of it: deleted, merged, or undeleted since).
  When the log starts after the span asked for (``earliestDateAvailable``), deletions may be lost:
  the next run is a full refresh, and ``status`` says why.
- **Merges.** A merge loser comes through ``queryAll`` as deleted with ``MasterRecordId`` (the
  transform skips it as ``merged``); its master is read by id, whatever its ``SystemModstamp``.
- **Full refresh.** Every tracked lead the refresh did not return is looked up by id (a lead modified
  while the refresh read moves past the window's end); those Salesforce no longer has are deleted.

Each step commits through the store like a page; repeated after a crash, each comes to the same end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from syncd.context import RunContext
from syncd.salesforce import Page, SalesforceClient
from syncd.store.leads import LeadUpdate
from syncd.window import Window, parse_sf_datetime

log = logging.getLogger(__name__)
# Commits a page's effects; with no window (leads read by id) the position stays.
Apply = Callable[[Page, "Window | None"], "Window | None"]


class Leavers:
    def __init__(self, ctx: RunContext, sf: SalesforceClient, fields: list[str], apply: Apply) -> None:
        self.ctx = ctx
        self.sf = sf
        self.fields = fields
        self.apply = apply
        self.masters: set[str] = set()

    def note(self, records: Sequence[Any]) -> None:
        """Remember the masters of the merge losers on a page."""
        for r in records:
            if isinstance(r, dict) and r.get("IsDeleted") is True:
                master = r.get("MasterRecordId")
                if isinstance(master, str) and 15 <= len(master) <= 18 and master.isalnum():
                    self.masters.add(master)

    def finish(self, window: Window, full: bool, window_id: int | None) -> None:
        if window.start is not None:
            self._delete_log(window)
        if self.masters:
            log.info("reading the masters of %d merged leads", len(self.masters))
            self._by_id(sorted(self.masters))
        if full and window_id is not None:
            self._unreturned(window_id)

    def _by_id(self, ids: list[str]) -> set[str]:
        """Read these leads by id and apply them (the position stays); the ids Salesforce returned."""
        returned: set[str] = set()
        for page in self.sf.query_ids(self.fields, ids):
            returned.update(r["Id"] for r in page.records if isinstance(r, dict) and isinstance(r.get("Id"), str))
            self.apply(page, None)
            self.ctx.tick()
        return returned

    def _gone(self, ids: Sequence[str], detail: str) -> None:
        if not ids:
            return
        # A Do Not Call lead deleted unseen keeps its numbers blocked: its wish outlives its record.
        updates = [LeadUpdate(lead_id, None, reason="deleted", detail=detail, keep_dnc=True) for lead_id in ids]
        self.ctx.store.apply_rows(updates, self.ctx.run_id)
        self.ctx.progress.read += len(updates)
        log.info("%d leads are gone from Salesforce (%s)", len(updates), detail)

    def _delete_log(self, window: Window) -> None:
        assert window.start is not None
        found = self.sf.deleted(window.start, window.end)
        if found.earliest is not None and found.earliest > window.start:
            reason = (f"the delete log starts at {found.earliest.isoformat()}, after the window's start "
                      f"{window.start.isoformat()}: deletions before it may be lost")
            log.warning("%s; the next run is a full refresh", reason)
            self.ctx.store.request_refresh(reason)
        if not found.ids:
            return
        known = self.ctx.store.known_modstamps(sorted(found.ids))
        gone = []
        for lead_id, seen in known.items():
            # Read at or after its deletion, the window showed what became of it (deleted, merged, or
            # undeleted since): only a lead last read before it was deleted is gone unseen.
            try:
                shown = seen is not None and parse_sf_datetime(seen) >= found.ids[lead_id]
            except ValueError:
                shown = False
            if not shown:
                gone.append(lead_id)
        self._gone(gone, "in the delete log")

    def _unreturned(self, window_id: int) -> None:
        missing = self.ctx.store.unseen_since(window_id)
        if not missing:
            return
        log.info("the full refresh did not return %d tracked leads; looking them up by id", len(missing))
        returned = self._by_id(missing)
        self._gone([i for i in missing if i not in returned], "not in Salesforce at the full refresh")
