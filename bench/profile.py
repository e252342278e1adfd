"""Where a sync's CPU goes: one initial sync under pyinstrument, the simulator in its own process.

``make profile`` (or ``python bench/profile.py --leads 100000``) writes bench/results/profile.txt (the
call tree, wall time) and profile.html from one profiled run, then bench/results/phases.txt (CPU seconds
per phase of a second run, from bench/phases.py), and prints both. The simulator is not in them: only the client.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import PY, ROOT, Sim  # the bench's own simulator wrapper, beside this file


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=100_000)
    args = parser.parse_args()
    out = ROOT / "bench" / "results"
    workdir = out / "profile"
    workdir.mkdir(parents=True, exist_ok=True)

    def fresh_state() -> None:  # every run below is an initial sync
        for old in (workdir / "state").glob("syncd.db*"):
            old.unlink()

    fresh_state()
    sim = Sim(args.leads, latency=False, workdir=workdir)
    try:
        config = workdir / "syncd.toml"
        config.write_text(sim.config.replace('path = "state/syncd.db"', f'path = "{workdir / "state" / "syncd.db"}"'))
        env = {**os.environ, **sim.env}
        session = out / "profile.pyisession"
        subprocess.run([PY, "-m", "pyinstrument", "-r", "pyisession", "-o", str(session), "-m", "syncd", "sync",
                        "--config", str(config)], env=env, cwd=workdir, check=True, stdout=subprocess.DEVNULL)
        for renderer, name in (("text", "profile.txt"), ("html", "profile.html")):
            subprocess.run([PY, "-m", "pyinstrument", "--load", str(session), "-r", renderer, "-o", str(out / name)],
                           check=True)
        # pyinstrument samples wall time (waiting on the simulator shows as socket reads): a second,
        # unprofiled run gives each phase's CPU seconds.
        fresh_state()
        phases = subprocess.run([PY, str(ROOT / "bench" / "phases.py"), "sync", "--config", str(config)], env=env,
                                cwd=workdir, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        table = phases.stderr[phases.stderr.index("CPU by phase"):]
        (out / "phases.txt").write_text(table)
    finally:
        sim.stop()
    print((out / "profile.txt").read_text())
    print(table)
    print(f"wrote {out / 'profile.txt'}, {out / 'profile.html'} and {out / 'phases.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
