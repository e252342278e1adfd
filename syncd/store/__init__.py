"""SQLite state: the only package that knows SQL. The tables are documented in ``state/README.md``.

``Store`` is one connection with every typed query: ``db`` (connection, identity, migrations,
the write transaction), ``window``, ``leads``, ``outbox``, ``runs``, ``reports``, ``suppress`` and ``verify``.
"""

from __future__ import annotations

from syncd.store.db import BUSY_TIMEOUT_MS, CACHE_KIB, SQLITE_MAGIC, from_iso, iso
from syncd.store.leads import DIRTY, PENDING, LeadUpdate
from syncd.store.outbox import Batch, Member, OutboxQueries
from syncd.store.reports import ReportQueries
from syncd.store.runs import RunQueries
from syncd.store.suppress import SuppressQueries
from syncd.store.verify import VerifyQueries
from syncd.store.window import SyncState

__all__ = ["BUSY_TIMEOUT_MS", "CACHE_KIB", "DIRTY", "PENDING", "SQLITE_MAGIC", "Batch", "LeadUpdate", "Member",
           "Store", "SyncState", "from_iso", "iso"]


class Store(OutboxQueries, RunQueries, ReportQueries, SuppressQueries, VerifyQueries):
    """One connection to the state with every typed query."""
