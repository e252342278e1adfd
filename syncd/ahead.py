"""One fetch ahead: the next Salesforce page (or Bulk results chunk) is fetched on a background thread
while the current one is applied, so the remote's latency and syncd's work overlap. The loader uses
one more for its CXone calls while pages are read (``syncd/load.py``).

At most one fetch is in flight. A chain of REST pages (``chain``) goes on by itself: when a page lands
and every page of the chain before it is settled (taken, and the URL it named confirmed or its wrong
guess dropped), the fetch of the page its bytes name begins at once on the same thread, so a page
that takes longer than usual to apply does not hold the next call back. So at most three pages are in
memory: the one applied, one waiting (its bytes only) and the one arriving; and the chain never runs
more than one call past a page whose URL is not confirmed.

Nothing about resuming changes: a fetched page is only a value; its position is committed when the
main thread has applied it, exactly as before. The main thread makes no Salesforce call while a
fetch is in flight (it applies, stages and talks to CXone; ``drop`` ends a chain and waits for it
first), so the client's session, token and usage figures have one user at a time. A failure of the
fetch is raised where the main thread takes its result, as if it had made the call itself; closing
waits for a fetch still in flight and drops its result.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from syncd.failpoints import failpoint

log = logging.getLogger(__name__)
T = TypeVar("T")


class Ahead:
    def __init__(self, thread_name: str = "syncd-fetch", landed: str | None = "page_fetched") -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[object] | None = None
        self._thread_name = thread_name
        self._landed = landed  # the failpoint hit when a call has its answer, before anybody took it
        self._lock = threading.RLock()
        self._chain = 0  # the chain fetches may go on in; ``drop`` ends it
        self._waiting: set[Future[Any]] = set()  # fetches of a chain landed and not settled
        self._follow: dict[Future[Any], Future[Any]] = {}  # a chain's fetch → the one begun after it

    def start(self, fetch: Callable[..., T], *args: object) -> Future[T]:
        """Begin ``fetch(*args)`` in the background; the one before must have been taken."""
        assert self._pending is None or self._pending.done(), "one fetch ahead at most"
        return self._submit(lambda: self._call(fetch, *args))

    def _call(self, fetch: Callable[..., T], *args: object) -> T:
        value = fetch(*args)
        if self._landed:
            failpoint(self._landed)  # a crash with an answer that nobody took: nothing of it was saved
        return value

    def _submit(self, run: Callable[[], T]) -> Future[T]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._thread_name)
        future = self._pool.submit(run)
        self._pending = future  # type: ignore[assignment]
        return future

    def chain(self, fetch: Callable[[str], T], url: str, then: Callable[[T], str | None]) -> Future[T]:
        """Begin ``fetch(url)`` in the background; when it lands as the only fetch of the chain not
        ``settled``, ``fetch(then(answer))`` is begun after it at once (``then`` names the next URL, or
        None: the last page, or the usage share spent). ``followed`` gives that next fetch."""
        assert self._pending is None or self._pending.done(), "one fetch ahead at most"
        with self._lock:
            return self._link(fetch, url, then, self._chain)

    def _link(self, fetch: Callable[[str], T], url: str, then: Callable[[T], str | None], chain: int) -> Future[T]:
        mine: list[Future[T]] = []

        def run() -> T:
            value = self._call(fetch, url)
            with self._lock:  # (held by whoever submitted this until ``mine`` is filled)
                if chain != self._chain:  # ``drop`` ended the chain: nobody takes or settles this one
                    return value
                self._waiting.add(mine[0])
                nxt = then(value) if len(self._waiting) == 1 else None
                if nxt is not None:  # queued behind this call on the one thread: it begins as this returns
                    self._follow[mine[0]] = self._link(fetch, nxt, then, chain)
            return value

        mine.append(self._submit(run))
        return mine[0]

    def followed(self, future: Future[T]) -> Future[T] | None:
        """The fetch a chain began after ``future`` landed (None: it began none)."""
        with self._lock:
            return self._follow.pop(future, None)

    def settled(self, future: Future[T]) -> None:
        """The page ``future`` fetched is taken and the URL it named confirmed: the chain may go past it."""
        with self._lock:
            self._waiting.discard(future)

    @property
    def busy(self) -> bool:
        """A call is still in flight."""
        return self._pending is not None and not self._pending.done()

    def take(self, future: Future[T]) -> T:
        """The fetch's result (its exception raised here)."""
        try:
            return future.result()
        finally:
            with self._lock:
                if self._pending is future:
                    self._pending = None

    def drop(self) -> None:
        """End the chain and forget what it fetched; wait for a fetch in flight (its answer, or its
        failure, is of no use now). A fetch landing from now on begins no other, so the one pending
        is the chain's last."""
        with self._lock:
            self._chain += 1
            pending, self._pending = self._pending, None
            self._waiting.clear()
            self._follow.clear()
        if pending is not None:
            try:
                if not pending.cancel():  # (one the chain queued and nobody needs never goes)
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
