"""Cost of the full AGC systematics set relative to nominal only, on the same events.

Setup (not timed): the generated ttbar and W+jets files of ``throughput.py`` (shared
``--workdir``), a fork of ``configs/agc_ttbar.yaml`` that reads them, and one
``law run Histograms`` that makes its skims. Timed, in-process, on those skim files:
Select + Histogram (what the tasks do) with every AGC event-level systematic (jes and
jer shape variations, four correctionlib b-tag weight variations, W+jets scale) and with
``systematics: null``. Goal of the project: at most 3x.

    .venv/bin/python benchmarks/systematics_cost.py [--events 1000000] [--repeat 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from _common import ROOT, law_run, machine, markdown_table
from throughput import PROCESSES, heirloom

FORK = """\
extends: {agc}
name: bench_agc_systematics
datasets:
  ttbar: {{generator: null, files: [{ttbar}]}}
  wjets: {{generator: null, files: [{wjets}]}}
  ttbar__scaleup: null
  ttbar__scaledown: null
  ttbar__ME_var: null
  ttbar__PS_var: null
  single_top_s_chan: null
  single_top_t_chan: null
  single_top_tW: null
  data: null
  pseudodata: null
systematics:
  jes: {{datasets: [ttbar, wjets]}}
  jer: {{datasets: [ttbar, wjets]}}
  btag_var_0: {{datasets: [ttbar, wjets]}}
  btag_var_1: {{datasets: [ttbar, wjets]}}
  btag_var_2: {{datasets: [ttbar, wjets]}}
  btag_var_3: {{datasets: [ttbar, wjets]}}
  ttbar_me: null
  ttbar_ps: null
  ttbar_scale: null
model: null
fit: null
skim: {{chunk_size: 250000}}
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="generated events in all (default 1M)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="reuse/keep files and store here (default: a temp dir)")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="heirloom-syst-"))
    try:
        from analysis.load import load_config
        from analysis.io.generate import generate_file

        workdir.mkdir(parents=True, exist_ok=True)
        files = {}
        for seed, process in enumerate(PROCESSES, start=1):
            files[process] = workdir / f"{process}_{args.events // len(PROCESSES)}.root"
            if not files[process].exists():
                generate_file(files[process], process, args.events // len(PROCESSES), seed)
        full = workdir / "bench_agc_systematics.yaml"
        full.write_text(FORK.format(agc=ROOT / "configs" / "agc_ttbar.yaml", **files))
        nominal = workdir / "bench_agc_nominal.yaml"
        nominal.write_text(f"extends: {full}\nname: bench_agc_nominal\nsystematics: null\n")
        store = workdir / "store"
        law_run("Histograms", full, store)
        skims = store / "by-name" / "bench_agc_systematics" / "Skim"
        chunk_files = {d: sorted(str(p / "skim.root") for p in skims.glob(f"{d}__*")) for d in PROCESSES}
        configs = {"all AGC systematics": load_config(full), "nominal only": load_config(nominal)}
        times = {name: [] for name in configs}
        for _ in range(args.repeat):
            for name, cfg in configs.items():
                total = 0.0
                for dataset, paths in chunk_files.items():
                    tmp = Path(tempfile.mkdtemp(dir=workdir))
                    timings: dict = {}
                    heirloom(cfg, dataset, paths, 1.0, tmp, timings)
                    total += sum(v[0] for v in timings.values())
                    shutil.rmtree(tmp)
                times[name].append(total)
        cfg = configs["all AGC systematics"]
        variations = [v.name for v in cfg.shape_variations("ttbar")] + [v.name for v in cfg.weight_variations("wjets")]
        base = statistics.median(times["nominal only"])
        rows = [[name, f"{statistics.median(t):.3f}", f"{min(t):.3f}", f"{statistics.median(t) / base:.2f}"]
                for name, t in times.items()]
        print(f"\n## Cost of the systematics (median of {args.repeat}; {machine()})\n")
        print(f"Same skimmed events ({args.events:,} generated ttbar + W+jets); variations: {', '.join(variations)}.\n")
        print(markdown_table(["variant", "median [s]", "min [s]", "time / nominal only"], rows))
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
