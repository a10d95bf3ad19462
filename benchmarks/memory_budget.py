"""How much memory Select's event loop takes per event: the working factor of ``select.memory_mb``.

Setup (not timed): a fork of configs/agc_ttbar.yaml (every systematic: the heaviest
event loop of the project) whose ttbar dataset has ``--events`` generated events, skimmed
into one store (``law run Select --dataset ttbar``). Then, for each chunk size, a fresh
process runs Select's event loop over the skims with the iterative executor
(``run_selection``). It reports the memory the process held before the loop and its
peak, and the skims' uncompressed bytes per event
(``analysis.select.memory.bytes_per_event``). From the smallest and the largest chunk: the
slope (memory per byte of a chunk's branches as read; with a margin,
``analysis.select.memory.WORKING_FACTOR``) and what the loop adds before it grows
(``LOOP_MB``). Then it checks budgets: for each ``--budgets`` value, the chunk size
``chunk_for_budget`` picks and the peak of a run with it.

    .venv/bin/python benchmarks/memory_budget.py [--events 600000] [--chunks 25000 50000 100000 200000]

With ``--skim`` it measures Skim instead: for each chunk size, a fresh process skims that
many events of a generated ttbar file with the AGC's branches and preselection
(``tasks.skim_pool.run_job``, what a Skim runs), giving the memory per byte of a chunk's
branches (``analysis.io.budget.SKIM_FACTOR``); and the peak of ``law run Skim`` with a
1,000-event chunk, what the process holds before its first chunk (``SKIM_OVERHEAD_MB``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT, law_run, machine, markdown_table

FORK = """\
extends: {agc}
name: bench_memory
datasets:
  ttbar: {{generator: {{process: ttbar, events: {events}}}}}
"""

PROBE = """
import json, sys
sys.path.insert(0, {root!r})
from analysis.load import load_config
from analysis.select.executors import make_executor
from analysis.select.memory import held_mb, peak_mb, bytes_per_event, chunk_for_budget
from analysis.select.processor import run_selection
from analysis.select.selection import plan_from_config
cfg = load_config({config!r})
plan = plan_from_config(cfg, "ttbar")
files = {files!r}
per_event = bytes_per_event(files)
held = held_mb()
chunk = {chunk} or chunk_for_budget({budget}, held, per_event, 200000)
out = run_selection(files, plan, make_executor("iterative", progress=False), tree="Events", chunksize=chunk)
print(json.dumps({{"held": held, "peak": peak_mb(), "per_event": per_event, "chunk": chunk, "events": out["events"]}}))
"""

SKIM_PROBE = """
import json, sys
sys.path.insert(0, {root!r})
import uproot
from analysis.load import load_config
from analysis.io.budget import bytes_per_event
from analysis.io.columns import needed_branches
from analysis.select.memory import held_mb
from tasks.skim_pool import SkimJob, run_job
cfg = load_config({config!r})
with uproot.open({source!r}) as handle:
    available = handle["Events"].keys(recursive=False)
branches = tuple(needed_branches(cfg, available))
pre = ("skim", "preselection") if "preselection" in cfg.section("skim", default={{}}) else None
weight = ("event_weight",) if "event_weight" in cfg.data else None
job = SkimJob({config!r}, {source!r}, "Events", branches, 0, {chunk}, "root", pre, weight)
held = held_mb()
stats = run_job(cfg, job, __import__("pathlib").Path({outdir!r}))
print(json.dumps({{"held": held, "peak": stats["peak_mb"], "per_event": bytes_per_event([{source!r}], branches=branches),
                  "chunk": {chunk}, "events": stats["events_in"], "branches": len(branches)}}))
