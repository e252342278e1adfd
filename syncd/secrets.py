"""The secrets that never live in ``syncd.toml``: from the environment or ``$CREDENTIALS_DIRECTORY``.

Each is a ``SecretStr`` from the moment it is read, so no repr, log line or exception shows it.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr

from syncd.config import Config
from syncd.errors import ConfigError

SECRET_NAMES = (
    "SYNCD_SALESFORCE_CLIENT_SECRET",
    "SYNCD_SALESFORCE_PRIVATE_KEY_FILE",
    "SYNCD_SALESFORCE_REFRESH_TOKEN",
    "SYNCD_SALESFORCE_ACCESS_TOKEN",
    "SYNCD_CXONE_CLIENT_SECRET",
    "SYNCD_CXONE_ACCESS_KEY_ID",
    "SYNCD_CXONE_ACCESS_KEY_SECRET",
)


class Secrets(BaseModel):
    """Credentials from the environment or ``$CREDENTIALS_DIRECTORY`` (systemd ``LoadCredential=``)."""

    model_config = ConfigDict(frozen=True)
    salesforce_client_secret: SecretStr | None = None
    salesforce_private_key: SecretStr | None = None
    salesforce_refresh_token: SecretStr | None = None
    salesforce_access_token: SecretStr | None = None
    cxone_client_secret: SecretStr | None = None
    cxone_access_key_id: SecretStr | None = None
    cxone_access_key_secret: SecretStr | None = None

    def values(self) -> list[str]:
        """Every secret in play, for redaction and for the tests that hunt for leaks."""
        out = []
        for name in type(self).model_fields:
            v = getattr(self, name)
            if v is not None and v.get_secret_value():
                out.append(v.get_secret_value())
        return out


def _read_secret(name: str, env: dict[str, str], problems: list[str]) -> str | None:
    if env.get(name):
        return env[name]
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if not cred_dir:
        return None
    path = Path(cred_dir) / name.lower()
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except PermissionError:
        problems.append(f"credential {path}: permission denied (run as the user the service runs as, or let "
                        "systemd hand it over with LoadCredential=)")
        return None
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"credential {path}: cannot be read ({type(e).__name__})")
        return None


def _check_directory(env: dict[str, str], problems: list[str]) -> None:
    """An unreadable ``$CREDENTIALS_DIRECTORY`` is said once (and not read), not once per secret."""
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir and not os.access(cred_dir, os.R_OK | os.X_OK):
        why = "does not exist" if not os.path.exists(cred_dir) else "cannot be read by this user"
        problems.append(f"credentials directory {cred_dir} {why} ($CREDENTIALS_DIRECTORY): run as the user "
                        "the service runs as, or fix the directory's owner and mode")
        del env["CREDENTIALS_DIRECTORY"]


def needed(config: Config) -> dict[str, str]:
    """The secrets the configured flows need, each with the setting that needs it."""
    sf = config.salesforce
    flow = {"client_credentials": "SYNCD_SALESFORCE_CLIENT_SECRET", "jwt_bearer": "SYNCD_SALESFORCE_PRIVATE_KEY_FILE",
            "refresh_token": "SYNCD_SALESFORCE_REFRESH_TOKEN", "access_token": "SYNCD_SALESFORCE_ACCESS_TOKEN"}
    sink = f"cxone.api = {config.cxone.api}"
    need = {flow[sf.auth]: f"salesforce.auth = {sf.auth}", "SYNCD_CXONE_CLIENT_SECRET": sink}
    if config.cxone.api == "call-lists":
        need.update(dict.fromkeys(("SYNCD_CXONE_ACCESS_KEY_ID", "SYNCD_CXONE_ACCESS_KEY_SECRET"), sink))
    return need


def presence(config: Config, env: dict[str, str] | None = None) -> dict[str, str]:
    """For ``syncd config``: each secret as set (and where from), missing, or not needed; never its value."""
    env = dict(os.environ if env is None else env)
    need, problems, shown = needed(config), list[str](), dict[str, str]()
    for name in SECRET_NAMES:
        where = "environment" if env.get(name) else "$CREDENTIALS_DIRECTORY"
        before = len(problems)
        if _read_secret(name, env, problems):
            shown[name] = f"set ({where})"
        elif len(problems) > before:
            shown[name] = f"unreadable: {problems[-1]}"
        elif name in need:
            shown[name] = f"missing (needed for {need[name]})"
        else:
            shown[name] = "not needed"
    return shown


def load_secrets(config: Config, env: dict[str, str] | None = None) -> Secrets:
    """Collect the secrets the configured flows need; a missing one is a configuration error."""
    env = dict(os.environ if env is None else env)
    problems: list[str] = []
    _check_directory(env, problems)
    raw = {n: _read_secret(n, env, problems) for n in SECRET_NAMES}
    key_pem: str | None = None
    key_ref = raw["SYNCD_SALESFORCE_PRIVATE_KEY_FILE"]
    if key_ref:
        if key_ref.lstrip().startswith("-----BEGIN"):
            key_pem = key_ref  # a credential file that holds the key itself
        else:
            try:
                key_pem = Path(key_ref).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                problems.append(f"SYNCD_SALESFORCE_PRIVATE_KEY_FILE: cannot read {key_ref} ({type(e).__name__})")
    if not problems:  # beside an unreadable directory or file, "not set" would mislead
        for name, why in needed(config).items():
            if not raw[name]:
                problems.append(f"{name} is not set ({why}); set it in the environment or as "
                                f"$CREDENTIALS_DIRECTORY/{name.lower()}")
    if problems:
        raise ConfigError(problems)

    def s(v: str | None) -> SecretStr | None:
        return SecretStr(v) if v else None

    return Secrets(
        salesforce_client_secret=s(raw["SYNCD_SALESFORCE_CLIENT_SECRET"]),
        salesforce_private_key=s(key_pem),
        salesforce_refresh_token=s(raw["SYNCD_SALESFORCE_REFRESH_TOKEN"]),
        salesforce_access_token=s(raw["SYNCD_SALESFORCE_ACCESS_TOKEN"]),
        cxone_client_secret=s(raw["SYNCD_CXONE_CLIENT_SECRET"]),
        cxone_access_key_id=s(raw["SYNCD_CXONE_ACCESS_KEY_ID"]),
        cxone_access_key_secret=s(raw["SYNCD_CXONE_ACCESS_KEY_SECRET"]),
    )
