"""The I/O floor (issue 15, goal 3): Select's event loop against a read-only pass over the
same skim files.

The floor is what no event loop can beat: uproot reading every branch of the skims (the
skim keeps exactly the branches the config reads) into awkward arrays, nothing else. The
event loop is what the Select task runs (``plan_from_config`` + ``run_selection`` with the
iterative executor, as in ``throughput.py``), on the same files. Both are timed in this
process, alternating, after one warm-up each (the files are then in the page cache for
both), and the table gives their events/s and the loop's share of the floor's speed
(goal: at least 0.6).

    .venv/bin/python benchmarks/io_floor.py --workdir /tmp/hb          # reuses throughput.py's files
    .venv/bin/python benchmarks/io_floor.py --events 200000 --repeat 3 # a quick check
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, markdown_table  # noqa: E402
from throughput import prepare  # noqa: E402

GOAL = 0.6


def read_only(files: list[str], tree: str = "Events") -> int:
    """Read every branch of ``files`` with uproot; return the number of events read."""
    import uproot

    events = 0
    for path in files:
        with uproot.open(path) as handle:
            arrays = handle[tree].arrays(how=dict)
            events += len(next(iter(arrays.values())))
    return events


def event_loop(cfg, dataset: str, files: list[str]) -> int:
    """Select's event loop over ``files``; return the number of events it read."""
    from analysis.select.executors import make_executor
    from analysis.select.processor import run_selection
    from analysis.select.selection import plan_from_config

    plan = plan_from_config(cfg, dataset)
    output = run_selection(files, plan, make_executor("iterative", progress=False), tree=cfg.tree,
                           chunksize=int(cfg.section("select", "chunk_size", default=200_000)))
    return int(output["events"])


def alternate(cfg, chunks: dict, repeat: int) -> dict[str, list[float]]:
    """Seconds of ``repeat`` alternating passes of each kind over every dataset's skims."""
    files = {dataset: [path for path, _ in found] for dataset, found in chunks.items()}
    kinds = {"read-only pass": lambda: sum(read_only(f) for f in files.values()),
             "Select event loop": lambda: sum(event_loop(cfg, d, f) for d, f in files.items())}
    for run in kinds.values():                      # warm-up: imports, page cache
        run()
    times: dict[str, list[float]] = {name: [] for name in kinds}
    events: dict[str, int] = {}
    for _ in range(repeat):
        for name, run in kinds.items():
            t0 = time.perf_counter()
            events[name] = run()
            times[name].append(time.perf_counter() - t0)
    if len(set(events.values())) != 1:
        raise SystemExit(f"the two passes read different numbers of events: {events}")
    times["events"] = [float(next(iter(events.values())))]
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="generated events (half ttbar, half wjets)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", type=Path, help="keep (and reuse) the files and the store here")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="heirloom-io-floor-"))
    setup = prepare(workdir, args.events)
    times = alternate(setup["nominal"], setup["chunks"], args.repeat)
    events = times.pop("events")[0]
    floor = statistics.median(times["read-only pass"])
    rows = [[name, statistics.median(t), min(t), max(t), f"{events / statistics.median(t) / 1e6:.2f}",
             f"{floor / statistics.median(t):.2f}"] for name, t in times.items()]
    print(f"\n## The I/O floor ({args.repeat} alternating runs each; {machine()})\n")
    print(f"{int(events):,} skimmed events in {sum(len(c) for c in setup['chunks'].values())} skim files; "
          f"{setup['law']}\n")
    print(markdown_table(["pass", "median [s]", "min [s]", "max [s]", "MHz", "speed / read-only"], rows))
    share = floor / statistics.median(times["Select event loop"])
    print(f"\n- goal: the event loop at least {GOAL} of the read-only pass's speed: {share:.2f} "
          f"{'meets it' if share >= GOAL else 'misses it'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
