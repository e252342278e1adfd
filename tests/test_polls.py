"""Each CXone job's poll schedule (``syncd/polls.py``), on an injected clock."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.polls import PollSchedule
from syncd.store import Batch, Store
from tests import oracle
from tests.conftest import Env

STEP = 1 / 64  # exact in binary: the ages below add up without rounding


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def batch(batch_id: str) -> Batch:
    return Batch(id=batch_id, kind="upsert", state="submitted", file_name=f"{batch_id}.csv", rows=1,
                 job_id=f"job-{batch_id}", uploads=1, submitted_at=None, error=None)


def poll_ages(schedule: PollSchedule, clock: Clock, b: Batch, until: float) -> list[float]:
    """The ages at which the job is polled, stepping the clock STEP s at a time."""
    start, ages = clock.t, []
    while clock.t - start < until:
        if schedule.due([b]):
            ages.append(clock.t - start)
            schedule.polled([b])
        clock.t += STEP
    return ages


def test_a_job_is_polled_at_a_quarter_and_a_half_second_then_each_second_then_at_half_its_age() -> None:
    clock = Clock()
    schedule = PollSchedule(5.0, clock)
    b = batch("b1")
    schedule.submitted("b1")
    ages = poll_ages(schedule, clock, b, 200)
    assert ages[:7] == [0.25, 0.5, 1.0, 2.0, 3.0, 4.5, 6.75]  # from 1 s on, as a first poll at 1 s
    gaps = [later - earlier for earlier, later in itertools.pairwise(ages)]
    assert max(gaps) == pytest.approx(30.0, abs=STEP)  # at most 6 x poll_interval_seconds apart
    assert len(ages) < 20


def half_age_ages(first: float, cap: float, until: float) -> list[float]:
    """The ages of a schedule polling ``first`` after the upload, then at half its age (at most ``cap``)."""
    ages = [first]
    while True:
        age = ages[-1] + min(cap, max(first, ages[-1] / 2))
        if age >= until:
            return ages
        ages.append(age)


@pytest.mark.parametrize(("interval", "quick"), [(5.0, [0.25, 0.5]), (30.0, [0.25, 0.5]), (0.5, [0.25]), (0.2, [])])
def test_no_job_is_seen_later_than_a_first_poll_at_one_second_would_see_it(interval: float, quick: list[float]) -> None:
    """Only the quick polls are added to the half-age schedule that starts at 1 s (or the poll interval,
    when it is shorter): never more than two extra polls, and every later poll where it was."""
    clock = Clock()
    schedule = PollSchedule(interval, clock)
    b = batch("b1")
    schedule.submitted("b1")
    ages: list[float] = []
    while clock.t - 1000.0 < 300:
        clock.t += schedule.wait()  # straight to the next poll: no stepping error adds up
        assert schedule.due([b]) == [b]
        ages.append(clock.t - 1000.0)
        schedule.polled([b])
    ages.pop()  # the one at or past 300 s
    settled = min(1.0, interval)
    expected = quick + half_age_ages(settled, interval * 6, 300)
    assert ages == pytest.approx(expected, abs=1e-9)


def test_a_short_poll_interval_is_the_first_wait_and_bounds_the_growth() -> None:
    clock = Clock()
    schedule = PollSchedule(0.2, clock)
    schedule.submitted("b1")
    ages = poll_ages(schedule, clock, batch("b1"), 10)
    assert ages[0] == pytest.approx(0.2, abs=STEP)
    gaps = [later - earlier for earlier, later in itertools.pairwise(ages)]
    assert max(gaps) == pytest.approx(1.2, abs=STEP)


def test_a_job_of_an_earlier_run_is_due_at_once() -> None:
    clock = Clock()
    schedule = PollSchedule(5.0, clock)
    old = batch("old")
    assert schedule.due([old]) == [old]
    schedule.polled([old])
    assert schedule.due([old]) == []
    assert schedule.wait() == pytest.approx(0.25)


def test_each_job_has_its_own_schedule() -> None:
    """A job uploaded late is polled a second after its upload (the old job outlived its quick polls),
    not on the old job's long wait."""
    clock = Clock()
    schedule = PollSchedule(5.0, clock)
    old, new = batch("old"), batch("new")
    schedule.submitted("old")
    poll_ages(schedule, clock, old, 60)  # the old job is now polled about every 30 s
    schedule.submitted("new")
    assert schedule.wait() == pytest.approx(1.0)
    clock.t += 1.0
    assert schedule.due([old, new]) == [new]


def test_quick_polls_go_on_while_jobs_close_at_them() -> None:
    clock = Clock()
    schedule = PollSchedule(5.0, clock)
    for name in ("b1", "b2", "b3"):
        schedule.submitted(name)
        clock.t += schedule.wait()
        assert schedule.due([batch(name)]) == [batch(name)]
        assert schedule.wait() == 0.0
        schedule.polled([batch(name)])  # done at its quarter-second poll: CXone closes jobs this quickly
        assert schedule.due([]) == []
        assert schedule.quick
    schedule.submitted("b4")
    assert schedule.wait() == pytest.approx(0.25)


