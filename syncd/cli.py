"""The ``syncd`` command line: parse, call one core function, format. Exit codes are binding:
0 ok, 1 run failed, 2 configuration or usage error, 3 another syncd holds the state lock."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column
from rich.text import Text

from syncd import __version__, logs
from syncd.config import Config
from syncd.config_file import load_config, resolve_path
from syncd.context import Progress as RunProgress
from syncd.engine import RunResult
from syncd.errors import ConfigError, LockHeld, Refused, StateError, SyncdError, os_error_line
from syncd.secrets import Secrets, load_secrets

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Keep a NICE CXone outbound calling list in step with Salesforce Leads.")
# Piped output is not cut at 80 columns (ids and paths stay whole for grep); a terminal's width is
# its own; NO_COLOR is honoured by Rich on both.
out = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200)
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from syncd.store.schema import NAMES

        print(f"syncd {__version__} (state schema {NAMES[-1]})")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and the state schema it writes, and exit.")) -> None:
    """Keep a NICE CXone outbound calling list in step with Salesforce Leads."""

ConfigOpt = typer.Option(None, "--config", "-c", readable=False,  # an unreadable file gets syncd's own message
                         help="syncd.toml (default: $SYNCD_CONFIG, else ./syncd.toml)")
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
    except OSError as e:  # a file-system problem no layer below translated: one line, never a traceback
        say(f"syncd: {os_error_line(e)}")
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
    """The bar shrinks first: the counts keep their width down to 80 columns (the elapsed time goes
    below 100), and log lines print above the bar through the same console."""
    columns: list[Any] = [
        TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True)),
        BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=4)),
        MofNCompleteColumn(table_column=Column(no_wrap=True)),
        TextColumn("sent {task.fields[sent]:,}, removed {task.fields[removed]:,}, {task.fields[in_flight]} in flight, "
                   "{task.fields[phase]}", table_column=Column(no_wrap=True))]
    if err.width >= 100:
        columns.append(TimeElapsedColumn(table_column=Column(no_wrap=True)))
    bar = Progress(*columns, console=err, transient=False, expand=True)
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
    logs.setup(logging.DEBUG if verbose else logging.WARNING if as_json or dry_run else logging.INFO,
               console=err if err.is_terminal else None)
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
                mark = Text("ok  ", style="green") if check.ok else Text("FAIL", style="bold red")
                out.print(Text.assemble(mark, f"  {check.name}: {check.detail}"), soft_wrap=True, highlight=False)
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
            mark = Text("ok  ", "green") if v.ok else Text("FAIL", "bold red") if v.name in BLOCKING \
                else Text("warn", "yellow")
            out.print(Text.assemble(mark, f"  {v.name}: {v.verdict}" + (f" ({v.detail})" if v.detail else "")),
                      soft_wrap=True, highlight=False)
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


def main() -> None:
    app()


# The admin commands live in their own module and register themselves on ``app``.
from syncd import cli_admin, cli_ops, cli_sim  # noqa: E402, F401
