"""One fetch ahead: the next Salesforce page (or Bulk results chunk) is fetched on a background thread
while the current one is applied, so the remote's latency and syncd's work overlap. The loader uses
one more for its CXone calls while pages are read (``syncd/load.py``).

At most one fetch is in flight, so at most two pages (the one applied, the one arriving) are in memory.
Nothing about resuming changes: the fetched page is only a value; its position is committed when the
main thread has applied it, exactly as before. The main thread makes no Salesforce call while a fetch
is in flight (it applies, stages and talks to CXone), so the client's session, token and usage figures
have one user at a time. A failure of the fetch is raised where the main thread takes its result, as
if it had made the call itself; closing waits for a fetch still in flight and drops its result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from syncd.failpoints import failpoint

log = logging.getLogger(__name__)
T = TypeVar("T")


class Ahead:
    def __init__(self, thread_name: str = "syncd-fetch", landed: str | None = "page_fetched") -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[object] | None = None
        self._thread_name = thread_name
        self._landed = landed  # the failpoint hit when a call has its answer, before anybody took it

    def start(self, fetch: Callable[..., T], *args: object) -> Future[T]:
        """Begin ``fetch(*args)`` in the background; the one before must have been taken."""
        assert self._pending is None or self._pending.done(), "one fetch ahead at most"
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._thread_name)

        def run() -> T:
            value = fetch(*args)
            if self._landed:
                failpoint(self._landed)  # a crash with an answer that nobody took: nothing of it was saved
            return value

        future = self._pool.submit(run)
        self._pending = future  # type: ignore[assignment]
        return future

    @property
    def busy(self) -> bool:
        """A call is still in flight."""
        return self._pending is not None and not self._pending.done()

    def take(self, future: Future[T]) -> T:
        """The fetch's result (its exception raised here)."""
        try:
            return future.result()
        finally:
            if self._pending is future:
                self._pending = None

    def drop(self) -> None:
        """Wait for a fetch in flight and forget it (its answer, or its failure, is of no use now)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                pending.result()
            except Exception as e:  # nobody asked for this page any more
                log.debug("a page fetched ahead and not used failed: %s", type(e).__name__)

    def close(self) -> None:
        self.drop()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> Ahead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
