"""Select + Histogram throughput of the demo analysis versus a hand-written baseline.

Setup (not timed): generate ttbar and wjets NanoAOD-like files with
``analysis.io.generate.generate_file``, write a fork of ``configs/demo.yaml`` whose datasets
read those files (``files:``, ``skim: {chunk_size: 250000}``), and run
``law run Histograms`` once into a fresh store, which makes the skimmed chunks.

Timed, in-process, on the same skim files (``<store>/by-name/<analysis>/Skim/*/skim.root``):

* Heirloom: exactly what the Select and Histogram tasks do (``plan_from_config``,
  ``run_selection`` with the iterative executor, ``write_selected``, Parquet read back,
  ``fill_from_table``);
* baseline: a standalone uproot + awkward + vector + hist function written here, with the
  same objects, selection, regions, observables and systematics.

The baseline's histograms must equal Heirloom's (asserted), so the comparison is honest.
Both are timed with and without systematics (``systematics: null`` in a second fork).

    .venv/bin/python benchmarks/throughput.py [--events 1000000] [--repeat 3] [--workdir DIR] [--skip-nominal-only]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import DEMO, law_run, machine, markdown_table

PROCESSES = ("ttbar", "wjets")
FORK = """\
extends: {demo}
name: {name}
datasets:
  ttbar: {{generator: null, files: [{ttbar}]}}
  wjets: {{generator: null, files: [{wjets}]}}
  single_top_s_chan: null
  single_top_t_chan: null
  single_top_tW: null
  data: null
