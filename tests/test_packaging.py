"""The wheel carries what deployment needs: from an install without the checkout, `syncd init` and
`syncd systemd-unit` work (issue 16). Builds the real wheel with pip, installs it in a fresh venv."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_carries_the_example_config_and_the_units_and_they_work_without_the_checkout(
        tmp_path: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "w"),
                            str(ROOT)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "w").glob("syncd-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("syncd/deploy/syncd.example.toml", "syncd/deploy/syncd.service", "syncd/deploy/syncd@.service"):
        assert name in names, name

    # A fresh venv with only the wheel; its dependencies come from this interpreter's site-packages
    # through a .pth (no network), which adds no .pth of its own, so this checkout's editable install
    # is not seen.
    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    py = target / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target",
                                str(site), str(wheel)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    elsewhere = tmp_path / "no-checkout"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",) and not k.startswith("SYNCD_")}

    def syncd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(py), "-m", "syncd", *args], capture_output=True, text=True, timeout=120,
                              cwd=elsewhere, env=env)

    where = subprocess.run([str(py), "-c", "import syncd; print(syncd.__file__)"], capture_output=True, text=True,
                           cwd=elsewhere, env=env)
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr  # the wheel's copy, not the checkout
    made = syncd("init", "etc/syncd.toml", "--state", "/var/lib/syncd/syncd.db")
    assert made.returncode == 0, made.stderr
    assert 'path = "/var/lib/syncd/syncd.db"' in (elsewhere / "etc" / "syncd.toml").read_text()
    shown = syncd("config", "--config", "etc/syncd.toml")
    assert shown.returncode == 0, shown.stderr
    assert 'path = "/var/lib/syncd/syncd.db"' in shown.stdout
    unit = syncd("systemd-unit", "--template")
    assert unit.returncode == 0
    assert unit.stdout == (ROOT / "systemd" / "syncd@.service").read_text()