def test_once_a_job_outlives_its_quick_polls_no_job_of_the_run_gets_one() -> None:
    """The old job is polled at 1 s: the young one (polled at 0.25 s, open) is next polled at its 1 s,
    and a job uploaded later is first polled a second after its upload, then as the old schedule."""
    clock = Clock()
    schedule = PollSchedule(5.0, clock)
    old, young = batch("old"), batch("young")
    schedule.submitted("old")
    clock.t += 0.75
    schedule.submitted("young")
    clock.t += 0.25  # old is 1 s old and due; young was due (0.25 s) too
    assert schedule.due([old, young]) == [old, young]
    schedule.polled([old, young])
    assert not schedule.quick
    assert schedule.wait() == pytest.approx(0.75)  # young's next poll: a second after its upload
    clock.t += 0.75
    assert schedule.due([old, young]) == [young]
    schedule.polled([young])
    late = batch("late")
    schedule.submitted("late")
    assert poll_ages(schedule, clock, late, 20) == half_age_ages(1.0, 30.0, 20)


jobs = st.lists(st.tuples(st.integers(0, 400), st.integers(0, 1600)), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(jobs=jobs, interval=st.sampled_from([5.0, 30.0, 0.5, 0.2]))
def test_no_job_of_a_run_is_seen_later_than_the_old_schedule_would_see_it(jobs: list[tuple[int, int]],
                                                                         interval: float) -> None:
    """Jobs uploaded at any times, each closing at any age: each is seen done no later than a first poll
    at 1 s (then at half its age) would see it, and once a poll finds a job a second old or more no
    poll is made at a younger age. Times are in 1/64 s, so the clock adds up exactly."""
    clock = Clock()
    schedule = PollSchedule(interval, clock)
    settled = min(1.0, interval)
    uploads = sorted((start * STEP, i) for i, (start, _) in enumerate(jobs))
    closes = {i: jobs[i][1] * STEP for i in range(len(jobs))}
    open_jobs: dict[int, float] = {}  # job -> uploaded at
    seen: dict[int, float] = {}
    settled_seen = False
    begin = clock.t
    while uploads or open_jobs:
        next_upload = begin + uploads[0][0] if uploads else float("inf")
        next_poll = clock.t + schedule.wait() if open_jobs else float("inf")
        clock.t = min(next_upload, next_poll)
        while uploads and begin + uploads[0][0] <= clock.t:
            _, i = uploads.pop(0)
            open_jobs[i] = clock.t
            schedule.submitted(f"j{i}")
        due = schedule.due([batch(f"j{i}") for i in open_jobs])
        ages = {int(b.id[1:]): clock.t - open_jobs[int(b.id[1:])] for b in due}
        for i, age in ages.items():
            if settled_seen:
                assert age >= settled - 1e-9, "a quick poll after a job outlived its own"
            if age >= closes[i]:
                seen[i] = age
        settled_seen = settled_seen or any(age >= settled for age in ages.values())
        schedule.polled(due)
        for i in [i for i in open_jobs if i in seen]:
            del open_jobs[i]
    old = half_age_ages(settled, interval * 6, 10_000)
    for i, age in seen.items():
        assert age <= next(a for a in old if a >= closes[i] - 1e-9) + 1e-9


def test_jobs_no_longer_submitted_are_forgotten() -> None:
    clock = Clock()
    schedule = PollSchedule(5.0, clock)
    schedule.submitted("done")
    assert schedule.due([]) == []
    assert schedule.wait() == 0.25  # nothing known: the first wait


def test_a_job_that_closes_makes_room_for_the_next_batch_at_once(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The final delivery never waits for a poll while a job slot is free and a batch waits for it."""
    env.sim.seed_leads(6_000, seed=8)
    state = env.tmp / "state" / "syncd.db"
    waits: list[tuple[int, int]] = []  # (jobs open, batches staged) whenever delivery waits
    wait = PollSchedule.wait

    def watched(self: PollSchedule) -> float:
        store = Store(state, readonly=True)
        try:
            waits.append((len(store.batches("submitted")), len(store.batches("staged"))))
        finally:
            store.close()
        return wait(self)

    monkeypatch.setattr(PollSchedule, "wait", watched)
    result = env.sync(batch_size=100)
    assert result.ok, result.error
    assert len(env.sim.cx.uploads) > 12  # more batches than max_in_flight (4) a few times over
    assert waits, "delivery waited for no poll"
    assert [w for w in waits if w[0] < 4 and w[1] > 0] == []
    assert env.list_phones() == oracle.expected(env.sim.leads())
