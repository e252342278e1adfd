"""syncd against the tutorial's approach (bench/baseline.py), side by side, on the same simulator.

The simulator runs in its own process (`syncd sim`), so the client figures (wall, CPU, peak RSS)
are the client's alone. ``make bench`` runs the full set, ``make bench-small`` a quick one.
Writes BENCHMARKS.md (table, machine, targets) and bench/chart.png; raw figures in bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


@dataclass
class Step:
    tool: str  # syncd | baseline | verify (``syncd verify`` after padding the list to ``change`` records)
    label: str  # initial | 1% changed | no change
    change: int = 0  # leads changed in Salesforce before this step


@dataclass
class Scenario:
    name: str
    leads: int
    latency: bool
    steps: list[Step]
    results: list[dict[str, Any]] = field(default_factory=list)


def scenarios(small: bool) -> list[Scenario]:
    big, mid, lat = (20_000, 5_000, 2_000) if small else (1_000_000, 100_000, 20_000)
    incremental = [Step("syncd", "initial"), Step("syncd", "1% changed", big // 100), Step("syncd", "no change")]
    return [
        Scenario(f"no latency, {mid:,} leads", mid, False, [Step("syncd", "initial"), Step("baseline", "initial")]),
        Scenario(f"no latency, {big:,} leads", big, False, [*incremental, Step("verify", "verify", big),
                                                             Step("baseline", "initial")]),
        Scenario(f"realistic latency, {lat:,} leads", lat, True, [
            Step("syncd", "initial"), Step("baseline", "initial"),
            Step("syncd", "1% changed", lat // 100), Step("baseline", "1% changed", 0),
            Step("syncd", "no change"), Step("baseline", "no change")]),
    ]


class Sim:
    """`syncd sim` in its own process."""

    def __init__(self, leads: int, latency: bool, workdir: Path) -> None:
        args = [PY, "-m", "syncd", "sim", "--port", "0", "--leads", str(leads), "--seed", "42",
                "--job-delay", "2" if latency else "0"]
        if latency:
            args += ["--sf-latency", "0.15", "--cxone-latency", "0.1"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=workdir)
        assert self.proc.stdout is not None
        lines: list[str] = []
        while not (any(line == "[cxone.contacts_batch]" for line in lines) and lines[-1].startswith("client_id")):
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the simulator exited before printing its configuration")
            lines.append(line.rstrip("\n"))
        self.url = lines[0].rsplit(" at ", 1)[1]
        self.env = dict(line.removeprefix("#   export ").split("=", 1) for line in lines
                        if line.startswith("#   export "))
        self.config = "\n".join(line for line in lines if not line.startswith("#")) + "\n"

    def stats(self) -> dict[str, Any]:
        return dict(requests.get(f"{self.url}/_sim/stats", timeout=60).json())

    def mutate(self, count: int) -> None:
        stamp = (datetime.now(timezone.utc) - timedelta(seconds=2)).isoformat()
        requests.post(f"{self.url}/_sim/mutate", json={"count": count, "seed": 9, "modstamp": stamp}, timeout=600)
        time.sleep(1.1)  # the next window must end after the changes' second

    def pad_list(self, total: int) -> None:
        """Fill the CXone list up to ``total`` records (the extra ones syncd never sent)."""
        requests.post(f"{self.url}/_sim/cxone/pad", json={"total": total}, timeout=600)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def measure(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[dict[str, Any], str]:
    proc = subprocess.run([PY, str(ROOT / "bench" / "measure.py"), "--", *cmd], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=7200)
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    if figures["returncode"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
    return figures, proc.stdout


def delta(before: dict[str, Any], after: dict[str, Any], prefix: str) -> tuple[int, int]:
    calls = sum(n for k, n in after["calls"].items() if k.startswith(prefix)) - \
        sum(n for k, n in before["calls"].items() if k.startswith(prefix))
    sent = after["bytes_in"].get(prefix.rstrip("."), 0) - before["bytes_in"].get(prefix.rstrip("."), 0)
    return calls, sent


def run_scenario(sc: Scenario, workdir: Path) -> None:
    print(f"\n== {sc.name}", flush=True)
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    sim = Sim(sc.leads, sc.latency, workdir)
    print(f"   simulator ready in {time.monotonic() - started:.0f}s at {sim.url}", flush=True)
    try:
        config = workdir / "syncd.toml"
        text = sim.config.replace('path = "state/syncd.db"', f'path = "{workdir / "state" / "syncd.db"}"')
        text = text.replace("poll_interval_seconds = 0.2", "poll_interval_seconds = 5")  # syncd's default
        config.write_text(text)
        env = {**os.environ, **sim.env}
        for step in sc.steps:
            if step.tool == "verify":
                sim.pad_list(step.change)
            elif step.change:
                sim.mutate(step.change)
            before = sim.stats()
            if step.tool == "verify":
                cmd = [PY, "-m", "syncd", "verify", "--config", str(config)]
            elif step.tool == "syncd":
                cmd = [PY, "-m", "syncd", "sync", "--config", str(config)]
            else:
                cmd = [PY, str(ROOT / "bench" / "baseline.py"), "--config", str(config)]
            figures, out = measure(cmd, env, workdir)
            after = sim.stats()
            word = "verified " if step.tool == "verify" else "read "
            read = int(out.split(word, 1)[1].split()[0].replace(",", "").rstrip(","))
            sf_calls, sf_bytes = delta(before, after, "sf.")
            cx_calls, cx_bytes = delta(before, after, "cxone.")
            dnc_calls, dnc_bytes = delta(before, after, "dnc.")  # DNC-group calls are CXone calls too
            cx_calls, cx_bytes = cx_calls + dnc_calls, cx_bytes + dnc_bytes
            db = workdir / "state" / "syncd.db"
            state_bytes = sum(p.stat().st_size for p in db.parent.glob("syncd.db*")) if step.tool == "syncd" else 0
            tracked = 0
            if step.tool == "syncd":
                shown = subprocess.run([PY, "-m", "syncd", "status", "--json", "--config", str(config)], env=env,
                                       capture_output=True, text=True, check=True).stdout
                tracked = json.loads(shown)["leads"]["tracked"]
            row = {"scenario": sc.name, "leads": sc.leads, "latency": sc.latency, "tool": step.tool,
                   "run": step.label, "read": read, **figures, "sf_calls": sf_calls, "sf_bytes": sf_bytes,
                   "cxone_calls": cx_calls, "cxone_bytes": cx_bytes, "state_bytes": state_bytes, "tracked": tracked}
            sc.results.append(row)
            print(f"   {step.tool:8s} {step.label:11s} {figures['wall']:8.1f}s wall {figures['cpu']:7.1f}s cpu "
                  f"{figures['maxrss_mb']:7.0f} MB  read {read:,}  CXone calls {cx_calls}", flush=True)
    finally:
        sim.stop()


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    mem = next((int(line.split()[1]) // 1024 // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0)
    return (f"{os.cpu_count()} cores ({cpu}), {mem} GiB RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}; the simulator in a separate process on the same machine")


def fmt_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| scenario | tool | run | read | wall s | records/s | CPU s | CPU µs/lead | peak RSS MB | SF calls | "
            "CXone calls | sent to SF | sent to CXone | state DB |")
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        per = f"{r['cpu'] / r['read'] * 1e6:.0f}" if r["read"] else "-"
        rate = f"{r['read'] / r['wall']:,.0f}" if r["read"] else "0"
        out.append(f"| {r['scenario']} | {r['tool']} | {r['run']} | {r['read']:,} | {r['wall']:.1f} | {rate} | "
                   f"{r['cpu']:.1f} | {per} | {r['maxrss_mb']:.0f} | {r['sf_calls']} | {r['cxone_calls']} | "
                   f"{fmt_bytes(r['sf_bytes'])} | {fmt_bytes(r['cxone_bytes'])} | "
                   f"{fmt_bytes(r['state_bytes']) if r['tool'] == 'syncd' else '-'} |")
    return "\n".join(out)


def find(rows: list[dict[str, Any]], **kw: Any) -> dict[str, Any] | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in kw.items())), None)


def targets(sc: list[Scenario]) -> list[str]:
    mid, big, lat = sc[0].results, sc[1].results, sc[2].results
    lines = []

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    s_mid, s_big = find(mid, tool="syncd", run="initial"), find(big, tool="syncd", run="initial")
    if s_mid and s_big:
        ratio = s_big["maxrss_mb"] / s_mid["maxrss_mb"]
        lines.append(f"- Memory flat with org size: peak RSS {s_big['maxrss_mb']:.0f} MB at {s_big['leads']:,} vs "
                     f"{s_mid['maxrss_mb']:.0f} MB at {s_mid['leads']:,} (×{ratio:.2f}; target ≤ ×1.5 and < 250 MB): "
                     f"{verdict(ratio <= 1.5 and s_big['maxrss_mb'] < 250)}")
        per = s_big["cpu"] / s_big["read"] * 1e6
        lines.append(f"- CPU per lead, initial sync of {s_big['leads']:,} without latency: {per:.0f} µs "
                     f"(target ≤ 60 µs): {verdict(per <= 60)}")
    s_lat, b_lat = find(lat, tool="syncd", run="initial"), find(lat, tool="baseline", run="initial")
    if s_lat and b_lat:
        x = b_lat["wall"] / s_lat["wall"]
        lines.append(f"- Realistic latency, initial sync of {s_lat['leads']:,}: {s_lat['wall']:.1f} s vs baseline "
                     f"{b_lat['wall']:.1f} s, ×{x:.1f} faster (target ≥ ×10): {verdict(x >= 10)}")
    for rows in (lat, big):
        init, one = find(rows, tool="syncd", run="initial"), find(rows, tool="syncd", run="1% changed")
        if init and one:
            share = one["cxone_bytes"] / init["cxone_bytes"]
            lines.append(f"- {init['scenario']}: the 1% run sent {one['cxone_bytes']:,} bytes to CXone, "
                         f"{share:.2%} of the initial sync's (target ≤ 2%): {verdict(share <= 0.02)}")
    init, one = find(big, tool="syncd", run="initial"), find(big, tool="syncd", run="1% changed")
    if init and one:
        share = one["wall"] / init["wall"]
        lines.append(f"- {init['scenario']}: the 1% run took {one['wall']:.1f} s, {share:.1%} of the initial "
                     f"{init['wall']:.1f} s (target ≤ 5%): {verdict(share <= 0.05)}")
    for rows in (lat, big):
        none = find(rows, tool="syncd", run="no change")
        if none:
            lines.append(f"- {none['scenario']}: the no-change run made {none['cxone_calls']} CXone calls "
                         f"(target 0): {verdict(none['cxone_calls'] == 0)}")
    ver = find(big, tool="verify", run="verify")
    if ver:
        lines.append(f"- `syncd verify` of a {ver['read']:,}-record list: peak RSS {ver['maxrss_mb']:.0f} MB in "
                     f"{ver['wall']:.1f} s (target < 250 MB): {verdict(ver['maxrss_mb'] < 250)}")
    per_lead = [r["state_bytes"] / r["tracked"] for r in mid + big if r["tool"] == "syncd" and r["tracked"]]
    if per_lead:
        worst = max(per_lead)
        lines.append(f"- State database: at most {worst:.0f} bytes per tracked lead (target < 600): "
                     f"{verdict(worst < 600)}")
    return lines


def chart(sc: list[Scenario], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (wall, rss) = plt.subplots(1, 2, figsize=(11, 4.2))
    for tool, marker in (("syncd", "o-"), ("baseline", "s--")):
        points = sorted((r["leads"], r["wall"], r["maxrss_mb"]) for s in sc[:2] for r in s.results
                        if r["tool"] == tool and r["run"] == "initial")
        if points:
            wall.plot([p[0] for p in points], [p[1] for p in points], marker, label=tool)
            rss.plot([p[0] for p in points], [p[2] for p in points], marker, label=tool)
    for ax, title, unit in ((wall, "Initial sync wall time (no latency)", "seconds"),
                            (rss, "Client peak RSS (initial sync)", "MB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("leads in the org")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="the quick variant (under 2 minutes)")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()
    results_dir = ROOT / "bench" / "results"
    shutil.rmtree(results_dir, ignore_errors=True)
    chosen = scenarios(args.small)
    started = time.monotonic()
    for i, sc in enumerate(chosen):
        run_scenario(sc, results_dir / f"s{i}")
    rows = [r for sc in chosen for r in sc.results]
    (results_dir / "results.json").write_text(json.dumps(rows, indent=1))
    chart_path = ROOT / "bench" / ("chart-small.png" if args.small else "chart.png")
    chart(chosen, chart_path)
    command = "make bench-small" if args.small else "make bench"
    doc = [
        "# Benchmarks", "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d} with `{command}` (`python bench/run.py"
        f"{' --small' if args.small else ''}`) in {time.monotonic() - started:.0f} s.", "",
        f"Machine: {machine()}.", "",
        "syncd runs with its defaults (batches of 5,000, 4 jobs in flight, polls from 5 s growing); the baseline "
        "is `bench/baseline.py`, the tutorial's approach (everything in memory, chunks of 500 uploaded one at a time, "
        "each polled every 5 s to completion, every lead re-sent every run) with syncd's own transform and sink. "
        "Realistic latency: 150 ms per Salesforce page, 100 ms per CXone call, jobs complete 2 s after upload. "
        "Figures are for the client process only (wall, user+sys CPU, peak RSS); calls and bytes are what the "
        "simulator received.", "",
        table(rows), "",
        "## Targets", "",
        *(["The targets are set for `make bench`'s sizes. At these sizes fixed costs (process start-up, the "
            "WAL file, the simulated 2 s job delay) dominate, so some read NOT met here by design; this variant "
            "checks that the bench runs end to end.", ""] if args.small else []),
        *targets(chosen), "",
        f"![wall time and peak RSS against lead count]({os.path.relpath(chart_path, args.out.resolve().parent)})",
        "",
    ]
    args.out.write_text("\n".join(doc))
    print(f"\nwrote {args.out} and {chart_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
