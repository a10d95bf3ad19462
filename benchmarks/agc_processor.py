"""The AGC's coffea processor, standalone: the baseline of ``benchmarks/agc_vs_coffea.py``.

What the IRIS-HEP Analysis Grand Challenge runs for its CMS ttbar analysis
(iris-hep/analysis-grand-challenge, analyses/cms-open-data-ttbar, ``TtbarAnalysis`` of
ttbar_analysis_pipeline), written the way the AGC writes it and importing nothing from
Heirloom: coffea NanoEvents (``NanoAODSchema``), a ``processor.ProcessorABC`` that keeps one
``hist.Hist`` per region (``observable`` Reg(25, 50, 550), ``process``, ``variation``,
Weight storage), ``PackedSelection`` masks, a loop over systematic variations that reruns
the whole selection for each (as the AGC does), the trijet built with ``ak.combinations``
and coffea's four-vector sums, and coffea's ``processor.Runner``.

Selection and systematics are those of configs/agc_ttbar.yaml (the AGC's own):

* electrons: pt > 30, |eta| < 2.1, cutBased == 4, sip3d < 4
* muons: pt > 30, |eta| < 2.1, tightId, sip3d < 4, pfRelIso04_all < 0.15
* jets: pt > 30, |eta| < 2.4, ``isTightLeptonVeto`` (Jet_jetId bit value 4); b-tag
  btagCSVV2 > 0.5
* events: exactly one lepton, >= 4 jets; 4j1b: exactly one b-jet, observable H_T;
  4j2b: >= 2 b-jets, observable m_bjj, the mass of the highest-pt trijet among those with
  at least one b-tagged jet
* weight: xsec * lumi / N_generated for MC, 1 for data
* systematics of MC datasets without a ``__variation`` suffix: jet pt x 1.03
  (``pt_scale_up``), jet pt x N(1, 0.05) (``pt_res_up``; each jet's factor a seeded hash of
  (event number, jet index), as configs/plugins/agc.py's ``jer_factor`` draws it, where
  the AGC draws from an unseeded generator), b-tag weights 1 +- 0.075 pt(jet i) / 50 for
  i = 0..3 (``btag_var_i_up/down``) through correctionlib from
  configs/corrections/agc_btag.json, and for W+jets a weight 1 +- 0.025
  (``scale_var_up/down``); a dataset ``<process>__<variation>`` (``ttbar__ME_var``) fills
  variation ``<variation>`` of ``<process>``

The histograms go to ``--output`` as JSON: per region the bin edges and, per
``process/variation``, the bin values and variances with under- and overflow.

    python benchmarks/agc_processor.py --workers N --output OUT.json FILE:DATASET:XSEC:NGEN ...

DATASET ``data`` (XSEC ``-``) is unweighted data; NGEN is the dataset's number of
generated events (the AGC's ``nevts``); a dataset may be given several files.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import warnings
from pathlib import Path

import awkward as ak
import correctionlib
import hist
import numpy as np
from coffea import processor
from coffea.analysis_tools import PackedSelection
from coffea.nanoevents import NanoAODSchema

CORRECTIONS = Path(__file__).resolve().parent.parent / "configs" / "corrections" / "agc_btag.json"
NUM_BINS, BIN_LOW, BIN_HIGH = 25, 50, 550
B_TAG_THRESHOLD = 0.5
LUMI = 30.0                          # /pb: configs/agc_ttbar.yaml's generated pseudo-data
JER_SIGMA = 0.05
SCALE_VAR = {"up": 1.025, "down": 0.975}
JES_SCALE = np.float32(1.03)         # see the note in TtbarAnalysis.process
TREE = "Events"


# ---- systematics helpers (the AGC's utils/systematics.py) ------------------------------
def _splitmix64(x):
    """SplitMix64's finaliser on uint64 keys (wraps modulo 2**64)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def jet_pt_resolution(pt, event, sigma=JER_SIGMA):
    """Per-jet factors N(1, sigma), shaped as ``pt``: the AGC's jet_pt_resolution, with each
    jet's draw a hash of (event number, jet index) instead of an unseeded generator."""
    counts = ak.num(pt)
    index = ak.to_numpy(ak.flatten(ak.local_index(pt, axis=1))).astype(np.uint64)
    events = np.repeat(ak.to_numpy(event).astype(np.uint64), ak.to_numpy(counts))
    key = events * np.uint64(64) + index
    u1 = (_splitmix64(key) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    u2 = (_splitmix64(key ^ np.uint64(0x5DEECE66D)) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    normal = np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)      # Box-Muller
    return ak.unflatten(1.0 + sigma * normal, counts)


def region_observable(region, region_jets):
    """The AGC's observables: H_T in 4j1b; in 4j2b the mass of the highest-pt trijet among
    those with at least one b-tagged jet (the hadronic top candidate)."""
    if region == "4j1b":
        return ak.sum(region_jets.pt, axis=-1)
    # reconstruct hadronic top as bjj system with largest pT
    trijet = ak.combinations(region_jets, 3, fields=["j1", "j2", "j3"])  # trijet candidates
    trijet["p4"] = trijet.j1 + trijet.j2 + trijet.j3  # calculate four-momentum of tri-jet system
    trijet["max_btag"] = np.maximum(trijet.j1.btagCSVV2, np.maximum(trijet.j2.btagCSVV2, trijet.j3.btagCSVV2))
    trijet = trijet[trijet.max_btag > B_TAG_THRESHOLD]  # at least one-btag in trijet candidates
    # pick trijet candidate with largest pT and calculate mass of system
    trijet_mass = trijet["p4"][ak.argmax(trijet.p4.pt, axis=1, keepdims=True)].mass
    return ak.flatten(trijet_mass)


# ---- the processor ----------------------------------------------------------------------
class TtbarAnalysis(processor.ProcessorABC):
    """The AGC's ttbar processor: one histogram per region, every systematic variation."""

    def __init__(self, lumi=LUMI, corrections=CORRECTIONS):
        """Book the histograms; load the b-tag variations (correctionlib)."""
        # initialize dictionary of hists for signal and control region
        self.hist_dict = {}
        for region in ["4j1b", "4j2b"]:
            self.hist_dict[region] = (
                hist.Hist.new.Reg(NUM_BINS, BIN_LOW, BIN_HIGH, name="observable", label="observable [GeV]")
                .StrCat([], name="process", label="Process", growth=True)
                .StrCat([], name="variation", label="Systematic variation", growth=True)
                .Weight()
            )
        self.cset = correctionlib.CorrectionSet.from_file(str(corrections))
        self.lumi = lumi

    def process(self, events):
        """Select, reconstruct and fill every variation of one chunk (the AGC's process)."""
        hist_dict = copy.deepcopy(self.hist_dict)
        process = events.metadata["process"]  # "ttbar" etc.
        variation = events.metadata["variation"]  # "nominal" etc.

        # normalization for MC
        x_sec = events.metadata["xsec"]
        nevts_total = events.metadata["nevts"]
        if process != "data":
            xsec_weight = x_sec * self.lumi / nevts_total
        else:
            xsec_weight = 1

        #### systematics
        # jet energy scale / resolution, attached to events and applied to jet pt below.
        # The scale is a float32 constant so that pt x 1.03 is computed in the jets' float32,
        # as configs/agc_ttbar.yaml's `Jet.pt * 1.03` is (numpy's promotion of a Python float); a
        # Python float field would make it float64, and a jet within one float32 ulp of the 30 GeV
        # cut or an event at a bin edge could then land on the other side of it.
        events["pt_scale_up"] = JES_SCALE
        events["pt_res_up"] = jet_pt_resolution(events.Jet.pt, events.event)

        syst_variations = ["nominal"]
        jet_kinematic_systs = ["pt_scale_up", "pt_res_up"]
        event_systs = [f"btag_var_{i}" for i in range(4)]
        if process == "wjets":
            event_systs.append("scale_var")

        # Only do systematics for nominal samples, e.g. ttbar__nominal (never for data)
        if variation == "nominal" and process != "data":
            syst_variations.extend(jet_kinematic_systs)
            syst_variations.extend(event_systs)

        for syst_var in syst_variations:
            self._one_variation(events, hist_dict, syst_var, jet_kinematic_systs, event_systs, xsec_weight)

        return {"nevents": {events.metadata["dataset"]: len(events)}, "hist_dict": hist_dict}

    def _one_variation(self, events, hist_dict, syst_var, jet_kinematic_systs, event_systs, xsec_weight):
        """The event selection, both regions and the filling of one systematic variation."""
        process, variation = events.metadata["process"], events.metadata["variation"]
        # Note: This creates new objects, distinct from those in the 'events' object
        elecs = events.Electron
        muons = events.Muon
        jets = events.Jet
        if syst_var in jet_kinematic_systs:
            # Replace jet.pt with the adjusted values
            jets["pt"] = jets.pt * events[syst_var]

        electron_reqs = (elecs.pt > 30) & (np.abs(elecs.eta) < 2.1) & (elecs.cutBased == 4) & (elecs.sip3d < 4)
        muon_reqs = ((muons.pt > 30) & (np.abs(muons.eta) < 2.1) & (muons.tightId) & (muons.sip3d < 4) &
                     (muons.pfRelIso04_all < 0.15))
        jet_reqs = (jets.pt > 30) & (np.abs(jets.eta) < 2.4) & (jets.isTightLeptonVeto)

        # Only keep objects that pass our requirements
        elecs = elecs[electron_reqs]
        muons = muons[muon_reqs]
        jets = jets[jet_reqs]

        ######### Store boolean masks with PackedSelection ##########
        selections = PackedSelection(dtype="uint64")
        # Basic selection criteria
        selections.add("exactly_1l", (ak.num(elecs) + ak.num(muons)) == 1)
        selections.add("atleast_4j", ak.num(jets) >= 4)
        selections.add("exactly_1b", ak.sum(jets.btagCSVV2 > B_TAG_THRESHOLD, axis=1) == 1)
        selections.add("atleast_2b", ak.sum(jets.btagCSVV2 > B_TAG_THRESHOLD, axis=1) >= 2)
        # Complex selection criteria
        selections.add("4j1b", selections.all("exactly_1l", "atleast_4j", "exactly_1b"))
        selections.add("4j2b", selections.all("exactly_1l", "atleast_4j", "atleast_2b"))

        for region in ["4j1b", "4j2b"]:
            region_selection = selections.all(region)
            region_jets = jets[region_selection]
            region_weights = np.ones(len(region_jets)) * xsec_weight
            observable = region_observable(region, region_jets)
            if region == "4j2b" and sum(region_selection) == 0:
                continue
            self._fill(hist_dict[region], observable, region_jets, region_weights, syst_var, event_systs,
                       process, variation)

    def _fill(self, histogram, observable, region_jets, region_weights, syst_var, event_systs, process, variation):
        """Fill one region's histogram for one systematic variation."""
        # Break up the filling into event weight systematics and object variation systematics
        if syst_var in event_systs:
            for direction in ["up", "down"]:
                # Should be an event weight systematic with an up/down variation
                if syst_var.startswith("btag_var"):
                    i_jet = int(syst_var.rsplit("_", 1)[-1])   # Kind of fragile
                    wgt_variation = self.cset["btag_var"].evaluate(direction, region_jets.pt[:, i_jet])
                elif syst_var == "scale_var":
                    wgt_variation = np.full(len(region_jets), SCALE_VAR[direction])
                histogram.fill(
                    observable=observable, process=process,
                    variation=f"{syst_var}_{direction}", weight=region_weights * wgt_variation
                )
        else:
            # Should either be 'nominal' or an object variation systematic
            syst_var_name = syst_var
            if variation != "nominal":
                # This is a 2-point systematic, e.g. ttbar__scaledown, ttbar__ME_var, etc.
                syst_var_name = variation
            histogram.fill(
                observable=observable, process=process,
                variation=syst_var_name, weight=region_weights
            )

    def postprocess(self, accumulator):
        """Nothing to do after merging (as the AGC)."""
        return accumulator


# ---- running it -------------------------------------------------------------------------
def parse_inputs(specs: list) -> dict:
    """The AGC's fileset from ``FILE:DATASET:XSEC:NGEN`` items: ``{dataset: {files, metadata}}``."""
    fileset: dict = {}
    for spec in specs:
        parts = spec.rsplit(":", 3)
        if len(parts) != 4:
            raise SystemExit(f"expected FILE:DATASET:XSEC:NGEN, got {spec!r}")
        path, dataset, xsec, nevts = parts
        process, _, variation = dataset.partition("__")
        metadata = {"process": process, "variation": variation or "nominal",
                    "xsec": None if xsec in ("-", "") else float(xsec), "nevts": int(nevts)}
        if process != "data" and metadata["xsec"] is None:
            raise SystemExit(f"{spec!r}: an MC dataset needs its cross-section")
        entry = fileset.setdefault(dataset, {"files": {}, "metadata": metadata})
        if entry["metadata"] != metadata:
            raise SystemExit(f"{spec!r}: dataset {dataset} was given other metadata before")
        entry["files"][str(Path(path).resolve())] = TREE
    return fileset


def make_executor(workers: int):
    """The AGC's local executors: iterative for 1 worker, a futures pool for more."""
    if workers <= 1:
        return processor.IterativeExecutor()
    return processor.FuturesExecutor(workers=workers)


def run(fileset: dict, workers: int, chunksize: int, lumi: float) -> tuple:
    """Run ``TtbarAnalysis`` over ``fileset``; returns (output, metrics)."""
    NanoAODSchema.warn_missing_crossrefs = False  # silences warnings about branches we will not use here
    runner = processor.Runner(
        executor=make_executor(workers),
        schema=NanoAODSchema,
        savemetrics=True,
        metadata_cache={},
        chunksize=chunksize,
    )
    return runner(fileset, processor_instance=TtbarAnalysis(lumi=lumi), treename=TREE)


def histograms_record(hist_dict: dict) -> dict:
    """``{region: {edges, cells: {process/variation: {values, variances}}}}`` (flow bins included)."""
    out = {}
    for region, h in hist_dict.items():
        cells = {}
        view = h.view(flow=True)
        for i, process in enumerate(h.axes["process"]):
            for j, variation in enumerate(h.axes["variation"]):
                cell = view[:, i, j]
                cells[f"{process}/{variation}"] = {"values": cell.value.tolist(),
                                                   "variances": cell.variance.tolist()}
        out[region] = {"edges": h.axes["observable"].edges.tolist(), "cells": cells}
    return out


def main(argv=None) -> int:
    """Command line: run the processor over the inputs, write the histograms as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", metavar="FILE:DATASET:XSEC:NGEN",
                        help="a NanoAOD file, its dataset (process[__variation]), cross-section in pb "
                             "('-' for data) and the dataset's generated events")
    parser.add_argument("--workers", type=int, default=1, help="1: IterativeExecutor; N > 1: FuturesExecutor")
    parser.add_argument("--output", type=Path, required=True, help="the histograms as JSON")
    parser.add_argument("--lumi", type=float, default=LUMI, help=f"luminosity in /pb (default {LUMI})")
    parser.add_argument("--chunksize", type=int, default=200_000, help="events per chunk (default 200000)")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    fileset = parse_inputs(args.inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        output, metrics = run(fileset, args.workers, args.chunksize, args.lumi)
    record = {"workers": args.workers, "lumi": args.lumi, "chunksize": args.chunksize,
              "nevents": output["nevents"], "histograms": histograms_record(output["hist_dict"]),
              "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))},
              "seconds": time.perf_counter() - t0}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record))
    print(f"{sum(output['nevents'].values())} events of {len(fileset)} datasets in {record['seconds']:.2f} s, "
          f"histograms written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