"""


def skim_probe(config: Path, source: str, chunk: int, outdir: Path) -> dict:
    """One chunk skimmed in a fresh process (``tasks.skim_pool.run_job``, what a Skim runs)."""
    outdir.mkdir(parents=True, exist_ok=True)
    code = SKIM_PROBE.format(root=str(ROOT), config=str(config), source=source, chunk=chunk, outdir=str(outdir))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def skim_memory(tmp: Path, events: int, chunks: list) -> None:
    """Skim's memory per byte of a chunk's branches (``analysis.io.budget.SKIM_FACTOR``),
    and what ``law run`` holds when its first Skim starts (``SKIM_OVERHEAD_MB``)."""
    config, store = tmp / "skim.yaml", tmp / "skim-store"
    config.write_text(FORK.format(agc=ROOT / "configs" / "agc_ttbar.yaml", events=events)
                      + "skim: {chunk_size: 1000}\n")
    law_run("Skim", config, store, "--dataset", "ttbar", "--chunk", "0")
    source = str(store / "by-name" / "bench_memory" / "Generate" / "ttbar" / "events.root")
    first = json.loads((store / "by-name" / "bench_memory" / "Skim" / "ttbar__0" / "provenance.json").read_text())
    rows, runs = [], []
    for chunk in sorted(chunks):
        seen = skim_probe(config, source, min(chunk, events), tmp / f"skim-{chunk}")
        runs.append((seen["events"] * seen["per_event"], seen["peak"] - seen["held"]))
        rows.append([seen["events"], seen["branches"], seen["held"], seen["peak"], seen["per_event"]])
    print(f"\n## Skim's memory per event (AGC branches, generated ttbar; {machine()})\n")
    print(markdown_table(["chunk [events]", "branches", "held before [MB]", "peak [MB]", "bytes/event (input)"], rows))
    (small, small_mb), (large, large_mb) = runs[0], runs[-1]
    slope = (large_mb - small_mb) * 1e6 / (large - small)
    peak = first["peak_memory_mb"]
    print(f"\nmemory per byte of a chunk's branches: {slope:.2f}; `law run Skim`'s peak with a "
          f"1,000-event chunk (what it holds before): {peak} MB")


def probe(config: Path, files: list, chunk: int = 0, budget: int = 0) -> dict:
    """One event loop in a fresh process: its memory before and at the peak."""
    code = PROBE.format(root=str(ROOT), config=str(config), files=files, chunk=chunk, budget=budget)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=600_000)
    ap.add_argument("--chunks", type=int, nargs="+", default=[25_000, 50_000, 100_000, 200_000])
    ap.add_argument("--budgets", type=int, nargs="+", default=[400, 500, 1000])
    ap.add_argument("--skim", action="store_true", help="measure Skim's memory instead of Select's")
    args = ap.parse_args()
    if args.skim:
        with tempfile.TemporaryDirectory(prefix="heirloom-memory-") as tmp:
            skim_memory(Path(tmp), args.events, args.chunks)
        return 0
    with tempfile.TemporaryDirectory(prefix="heirloom-memory-") as tmp:
        config, store = Path(tmp) / "fork.yaml", Path(tmp) / "store"
        config.write_text(FORK.format(agc=ROOT / "configs" / "agc_ttbar.yaml", events=args.events))
        law_run("Select", config, store, "--dataset", "ttbar")
        files = sorted(str(p) for p in (store / "by-name" / "bench_memory" / "Skim").glob("ttbar__*/skim.root"))
        rows, runs = [], []
        for chunk in sorted(args.chunks):
            seen = probe(config, files, chunk=chunk)
            runs.append((min(chunk, seen["events"]) * seen["per_event"], seen["peak"] - seen["held"]))
            rows.append([f"chunk_size {chunk}", seen["chunk"], seen["held"], seen["peak"], seen["per_event"], ""])
        for budget in args.budgets:
            seen = probe(config, files, budget=budget)
            rows.append([f"memory_mb {budget}", seen["chunk"], seen["held"], seen["peak"], seen["per_event"],
                         "within" if seen["peak"] <= budget else "PASSED"])
    print(f"\n## Select's memory per event (AGC systematics, {seen['events']:,} skimmed ttbar events; {machine()})\n")
    print(markdown_table(["run", "chunk [events]", "held before [MB]", "peak [MB]", "bytes/event (skims)",
                          "budget kept"], rows))
    (small, small_mb), (large, large_mb) = runs[0], runs[-1]
    slope = (large_mb - small_mb) * 1e6 / (large - small)
    print(f"\nmemory per byte of a chunk's branches: {slope:.2f}; the loop before it grows: "
          f"{small_mb - slope * small / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
