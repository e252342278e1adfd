"""The ``syncd`` command line: parse, call one core function, format. Exit codes are binding:
0 ok, 1 run failed, 2 configuration or usage error, 3 another syncd holds the state lock."""

from __future__ import annotations

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
def sync(
    config: Path | None = ConfigOpt,
    verbose: bool = VerboseOpt,
    dry_run: bool = typer.Option(False, "--dry-run", help="Read Salesforce and say what would be uploaded, "
                                 "removed and suppressed; change nothing in CXone or the state."),
    as_json: bool = typer.Option(False, "--json", help="With --dry-run: one JSON object."),
    allow_mass_removal: bool = typer.Option(False, "--allow-mass-removal",
                                            help="Send removals beyond cxone.max_removal_percent this once."),
) -> None:
    """Run one sync now (resuming anything interrupted), with progress on a terminal."""
    from syncd.runner import dry_run as plan_run
    from syncd.runner import sync_once

    if as_json and not dry_run:
        say("syncd: --json goes with --dry-run (a real sync prints one line; see `syncd status --json`)")
        raise typer.Exit(EXIT_USAGE)
    logs.setup(logging.DEBUG if verbose else logging.WARNING if as_json or dry_run else logging.INFO)
    with errors():
        cfg, secrets = _config_and_secrets(config)
        if dry_run:
            result = plan_run(cfg, secrets)
            _print_plan(result, as_json)
            raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILED)
        if err.is_terminal:
            bar, update = _progress_bar("sync")
            with bar:
                result = sync_once(cfg, secrets, on_progress=update, allow_mass_removal=allow_mass_removal)
        else:
            result = sync_once(cfg, secrets, allow_mass_removal=allow_mass_removal)
    print(_run_line(result), flush=True)
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILED)


def _print_plan(result: RunResult, as_json: bool) -> None:
    plan = {"read": result.read, "skipped": result.skipped, **result.plan, "error": result.error}
    if as_json:
        print(json.dumps(plan), flush=True)
        return
    if result.error:
        say(f"syncd: dry run failed: {result.error}")
    print(f"dry run: read {result.read:,} leads from Salesforce; nothing was sent and the state is unchanged")
    for key, verb in (("upload", "would upload"), ("remove", "would remove"), ("suppress", "would suppress"),
                      ("expire", "left to expire")):
        part = plan.get(key) or {"count": 0, "first_ids": []}
        more = " …" if part["count"] > len(part["first_ids"]) else ""
        ids = f" ({', '.join(part['first_ids'])}{more})" if part["first_ids"] else ""
        print(f"  {verb}: {part['count']:,}{ids}")


@app.command()
def doctor(
    config: Path | None = ConfigOpt,
    probe: bool = typer.Option(False, "--probe", help="Run the UNVERIFIED-behaviour experiments on a scratch list."),
    list_id: int | None = typer.Option(None, "--list-id", help="With --probe: a scratch list, not the configured one."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check the configuration, the state, Salesforce and CXone reachability, auth and the list;
    with --probe, prove on a scratch list how this tenant's CXone behaves and which settings to use."""
    from syncd.doctor import run_checks

    if probe and list_id is None:
        say("syncd: --probe needs --list-id N, a scratch list that is not the configured one")
        raise typer.Exit(EXIT_USAGE)
    with errors():
        cfg, secrets = _config_and_secrets(config)
        if probe:
            assert list_id is not None
            _probe(cfg, secrets, list_id, as_json)
        failed, checks = 0, []
        for check in run_checks(cfg, secrets):
            failed += not check.ok
            checks.append(check.__dict__)
            if not as_json:
                print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}", flush=True)
        if as_json:
            print(json.dumps({"checks": checks}), flush=True)
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


def _probe(cfg: Config, secrets: Secrets, list_id: int, as_json: bool) -> None:
    from syncd.probe import BLOCKING, Probe

    report = Probe(cfg, secrets, list_id).run()
    if as_json:
        print(json.dumps(report.as_json()), flush=True)
    else:
        for v in report.verdicts:
            mark = "ok  " if v.ok else "FAIL" if v.name in BLOCKING else "warn"
            print(f"{mark}  {v.name}: {v.verdict}" + (f" ({v.detail})" if v.detail else ""))
        print("# use in [cxone.call_lists]:\n" + "\n".join(report.config_lines()), flush=True)
    raise typer.Exit(EXIT_FAILED if report.blocked else EXIT_OK)


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
    simulator.latency = {"sf.query*": sf_latency, "sf.next": sf_latency, "sf.bulk.*": sf_latency,
                         "cxone.*": cxone_latency, "batch.*": cxone_latency}
    simulator.sf.bulk.delay = bulk_delay
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


# The admin commands live in their own module and register themselves on ``app``.
from syncd import cli_admin  # noqa: E402, F401
