"""Where Heirloom's Select + Histogram time goes, on the files of ``throughput.py``.

After a warm-up pass, one pass over every dataset (with systematics) is timed piece by
piece:

* each config expression, inclusive (awkward/NanoEvents read branches lazily, so a
  branch's read and decompression count for the first expression that touches it);
* the rest of ``select_events`` (namespaces, masks, conversions to numpy);
* ``run_selection`` outside ``select_events`` (coffea Runner: preprocessing, NanoEvents
  factory, accumulator merge);
* ``write_selected`` (Parquet), reading it back, ``fill_from_table``.

``--cprofile N`` also prints cProfile's top N functions by own time.

    .venv/bin/python benchmarks/profile_select.py [--events 1000000] [--workdir DIR] [--cprofile 20]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _common import machine, markdown_table
from throughput import PROCESSES, prepare


def one_pass(setup: dict, tmp: Path, spent: Counter) -> None:
    """Select + Histogram of every dataset, adding the time of each step to ``spent``."""
    import pyarrow.parquet as pq

    from analysis.config.model import region_observables
    from analysis.select.executors import make_executor
    from analysis.hist.histograms import fill_from_table
    from analysis.select.processor import run_selection
    from analysis.select.selection import plan_from_config
    from analysis.select.tables import write_selected

    cfg = setup["full"]
    regions = {name: region_observables(r) for name, r in cfg.regions.items()}
    for dataset in PROCESSES:
        files = [path for path, stats in setup["chunks"][dataset] if stats["events_out"]]
        plan = plan_from_config(cfg, dataset)
        steps = (
            ("run_selection", lambda: run_selection(files, plan, make_executor("iterative", progress=False),
                                                    tree=cfg.tree)),
            ("write_selected (Parquet)", lambda: write_selected(output["chunks"], plan, tmp / "selected.parquet")),
            ("read the Parquet table back", lambda: pq.read_table(tmp / "selected.parquet")),
            ("fill_from_table", lambda: fill_from_table(table, regions, cfg.observables, 1.0)),
        )
        for name, step in steps:
            t0 = time.perf_counter()
            result = step()
            spent[name] += time.perf_counter() - t0
            if name == "run_selection":
                output = result
            elif name.startswith("read"):
                table = result


def clocked(spent: Counter, key, function):
    """``function`` that adds its wall time to ``spent[key(*args)]``."""
    def wrapper(*args):
        t0 = time.perf_counter()
        try:
            return function(*args)
        finally:
            spent[key(*args)] += time.perf_counter() - t0
    return wrapper


def breakdown(setup: dict, tmp: Path) -> list:
    from analysis.lang import expr
    from analysis.select import processor

    spent: Counter = Counter()
    evaluate, select_events = expr.Expression.evaluate, processor.select_events
    expr.Expression.evaluate = clocked(spent, lambda self, _: f"expression `{self.text[:58]}`", evaluate)
    processor.select_events = clocked(spent, lambda *_: "select_events", select_events)
    try:
        one_pass(setup, tmp, spent)
    finally:
        expr.Expression.evaluate, processor.select_events = evaluate, select_events
    expressions = {k: v for k, v in spent.items() if k.startswith("expression")}
    rows = sorted(expressions.items(), key=lambda kv: -kv[1])
    rows.append(("rest of `select_events` (namespaces, masks, to numpy)",
                 spent["select_events"] - sum(expressions.values())))
    rows.append(("`run_selection` outside `select_events` (coffea Runner, NanoEvents, merge)",
                 spent["run_selection"] - spent["select_events"]))
    rows += [(f"`{k}`" if " " not in k else k, spent[k])
             for k in ("write_selected (Parquet)", "read the Parquet table back", "fill_from_table")]
    total = sum(v for _, v in rows)
    return [(name, seconds, 100 * seconds / total) for name, seconds in rows]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="generated events in all (default 1M)")
    parser.add_argument("--workdir", type=Path, help="reuse/keep files and store here (default: a temp dir)")
    parser.add_argument("--cprofile", type=int, default=0, metavar="N", help="also print cProfile's top N")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="heirloom-profile-"))
    try:
        setup = prepare(workdir, args.events)
        tmp = workdir / "timing"
        tmp.mkdir(exist_ok=True)
        one_pass(setup, tmp, Counter())                      # warm-up: imports, compiled plans
        rows = breakdown(setup, tmp)
        print(f"\n## Where one Heirloom Select + Histogram pass spends its time ({machine()})\n")
        print(markdown_table(["part", "seconds", "%"], rows))
        if args.cprofile:
            import cProfile
            import io
            import pstats

            profiler = cProfile.Profile()
            profiler.runcall(one_pass, setup, tmp, Counter())
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(args.cprofile)
            print("\ncProfile, by own time:\n\n```\n" + text.getvalue().strip() + "\n```")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
