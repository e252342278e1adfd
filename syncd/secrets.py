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
    if not path.exists():
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"credential {path}: cannot be read ({type(e).__name__})")
        return None


def load_secrets(config: Config, env: dict[str, str] | None = None) -> Secrets:
    """Collect the secrets the configured flows need; a missing one is a configuration error."""
    env = dict(os.environ if env is None else env)
    problems: list[str] = []
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

    def need(name: str, why: str) -> None:
        if not raw[name]:
            problems.append(f"{name} is not set ({why}); set it in the environment or as "
                            f"$CREDENTIALS_DIRECTORY/{name.lower()}")

    sf = config.salesforce
    if sf.auth == "client_credentials":
        need("SYNCD_SALESFORCE_CLIENT_SECRET", "salesforce.auth = client_credentials")
    elif sf.auth == "jwt_bearer":
        need("SYNCD_SALESFORCE_PRIVATE_KEY_FILE", "salesforce.auth = jwt_bearer")
    elif sf.auth == "refresh_token":
        need("SYNCD_SALESFORCE_REFRESH_TOKEN", "salesforce.auth = refresh_token")
    else:
        need("SYNCD_SALESFORCE_ACCESS_TOKEN", "salesforce.auth = access_token")
    need("SYNCD_CXONE_CLIENT_SECRET", f"cxone.api = {config.cxone.api}")
    if config.cxone.api == "call-lists":
        need("SYNCD_CXONE_ACCESS_KEY_ID", "cxone.api = call-lists")
        need("SYNCD_CXONE_ACCESS_KEY_SECRET", "cxone.api = call-lists")
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
