"""The demo's branches as Slurm jobs versus a local run, and the start-up of Dask on Slurm.

Starts the single-node test Slurm (tests/services/slurm.sh; needs root and Debian's
slurm-wlm + munge, which ``./setup.sh test`` installs), then per repeat, each into a
fresh store:

1. ``law run Histograms --config <cfg>`` (everything in one process: the reference);
2. ``law run Histograms --config <cfg> --workflow slurm`` (one job per task, or
   ``--tasks-per-job N``), counting the jobs submitted, and checking that both stores hold
   the same keys and byte-identical histograms;

and ``--dask`` times Dask on Slurm: from ``make_cluster("slurm", ...)`` and
``scale(jobs=N)`` to N workers connected (the dask-jobqueue workers are Slurm jobs).
Prints Markdown tables (median, min, max). On one node the batch run can only lose: what
it shows is the per-job overhead (a job's start-up, law's polling) that a real cluster's
parallelism has to pay back.

    .venv/bin/python benchmarks/batch_slurm.py [--config configs/demo.yaml] [--repeat 3] [--tasks-per-job 1] [--dask 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from _common import DEMO, ROOT, law_run, machine, markdown_table, stats

SERVICE = ROOT / "tests" / "services" / "slurm.sh"


def count_jobs(store: Path) -> int:
    """Jobs law submitted into ``store`` (its job data files, retries included)."""
    total = 0
    for path in (store / "batch" / "jobs").glob("*/*/slurm_jobs_*.json"):
        data = json.loads(path.read_text())
        total += len(data["jobs"]) + sum(data["attempts"].values())
    return total


def same_results(local: Path, batch: Path) -> int:
    """Assert both stores hold the same keys and byte-identical histograms; return the count."""
    def objects(store: Path) -> set:
        return {p.parent.relative_to(store / "objects") for p in (store / "objects").glob("*/*/*/provenance.json")}

    keys = objects(local)
    if keys != objects(batch):
        raise SystemExit(f"the Slurm run made other keys than the local run: {sorted(keys ^ objects(batch))[:5]}")
    for key in keys:
        mine = local / "objects" / key / "histograms.json"
        if mine.exists() and mine.read_bytes() != (batch / "objects" / key / "histograms.json").read_bytes():
            raise SystemExit(f"{key}: the histograms differ between the local and the Slurm run")
    return len(keys)


def dask_startup(jobs: int, logs: Path) -> float:
    """Seconds from creating a SLURMCluster to ``jobs`` workers connected."""
    from distributed import Client

    from analysis.batch.dask_clusters import make_cluster
    from analysis.batch.resources import Resources

    t0 = time.perf_counter()
    cluster = make_cluster("slurm", Resources(cpus=1, memory_mb=1024), jobs=0, log_directory=str(logs))
    try:
        cluster.scale(jobs=jobs)
        with Client(cluster) as client:
            client.wait_for_workers(jobs, timeout=300)
            return time.perf_counter() - t0
    finally:
        cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEMO)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tasks-per-job", type=int, default=1)
    parser.add_argument("--dask", type=int, default=1, help="Dask workers to start on Slurm (0: skip)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="heirloom-bench-slurm-"))
    subprocess.run(["bash", str(SERVICE), "start", str(work / "slurm")], check=True)
    os.environ["SLURM_CONF"] = str(work / "slurm" / "slurm.conf")
    try:
        local, batch, jobs, startup = [], [], [], []
        for i in range(args.repeat):
            local.append(law_run("Histograms", args.config, work / f"local{i}"))
            store = work / f"batch{i}"
            batch.append(law_run("Histograms", args.config, store, "--workflow", "slurm", "--poll-interval", "1s",
                                 "--tasks-per-job", str(args.tasks_per_job)))
            jobs.append(count_jobs(store))
            same = same_results(work / f"local{i}", store)
            print(f"repeat {i + 1}: local {local[-1]:.1f} s, slurm {batch[-1]:.1f} s ({jobs[-1]} jobs); "
                  f"the same {same} keys, identical histograms", flush=True)
        for _ in range(args.repeat if args.dask else 0):
            startup.append(dask_startup(args.dask, work / "dask-logs"))
            print(f"Dask on Slurm: {args.dask} worker(s) connected after {startup[-1]:.1f} s", flush=True)
    finally:
        subprocess.run(["bash", str(SERVICE), "stop", str(work / "slurm")])

    ref = stats(local)[0]
    rows = [["`law run Histograms` (local)", "-", *stats(local), 1.0],
            [f"`... --workflow slurm --tasks-per-job {args.tasks_per_job}`", jobs[0], *stats(batch),
             stats(batch)[0] / ref]]
    print(f"\n### Demo on the test Slurm vs local ({args.config.name}, {machine()})\n")
    print(markdown_table(["command", "jobs", "median [s]", "min [s]", "max [s]", "/ local"], rows))
    if startup:
        print(f"\n### Dask on Slurm: start-up to {args.dask} worker(s) connected\n")
        print(markdown_table(["workers", "median [s]", "min [s]", "max [s]"], [[args.dask, *stats(startup)]]))


if __name__ == "__main__":
    main()
