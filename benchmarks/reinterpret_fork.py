"""Wall time of a reinterpretation fork relative to the full analysis it forks.

For each repetition, in a fresh store: ``law run Plot --config configs/agc_ttbar.yaml``
(the AGC analysis, every systematic, the fit and the plots), then ``law run All`` of the
same config (what it adds: the impact ranking and the significance; the two together are
the full analysis, what ``./setup.sh demo`` produces), then ``law run Limit --config
configs/reinterpret_example.yaml`` (a Z' signal added: its Generate/Skim/Select/Histogram,
the merged histograms and the CLs limit). Reports the wall times, the fork's fraction of
the analysis up to Plot and of the full analysis, and the tasks each ran (from the
store's runs.jsonl).

    .venv/bin/python benchmarks/reinterpret_fork.py [--repeat 1] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from collections import Counter
from pathlib import Path

from _common import ROOT, law_run, machine, markdown_table


def tasks_ran(store: Path, start: int) -> tuple[int, str]:
    lines = (store / "runs.jsonl").read_text().splitlines()[start:]
    counts = Counter(json.loads(line)["task"] for line in lines if line.strip())
    return sum(counts.values()), ", ".join(f"{n} {task}" for task, n in sorted(counts.items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2, help="luigi workers for both runs")
    args = ap.parse_args()
    analysis, fork = ROOT / "configs" / "agc_ttbar.yaml", ROOT / "configs" / "reinterpret_example.yaml"
    plot, everything, limit, ran = [], [], [], {}
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="heirloom-reinterpret-") as tmp:
            store = Path(tmp) / "store"
            print(f"[{i + 1}/{args.repeat}] the AGC analysis (law run Plot, then All) ...", flush=True)
            plot.append(law_run("Plot", analysis, store, "--workers", str(args.workers)))
            ran["analysis"] = tasks_ran(store, 0)
            everything.append(plot[-1] + law_run("All", analysis, store, "--workers", str(args.workers)))
            ran["all"] = tasks_ran(store, 0)
            before = len((store / "runs.jsonl").read_text().splitlines())
            print(f"[{i + 1}/{args.repeat}] the Z' fork (law run Limit) ...", flush=True)
            limit.append(law_run("Limit", fork, store, "--workers", str(args.workers)))
            ran["fork"] = tasks_ran(store, before)
    median = statistics.median
    rows = [["`law run Plot` configs/agc_ttbar.yaml (fresh store)", median(plot), min(plot), ran["analysis"][0],
             1.0, ""],
            ["... then `law run All` (+ ranking, significance): the full analysis", median(everything),
             min(everything), ran["all"][0], "", 1.0],
            ["`law run Limit` configs/reinterpret_example.yaml (after it)", median(limit), min(limit),
             ran["fork"][0], median(limit) / median(plot), median(limit) / median(everything)]]
    print(f"\n## Reinterpretation fork vs full analysis (median of {args.repeat}; {machine()})\n")
    print(markdown_table(["run", "median [s]", "min [s]", "tasks run", "/ up to Plot", "/ full analysis (goal 0.1)"],
                         rows))
    print(f"\n- the analysis ran: {ran['all'][1]}\n- the fork ran: {ran['fork'][1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
