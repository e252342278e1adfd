"""CPU of one initial sync, this tree against a commit, in turns: what a change to the CPU per lead did.

``make bench``'s CPU figures come from one run each, and on a shared machine one run can read 20%
more than the next (an initial sync of 200,000 leads read 12.1 s, then 8.8 s, minutes apart). A
change of a few percent needs more than that:

    python bench/ab.py --leads 200000 --read-api rest --rounds 3
    python bench/ab.py --against HEAD --leads 30000 --instructions

Each round runs every tool once (the commit, then this tree), each on a fresh simulator of its own
with the same leads, and prints its CPU seconds (user + sys); the end prints each tool's median and
minimum, and the tree's median as a ratio of the commit's. ``--instructions`` runs each sync under
``valgrind --tool=callgrind`` and reports instructions per lead instead: the same on every run (so
one round is enough), user space only (the kernel's share of writing the state is not in it), and
about 50 times slower, so use a small org. Process start-up is in both figures: compare like sizes.
The default commit is ``bench/reference.py``'s: syncd before issue 15.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import REFERENCE, compile_package, extract  # beside this file
from run import PY, ROOT, Sim, sync_config

COLLECTED = re.compile(r"Collected : ([\d,]+)")


def one_sync(tool: str, package: Path, leads: int, read_api: str, workdir: Path, instructions: bool,
             old_config: bool, scatter_ids: bool) -> float:
    """CPU seconds (or instructions per lead) of one initial sync by the syncd package under ``package``."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    sim = Sim(leads, latency=False, workdir=workdir, scatter_ids=scatter_ids)
    try:
        config = workdir / "syncd.toml"
        config.write_text(sync_config(sim, workdir / "syncd.db", read_api, before_issue_15=old_config))
        cmd = [PY, "-m", "syncd", "sync", "--config", str(config)]
        if instructions:
            cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd]
        env = {**os.environ, **sim.env, "PYTHONPATH": str(package)}
        proc = subprocess.run([PY, str(ROOT / "bench" / "measure.py"), "--", *cmd], env=env, cwd=workdir,
                              capture_output=True, text=True, check=False)
    finally:
        sim.stop()
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    if figures["returncode"] != 0:
        raise RuntimeError(f"{tool}: the sync failed: {proc.stderr[-2000:]}")
    if not instructions:
        return float(figures["cpu"])
    counted = COLLECTED.findall(proc.stderr)
    if not counted:
        raise RuntimeError(f"{tool}: valgrind reported no instruction count: {proc.stderr[-1000:]}")
    return int(counted[0].replace(",", "")) / leads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--against", default=REFERENCE, help=f"the commit to compare with (default {REFERENCE})")
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--read-api", choices=("rest", "bulk", "auto"), default="rest")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instructions", action="store_true", help="instructions per lead under callgrind")
    parser.add_argument("--scatter-ids", action="store_true",
                        help="an org whose lead Ids come in no order by SystemModstamp (syncd sim --scatter-ids)")
    args = parser.parse_args()
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions needs valgrind on PATH")
    out = ROOT / "bench" / "results" / "ab"
    shutil.rmtree(out, ignore_errors=True)
    compile_package(ROOT / "syncd")
    commit = extract(ROOT, out / "commit", args.against)
    if commit is None:
        return 1
    # Whether the commit predates issue 15's keys: it then has no Bulk reader either.
    old_config = not (commit / "syncd" / "bulk_read.py").exists()
    if old_config and args.read_api != "rest":
        parser.error(f"{args.against} reads by REST only: use --read-api rest")
    tools = [(args.against, commit), ("this tree", ROOT)]
    unit = "instructions/lead" if args.instructions else "CPU s"
    found: dict[str, list[float]] = {name: [] for name, _ in tools}
    for round_no in range(1, args.rounds + 1):
        for i, (name, package) in enumerate(tools):
            value = one_sync(name, package, args.leads, args.read_api, out / f"run{i}", args.instructions,
                             old_config and package == commit, args.scatter_ids)
            found[name].append(value)
            print(f"round {round_no}: {name}: {value:,.2f} {unit}", flush=True)
    ids = ", Ids scattered" if args.scatter_ids else ""
    print(f"\n{args.leads:,} leads{ids}, initial sync, read API {args.read_api}, {args.rounds} round(s):")
    for name, values in found.items():
        print(f"  {name}: median {statistics.median(values):,.2f} {unit}, min {min(values):,.2f} "
              f"({', '.join(f'{v:,.2f}' for v in values)})")
    ratio = statistics.median(found["this tree"]) / statistics.median(found[args.against])
    print(f"  this tree / {args.against}: x{ratio:.3f} (the median's)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
