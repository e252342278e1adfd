"""The injectable clock: every module takes ``now`` as a ``Clock`` so tests can fix or move time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def floor_second(value: datetime) -> datetime:
    return value.replace(microsecond=0)
