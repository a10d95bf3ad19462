"""The cost of a store that checks itself: rehashing the input objects a task reads.

Every task rehashes (sha256) the objects it reads before it uses them
(``analysis.store.integrity.damage``); the goal of the project is under 5 % of the task
time. This script

1. runs ``law run Plot`` of a config into a fresh store (default: configs/demo.yaml, the
   whole AGC chain on generated data) and reads each task's time from ``runs.jsonl``,
2. for every task that ran, times the rehash of its input objects ``--repeat`` times
   (from the page cache, as in a run, where the producer just wrote them) and takes the
   median,
3. prints, per task family, the task time, the rehash time and their ratio, and the
   total; also the time of the completeness check of every task (what a no-op rerun does).

    .venv/bin/python benchmarks/verify_cost.py [--config configs/demo.yaml] [--repeat 5]
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from _common import DEMO, law_run, machine, markdown_table

GOAL = 0.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=DEMO)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the store (printed)")
    args = parser.parse_args()

    from analysis.store import integrity
    from analysis.store import objects as store

    folder = Path(tempfile.mkdtemp(prefix="heirloom-verify-"))
    root = folder / "store"
    wall = law_run("Plot", args.config.resolve(), root)
    records = [json.loads(line) for line in (root / "runs.jsonl").read_text().splitlines()]
    task_s, verify_s, complete_s = collections.Counter(), collections.Counter(), 0.0
    counts, sizes = collections.Counter(), collections.Counter()
    for record in records:
        family = record["task"]
        entry = store.entry(family, record["key"], root)
        provenance = json.loads((entry.path / "provenance.json").read_text())
        inputs = [store.entry(i["task"], i["key"], root) for i in provenance["inputs"].values() if "task" in i]
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            for item in inputs:
                assert not integrity.damage(item, recheck=True), item
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        assert integrity.incomplete(entry) is None
        complete_s += time.perf_counter() - t0
        task_s[family] += record["seconds"]
        verify_s[family] += statistics.median(times)
        counts[family] += 1
        sizes[family] += sum(sum(p.stat().st_size for p in i.path.iterdir()) for i in inputs)
    rows = [[family, counts[family], f"{sizes[family] / 1e6:.1f}", task_s[family], verify_s[family],
             f"{100 * verify_s[family] / max(task_s[family], 1e-9):.2f} %"] for family in task_s]
    total_task, total_verify = sum(task_s.values()), sum(verify_s.values())
    rows.append(["**all**", sum(counts.values()), f"{sum(sizes.values()) / 1e6:.1f}", total_task, total_verify,
                 f"**{100 * total_verify / total_task:.2f} %**"])
    print(f"# Rehashing input objects: {args.config} ({machine()})\n")
    print(markdown_table(["task", "tasks", "inputs read (MB)", "task time (s)", "rehash (s, median of "
                          f"{args.repeat})", "rehash / task"], rows))
    unique = {(e.family, e.key): e for record in records
              for e in [store.entry(i["task"], i["key"], root) for i in json.loads(
                  (store.entry(record["task"], record["key"], root).path / "provenance.json").read_text()
              )["inputs"].values() if "task" in i]}
    once = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        for item in unique.values():
            integrity.damage(item, recheck=True)
        once.append(time.perf_counter() - t0)
    print(f"\nper task, as above: every task rehashes its inputs (a fresh process per task, e.g. --workers 2); "
          f"in one process (--workers 1) each of the {len(unique)} objects read is rehashed once: "
          f"{statistics.median(once):.3f} s = {100 * statistics.median(once) / total_task:.2f} % of task time")
    print(f"\nfirst run (law run Plot, wall): {wall:.1f} s; completeness check of all {len(records)} objects "
          f"(what a no-op rerun adds): {1000 * complete_s:.1f} ms")
    print(f"goal: rehash under {100 * GOAL:.0f} % of task time: {'met' if total_verify / total_task < GOAL else 'NOT met'}")
    if args.keep:
        print(f"store kept: {root}")
    else:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
