"""What the stages of one run share: configuration, state, sink, clock, progress and the safe point."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from syncd.clock import Clock
from syncd.config import Config
from syncd.cxone import ContactSink
from syncd.store import Store


@dataclass
class Progress:
    read: int = 0
    total: int = 0
    sent: int = 0
    removed: int = 0
    in_flight: int = 0
    phase: str = "starting"
    api_usage: tuple[int, int] | None = None  # Salesforce (used, limit) from Sforce-Limit-Info


@dataclass
class RunContext:
    cfg: Config
    store: Store
    sink: ContactSink
    now: Clock
    tick: Callable[[], None]  # heartbeat, progress and the stop request: called at every safe point
    sleep: Callable[[float], None] = time.sleep
    progress: Progress = field(default_factory=Progress)
    run_id: int = 0
