"""syncd as it was before issue 15, measured on the same machine as the syncd under test.

The machines `make bench` runs on differ: the same commit used 60 µs of CPU per lead on one and 31 on
another. A target set against a figure of the machine of its day ("≤ 45 µs per lead, 56 today") is
therefore judged against this code run here: at most 45/56 of what it needs, on this machine, now.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

# The parent of issue 15's first commit (2774fb1, overlap and Bulk reads): syncd before issue 15.
REFERENCE = "9e15d3b"
CPU_RATIO = 45 / 56  # issue 15: "≤ 45 µs per lead (56 today)"
# Config keys that issue 15 added: the reference refuses keys it does not know.
NEW_KEYS = ("read_api", "bulk_threshold")


def compile_package(path: Path) -> None:
    """Byte code for a package, as an installed one has it: with PYTHONDONTWRITEBYTECODE set (as it is on
    some machines) every run would otherwise compile the source again, a cost no deployed syncd pays."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(path)], check=True)


def extract(root: Path, into: Path, commit: str = REFERENCE) -> Path | None:
    """``commit``'s ``syncd`` package under ``into`` (compiled); None, said why, where git cannot give it."""
    try:
        archive = subprocess.run(["git", "-C", str(root), "archive", commit, "syncd"],  # noqa: S607 - git on PATH
                                 capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        detail = e.stderr.decode(errors="replace").strip() if isinstance(e, subprocess.CalledProcessError) else e
        print(f"   no reference run: git cannot give commit {commit} ({detail})", flush=True)
        return None
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    compile_package(into / "syncd")
    return into


def config_for(text: str) -> str:
    """A config the reference accepts: the same, without the keys issue 15 added (their defaults then)."""
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith(NEW_KEYS))
