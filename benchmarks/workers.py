"""Select throughput by executor and worker count, on the same skim files.

Uses the setup of ``throughput.py`` (generated ttbar + wjets files, a ``files:`` fork of
the demo, ``law run Histograms`` once for the skims), then times, in-process, what the
Select task does per dataset: ``run_selection(files, plan, executor)`` with

* ``iterative`` (in-process reference),
* ``futures`` with 1 and 2 workers (a process pool, made anew by coffea on every call,
  as in every Select task),
* ``dask`` with 2 workers (a local cluster started once; its start-up is reported
  separately and not in the timings),
* a what-if that Select does not do: ``futures`` with a loky pool reused across calls
  (one ``loky.ProcessPoolExecutor`` per worker count), to separate pool start-up from event processing.

Every executor must give the same cutflow as the iterative one (asserted).

    .venv/bin/python benchmarks/workers.py [--events 1000000] [--repeat 3] [--workdir DIR] [--chunksize N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, markdown_table
from throughput import PROCESSES, prepare

CONFIGURATIONS = (("iterative", 1), ("futures", 1), ("futures", 2), ("dask", 2),
                  ("futures, reused pool", 1), ("futures, reused pool", 2))


def executor_for(name: str, workers: int):
    """``make_executor`` as Select uses it; "futures, reused pool" is a what-if: coffea's
    FuturesExecutor given a loky pool that outlives the call (not what Select does)."""
    from analysis.select.executors import make_executor

    if name == "futures, reused pool":
        import loky
        from coffea import processor

        if workers not in _POOLS:
            _POOLS[workers] = loky.ProcessPoolExecutor(max_workers=workers)
        return processor.FuturesExecutor(pool=_POOLS[workers], workers=workers, status=False)
    return make_executor(name, workers, progress=False)


_POOLS: dict = {}


def select_all(setup: dict, executor_name: str, workers: int, chunksize: int) -> dict:
    """``run_selection`` of every dataset, as the Select tasks do; returns their cutflows."""
    from analysis.select.processor import run_selection
    from analysis.select.selection import plan_from_config

    cfg = setup["full"]
    cutflows = {}
    for dataset in PROCESSES:
        files = [path for path, stats in setup["chunks"][dataset] if stats["events_out"] > 0]
        executor = executor_for(executor_name, workers)
        output = run_selection(files, plan_from_config(cfg, dataset), executor, tree=cfg.tree, chunksize=chunksize)
        cutflows[dataset] = (output["events"], dict(sorted(output["cutflow_events"].items())))
    return cutflows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="generated events in all (default 1M)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per configuration (default 3)")
    parser.add_argument("--workdir", type=Path, help="reuse/keep files and store here (default: a temp dir)")
    parser.add_argument("--chunksize", type=int, default=200_000,
                        help="events per work item (default 200000, the Select default)")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="heirloom-workers-"))
    try:
        setup = prepare(workdir, args.events)
        events = sum(stats["events_out"] for d in PROCESSES for _, stats in setup["chunks"][d])
        items = sum(-(-stats["events_out"] // args.chunksize)
                    for d in PROCESSES for _, stats in setup["chunks"][d] if stats["events_out"])
        reference = select_all(setup, "iterative", 1, args.chunksize)   # warm-up and the reference
        t0 = time.perf_counter()
        select_all(setup, "dask", 2, args.chunksize)                     # starts the local cluster
        dask_start = time.perf_counter() - t0
        for workers in (1, 2):                                           # starts the reused pools
            select_all(setup, "futures, reused pool", workers, args.chunksize)

        times = {config: [] for config in CONFIGURATIONS}
        for _ in range(args.repeat):                                     # interleaved configurations
            for name, workers in CONFIGURATIONS:
                t0 = time.perf_counter()
                cutflows = select_all(setup, name, workers, args.chunksize)
                times[(name, workers)].append(time.perf_counter() - t0)
                assert cutflows == reference, f"{name} x{workers}: cutflow differs from the iterative one"

        reference_time = statistics.median(times[("iterative", 1)])
        rows = []
        for (name, workers), t in times.items():
            median = statistics.median(t)
            rows.append((name, workers, events, median, min(t), max(t), events / median, reference_time / median))
        print(f"\n## Select throughput by executor (median of {args.repeat}; {machine()})\n")
        print(f"{events:,} skimmed events of {', '.join(PROCESSES)} in {items} work items "
              f"(chunksize {args.chunksize:,}); one `run_selection` per dataset, as the Select task.\n")
        print(markdown_table(["executor", "workers", "events", "median [s]", "min [s]", "max [s]", "events/s",
                              "speed-up vs iterative"], rows))
        print(f"\n- dask local cluster (2 worker processes) start plus its first pass: {dask_start:.1f} s "
              f"(not in the table)")
        print("- every executor gave the iterative executor's cutflow")
    finally:
        for pool in _POOLS.values():
            pool.shutdown()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
