"""When to poll each CXone job: soon after its upload (jobs can be quick), then less often as it ages.

Each job has its own schedule, so a job uploaded late in a run is polled about a second after its
upload even while older jobs are polled rarely: the run's tail waits for the last job, not for a
schedule shared with the first. The wait before the next poll is half the job's age (its first poll
after ``FIRST_POLL``, or ``cxone.poll_interval_seconds`` when that is shorter), at most
``MAX_POLL_GROWTH`` times ``poll_interval_seconds``: a job that takes a minute is polled about eight
times, one that takes a second once or twice. A job submitted by an earlier run is due at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from syncd.store import Batch

FIRST_POLL = 1.0
MAX_POLL_GROWTH = 6.0


class PollSchedule:
    def __init__(self, poll_interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.first = min(FIRST_POLL, poll_interval)
        self.cap = max(self.first, poll_interval * MAX_POLL_GROWTH)
        self.clock = clock
        self._jobs: dict[str, tuple[float, float]] = {}  # batch id -> (seen since, next poll at)

    def submitted(self, batch_id: str) -> None:
        """An upload of this run was accepted just now."""
        now = self.clock()
        self._jobs[batch_id] = (now, now + self.first)

    def due(self, submitted: Sequence[Batch]) -> list[Batch]:
        """The jobs to poll now; jobs no longer submitted are forgotten."""
        now = self.clock()
        self._jobs = {b.id: self._jobs.get(b.id, (now, now)) for b in submitted}
        return [b for b in submitted if self._jobs[b.id][1] <= now]

    def polled(self, batches: Sequence[Batch]) -> None:
        """Those jobs were polled just now: each is due again after half its age."""
        now = self.clock()
        for b in batches:
            since = self._jobs.get(b.id, (now, now))[0]
            self._jobs[b.id] = (since, now + min(self.cap, max(self.first, (now - since) / 2)))

    def wait(self) -> float:
        """Seconds until the next job is due (``first`` when none is known)."""
        if not self._jobs:
            return self.first
        return max(0.0, min(at for _, at in self._jobs.values()) - self.clock())