model: null
fit: null
plots: null
skim: {{chunk_size: {chunk}}}
"""
SKIM_CHUNK = 250_000


# ---- setup ----------------------------------------------------------------------------
def prepare(workdir: Path, events: int) -> dict:
    """Generate the files (if missing), write the forks, run ``law run Histograms`` once.

    Returns ``{"full": cfg, "nominal": cfg, "chunks": {dataset: [(skim.root, stats)]}}``.
    """
    from analysis.load import load_config
    from analysis.io.generate import generate_file

    workdir.mkdir(parents=True, exist_ok=True)
    files = {}
    for seed, process in enumerate(PROCESSES, start=1):
        files[process] = workdir / f"{process}_{events // len(PROCESSES)}.root"
        if not files[process].exists():
            print(f"generating {events // len(PROCESSES)} {process} events ...", flush=True)
            generate_file(files[process], process, events // len(PROCESSES), seed)
    full = workdir / "bench_throughput.yaml"
    full.write_text(FORK.format(demo=DEMO, name="bench_throughput", chunk=SKIM_CHUNK, **files))
    nominal = workdir / "bench_throughput_nominal.yaml"
    nominal.write_text(f"extends: {full}\nname: bench_throughput_nominal\nsystematics: null\n")
    store = workdir / "store"
    print("law run Histograms (skims, selects, histograms) ...", flush=True)
    runs_log = store / "runs.jsonl"
    before = len(runs_log.read_text().splitlines()) if runs_log.exists() else 0
    seconds = law_run("Histograms", full, store)
    ran = len(runs_log.read_text().splitlines()) - before
    print(f"  {ran} tasks ran in {seconds:.1f} s", flush=True)
    skims = store / "by-name" / "bench_throughput" / "Skim"           # newest output of each chunk
    n_chunks = -(-(events // len(PROCESSES)) // SKIM_CHUNK)
    chunks = {dataset: [(str(skims / f"{dataset}__{i}" / "skim.root"),
                         json.loads((skims / f"{dataset}__{i}" / "stats.json").read_text()))
                        for i in range(n_chunks)] for dataset in PROCESSES}
    return {"full": load_config(full), "nominal": load_config(nominal), "chunks": chunks, "store": store,
            "law": f"`law run Histograms`: {ran} tasks ran in {seconds:.1f} s"}


# ---- Heirloom: what tasks/select.py does ---------------------------------------------
def heirloom(cfg, dataset: str, files: list, scale: float, tmp: Path, timings: dict | None = None) -> dict:
    """Select (iterative executor) + Parquet table + Histogram fill for one dataset."""
    import pyarrow.parquet as pq

    from analysis.config.model import region_observables
    from analysis.select.executors import make_executor
    from analysis.hist.histograms import fill_from_table
    from analysis.select.processor import run_selection
    from analysis.select.selection import plan_from_config
    from analysis.select.tables import write_selected

    t0 = time.perf_counter()
    plan = plan_from_config(cfg, dataset)
    output = run_selection(files, plan, make_executor("iterative", progress=False), tree=cfg.tree,
                           chunksize=int(cfg.section("select", "chunk_size", default=200_000)))
    t1 = time.perf_counter()
    write_selected(output["chunks"], plan, tmp / "selected.parquet")
    table = pq.read_table(tmp / "selected.parquet")
    t2 = time.perf_counter()
    regions = {name: region_observables(r) for name, r in cfg.regions.items()}
    hists = fill_from_table(table, regions, cfg.observables, scale)
    if timings is not None:
        for part, seconds in (("select", t1 - t0), ("table", t2 - t1), ("histogram", time.perf_counter() - t2)):
            timings.setdefault(part, []).append(seconds)
    return hists


# ---- the hand-written baseline --------------------------------------------------------
BRANCHES = ["Electron_pt", "Electron_eta", "Electron_cutBased", "Electron_sip3d",
            "Muon_pt", "Muon_eta", "Muon_tightId", "Muon_sip3d", "Muon_pfRelIso04_all",
            "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_jetId", "Jet_btagCSVV2"]
BINS = {"ht": (25, 50.0, 550.0), "m_bjj": (25, 50.0, 550.0)}


def baseline(files: list, scale: float, systematics: bool = True) -> dict:
    """AGC 4j1b/4j2b histograms with uproot + awkward + vector + hist, file by file."""
    import awkward as ak
    import hist
    import numpy as np
    import uproot

    out = {"4j1b/ht": None, "4j2b/m_bjj": None}
    for name in out:
        obs = name.split("/")[1]
        out[name] = hist.Hist(hist.axis.StrCategory([], name="variation", growth=True),
                              hist.axis.Regular(*BINS[obs], name=obs), storage=hist.storage.Weight())
    for path in files:
        with uproot.open(path) as handle:
            ev = handle["Events"].arrays(BRANCHES, how=dict)
        el, mu = "Electron_", "Muon_"
        n_el = ak.sum((ev[el + "pt"] > 30) & (abs(ev[el + "eta"]) < 2.1) & (ev[el + "cutBased"] == 4)
                      & (ev[el + "sip3d"] < 4), axis=1)
        n_mu = ak.sum((ev[mu + "pt"] > 30) & (abs(ev[mu + "eta"]) < 2.1) & ev[mu + "tightId"]
                      & (ev[mu + "sip3d"] < 4) & (ev[mu + "pfRelIso04_all"] < 0.15), axis=1)
        one_lepton = (n_el + n_mu) == 1
        jet_pts = [("nominal", ev["Jet_pt"])] + ([("jes_up", ev["Jet_pt"] * 1.03)] if systematics else [])
        for variation, jet_pt in jet_pts:
            good = (jet_pt > 30) & (abs(ev["Jet_eta"]) < 2.4) & ((ev["Jet_jetId"] & 4) > 0)  # tight + lepton veto, as the AGC
            selected = one_lepton & (ak.sum(good, axis=1) >= 4)
            keep = good[selected]
            jets = ak.zip({"pt": jet_pt[selected][keep], "eta": ev["Jet_eta"][selected][keep],
                           "phi": ev["Jet_phi"][selected][keep], "mass": ev["Jet_mass"][selected][keep]})
            btagged = ev["Jet_btagCSVV2"][selected][keep] > 0.5
            n_b = ak.sum(btagged, axis=1)
            weights = {"nominal": np.ones(len(jets))}
            if systematics and variation == "nominal":
                for i in (0, 1):
                    shift = 0.075 * ak.to_numpy(jets.pt[:, i]) / 50
                    weights[f"btag_var_{i}_up"], weights[f"btag_var_{i}_down"] = 1 + shift, 1 - shift
            in_1b, in_2b = ak.to_numpy(n_b == 1), ak.to_numpy(n_b >= 2)
            ht = ak.to_numpy(ak.sum(jets.pt[in_1b], axis=1))
            m_bjj = ak.to_numpy(ak.fill_none(_m_bjj(jets[in_2b], btagged[in_2b]), np.nan))
            for name, values, mask in (("4j1b/ht", ht, in_1b), ("4j2b/m_bjj", m_bjj, in_2b)):
                for weight_name, w in weights.items():
                    label = variation if weight_name == "nominal" else weight_name
                    out[name].fill(label, values.astype(np.float64), weight=w[mask].astype(np.float64) * scale)
    return out


def _m_bjj(jets, btagged):
    """Mass of the highest-pt trijet with >= 1 b-tagged jet, written the fast way by hand:
    Cartesian sums over ``ak.argcombinations`` indices (the same arithmetic as the AGC
    plugin of configs/plugins/agc.py, so the float32 masses agree bit for bit)."""
    import awkward as ak
    import numpy as np

    px, py, pz = jets.pt * np.cos(jets.phi), jets.pt * np.sin(jets.phi), jets.pt * np.sinh(jets.eta)
    energy = np.sqrt(px * px + py * py + pz * pz + jets.mass * jets.mass)
    i, j, k = ak.unzip(ak.argcombinations(jets.pt, 3))
    sx, sy = px[i] + px[j] + px[k], py[i] + py[j] + py[k]
    sz, se = pz[i] + pz[j] + pz[k], energy[i] + energy[j] + energy[k]
    pt2 = sx * sx + sy * sy
    m2 = se * se - pt2 - sz * sz
    has_b = btagged[i] | btagged[j] | btagged[k]
    best = ak.argmax(ak.where(has_b, pt2, -1.0), axis=1, keepdims=True)
    return ak.mask(np.sqrt(np.maximum(ak.firsts(m2[best]), 0.0)), ak.fill_none(ak.firsts(has_b[best]), False))


def check_equal(ours: dict, theirs: dict, scale: float) -> None:
    """Same variations, same event counts per bin (unit-weight variations, exactly) and the
    same sums of weights and of squared weights (all variations, up to summation order;
    b-tag weights to 1e-6: correctionlib evaluates them in float64, the baseline in float32)."""
    import numpy as np

    for name, h in ours.items():
        b = theirs[name]
        assert set(h.axes[0]) == set(b.axes[0]), f"{name}: variations {list(h.axes[0])} vs {list(b.axes[0])}"
        for variation in h.axes[0]:
            x, y = h[{"variation": variation}], b[{"variation": variation}]
            rtol = 1e-6 if variation.startswith("btag") else 1e-9
            for what in ("values", "variances"):
                assert np.allclose(getattr(x, what)(flow=True), getattr(y, what)(flow=True), rtol=rtol, atol=0), \
                    f"{name} [{variation}] {what}: {getattr(x, what)()} vs {getattr(y, what)()}"
            if not variation.startswith("btag"):
                assert np.array_equal(np.rint(x.values(flow=True) / scale), np.rint(y.values(flow=True) / scale)), \
                    f"{name} [{variation}]: event counts differ"


# ---- timing ---------------------------------------------------------------------------
def run_variant(setup: dict, variant: str, repeat: int, tmp: Path) -> list:
    cfg, chunks = setup[variant], setup["chunks"]
    systematics = variant == "full"
    scale = {d: float(cfg.datasets[d]["xsec"]) * cfg.lumi / sum(s["events_in"] for _, s in chunks[d])
             for d in PROCESSES}
    files = {d: [path for path, st in chunks[d] if st["events_out"] > 0] for d in PROCESSES}
    events = sum(s["events_out"] for d in PROCESSES for _, s in chunks[d])
    for d in PROCESSES:                       # warm-up (imports, compiled plan) + honesty check
        check_equal(heirloom(cfg, d, files[d], scale[d], tmp), baseline(files[d], scale[d], systematics),
                    scale[d])
    times = {"Heirloom (Select + Histogram)": [], "baseline (uproot + awkward + hist)": []}
    parts: dict = {}
    for _ in range(repeat):                   # interleaved, so drifting load hits both alike
        t0 = time.perf_counter()
        for d in PROCESSES:
            heirloom(cfg, d, files[d], scale[d], tmp, parts.setdefault(d, {}))
        times["Heirloom (Select + Histogram)"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for d in PROCESSES:
            baseline(files[d], scale[d], systematics)
        times["baseline (uproot + awkward + hist)"].append(time.perf_counter() - t0)
    label = "nominal + systematics" if systematics else "nominal only"
    base = statistics.median(times["baseline (uproot + awkward + hist)"])
    rows = [(impl, label, events, statistics.median(t), min(t), events / statistics.median(t),
             statistics.median(t) / base) for impl, t in times.items()]
    per_part = {p: sum(statistics.median(parts[d][p]) for d in PROCESSES) for p in ("select", "table", "histogram")}
    return rows, per_part, label


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="generated events in all (default 1M)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per implementation (default 3)")
    parser.add_argument("--workdir", type=Path, help="reuse/keep files and store here (default: a temp dir)")
    parser.add_argument("--skip-nominal-only", action="store_true", help="do not time the no-systematics variant")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="heirloom-throughput-"))
    try:
        setup = prepare(workdir, args.events)
        tmp = workdir / "timing"
        tmp.mkdir(exist_ok=True)
        variants = ["full"] if args.skip_nominal_only else ["full", "nominal"]
        rows, parts = [], []
        for variant in variants:
            print(f"timing {variant} ...", flush=True)
            variant_rows, per_part, label = run_variant(setup, variant, args.repeat, tmp)
            rows += variant_rows
            parts.append((label, *(per_part[p] for p in ("select", "table", "histogram"))))
        generated = sum(s["events_in"] for d in PROCESSES for _, s in setup["chunks"][d])
        print(f"\n## Select + Histogram throughput (median of {args.repeat}; {machine()})\n")
        print(f"{generated:,} generated events ({', '.join(PROCESSES)}), skimmed by {setup['law']}; both sides "
              f"read the same skim files. 'events' = events in the skim files (Select's input).\n")
        print(markdown_table(["implementation", "variant", "events", "median [s]", "min [s]", "events/s",
                              "time / baseline"], rows))
        print("\nHeirloom time by part (median per dataset, summed over datasets):\n")
        print(markdown_table(["variant", "run_selection [s]", "Parquet write+read [s]", "fill_from_table [s]"],
                             parts))
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
