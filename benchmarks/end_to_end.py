"""The whole command a user runs: ``law run Histograms`` versus a hand-written script.

Setup (not timed): ``--events`` ttbar events generated with
``analysis.io.generate.generate_file`` into ``--files`` NanoAOD-like files (seeds 1..K),
and a fork of configs/demo.yaml that reads them (``files:``) and asks for what
``benchmarks/handwritten.py`` makes: the ttbar dataset only, the 4j1b region's H_T
(``4j2b: null``), no systematics (``systematics: null``), no model, fit or plots. Both sides
weight every event by xsec * lumi / N (the demo's ttbar cross-section and luminosity).

Timed, each command in a fresh process (cwd the repository, ``HEIRLOOM_STORE`` set, as
benchmarks/cut_change.py runs law), in alternating pairs (Heirloom, hand-written, ...):

a. cold: ``law run Histograms --config <fork>`` into an empty store (a new store folder
   each repetition: Skim, Select, Histogram, Histograms, the input's identity and the code
   identities all computed afresh) versus ``python benchmarks/handwritten.py FILE...``;
b. after a cut change: in the store of the last cold run (the Skim outputs kept), the
   4j1b cut becomes ``(ak.num(bjets) == 1) & (ak.sum(jets.pt, axis=1) > X)`` with a new X
   each repetition (a new fork; Select, Histogram and Histograms rerun, Skim is reused,
   which the script checks) versus ``handwritten.py --ht-min X``;
c. the import floor: ``python -c "import law, luigi, tasks, coffea.nanoevents,
   coffea.processor"``, what every ``law run`` that runs Select imports before it reads a
   config or an event, as a share of the hand-written script's time.

After every timed pair the two H_T histograms are compared: same per-bin event counts
(flow bins included) and the same sums of weights and of squared weights (rtol 1e-9).
Peak memory is the child's maximum resident set size from ``os.wait4`` (for ``--cores N``
the largest single process of law's pool, not their sum).

    .venv/bin/python benchmarks/end_to_end.py [--events 1000000] [--files 1] [--repeat 5]
                                              [--cores 1] [--keep-all] [--lz4] [--workdir DIR] 2>/dev/null
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import DEMO, ROOT, law_env, machine, markdown_table, stats

NAME = "bench_end_to_end"
DATASET = "ttbar"
NOMINAL_CUT = "ak.num(bjets) == 1"
CUT_WITH_HT = "(ak.num(bjets) == 1) & (ak.sum(jets.pt, axis=1) > {threshold})"
FIRST_THRESHOLD, THRESHOLD_STEP = 200, 10      # removes a few % of 4j1b (its H_T starts near 150)
HANDWRITTEN = Path(__file__).resolve().parent / "handwritten.py"
HEIRLOOM, BASELINE = "Heirloom `law run Histograms`", "hand-written `handwritten.py`"
TARGETS = {"cold": ((1_000_000, 1.2), (5_000_000, 1.0)), "cut change": ((0, 0.5),)}

FORK = """\
extends: {demo}
name: {name}
datasets:
  ttbar: {{generator: null, files: {files}}}
  wjets: null
  single_top_s_chan: null
  single_top_t_chan: null
  single_top_tW: null
  data: null
regions:
  4j1b: {{cut: {cut}}}
  4j2b: null
