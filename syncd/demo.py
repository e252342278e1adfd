"""``syncd demo``: a realistic simulated org, a full sync, a few hundred changes, an incremental sync."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd.config import config_from_text
from syncd.context import Progress
from syncd.engine import RunResult
from syncd.report import status
from syncd.runner import sync_once
from syncd.secrets import load_secrets
from syncd.sim import SIM_SECRETS, Simulator

log = logging.getLogger(__name__)


@dataclass
class DemoRun:
    title: str
    result: RunResult
    uploads: int
    list_size: int


@dataclass
class DemoSummary:
    leads: int
    changes: dict[str, int]
    runs: list[DemoRun] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)


def run_demo(
    leads: int = 20_000,
    changes: int = 300,
    new: int = 50,
    seed: int = 7,
    state_dir: Path | None = None,
    on_progress: Callable[[str, Progress], None] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> DemoSummary:
    step = on_step or (lambda text: None)
    with tempfile.TemporaryDirectory(prefix="syncd-demo-") as tmp:
        base = state_dir or Path(tmp)
        with Simulator(leads=leads, seed=seed, job_delay=0.3) as sim:
            step(f"simulator up at {sim.url} with {leads:,} synthetic leads")
            config = config_from_text(sim.config_toml(state_path=str(base / "syncd.db")), "demo")
            secrets = load_secrets(config, env=SIM_SECRETS)
            summary = DemoSummary(leads=leads, changes={})

            def run(title: str) -> None:
                before = len(sim.cx.uploads)
                progress = (lambda p: on_progress(title, p)) if on_progress else None
                result = sync_once(config, secrets, on_progress=progress)
                size = len(sim.cx.callable())  # what a dialer would call, not what was sent
                summary.runs.append(DemoRun(title, result, len(sim.cx.uploads) - before, size))

            run("initial sync")
            summary.changes = sim.mutate(changes, seed + 1, new=new)
            step("changed in Salesforce: " + ", ".join(f"{v} {k}" for k, v in sorted(summary.changes.items())))
            # Changes carry this second's SystemModstamp; the window ends at a whole second, so let it pass.
            time.sleep(1.05 - (time.time() % 1.0))
            run("incremental sync")
            summary.status = status(config)
    return summary


def summary_lines(summary: DemoSummary, seconds: float) -> list[str]:
    # Plain, fixed-width text: the summary must read the same in a terminal, a CI log or a file.
    row = "{:<17} {:<7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10} {:>7}"
    lines = [f"syncd demo: {summary.leads:,} simulated leads",
             row.format("run", "status", "read", "sent", "removed", "skipped", "uploads", "list size", "time")]
    for r in summary.runs:
        res = r.result
        lines.append(row.format(r.title, res.status, f"{res.read:,}", f"{res.sent:,}", f"{res.removed:,}",
                                f"{res.skipped:,}", r.uploads, f"{r.list_size:,}", f"{res.seconds:.1f}s"))
    leads_now = summary.status["leads"]
    lines += [
        "changed in Salesforce between the runs: "
        + ", ".join(f"{k} {v}" for k, v in sorted(summary.changes.items())),
        "leads not on the list, by reason: " + ", ".join(f"{k} {v:,}" for k, v in summary.status["skipped"].items()),
        f"on the list: {leads_now['on_list']:,}; dirty: {leads_now['dirty']:,}; "
        f"total time {seconds:.1f}s",
    ]
    return lines
