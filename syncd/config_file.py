"""Which ``syncd.toml`` a command reads, reading it, and where its state is (the model: ``config.py``).

The state rule is the one the service and every admin command share: ``[state] path``, relative to the
directory of the configuration file, never to the working directory or the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from syncd.config import Config, config_from_text
from syncd.errors import ConfigError

DEFAULT_CONFIG = Path("syncd.toml")


def resolve_path(path: Path | None, env: dict[str, str] | None = None) -> Path:
    """``--config PATH``, else ``$SYNCD_CONFIG``, else ``./syncd.toml``."""
    env = dict(os.environ if env is None else env)
    if path is not None:
        return path
    if env.get("SYNCD_CONFIG"):
        return Path(env["SYNCD_CONFIG"])
    return DEFAULT_CONFIG


def load_config(path: Path, env: dict[str, str] | None = None) -> Config:
    """Read and validate ``path``; the state path is resolved by :func:`resolve_state`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such configuration file (`syncd init {path}` writes a starting one)"]) \
            from None
    except PermissionError:
        raise ConfigError([f"{path}: permission denied (run as the user the service runs as, e.g. "
                           "`sudo -u syncd syncd ...`, or make the file readable by it)"]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"{path}: cannot be read ({type(e).__name__})"]) from None
    cfg = config_from_text(text, str(path))
    state = resolve_state(cfg.state.path, path, os.environ if env is None else env)
    return cfg.model_copy(update={"state": cfg.state.model_copy(update={"path": state})})


def resolve_state(state: Path, config_path: Path, env: Mapping[str, str]) -> Path:
    """The one rule every command and the service use: ``[state] path`` (default ``state/syncd.db``),
    relative to the directory of the configuration file, never to the working directory.

    The state is never chosen from the environment: an admin command run beside the service (as its
    user, from any directory) must find the same file the service writes. Under systemd
    (``$STATE_DIRECTORY`` set), a path outside the unit's StateDirectory is refused with the line to use,
    because the hardened unit could not write it and the commands would look elsewhere.
    """
    resolved = Path(os.path.normpath(state if state.is_absolute() else config_path.absolute().parent / state))
    state_dirs = [Path(d) for d in env.get("STATE_DIRECTORY", "").split(":") if d]
    if state_dirs and not any(resolved.is_relative_to(os.path.normpath(d.absolute())) for d in state_dirs):
        raise ConfigError([f"{config_path}: state.path resolves to {resolved}, outside the unit's StateDirectory "
                           f"{state_dirs[0]}: set `path = \"{state_dirs[0] / 'syncd.db'}\"` under [state] so the "
                           "service and the admin commands use the same state"])
    return resolved
