"""The statistics steps with and without MINUIT's HESSE: the AGC's impact ranking and the Z' fork's CLs limit.

The ranking's fits and the limit's fits read only best-fit values and -2 log L, so they run
MIGRAD alone (``analysis/stats/lean_minuit.py``); pyhf's optimizer runs HESSE after every
MIGRAD. This script runs ``law run Ranking --config configs/agc_ttbar.yaml`` and ``law run
Limit --config configs/reinterpret_example.yaml`` into ``--store`` (a temporary store
without it) once, then, in alternating fresh processes, ``rank`` of the Fit's workspace
and fit result and ``upper_limit`` of the Limit's workspace, as the tasks call them
(``--workers`` processes, the config's minimiser settings), as they run now (MIGRAD) and
with pyhf's own optimizer in their place (MIGRAD + HESSE). Prints the medians, the ratio,
and checks that both give the same bytes (the ranking's and the limit's JSON, timing
left out).

    .venv/bin/python benchmarks/stats_fits.py [--repeat 3] [--workers 2] [--store DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT, law_run, machine, markdown_table

STEPS = ("ranking", "limit")


def child(step: str, folder: Path, hesse: bool, workers: int) -> None:
    """One timed call in this process; prints ``{"seconds": ..., "result": ...}``."""
    import time

    sys.path.insert(0, str(ROOT))
    if hesse:                                 # pyhf's own optimizer where the tasks use MIGRAD alone
        import pyhf

        from analysis.stats import lean_minuit

        lean_minuit.optimizer = lambda **settings: pyhf.optimize.minuit_optimizer(**settings)
    fit_folder = folder.parent.parent / "Fit" / "all"          # the ranking's workspace: the Fit's
    workspace = json.loads(((fit_folder if step == "ranking" else folder) / "workspace.json").read_text())
    excerpt = json.loads((folder / "provenance.json").read_text())["config_excerpt"]
    start = time.perf_counter()
    if step == "ranking":
        from analysis.stats.fitting import FitResult
        from analysis.stats.ranking import rank

        fit = FitResult.from_json((fit_folder / "fit_result.json").read_text())
        ranking = json.loads(rank(workspace, fit, excerpt["fit"], workers=workers, progress=None).to_json())
        result = json.dumps({k: v for k, v in ranking.items() if k != "seconds"}, sort_keys=True)
    else:
        from analysis.stats.limits import upper_limit

        result = upper_limit(workspace, excerpt["limit"], excerpt["fit"], workers=workers, progress=None).to_json()
    print(json.dumps({"seconds": time.perf_counter() - start, "result": result}))


def timed(step: str, folder: Path, hesse: bool, workers: int) -> tuple[float, str]:
    command = [sys.executable, __file__, "--child", step, "--folder", str(folder), "--workers", str(workers)]
    done = subprocess.run(command + (["--hesse"] if hesse else []), capture_output=True, text=True, check=True)
    record = json.loads(done.stdout.strip().splitlines()[-1])
    return record["seconds"], record["result"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="processes of the ranking and of the limit")
    ap.add_argument("--store", type=Path, help="a store to use (default: a temporary one)")
    ap.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--hesse", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.folder, args.hesse, args.workers)
        return 0
    with tempfile.TemporaryDirectory(prefix="heirloom-stats-fits-") as tmp:
        store = args.store or Path(tmp) / "store"
        print("law run Ranking (the AGC analysis) and law run Limit (the Z' fork) ...", flush=True)
        law_run("Ranking", ROOT / "configs" / "agc_ttbar.yaml", store, "--workers", str(args.workers))
        law_run("Limit", ROOT / "configs" / "reinterpret_example.yaml", store, "--workers", str(args.workers))
        folders = {"ranking": store / "by-name" / "agc_ttbar" / "Ranking" / "all",
                   "limit": store / "by-name" / "agc_zprime" / "Limit" / "all"}
        rows = []
        for step in STEPS:
            times: dict[bool, list[float]] = {False: [], True: []}
            results: set[tuple[bool, str]] = set()
            for i in range(args.repeat):
                for hesse in (True, False):
                    seconds, result = timed(step, folders[step], hesse, args.workers)
                    times[hesse].append(seconds)
                    results.add((hesse, result))
                    print(f"  {step} [{i + 1}/{args.repeat}] {'MIGRAD + HESSE' if hesse else 'MIGRAD'}: "
                          f"{seconds:.2f} s", flush=True)
            same = len({result for _, result in results}) == 1
            lean, full = statistics.median(times[False]), statistics.median(times[True])
            rows.append([step, full, min(times[True]), lean, min(times[False]), lean / full,
                         "yes" if same else "NO"])
            if not same:
                print(f"{step}: MIGRAD alone gave other numbers than MIGRAD + HESSE", file=sys.stderr)
                return 1
    print(f"\n## The statistics steps' fits without HESSE (median of {args.repeat}, {args.workers} workers; "
          f"{machine()})\n")
    print(markdown_table(["step", "MIGRAD + HESSE [s]", "min [s]", "MIGRAD (as run) [s]", "min [s]", "ratio",
                          "identical results"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
