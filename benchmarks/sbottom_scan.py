"""CLs of the whole ATLAS sbottom Region A grid (HEPData ins1748602) on the Dask executor.

What ``law run CLsScan --config configs/sbottom_regionA.yaml --executor dask --workers N``
does inside the task, timed in-process: ``cls_scan.scan`` of every signal point (qtilde,
mu = 1, asymptotics) on a local Dask cluster of N single-threaded worker processes,
the background-only workspace scattered once. For each worker count the cluster is
started and warmed up (one point, so pyhf is imported on every worker) before timing;
the start-up is reported separately. Every worker count must give the CLs of the first
one to 1e-6 (asserted); the reference point 1300_205_60 is printed.

    .venv/bin/python benchmarks/sbottom_scan.py [--workers 1 2] [--repeat 1] [--region RegionA] [--points GLOB]

The grid (217 points) costs about 1 to 5 s a point on one core, so the default
(1 and 2 workers, one run each) takes about half an hour on a 2-core machine;
``--points 'sbottom_1[0-2]*'`` makes a quick check.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, machine, markdown_table

CONFIG = ROOT / "configs" / "sbottom_regionA.yaml"
REFERENCE_POINT = "sbottom_1300_205_60"


def load(region: str, points: list):
    """(background-only workspace, the selected PatchSet entries, labels, settings) as CLsScan reads them."""
    from analysis.likelihood import cls_scan
    from analysis.load import load_config
    from analysis.likelihood.published import read_likelihood, section, select_points

    folder = Path(tempfile.mkdtemp(prefix="heirloom-sbottom-"))
    fork = folder / "fork.yaml"
    fork.write_text(f"extends: {CONFIG}\nname: bench_sbottom\nlikelihood:\n  region: {region}\n")
    cfg = load_config(fork)
    likelihood = read_likelihood(cfg)
    spec = section(cfg)
    names = select_points([p["metadata"]["name"] for p in likelihood.patchset["patches"]], points)
    patches = [p for p in likelihood.patchset["patches"] if p["metadata"]["name"] in set(names)]
    settings = cls_scan.ScanSettings(spec["test_statistic"], float(spec["poi_value"]), spec["calculator"])
    return likelihood.background_only, patches, likelihood.patchset["metadata"]["labels"], settings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Dask worker counts (default 1 2)")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per worker count (default 1)")
    parser.add_argument("--region", default="RegionA", help="folder of the archive (default RegionA)")
    parser.add_argument("--points", nargs="*", default=[], help="globs of point names (default: all)")
    args = parser.parse_args(argv)

    from analysis.likelihood import cls_scan
    from analysis.select.executors import dask_client

    t0 = time.perf_counter()
    background_only, patches, labels, settings = load(args.region, args.points)
    read_seconds = time.perf_counter() - t0
    print(f"read the archive and built the PatchSet of {len(patches)} points in {read_seconds:.1f} s",
          file=sys.stderr, flush=True)

    times, startup, reference = {}, {}, None
    for workers in args.workers:
        t0 = time.perf_counter()
        dask_client(workers)
        cls_scan.scan(background_only, patches[:workers], settings, labels, executor="dask", workers=workers,
                      report=lambda line: None)                                      # warm-up: imports pyhf
        startup[workers] = time.perf_counter() - t0
        times[workers] = []
        for run in range(args.repeat):
            t0 = time.perf_counter()
            points = cls_scan.scan(background_only, patches, settings, labels, executor="dask", workers=workers,
                                   report=lambda line: print(f"  [{workers} worker(s), run {run + 1}] {line}",
                                                             file=sys.stderr, flush=True))
            times[workers].append(time.perf_counter() - t0)
            values = {p.name: (p.cls_obs, *p.cls_exp) for p in points}
            if reference is None:
                reference = values
            for name, numbers in values.items():
                assert all(abs(a - b) <= 1e-6 for a, b in zip(numbers, reference[name])), \
                    f"{name}: CLs with {workers} worker(s) differs from the first run"

    base = statistics.median(times[args.workers[0]])
    rows = []
    for workers, t in times.items():
        median = statistics.median(t)
        rows.append((workers, len(patches), median, min(t), max(t), len(patches) / median, base / median))
    print(f"\n## CLs of the sbottom {args.region} grid on the Dask executor "
          f"(median of {args.repeat}; {machine()})\n")
    print(markdown_table(["workers", "points", "median [s]", "min [s]", "max [s]", "points/s",
                          f"speed-up vs {args.workers[0]} worker(s)"], rows))
    print(f"\n- reading the archive and building the PatchSet: {read_seconds:.1f} s (not in the table)")
    print("- cluster start-up plus one warm-up point per worker: "
          + ", ".join(f"{w} worker(s) {s:.1f} s" for w, s in startup.items()) + " (not in the table)")
    excluded = sum(1 for numbers in reference.values() if numbers[0] < cls_scan.CLS_LIMIT)
    print(f"- {excluded} of {len(reference)} points excluded (observed CLs < {cls_scan.CLS_LIMIT}); "
          "every worker count gave the same CLs (to 1e-6)")
    if REFERENCE_POINT in reference:
        obs, *band = reference[REFERENCE_POINT]
        print(f"- {REFERENCE_POINT}: observed CLs {obs:.8f}, expected band "
              + ", ".join(f"{v:.4f}" for v in band) + " (reference 0.24443628; 0.0902, 0.1938, 0.3843, 0.6558, 0.8910)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
