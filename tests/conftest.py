from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from syncd import failpoints
from syncd.config import Config, config_from_text
from syncd.engine import RunResult
from syncd.runner import sync_once
from syncd.secrets import Secrets, load_secrets
from syncd.sim import SIM_SECRETS, Simulator


@dataclass
class Env:
    sim: Simulator
    tmp: Path
    api: str = "call-lists"
    overrides: str = ""
    # Settings every config this Env writes carries (Simulator.config_toml keywords), e.g. removal.
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.tmp / "syncd.toml"

    def write_config(self, **kw: Any) -> Path:
        kw = {**self.settings, **kw}
        kw.setdefault("poll_interval", 0.05)
        kw.setdefault("max_removal_percent", 100)  # tests that change many leads at once are not mass removals
        # Most tests are about the REST path's pages and faults; Bulk and auto have their own
        # (tests/test_bulk.py, and the crash matrix runs under each).
        kw.setdefault("read_api", "rest")
        kw.setdefault("state_path", str(self.tmp / "state" / "syncd.db"))
        text = self.sim.config_toml(api=self.api, **kw)
        self.config_path.write_text(text + self.overrides)
        return self.config_path

    def config(self, **kw: Any) -> Config:
        self.write_config(**kw)
        return config_from_text(self.config_path.read_text(), str(self.config_path))

    def secrets(self, config: Config) -> Secrets:
        return load_secrets(config, env=SIM_SECRETS)

    def sync(self, **kw: Any) -> RunResult:
        """One run; ``now=`` sets syncd's clock and, for the run, Salesforce's (the Date of its answers)."""
        config = self.config(**{k: v for k, v in kw.items() if k in ("batch_size", "lag_seconds")})
        clock = self.sim.sf.now
        if "now" in kw and not kw.pop("keep_salesforce_clock", False):
            self.sim.sf.now = kw["now"]
        try:
            return sync_once(config, self.secrets(config), **{k: v for k, v in kw.items()
                                                              if k not in ("batch_size", "lag_seconds")})
        finally:
            self.sim.sf.now = clock

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """A call to the simulator's control surface, over HTTP as any client would make it."""
        resp = requests.post(f"{self.sim.url}{path}", json=body, timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def list_records(self) -> dict[str, dict[str, str]]:
        """The callable set: the records a dialer would call now (never what syncd says it sent)."""
        return self.sim.cx.callable()

    def list_phones(self) -> dict[str, str]:
        return {k: v["PhoneNumber"] for k, v in self.list_records().items()}

    def batch_phones(self) -> dict[str, str]:
        with self.sim.lock:
            self.sim.cx.settle()
            return {k: v["phone_numbers"][0]["number"] for k, v in self.sim.cx.contacts.items()}

    def on_list(self) -> dict[str, str]:
        return self.list_phones() if self.api == "call-lists" else self.batch_phones()

    def uploaded_ids(self, since: int = 0) -> list[str]:
        with self.sim.lock:
            return [i for u in self.sim.cx.uploads[since:] for i in u["externalIds"]]

    def subprocess_env(self, **extra: str) -> dict[str, str]:
        # Not the runner's terminal width either (pytest-xdist sets COLUMNS): output is judged as piped.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_") and k not in ("COLUMNS", "LINES")}
        env.update(SIM_SECRETS)
        env.update(extra)
        return env


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(leads=0, seed=11, job_delay=0.05) as s:
        yield s


@pytest.fixture
def env(sim: Simulator, tmp_path: Path) -> Env:
    return Env(sim, tmp_path)


@pytest.fixture(autouse=True)
def _clean_failpoints(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(failpoints.ENV, raising=False)
    failpoints.reset()
    yield
    failpoints.reset()
