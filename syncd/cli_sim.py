"""The simulator commands of ``syncd``: sim and demo (registered on ``cli.app``)."""

from __future__ import annotations

import errno
import gc
import logging
import time
from typing import Any

import typer

from syncd import logs
from syncd.cli import EXIT_FAILED, EXIT_USAGE, _progress_bar, app, err, errors, say
from syncd.context import Progress as RunProgress


@app.command()
def sim(
    port: int = typer.Option(8765, help="Port on 127.0.0.1 (0 picks a free one)."),
    leads: int = typer.Option(1000, help="Synthetic leads to start with."),
    seed: int = typer.Option(1, help="Seed of the synthetic org."),
    job_delay: float = typer.Option(1.0, help="Seconds a CXone job takes to complete."),
    api: str = typer.Option("call-lists", help="Sink the printed config uses: call-lists | contacts-batch."),
    fault: list[str] = typer.Option([], "--fault", help="ROUTE=KIND:COUNT or ROUTE=KIND@RATE, e.g. "
                                    "sf.next=503:2 or '*=429@0.05' (repeatable; see syncd/sim/faults.py)"),
    sf_latency: float = typer.Option(0.0, help="Seconds each Salesforce query page (or Bulk API call) takes."),
    bulk_delay: float = typer.Option(0.2, help="Seconds a Salesforce Bulk API query job takes to complete."),
    cxone_latency: float = typer.Option(0.0, help="Seconds each CXone API call takes."),
    overwrite: str = typer.Option("upsert", help="What forceOverwrite does: upsert | replace (the whole list)."),
    removal: str = typer.Option("removes", help="What removeProspects does: removes | fails | noop."),
    readd: str = typer.Option("reactivates", help="A removed record uploaded again: reactivates | stays-removed."),
    scatter_ids: bool = typer.Option(False, "--scatter-ids", help="Lead Ids in no order by SystemModstamp, as in "
                                     "an org whose leads were modified long after they were made."),
) -> None:
    """Start the Salesforce + CXone simulator alone and print a matching config."""
    from syncd.sim import SIM_SECRETS, Simulator
    from syncd.sim.faults import parse_fault

    try:
        simulator = Simulator(leads=leads, seed=seed, job_delay=job_delay, port=port, scatter_ids=scatter_ids)
    except OSError as e:
        taken = e.errno == errno.EADDRINUSE
        say(f"syncd: 127.0.0.1:{port} " + ("is already in use (another `syncd sim`?); stop it, or pick another "
                                          "port with --port (0 picks a free one)" if taken else
                                          f"cannot be listened on ({e.strerror}); pick another port with --port"))
        raise typer.Exit(EXIT_USAGE) from None
    try:
        simulator.set_readings(overwrite=overwrite, removal=removal, readd=readd)
    except ValueError as e:
        say(f"syncd: {e}")
        raise typer.Exit(EXIT_USAGE) from None
    simulator.latency = {"sf.query*": sf_latency, "sf.next": sf_latency, "sf.bulk.*": sf_latency,
                         "cxone.*": cxone_latency, "batch.*": cxone_latency}
    simulator.sf.bulk.delay = bulk_delay
    for spec in fault:
        try:
            simulator.faults.add(parse_fault(spec, seed))
        except ValueError as e:
            say(f"syncd: --fault {spec!r}: {e}")
            raise typer.Exit(EXIT_USAGE) from None
    # The seeded org lives as long as this process: the collector need not walk it again and again (at a
    # million leads that walk was most of the time a query's snapshot took).
    gc.freeze()
    url = simulator.start()
    lines = [f"# simulator: Salesforce, CXone call-lists and contacts-batch at {url}",
             f"# control surface: {url}/_sim/info (leads, list, uploads, stats)",
             f"# CXone readings: forceOverwrite {overwrite}, removeProspects {removal}, re-add {readd}; "
             "scratch list 4321 for `syncd doctor --probe --list-id 4321`",
             "# secrets (export these):"]
    lines += [f"#   export {k}={v}" for k, v in SIM_SECRETS.items()]
    # The recommended setup: suppression in the simulator's DNC group that scrubs the list's skill.
    print("\n".join(lines) + "\n" + simulator.config_toml(api=api, dnc_group_id=77), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        simulator.stop()


@app.command()
def demo(
    leads: int = typer.Option(20_000, help="Size of the simulated org."),
    changes: int = typer.Option(300, help="Leads changed between the two syncs."),
    seed: int = typer.Option(7),
) -> None:
    """Simulated org, full sync, a few hundred changes, incremental sync: no credentials needed."""
    from syncd.demo import run_demo, summary_lines

    logs.setup(logging.WARNING, console=err if err.is_terminal else None)
    bars: dict[str, Any] = {}

    def on_progress(title: str, p: RunProgress) -> None:
        if title not in bars:
            for bar, _ in bars.values():
                bar.stop()
            bar, update = _progress_bar(title)
            bar.start()
            bars[title] = (bar, update)
        bars[title][1](p)

    started = time.monotonic()
    with errors():
        summary = run_demo(leads=leads, changes=changes, seed=seed, on_progress=on_progress,
                           on_step=lambda text: err.print(f"[dim]{text}[/dim]"))
    for bar, _ in bars.values():
        bar.stop()
    print("\n".join(summary_lines(summary, time.monotonic() - started)), flush=True)
    if any(not r.result.ok for r in summary.runs):
        raise typer.Exit(EXIT_FAILED)
