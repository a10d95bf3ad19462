"""A hand-written AGC 4j1b H_T analysis: the baseline of ``benchmarks/end_to_end.py``.

What a physicist writes without a framework, with uproot, awkward, numpy and hist only
(no Heirloom import): read the needed NanoAOD branches of the ``Events`` tree in chunks,
apply the objects, the event selection and the 4j1b region of configs/demo.yaml (from
configs/agc_ttbar.yaml, which it extends), fill H_T and write the histogram as JSON.

* electrons: pt > 30, |eta| < 2.1, cutBased == 4, sip3d < 4
* muons: pt > 30, |eta| < 2.1, tightId, sip3d < 4, pfRelIso04_all < 0.15
* jets: pt > 30, |eta| < 2.4, jetId & 4 (tight + lepton veto); b-jets: btagCSVV2 > 0.5
* events: exactly one electron or muon, >= 4 jets; region 4j1b: exactly one b-jet
  (``--ht-min X`` adds H_T > X to the region cut)
* H_T = sum of the jets' pt (float32, as awkward sums the float32 branch); 25 bins, 50-550
* weight: xsec * lumi / N for every event, N = all events of the input files (what
  Heirloom's Histogram task applies to an MC dataset without ``event_weight``); the
  defaults are the demo's ttbar cross-section (729.84 pb) and luminosity (30 /pb)

Heirloom's skim preselection (>= 4 jets with pt > 25, >= 1 lepton with pt > 25) is implied
by this selection, so the baseline does not apply it separately.

    python benchmarks/handwritten.py FILE... --out OUT.json [--ht-min X] [--step-size N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

BRANCHES = ["Electron_pt", "Electron_eta", "Electron_cutBased", "Electron_sip3d",
            "Muon_pt", "Muon_eta", "Muon_tightId", "Muon_sip3d", "Muon_pfRelIso04_all",
            "Jet_pt", "Jet_eta", "Jet_jetId", "Jet_btagCSVV2"]
TREE = "Events"
REGION, OBSERVABLE = "4j1b", "ht"
BINS, LOW, HIGH = 25, 50.0, 550.0
XSEC, LUMI = 729.84, 30.0                      # configs/agc_ttbar.yaml: ttbar xsec, lumi


def region_ht(events: dict, ht_min: float | None):
    """H_T of the events of one chunk that pass the selection and the 4j1b region cut."""
    import awkward as ak

    n_electrons = ak.sum((events["Electron_pt"] > 30) & (abs(events["Electron_eta"]) < 2.1)
                         & (events["Electron_cutBased"] == 4) & (events["Electron_sip3d"] < 4), axis=1)
    n_muons = ak.sum((events["Muon_pt"] > 30) & (abs(events["Muon_eta"]) < 2.1) & events["Muon_tightId"]
                     & (events["Muon_sip3d"] < 4) & (events["Muon_pfRelIso04_all"] < 0.15), axis=1)
    good = (events["Jet_pt"] > 30) & (abs(events["Jet_eta"]) < 2.4) & ((events["Jet_jetId"] & 4) > 0)
    jet_pt = events["Jet_pt"][good]
    n_bjets = ak.sum(events["Jet_btagCSVV2"][good] > 0.5, axis=1)
    ht = ak.sum(jet_pt, axis=1)
    keep = ((n_electrons + n_muons) == 1) & (ak.num(jet_pt, axis=1) >= 4) & (n_bjets == 1)
    if ht_min is not None:
        keep = keep & (ht > ht_min)
    return ak.to_numpy(ht[keep])


def read_ht(files: list, ht_min: float | None, step_size: int) -> tuple:
    """(H_T of every selected event, number of events read), file by file, chunk by chunk."""
    import numpy as np
    import uproot

    parts, n_events = [], 0
    for path in files:
        with uproot.open(path) as handle:
            tree = handle[TREE]
            for chunk in tree.iterate(BRANCHES, step_size=step_size, library="ak", how=dict):
                n_events += len(chunk["Jet_pt"])
                parts.append(region_ht(chunk, ht_min))
    values = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    return values, n_events


def fill(values, scale: float):
    """The H_T histogram (Weight storage), every event weighted by ``scale``."""
    import hist
    import numpy as np

    h = hist.Hist(hist.axis.Regular(BINS, LOW, HIGH, name=OBSERVABLE, label="$H_T$ [GeV]"),
                  storage=hist.storage.Weight())
    h.fill(values.astype(np.float64), weight=np.full(len(values), scale))
    return h


def write(path: Path, h, scale: float, n_events: int, ht_min: float | None, seconds: float) -> None:
    """The histogram as JSON: bin contents and variances with under- and overflow."""
    view = h.view(flow=True)
    record = {
        "region": REGION, "observable": OBSERVABLE, "bins": BINS, "range": [LOW, HIGH],
        "ht_min": ht_min, "events_read": n_events, "scale": scale,
        "values": view.value.tolist(), "variances": view.variance.tolist(),
        "seconds": seconds,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))


def main(argv=None) -> int:
    """Command line: read the files, fill H_T of 4j1b, write ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="NanoAOD-like ROOT files (tree Events)")
    parser.add_argument("--out", type=Path, required=True, help="output JSON file")
    parser.add_argument("--ht-min", type=float, default=None, help="add H_T > X to the 4j1b cut")
    parser.add_argument("--step-size", type=int, default=200_000, help="events per chunk (default 200000)")
    parser.add_argument("--xsec", type=float, default=XSEC, help=f"cross-section in pb (default {XSEC})")
    parser.add_argument("--lumi", type=float, default=LUMI, help=f"luminosity in /pb (default {LUMI})")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    values, n_events = read_ht(args.files, args.ht_min, args.step_size)
    scale = args.xsec * args.lumi / n_events if n_events else 0.0
    h = fill(values, scale)
    write(args.out, h, scale, n_events, args.ht_min, time.perf_counter() - t0)
    print(f"{n_events} events read, {len(values)} in {REGION}, written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
