from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from syncd.config import config_from_text, parse_config
from syncd.config_file import load_config, resolve_path
from syncd.errors import ConfigError
from syncd.secrets import load_secrets

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {"SYNCD_SALESFORCE_CLIENT_SECRET": "sf-secret", "SYNCD_CXONE_CLIENT_SECRET": "cx-secret",
           "SYNCD_CXONE_ACCESS_KEY_ID": "key-id", "SYNCD_CXONE_ACCESS_KEY_SECRET": "key-secret"}


def minimal(**sections: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "salesforce": {"login_url": "https://acme.my.salesforce.com", "client_id": "abc"},
        "cxone": {"call_lists": {"client_id": "c", "list_id": 1, "list_name": "L", "skill_id": 2}},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return data


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(data, "t.toml")
    return e.value.problems


def test_example_file_is_valid_and_documents_every_key() -> None:
    cfg = load_config(ROOT / "syncd.example.toml")
    assert cfg.cxone.api == "call-lists"
    assert cfg.salesforce.lookback_seconds == 300
    assert cfg.salesforce.lag_seconds == 60
    text = (ROOT / "syncd.example.toml").read_text()
    sections: list[BaseModel | None] = [cfg.state, cfg.schedule, cfg.salesforce, cfg.cxone, cfg.cxone.call_lists]
    for section in sections:
        assert section is not None
        for key in type(section).model_fields:
            assert f"{key} =" in text or f".{key}]" in text, key


def test_defaults() -> None:
    cfg = parse_config(minimal())
    assert cfg.state.path == Path("state/syncd.db")
    assert cfg.schedule.interval_seconds == 300
    assert cfg.salesforce.phone_fields == ["MobilePhone", "Phone"]
    assert cfg.cxone.batch_size == 5000
    assert cfg.cxone.max_in_flight == 4
    assert cfg.cxone.call_lists is not None
    assert cfg.cxone.call_lists.header()[0] == "ExternalId"


def test_one_line_per_problem() -> None:
    out = problems(minimal(salesforce={"page_size": 50, "colour": "blue", "lag_seconds": "soon"},
                           cxone={"batch_size": 0}))
    assert len(out) == 4
    assert "t.toml: salesforce.page_size: Input should be greater than or equal to 200 (got 50)" in out
    assert "t.toml: salesforce.colour: unknown key (check its spelling against syncd.example.toml)" in out
    assert any(p.startswith("t.toml: salesforce.lag_seconds:") for p in out)
    assert any(p.startswith("t.toml: cxone.batch_size:") for p in out)


@pytest.mark.parametrize(("data", "needle"), [
    (minimal(salesforce={"login_url": "http://acme.example.com"}), "plain http:// is allowed only for loopback"),
    (minimal(salesforce={"login_url": "acme.my.salesforce.com"}), "absolute https:// URL"),
    (minimal(salesforce={"phone_fields": ["Phone; DROP"]}), "not a Salesforce field name"),
    (minimal(salesforce={"default_region": "XX"}), "not a region"),
    (minimal(salesforce={"auth": "password"}), "salesforce.auth"),
    (minimal(salesforce={"auth": "jwt_bearer"}), "username is required"),
    (minimal(cxone={"batch_size": 600_000}), "above the call-lists limit of 500000"),
    (minimal(cxone={"api": "contacts-batch", "batch_size": 501}), "above the contacts-batch limit of 500"),
    (minimal(cxone={"api": "contacts-batch", "batch_size": 500}), "needs a [cxone.contacts_batch] section"),
    (minimal(schedule={"cron": "every day"}), "cron must have 5 fields"),
    ({"salesforce": {"client_id": "x"}}, "cxone: required key is missing"),
])
def test_specific_messages(data: dict[str, Any], needle: str) -> None:
    assert any(needle in p for p in problems(data)), problems(data)


def test_loopback_http_is_allowed() -> None:
    cfg = parse_config(minimal(salesforce={"login_url": "http://127.0.0.1:8765"}))
    assert cfg.salesforce.login_url == "http://127.0.0.1:8765"


def test_toml_syntax_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        config_from_text("[salesforce\n", "x.toml")
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "nope.toml")


def test_config_path_resolution() -> None:
    assert resolve_path(Path("a.toml"), {"SYNCD_CONFIG": "b.toml"}) == Path("a.toml")
    assert resolve_path(None, {"SYNCD_CONFIG": "b.toml"}) == Path("b.toml")
    assert resolve_path(None, {}) == Path("syncd.toml")


def test_secrets_from_env_and_credentials_directory(tmp_path: Path) -> None:
    cfg = parse_config(minimal())
    s = load_secrets(cfg, env=SECRETS)
    assert s.salesforce_client_secret is not None
    assert s.salesforce_client_secret.get_secret_value() == "sf-secret"
    assert "sf-secret" not in repr(s)
    creds = tmp_path / "creds"
    creds.mkdir()
    for k, v in SECRETS.items():
        (creds / k.lower()).write_text(v + "\n")
    s2 = load_secrets(cfg, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert sorted(s2.values()) == sorted(SECRETS.values())


def test_missing_and_unreadable_secrets(tmp_path: Path) -> None:
    cfg = parse_config(minimal())
    with pytest.raises(ConfigError) as e:
        load_secrets(cfg, env={"SYNCD_CXONE_CLIENT_SECRET": "x"})
    assert len(e.value.problems) == 3
    assert e.value.problems[0].startswith("SYNCD_SALESFORCE_CLIENT_SECRET is not set")
    creds = tmp_path / "creds"
    (creds / "syncd_salesforce_client_secret").mkdir(parents=True)  # a directory cannot be read as a file
    with pytest.raises(ConfigError) as e:
        load_secrets(cfg, env={**SECRETS, "SYNCD_SALESFORCE_CLIENT_SECRET": "", "CREDENTIALS_DIRECTORY": str(creds)})
    assert any("cannot be read" in p for p in e.value.problems)


def test_cli_bad_config_exits_2_with_one_line_per_problem(tmp_path: Path) -> None:
    bad = tmp_path / "syncd.toml"
    bad.write_text('[salesforce]\nlogin_url = "http://evil.example.com"\nclient_id = "x"\npage_sise = 10\n'
                   f'[state]\npath = "{tmp_path}/state/syncd.db"\n')
    proc = subprocess.run([sys.executable, "-m", "syncd", "sync", "--config", str(bad)], capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        f"syncd: config: {bad}: salesforce.login_url: plain http:// is allowed only for loopback hosts, got "
        "'http://evil.example.com'",
        f"syncd: config: {bad}: salesforce.page_sise: unknown key (check its spelling against syncd.example.toml)",
        f"syncd: config: {bad}: cxone: required key is missing",
    ]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "state").exists(), "a bad config must write nothing to the state path"
