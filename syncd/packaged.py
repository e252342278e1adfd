"""What the installed package carries for deployment (the example config, the systemd units), and the
effective configuration as TOML, so the README's deployment works from ``pip install`` alone."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from syncd.config import Config
from syncd.errors import ConfigError

UNITS = {False: "syncd.service", True: "syncd@.service"}
DEFAULT_BIN = "/usr/local/bin/syncd"


def resource(name: str) -> str:
    return (resources.files("syncd") / "deploy" / name).read_text(encoding="utf-8")


def starting_config(state_path: str | None = None) -> str:
    """The documented example, with ``[state] path`` set when given (under systemd: in StateDirectory)."""
    text = resource("syncd.example.toml")
    if state_path is not None:
        text, n = re.subn(r'(?m)^path = "state/syncd\.db"$', f"path = {json.dumps(state_path)}", text, count=1)
        assert n == 1, "the example config lost its [state] path line"
    return text


def write_config(target: Path, state_path: str | None, force: bool) -> None:
    if target.exists() and not force:
        raise ConfigError([f"{target} exists; it was left as it is (--force replaces it)"])
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(starting_config(state_path), encoding="utf-8")
        target.chmod(0o640)  # no secret lives in it, but it names the tenant and the org
    except OSError as e:
        raise ConfigError([f"{target}: cannot be written ({e.strerror}); pick another path or run with the "
                           "rights to write it (sudo)"]) from None


def unit(template: bool, executable: str = DEFAULT_BIN) -> str:
    text = resource(UNITS[template])
    return text.replace(DEFAULT_BIN, executable) if executable != DEFAULT_BIN else text


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return json.dumps(str(v))


def _section(name: str, model: BaseModel, out: list[str]) -> None:
    scalars: list[str] = []
    nested: list[tuple[str, Any]] = []
    for key in type(model).model_fields:
        v = getattr(model, key)
        if isinstance(v, BaseModel | dict):
            nested.append((f"{name}.{key}", v))
        elif v is None:
            scalars.append(f"# {key}: not set")
        else:
            scalars.append(f"{key} = {_value(v)}")
    out += ["", f"[{name}]", *scalars]
    for sub, v in nested:
        if isinstance(v, BaseModel):
            _section(sub, v, out)
        else:
            out += ["", f"[{sub}]", *(f"{json.dumps(k)} = {_value(x)}" for k, x in v.items())]


def effective(config: Config, source: Path, secrets: dict[str, str]) -> str:
    """Every key with its value in force (defaults filled in, the state path resolved), then each secret
    as set, missing or not needed: never its value."""
    out = [f"# syncd's effective configuration, from {source}; defaults are filled in."]
    for key in type(config).model_fields:
        section = getattr(config, key)
        if section is not None:
            _section(key, section, out)
    out += ["", "# secrets (environment or $CREDENTIALS_DIRECTORY; values never shown):"]
    out += [f"#   {name}: {state}" for name, state in secrets.items()]
    return "\n".join(out) + "\n"
