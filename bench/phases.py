"""Run ``syncd`` with each phase of a sync timed in CPU seconds (``time.process_time``).

``python bench/phases.py sync --config syncd.toml`` runs the command as ``syncd`` would and prints,
at exit, the CPU spent in each engine and store phase (inclusive: ``Engine._apply`` contains
``Store.apply_page``). Only per-page and per-batch methods are wrapped, so the wrappers themselves
cost nothing measurable; ``make profile`` runs it after the pyinstrument profile.
"""

from __future__ import annotations

import atexit
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from syncd import engine, extract, load, outbox, salesforce, store

spent: defaultdict[str, float] = defaultdict(float)
calls: Counter[str] = Counter()


def timed(owner: type, name: str) -> None:
    inner: Callable[..., Any] = getattr(owner, name)
    label = f"{owner.__name__}.{name}"

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[label] += time.process_time() - started
            calls[label] += 1

    setattr(owner, name, wrapper)


for method in ("read_window", "_apply"):
    timed(engine.Engine, method)
timed(outbox.Outbox, "stage")
for method in ("pump", "_upload", "_poll"):
    timed(load.Loader, method)
timed(extract.Extractor, "_fetch")
for method in ("apply_page", "count_pending", "stage_pending", "rows", "ack_batch"):
    timed(store.Store, method)
for method in ("query_all", "next_page"):
    timed(salesforce.SalesforceClient, method)


@atexit.register
def report() -> None:
    total = time.process_time()
    print(f"\nCPU by phase (process total {total:.2f} s; phases are inclusive)", file=sys.stderr)
    for label, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        print(f"  {seconds:8.2f} s {seconds / total:6.1%} {calls[label]:7d} calls  {label}", file=sys.stderr)


if __name__ == "__main__":
    from syncd.cli import main

    sys.argv = ["syncd", *sys.argv[1:]]
    main()
