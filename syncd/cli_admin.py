"""The admin commands of ``syncd``: jobs, replay-job, skipped, reset, lead and verify (registered on
``cli.app``). Like every command: parse, call one core function, format."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import typer
from rich.table import Column, Table

from syncd.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ConfigOpt, _config, _config_and_secrets, app, errors, out, say
from syncd.transform import REASONS


@app.command()
def skipped(
    config: Path | None = ConfigOpt,
    as_csv: bool = typer.Option(False, "--csv"),
    reason: str | None = typer.Option(None, "--reason", "-r", help=f"Only this reason: {', '.join(REASONS)}."),
) -> None:
    """Leads that are not on the list, with the reason (audit)."""
    from syncd import report

    if reason is not None and reason not in REASONS:
        say(f"syncd: --reason must be one of {', '.join(REASONS)}, not {reason!r}")
        raise typer.Exit(EXIT_USAGE)
    with errors():
        rows = report.skipped(_config(config), reason)
        if as_csv:
            writer = csv.writer(sys.stdout)
            writer.writerow(["lead_id", "reason", "detail", "run_id", "modstamp"])
            for r in rows:
                writer.writerow([r["lead_id"], r["reason"], r["detail"], r["run_id"], r["modstamp"]])
            return
        t = Table(Column("lead", no_wrap=True, min_width=18), "reason", "detail", "run", "SystemModstamp")
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
    # Ids are what replay-job takes: never cut, whatever the width (the error column wraps instead).
    widest = max((len(r["id"]) for r in rows), default=5), max((len(r["job_id"] or "") for r in rows), default=9)
    t = Table(Column("batch", no_wrap=True, min_width=widest[0]), "kind", "state",
              Column("CXone job", no_wrap=True, min_width=max(widest[1], 9)), "rows", "uploads", "parked", "created",
              "error")
    for r in rows:
        t.add_row(r["id"], r["kind"], r["state"], r["job_id"] or "", f"{r['rows']:,}", str(r["uploads"]),
                  str(r["parked"] or ""), r["created_at"][:19], r["error"] or "")
    out.print(t)


@app.command("replay-job")
def replay_job(
    job: str | None = typer.Argument(None, metavar="[ID]", help="A CXone job id or a syncd batch id."),
    parked: bool = typer.Option(False, "--parked", help="Instead of one job: every parked lead, at once."),
    config: Path | None = ConfigOpt,
) -> None:
    """Re-queue a finished job's leads, with their current content, as a new batch (parked leads too);
    with --parked, every parked lead of every batch."""
    from syncd import admin

    if (job is None) == (not parked):
        say("syncd: replay-job takes a job or batch id (see `syncd jobs`), or --parked; not both")
        raise typer.Exit(EXIT_USAGE)
    with errors():
        if parked:
            leads, batches = admin.replay_parked(_config(config))
            print(f"released {leads:,} parked leads of {batches:,} batches; the next run (or the running daemon) "
                  "sends them as they are now" if leads else "no lead is parked; nothing changed")
            return
        assert job is not None
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
def lead(
    lead_id: str = typer.Argument(..., metavar="ID", help="A Salesforce Lead Id."),
    config: Path | None = ConfigOpt,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """One lead's story: what Salesforce said, what was sent when (batch, job), acked, verified, skipped."""
    from syncd import report

    with errors():
        story = report.lead_story(_config(config), lead_id)
    if as_json:
        print(json.dumps(story), flush=True)
    else:
        print("\n".join(report.story_lines(story)), flush=True)


@app.command()
def verify(config: Path | None = ConfigOpt, as_json: bool = typer.Option(False, "--json")) -> None:
    """Download the list CXone holds, compare it with the state and mark the drift (the next run heals it).
    Exit 1 when records stay on the list that must be gone, or CXone contradicts the configuration."""
    from syncd.runner import verify_now

    with errors():
        cfg, secrets = _config_and_secrets(config)
        found = verify_now(cfg, secrets)
    if as_json:
        print(json.dumps(found), flush=True)
    else:
        healed = found["missing"] + found["expired"] + found["finalized"] + found["wrong"]
        print(f"verified {found['records']:,} records: missing {found['missing']:,}, expired {found['expired']:,}, "
              f"finalized {found['finalized']:,}, wrong number {found['wrong']:,}, unexpected {found['unexpected']:,}, "
              f"removed again {found['removed_again']:,}, unremovable {found['unremovable']:,}"
              + ("; the next run sends what is missing or wrong" if healed else ""), flush=True)
        if found["problem"]:
            say(f"syncd: {found['problem']}")
    raise typer.Exit(EXIT_FAILED if found["problem"] or found["unremovable"] else EXIT_OK)