systematics: null
model: null
fit: null
plots: null
{skim}"""
#: ``--keep-all``: no skim preselection (with LZ4 inputs, ``--lz4``, the Skims are views: no copy)
KEEP_ALL = "skim: {preselection: null}\n"
VARIANT = {"skim": "", "lz4": False}


# ---- setup ----------------------------------------------------------------------------
def generate_inputs(folder: Path, events: int, n_files: int) -> list:
    """``events`` ttbar events in ``n_files`` files (seeds 1..K); existing files are reused.
    With ``--lz4`` each is written again with LZ4 (generate.py writes ZLIB)."""
    from analysis.io.generate import generate_file

    folder.mkdir(parents=True, exist_ok=True)
    sizes = [events // n_files + (i < events % n_files) for i in range(n_files)]
    paths = []
    for seed, size in enumerate(sizes, start=1):
        path = folder / f"{DATASET}_{size}_seed{seed}.root"
        if not path.exists():
            print(f"generating {size:,} {DATASET} events into {path.name} ...", file=sys.stderr, flush=True)
            partial = path.with_suffix(".partial.root")
            generate_file(partial, DATASET, size, seed)
            partial.rename(path)
        paths.append(as_lz4(path) if VARIANT["lz4"] else path)
    return paths


def as_lz4(path: Path) -> Path:
    """The same events written with LZ4 (the skims' compression) beside ``path``."""
    import uproot

    from analysis.io.skim import read_chunk, write_tree

    out = path.with_name(path.stem + "_lz4.root")
    if not out.exists():
        tree = uproot.open(path)["Events"]
        partial = out.with_suffix(".partial.root")
        write_tree(partial, read_chunk(str(path), "Events", tree.keys(), 0, tree.num_entries))
        partial.rename(out)
    return out


def write_fork(path: Path, files: list, threshold: int | None) -> Path:
    """A fork of the demo reading ``files``; with ``threshold``, 4j1b also needs H_T > it."""
    cut = NOMINAL_CUT if threshold is None else CUT_WITH_HT.format(threshold=threshold)
    path.write_text(FORK.format(demo=DEMO, name=NAME, files=json.dumps([str(f) for f in files]),
                                cut=json.dumps(cut), skim=VARIANT["skim"]))
    return path


# ---- running a child ------------------------------------------------------------------
def run_child(command: list, env: dict, log: Path) -> tuple:
    """Run ``command`` (cwd: the repository) with its output in ``log``; return
    (wall seconds, peak RSS in MB of the child and of the descendants it waited for)."""
    import subprocess

    with open(log, "w") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)           # this child's own rusage
        seconds = time.perf_counter() - t0
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{shlex.join(command)} failed ({code}):\n{log.read_text()[-4000:]}")
    return seconds, usage.ru_maxrss / 1024                 # Linux: ru_maxrss in kB


def law_command(config: Path, law_args: list) -> list:
    """``law run Histograms --config <config> [law_args]``."""
    return [str(Path(sys.executable).parent / "law"), "run", "Histograms", "--config", str(config), *law_args]


def handwritten_command(files: list, out: Path, threshold: int | None) -> list:
    """``python benchmarks/handwritten.py FILE... --out OUT [--ht-min X]``."""
    extra = [] if threshold is None else ["--ht-min", str(threshold)]
    return [sys.executable, str(HANDWRITTEN), *map(str, files), "--out", str(out), *extra]


def tasks_since(store: Path, before: int) -> list:
    """Task families that ran since ``runs.jsonl`` had ``before`` lines."""
    log = store / "runs.jsonl"
    lines = log.read_text().splitlines()[before:] if log.exists() else []
    return sorted({json.loads(line)["task"] for line in lines})


def runs_logged(store: Path) -> int:
    """Lines of the store's ``runs.jsonl`` (0 for an empty store)."""
    log = store / "runs.jsonl"
    return len(log.read_text().splitlines()) if log.exists() else 0


# ---- comparing the histograms ---------------------------------------------------------
def compare(store: Path, handwritten_json: Path) -> str:
    """'' when Heirloom's 4j1b H_T equals the hand-written one, else what differs."""
    import numpy as np

    from analysis.hist import histograms

    merged = histograms.load(store / "by-name" / NAME / "Histograms" / "all" / "histograms.json")
    ours = merged[f"{DATASET}/4j1b/ht"][{"variation": "nominal"}]
    theirs = json.loads(handwritten_json.read_text())
    values, variances = ours.values(flow=True), ours.variances(flow=True)
    base_values, base_variances = np.array(theirs["values"]), np.array(theirs["variances"])
    scale = theirs["scale"]
    counts, base_counts = np.rint(values / scale), np.rint(base_values / scale)
    problems = []
    if not np.array_equal(counts, base_counts):
        bins = np.nonzero(counts != base_counts)[0].tolist()
        problems.append(f"event counts differ in (flow-indexed) bins {bins}: "
                        f"Heirloom {counts[bins].tolist()}, hand-written {base_counts[bins].tolist()}")
    if not np.allclose(values, base_values, rtol=1e-9, atol=0):
        problems.append(f"sums of weights differ: {values.sum()} vs {base_values.sum()}")
    if not np.allclose(variances, base_variances, rtol=1e-9, atol=0):
        problems.append(f"sums of squared weights differ: {variances.sum()} vs {base_variances.sum()}")
    return "; ".join(problems)


