"""When to poll each CXone job: soon after its upload (jobs can be quick), then less often as it ages.

Each job has its own schedule, so a job uploaded late in a run is polled soon after its upload even
while older jobs are polled rarely: the run's tail waits for the last job, not for a schedule shared
with the first. A job is polled ``FIRST_POLL`` after its upload, again as often as its age until it is
``SETTLED_POLL`` old, then at half its age, at most ``MAX_POLL_GROWTH`` times
``cxone.poll_interval_seconds`` apart (a shorter interval also shortens the first two): with the
default interval at 0.25 s, 0.5 s, 1 s, 2 s, 3 s, 4.5 s, ... after the upload, so a job that takes a
minute is polled 13 times. A job submitted by an earlier run is due at once.

The two quick polls are for small runs, whose wall time is mostly the wait for their last job: with
the first poll a second after the upload, a job CXone closed in a few hundred milliseconds kept the
run waiting most of a second. From a second on the polls are the ones a first poll at one second
makes, so no job is seen later than that schedule would see it, and none costs more than two polls more.

Quick polls pay only while jobs close that soon. Once a job of the run is polled at ``SETTLED_POLL``
or later (its quick polls found it open, or came too late to be quick), the run's jobs are first
polled at ``SETTLED_POLL``: the CXone calls go one at a time, and in a run of many jobs each wasted
quick poll is a tenth of a second that an upload or the poll that frees a slot waits behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from syncd.store import Batch

FIRST_POLL = 0.25
SETTLED_POLL = 1.0
MAX_POLL_GROWTH = 6.0


class PollSchedule:
    def __init__(self, poll_interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.first = min(FIRST_POLL, poll_interval)
        self.settled = min(SETTLED_POLL, poll_interval)
        self.cap = max(self.first, poll_interval * MAX_POLL_GROWTH)
        self.clock = clock
        # The youngest age a job is polled at: ``first`` while quick polls pay, then ``settled``.
        self.earliest = self.first
        self._jobs: dict[str, tuple[float, float]] = {}  # batch id -> (seen since, next poll at)

    def submitted(self, batch_id: str) -> None:
        """An upload of this run was accepted just now."""
        now = self.clock()
        self._jobs[batch_id] = (now, now + self.earliest)

    @property
    def quick(self) -> bool:
        """Quick polls are still made: no job of the run has outlived them."""
        return self.earliest < self.settled

    def due(self, submitted: Sequence[Batch]) -> list[Batch]:
        """The jobs to poll now; jobs no longer submitted are forgotten."""
        now = self.clock()
        self._jobs = {b.id: self._jobs.get(b.id, (now, now)) for b in submitted}
        return [b for b in submitted if self._jobs[b.id][1] <= now]

    def polled(self, batches: Sequence[Batch]) -> None:
        """Those jobs were polled just now: each is due again after its age while it is young (doubling
        it up to ``settled``; with quick polls over, not before it is ``settled`` old), then after half
        its age."""
        now = self.clock()
        seen = [(b.id, self._jobs.get(b.id, (now, now))[0]) for b in batches]
        if self.quick and any(now - since >= self.settled for _, since in seen):
            # A job outlived its quick polls: no job of the run gets another one.
            self.earliest = self.settled
            self._jobs = {i: (since, max(at, since + self.earliest)) for i, (since, at) in self._jobs.items()}
        for batch_id, since in seen:
            age = now - since
            at = now + min(self.cap, max(self.first, min(age, self.settled), age / 2))
            self._jobs[batch_id] = (since, max(at, since + self.earliest))  # at never precedes since + first

    def wait(self) -> float:
        """Seconds until the next job is due (``first`` when none is known)."""
        if not self._jobs:
            return self.first
        return max(0.0, min(at for _, at in self._jobs.values()) - self.clock())
