"""The ``syncd`` command line: parse, call one core function, format. Exit codes are binding:
0 ok, 1 run failed, 2 configuration or usage error, 3 another syncd holds the state lock."""

from __future__ import annotations

import csv
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from syncd import logs
from syncd.config import Config, load_config, resolve_path
from syncd.context import Progress as RunProgress
from syncd.engine import RunResult
from syncd.errors import ConfigError, LockHeld, Refused, StateError, SyncdError
from syncd.secrets import Secrets, load_secrets

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Keep a NICE CXone outbound calling list in step with Salesforce Leads.")
out = Console()
err = Console(stderr=True)

ConfigOpt = typer.Option(None, "--config", "-c", help="syncd.toml (default: $SYNCD_CONFIG, else ./syncd.toml)")
VerboseOpt = typer.Option(False, "--verbose", "-v", help="Log at DEBUG (lead data appears only there).")


@contextmanager
def errors() -> Iterator[None]:
    """Turn syncd's errors into one clear message and the binding exit code; never a traceback."""
    try:
        yield
    except ConfigError as e:
        for problem in e.problems:
            say(f"syncd: config: {problem}")
        raise typer.Exit(EXIT_USAGE) from None
    except LockHeld as e:
        say(f"syncd: {e}")
        raise typer.Exit(EXIT_LOCKED) from None
    except Refused as e:
        say(f"syncd: {e}")
        raise typer.Exit(EXIT_USAGE) from None
    except (StateError, SyncdError) as e:
        say(f"syncd: {e}")
        raise typer.Exit(EXIT_FAILED) from None


def say(line: str) -> None:
    """One unwrapped line on stderr: messages must stay greppable whatever the terminal width."""
    print(line, file=sys.stderr, flush=True)


def _config(path: Path | None) -> Config:
    return load_config(resolve_path(path))


def _config_and_secrets(path: Path | None) -> tuple[Config, Secrets]:
    config = _config(path)
    secrets = load_secrets(config)
    logs.add_secrets(secrets.values())
    return config, secrets


def _progress_bar(title: str) -> tuple[Progress, Callable[[RunProgress], None]]:
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("sent {task.fields[sent]:,} · removed {task.fields[removed]:,} · "
                              "jobs in flight {task.fields[in_flight]} · {task.fields[phase]}"),
                   TimeElapsedColumn(), console=err, transient=False)
    task = bar.add_task(title, total=None, sent=0, removed=0, in_flight=0, phase="starting")

    def update(p: RunProgress) -> None:
        bar.update(task, completed=p.read, total=max(p.total, p.read) or None, sent=p.sent, removed=p.removed,
                   in_flight=p.in_flight, phase=p.phase)

    return bar, update


def _run_line(r: RunResult) -> str:
    return (f"run {r.run_id} {r.status}: read {r.read:,}, sent {r.sent:,}, removed {r.removed:,}, "
            f"skipped {r.skipped:,} in {r.seconds:.1f}s" + (f" — {r.error}" if r.error else ""))


@app.command()
def run(
    config: Path | None = ConfigOpt,
    log_format: str = typer.Option("text", "--log-format", help="text | json (JSON lines for journald)"),
    verbose: bool = VerboseOpt,
) -> None:
    """The daemon: sync on the configured schedule until SIGTERM/SIGINT (systemd Type=notify)."""
    from syncd.daemon import Daemon

    if log_format not in ("text", "json"):
        say(f"syncd: --log-format must be text or json, not {log_format!r}")
        raise typer.Exit(EXIT_USAGE)
    logs.setup(logging.DEBUG if verbose else logging.INFO, fmt=log_format)
    with errors():
        cfg, secrets = _config_and_secrets(config)
        code = Daemon(cfg, secrets).run()
    raise typer.Exit(code)


@app.command()
def sync(config: Path | None = ConfigOpt, verbose: bool = VerboseOpt) -> None:
    """Run one sync now (resuming anything interrupted), with progress on a terminal."""
    from syncd.runner import sync_once

    logs.setup(logging.DEBUG if verbose else logging.INFO)
    with errors():
        cfg, secrets = _config_and_secrets(config)
        if err.is_terminal:
            bar, update = _progress_bar("sync")
            with bar:
                result = sync_once(cfg, secrets, on_progress=update)
        else:
            result = sync_once(cfg, secrets)
    print(_run_line(result), flush=True)
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILED)


@app.command()
def doctor(config: Path | None = ConfigOpt) -> None:
    """Check the configuration, the state, Salesforce and CXone reachability, auth and the list."""
    from syncd.doctor import run_checks

    with errors():
        cfg, secrets = _config_and_secrets(config)
        failed = 0
        for check in run_checks(cfg, secrets):
            failed += not check.ok
            print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}", flush=True)
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


@app.command()
def status(config: Path | None = ConfigOpt, as_json: bool = typer.Option(False, "--json")) -> None:
    """Where syncd stands: watermark, open window, leads, batches, skips, last run, daemon."""
    from syncd import report

    with errors():
        snapshot = report.status(_config(config))
    if as_json:
        out.print_json(json.dumps(snapshot))
    else:
        out.print(report.status_table(snapshot))


@app.command()
def skipped(config: Path | None = ConfigOpt, as_csv: bool = typer.Option(False, "--csv")) -> None:
    """Leads that are not on the list, with the reason (audit)."""
    from syncd import report

    with errors():
        rows = report.skipped(_config(config))
        if as_csv:
            writer = csv.writer(sys.stdout)
            writer.writerow(["lead_id", "reason", "detail", "run_id", "modstamp"])
            for r in rows:
                writer.writerow([r["lead_id"], r["reason"], r["detail"], r["run_id"], r["modstamp"]])
            return
        t = Table("lead", "reason", "detail", "run", "SystemModstamp")
        for r in rows:
            t.add_row(r["lead_id"], r["reason"], r["detail"], str(r["run_id"]), r["modstamp"] or "")
        out.print(t)


