"""The deployment commands of ``syncd``: init, config and systemd-unit (registered on ``cli.app``)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import typer

from syncd.cli import EXIT_USAGE, ConfigOpt, app, errors, say
from syncd.config_file import load_config, resolve_path


@app.command()
def init(
    target: Path = typer.Argument(Path("syncd.toml"), metavar="[PATH]", help="Where to write it."),
    state: str | None = typer.Option(None, "--state", help="The [state] path to write in it; under systemd "
                                     "/var/lib/syncd/syncd.db (default: state/syncd.db beside the file)."),
    force: bool = typer.Option(False, "--force", help="Replace a file that exists."),
) -> None:
    """Write a starting configuration (the documented example, every key explained) to PATH."""
    from syncd.packaged import write_config

    with errors():
        write_config(target, state, force)
    print(f"wrote {target}; edit it (the ids, URLs and client ids of your org and tenant), put the secrets in "
          f"the environment or $CREDENTIALS_DIRECTORY, then run `syncd doctor --config {target}`")


@app.command("config")
def show_config(config: Path | None = ConfigOpt) -> None:
    """Print the effective configuration: every default filled in, the state path resolved, and each
    secret shown only as set, missing or not needed."""
    from syncd.packaged import effective
    from syncd.secrets import presence

    source = resolve_path(config)
    with errors():
        cfg = load_config(source)
        text = effective(cfg, source, presence(cfg))
    sys.stdout.write(text)


@app.command("systemd-unit")
def systemd_unit(
    template: bool = typer.Option(False, "--template", help="The template unit, syncd@NAME (one per pipeline)."),
    executable: str | None = typer.Option(None, "--bin", help="The syncd executable ExecStart runs "
                                          "(default: /usr/local/bin/syncd)."),
) -> None:
    """Print the hardened systemd unit (save it as /etc/systemd/system/syncd.service, or syncd@.service)."""
    from syncd.packaged import DEFAULT_BIN, unit

    path = executable or DEFAULT_BIN
    if not path.startswith("/"):
        say(f"syncd: --bin must be an absolute path (systemd requires one), not {path!r}; "
            f"this syncd is {shutil.which('syncd') or sys.argv[0]}")
        raise typer.Exit(EXIT_USAGE)
    sys.stdout.write(unit(template, path))
