"""Run one command and report its wall time, CPU seconds and peak RSS as JSON on the last line.

``python bench/measure.py -- CMD ARGS...`` (the child's own resource usage, not the bench's).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    started = time.perf_counter()
    proc = subprocess.run(args, check=False)
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"returncode": proc.returncode, "wall": wall, "user": usage.ru_utime, "sys": usage.ru_stime,
                      "cpu": usage.ru_utime + usage.ru_stime, "maxrss_mb": usage.ru_maxrss / 1024}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