BATCH_STATES = ("staged", "submitted", "completed", "failed")


@app.command()
def jobs(
    config: Path | None = ConfigOpt,
    state: str | None = typer.Option(None, "--state", help="staged | submitted | completed | failed"),
    as_json: bool = typer.Option(False, "--json"),
    limit: int = typer.Option(100, help="Newest batches to show."),
) -> None:
    """Batches and their CXone job ids, upload attempts, errors and parked leads."""
    from syncd import report

    if state is not None and state not in BATCH_STATES:
        say(f"syncd: --state must be one of {', '.join(BATCH_STATES)}, not {state!r}")
        raise typer.Exit(EXIT_USAGE)
    with errors():
        rows = report.jobs(_config(config), state, limit)
    if as_json:
        out.print_json(json.dumps(rows))
        return
    t = Table("batch", "kind", "state", "CXone job", "rows", "uploads", "parked", "created", "error")
    for r in rows:
        t.add_row(r["id"], r["kind"], r["state"], r["job_id"] or "", f"{r['rows']:,}", str(r["uploads"]),
                  str(r["parked"] or ""), r["created_at"][:19], r["error"] or "")
    out.print(t)


@app.command("replay-job")
def replay_job(
    job: str = typer.Argument(..., metavar="ID", help="A CXone job id or a syncd batch id."),
    config: Path | None = ConfigOpt,
) -> None:
    """Re-queue a finished job's leads, with their current content, as a new batch (parked leads too)."""
    from syncd import admin

    with errors():
        staged = admin.replay_job(_config(config), job)
    for batch_id, kind, rows in staged:
        print(f"staged {kind} batch {batch_id} with {rows:,} leads; the next run (or the running daemon) sends it")


@app.command()
def reset(
    config: Path | None = ConfigOpt,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Rewind the watermark so the next run re-reads the whole org (acked hashes are kept)."""
    from syncd import admin

    with errors():
        cfg = _config(config)
        if not yes and not typer.confirm(f"Rewind {cfg.state.path} for a full resync?", default=False):
            say("syncd: reset cancelled; nothing changed")
            raise typer.Exit(EXIT_FAILED)
        before = admin.reset(cfg)
    print(f"watermark {before['watermark'] or 'none'} cleared"
          + (" and the open window dropped" if before["window_open"] else "")
          + "; the next run reads the whole org and sends only what CXone does not already have")


@app.command()
def sim(
    port: int = typer.Option(8765, help="Port on 127.0.0.1 (0 picks a free one)."),
    leads: int = typer.Option(1000, help="Synthetic leads to start with."),
    seed: int = typer.Option(1, help="Seed of the synthetic org."),
    job_delay: float = typer.Option(1.0, help="Seconds a CXone job takes to complete."),
    api: str = typer.Option("call-lists", help="Sink the printed config uses: call-lists | contacts-batch."),
    fault: list[str] = typer.Option([], "--fault", help="ROUTE=KIND:COUNT or ROUTE=KIND@RATE, e.g. "
                                    "sf.next=503:2 or '*=429@0.05' (repeatable; see syncd/sim/faults.py)"),
    sf_latency: float = typer.Option(0.0, help="Seconds each Salesforce query page takes."),
    cxone_latency: float = typer.Option(0.0, help="Seconds each CXone API call takes."),
    overwrite: str = typer.Option("upsert", help="What forceOverwrite does: upsert | replace (the whole list)."),
    removal: str = typer.Option("removes", help="What removeProspects does: removes | fails | noop."),
    readd: str = typer.Option("reactivates", help="A removed record uploaded again: reactivates | stays-removed."),
) -> None:
    """Start the Salesforce + CXone simulator alone and print a matching config."""
    from syncd.sim import SIM_SECRETS, Simulator
    from syncd.sim.faults import parse_fault

    simulator = Simulator(leads=leads, seed=seed, job_delay=job_delay, port=port)
    try:
        simulator.set_readings(overwrite=overwrite, removal=removal, readd=readd)
    except ValueError as e:
        say(f"syncd: {e}")
        raise typer.Exit(EXIT_USAGE) from None
    simulator.latency = {"sf.query*": sf_latency, "sf.next": sf_latency, "cxone.*": cxone_latency,
                         "batch.*": cxone_latency}
    for spec in fault:
        try:
            simulator.faults.add(parse_fault(spec, seed))
        except ValueError as e:
            say(f"syncd: --fault {spec!r}: {e}")
            raise typer.Exit(EXIT_USAGE) from None
    url = simulator.start()
    lines = [f"# simulator: Salesforce, CXone call-lists and contacts-batch at {url}",
             f"# control surface: {url}/_sim/info (leads, list, uploads, stats)",
             f"# CXone readings: forceOverwrite {overwrite}, removeProspects {removal}, re-add {readd}; "
             "scratch list 4321 for `syncd doctor --probe --list-id 4321`",
             "# secrets (export these):"]
    lines += [f"#   export {k}={v}" for k, v in SIM_SECRETS.items()]
    print("\n".join(lines) + "\n" + simulator.config_toml(api=api), flush=True)
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

    logs.setup(logging.WARNING)
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


def main() -> None:
    app()