# ---- the measurements -----------------------------------------------------------------
def measure_pair(results: dict, kind: str, heirloom: tuple, baseline: tuple, store: Path) -> None:
    """Run one (Heirloom, hand-written) pair, record times, peak RSS and the comparison."""
    (law_cmd, law_log), (base_cmd, base_out, base_log) = heirloom, baseline
    env = law_env(store)
    before = runs_logged(store)
    seconds, rss = run_child(law_cmd, env, law_log)
    ran = tasks_since(store, before)
    base_seconds, base_rss = run_child(base_cmd, env, base_log)
    entry = results.setdefault(kind, {"heirloom": [], "baseline": [], "rss": [], "base_rss": [],
                                      "ran": [], "problems": []})
    entry["heirloom"].append(seconds)
    entry["baseline"].append(base_seconds)
    entry["rss"].append(rss)
    entry["base_rss"].append(base_rss)
    entry["ran"].append(ran)
    problem = compare(store, base_out)
    entry["problems"].append(problem)
    print(f"  {kind}: Heirloom {seconds:.2f} s ({rss:.0f} MB, ran {', '.join(ran)}), hand-written "
          f"{base_seconds:.2f} s ({base_rss:.0f} MB), ratio {seconds / base_seconds:.2f}"
          f"{'; MISMATCH: ' + problem if problem else '; histograms agree'}", file=sys.stderr, flush=True)


def cold_runs(results: dict, work: Path, files: list, repeat: int, law_args: list) -> Path:
    """``repeat`` cold pairs, each into a new empty store; returns the last store (kept)."""
    config = write_fork(work / "fork_nominal.yaml", files, None)
    store = None
    for n in range(repeat):
        if store is not None:
            shutil.rmtree(store, ignore_errors=True)
        store = work / f"store_cold_{n}"
        shutil.rmtree(store, ignore_errors=True)
        measure_pair(results, "cold", (law_command(config, law_args), work / f"law_cold_{n}.log"),
                     (handwritten_command(files, work / f"handwritten_cold_{n}.json", None),
                      work / f"handwritten_cold_{n}.json", work / f"handwritten_cold_{n}.log"), store)
    return store


def cut_change_runs(results: dict, work: Path, files: list, repeat: int, law_args: list, store: Path) -> None:
    """``repeat`` pairs after a change of the 4j1b cut (a new threshold and fork each time)."""
    for n in range(repeat):
        threshold = FIRST_THRESHOLD + THRESHOLD_STEP * n
        config = write_fork(work / f"fork_ht{threshold}.yaml", files, threshold)
        out = work / f"handwritten_ht{threshold}.json"
        measure_pair(results, "cut change", (law_command(config, law_args), work / f"law_ht{threshold}.log"),
                     (handwritten_command(files, out, threshold), out, work / f"handwritten_ht{threshold}.log"),
                     store)
        ran = results["cut change"]["ran"][-1]
        if "Skim" in ran or "Select" not in ran:
            raise SystemExit(f"the cut change should rerun Select and reuse Skim; ran: {ran}")


#: what every ``law run`` that selects events imports before it reads an event
FLOOR_IMPORTS = "import law, luigi, tasks, coffea.nanoevents, coffea.processor"


def import_floor(repeat: int) -> list:
    """Seconds of ``python -c FLOOR_IMPORTS`` in a fresh process, ``repeat`` times: the
    least a command that runs Select can take, before any config, DAG or event."""
    import subprocess

    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", FLOOR_IMPORTS], cwd=ROOT, check=True)
        out.append(time.perf_counter() - t0)
    return out


# ---- the report -----------------------------------------------------------------------
def target_text(kind: str, events: int) -> tuple:
    """(the goal as text, 'yes'/'no'/'-' for the ratio limit that applies at ``events``)."""
    goals = TARGETS[kind]
    text = ", ".join(f"<= {limit}x" + (f" at {size // 1_000_000} M" if size else "") for size, limit in goals)
    limit = next((lim for size, lim in goals if size == 0 or size == events), None)
    if limit is None and events > 5_000_000 and kind == "cold":
        limit = goals[-1][1]
    return text, limit


