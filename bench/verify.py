"""`syncd verify` of a large list, alone: ``python bench/verify.py [LEADS]`` (default 1,000,000).

Syncs a simulated org of LEADS leads (the simulator in its own process), fills the CXone list up to
LEADS records (the extra ones are records syncd never sent), then measures `syncd verify`: wall
time, CPU and the client's peak RSS. `make bench` runs the same step inside its 1,000,000-lead scenario.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import PY, Sim, measure


def main() -> int:
    leads = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory(prefix="syncd-bench-verify-") as tmp:
        work = Path(tmp)
        sim = Sim(leads, False, work)
        try:
            config = work / "syncd.toml"
            config.write_text(sim.config.replace('path = "state/syncd.db"', f'path = "{work / "syncd.db"}"'))
            env = {**os.environ, **sim.env}
            synced, _ = measure([PY, "-m", "syncd", "sync", "--config", str(config)], env, work)
            sim.pad_list(leads)
            checked, out = measure([PY, "-m", "syncd", "verify", "--json", "--config", str(config)], env, work)
            found = json.loads(out.strip().splitlines()[-2])
        finally:
            sim.stop()
    print(f"initial sync of {leads:,}: {synced['wall']:.1f} s, peak RSS {synced['maxrss_mb']:.0f} MB")
    print(f"syncd verify of {found['records']:,} records ({found['unexpected']:,} never sent by syncd): "
          f"{checked['wall']:.1f} s wall, {checked['cpu']:.1f} s CPU, peak RSS {checked['maxrss_mb']:.0f} MB "
          f"(target < 250 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
