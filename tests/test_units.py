"""The systemd units pass `systemd-analyze verify` (with ExecStart pointed at this checkout's syncd)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parent.parent / "systemd"


ANALYZE = shutil.which("systemd-analyze")


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed here")
@pytest.mark.parametrize(("source", "name"), [("syncd.service", "syncd.service"),
                                              ("syncd@.service", "syncd@emea.service")])
def test_unit_verifies(tmp_path: Path, source: str, name: str) -> None:
    syncd = Path(sys.executable).parent / "syncd"
    assert syncd.exists()
    text = (UNITS / source).read_text().replace("/usr/local/bin/syncd", str(syncd))
    (tmp_path / name).write_text(text)
    assert ANALYZE is not None
    proc = subprocess.run([ANALYZE, "verify", str(tmp_path / name)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


def test_units_declare_what_the_service_relies_on() -> None:
    for source in ("syncd.service", "syncd@.service"):
        text = (UNITS / source).read_text()
        for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "RestartSec=", "StartLimitBurst=",
                     "User=syncd", "StateDirectory=syncd", "LoadCredential=syncd_cxone_client_secret:",
                     "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes", "RestrictAddressFamilies="):
            assert line in text, (source, line)