def report(results: dict, events: int, n_files: int, repeat: int, cores: int) -> str:
    """Markdown: a time table, a memory table and the histogram check."""
    times, memory, checks = [], [], []
    for kind, entry in results.items():
        if kind == "import floor":
            continue
        ours, base = stats(entry["heirloom"]), stats(entry["baseline"])
        ratio = ours[0] / base[0]
        paired = [a / b for a, b in zip(entry["heirloom"], entry["baseline"])]
        goal, limit = target_text(kind, events)
        met = "-" if limit is None else ("yes" if ratio <= limit else "no")
        times.append([kind, HEIRLOOM, *ours, ratio, f"{min(paired):.2f} - {max(paired):.2f}", goal, met])
        times.append([kind, BASELINE, *base, 1.0, "", "", ""])
        memory.append([kind, HEIRLOOM, *stats(entry["rss"])])
        memory.append([kind, BASELINE, *stats(entry["base_rss"])])
        bad = [p for p in entry["problems"] if p]
        checks.append(f"- {kind}: {len(entry['problems']) - len(bad)} of {len(entry['problems'])} pairs give "
                      f"identical H_T histograms" + (f"; {bad[0]}" if bad else ""))
        checks.append(f"  (Heirloom ran: {', '.join(entry['ran'][0])})")
    floor = results.get("import floor")
    if floor:
        base = stats(results.get("cut change", results["cold"])["baseline"])[0]
        checks += ["", f"Import floor: `python -c \"{FLOOR_IMPORTS}\"` takes {stats(floor)[0]:.2f} s (median of "
                   f"{len(floor)}; min {min(floor):.2f} s), {stats(floor)[0] / base:.2f} of the hand-written "
                   f"script's median after a cut change ({base:.2f} s)."]
    executor = f"`--executor futures --cores {cores}`" if cores > 1 else "the iterative executor"
    variant = (" (LZ4)" if VARIANT["lz4"] else "") + ("; no skim preselection" if VARIANT["skim"] else "")
    lines = [f"## End to end: `law run Histograms` vs a hand-written script (median of {repeat}; {machine()})", "",
             f"{events:,} generated ttbar events in {n_files} file(s){variant}; Heirloom with {executor}; "
             f"the ratio is Heirloom's median / the hand-written median (range: per pair). The goals "
             f"apply at 1 M and 5 M events.", "",
             markdown_table(["measurement", "command", "median [s]", "min [s]", "max [s]", "/ hand-written",
                             "per pair", "goal", "met"], times), "",
             markdown_table(["measurement", "command", "peak RSS median [MB]", "min [MB]", "max [MB]"], memory), "",
             "Histogram check (4j1b H_T, per-bin event counts, sums of weights and squared weights):", "", *checks]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Command line: set up, time the alternating pairs, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="generated ttbar events (default 1M)")
    parser.add_argument("--files", type=int, default=1, help="split the events into K files (default 1)")
    parser.add_argument("--repeat", type=int, default=5, help="pairs per measurement (default 5)")
    parser.add_argument("--cores", type=int, default=1, help="N > 1: law run --executor futures --cores N")
    parser.add_argument("--law-args", default="", help="more arguments for law run, e.g. '--workers 2'")
    parser.add_argument("--workdir", type=Path, help="keep the inputs, forks, logs and last store here")
    parser.add_argument("--keep-all", action="store_true", help="no skim preselection (the skims keep every event)")
    parser.add_argument("--lz4", action="store_true", help="inputs written with LZ4: with --keep-all, "
                        "the Skims are views of them (skim.copy: auto), not copies")
    args = parser.parse_args(argv)
    VARIANT.update(skim=KEEP_ALL if args.keep_all else "", lz4=args.lz4)
    if args.events < args.files or args.files < 1 or args.repeat < 1:
        parser.error("need --files >= 1, --events >= --files and --repeat >= 1")

    results: dict = {}
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="heirloom-e2e-"))).resolve()
    law_args = (["--executor", "futures", "--cores", str(args.cores)] if args.cores > 1 else [])
    law_args += shlex.split(args.law_args)
    try:
        files = generate_inputs(work / "inputs", args.events, args.files)
        print("cold runs ...", file=sys.stderr, flush=True)
        store = cold_runs(results, work, files, args.repeat, law_args)
        print("cut changes ...", file=sys.stderr, flush=True)
        cut_change_runs(results, work, files, args.repeat, law_args, store)
        results["import floor"] = import_floor(args.repeat)
        print(report(results, args.events, args.files, args.repeat, args.cores))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if any(p for kind, entry in results.items() if kind != "import floor" for p in entry["problems"]) else 0


if __name__ == "__main__":
    sys.exit(main())
