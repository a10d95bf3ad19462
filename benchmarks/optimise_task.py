"""The Optimise task end to end: ``law run Optimise`` on the demo data, one and two cuts.

For each config (configs/optimise_demo.yaml: H_T; configs/optimise_two_cuts.yaml: H_T and
the leading jet's p_T) this script, in a fresh store in a temporary folder,

1. runs ``law run Optimise`` once cold, into an empty store of its own (generation,
   skims, the ordinary chain up to Fit, the loose selections, the optimisation);
2. removes the Optimise output and reruns it ``--repeat`` times (the loose tables and
   Fit reused), each time reading its provenance: the task's time, the compile time, the
   evaluations;
3. times ``--repeat`` no-op reruns (nothing runs; goal: under 2 s);
4. reports the events behind the loose tables, the relaxed and the exact objective at
   the start and at the optimum, and the peak resident memory of the law process.

Goal of issue 16: two parameters on 300 k events in under 60 s on 2 cores.

    .venv/bin/python benchmarks/optimise_task.py [--repeat 3] [--keep]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

from _common import ROOT, VENV_BIN, law_env, machine, markdown_table, stats

CONFIGS = ("optimise_demo.yaml", "optimise_two_cuts.yaml")
GOAL_SECONDS = 60.0
NOOP_GOAL_SECONDS = 2.0


def run(config: Path, store: Path) -> tuple[float, float]:
    """(wall time, peak resident MB of the law process) of ``law run Optimise``."""
    import time

    t0 = time.perf_counter()
    proc = subprocess.run([str(VENV_BIN / "law"), "run", "Optimise", "--config", str(config)], cwd=ROOT,
                          env=law_env(store), capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"law run Optimise failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def measure(config: Path, store: Path, repeat: int) -> dict:
    cold, _ = run(config, store)
    from analysis.load import load_config

    base = store / "by-name" / load_config(config).name
    task_times, compile_times, per_step, peak = [], [], [], 0.0
    for _ in range(repeat):
        shutil.rmtree((base / "Optimise" / "all").resolve())
        _, peak = run(config, store)
        record = json.loads((base / "Optimise" / "all" / "provenance.json").read_text())
        task_times.append(record["optimisation"]["seconds"])
        compile_times.append(record["optimisation"]["compile_seconds"])
        per_step.append(record["optimisation"]["seconds_per_evaluation"])
        timing = record["optimisation"]
    noop = [run(config, store)[0] for _ in range(repeat)]
    summary = json.loads((base / "Optimise" / "all" / "optimise.json").read_text())
    events = sum(json.loads((p / "provenance.json").read_text()).get("events_generated", 0) or 0
                 for p in (base / "LooseSelect").iterdir())
    rows = sum(json.loads((p / "provenance.json").read_text()).get("events_processed", 0) or 0
               for p in (base / "LooseSelect").iterdir())
    return {"config": config.name, "cold": cold, "task": stats(task_times), "compile": stats(compile_times),
            "per_step": stats(per_step), "refine": timing["refine_seconds"], "scan": timing["scan_seconds"],
            "noop": stats(noop), "summary": summary, "events": events, "preselected": rows, "peak_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the temporary store")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="heirloom-optimise-"))
    try:
        results = [measure(ROOT / "configs" / name, folder / f"store-{i}", args.repeat) for i, name in enumerate(CONFIGS)]
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    rows = []
    for r in results:
        s = r["summary"]
        rows.append([r["config"], len(s["parameters"]), f"{r['events']:,} ({r['preselected']:,} preselected)",
                     r["cold"], r["task"][0], r["compile"][0], s["evaluations"], r["per_step"][0], r["refine"], r["scan"],
                     f"{s['relaxed']['optimum']:.4f} / {s['hard']['optimum']:.4f}",
                     f"{s['hard']['start']:.4f} -> {s['hard']['optimum']:.4f}", r["noop"][0], round(r["peak_mb"])])
    print(markdown_table(["config", "parameters", "events", "cold law run Optimise (s)", "Optimise task, median (s)",
                          "compile (s)", "evaluations", "per evaluation (s)", "exact refinement (s)", "scan (s)",
                          "relaxed / exact objective at the optimum",
                          "exact objective: start -> optimum", "no-op rerun, median (s)", "peak RSS (MB)"], rows))
    two = next(r for r in results if r["config"] == "optimise_two_cuts.yaml")
    print(f"\ngoal: two parameters under {GOAL_SECONDS:.0f} s (cold, everything included): {two['cold']:.1f} s; "
          f"no-op under {NOOP_GOAL_SECONDS:.0f} s: {max(r['noop'][0] for r in results):.2f} s")
    print(f"optimum: {[r['summary']['optimum'] for r in results]}")
    print(machine())


if __name__ == "__main__":
    main()
