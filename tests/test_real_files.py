"""Real NanoAOD of three generations through Skim/Select/Histogram, checked against the
AGC selection written with coffea NanoEvents' named IDs (tests/agc_coffea.py)."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
import uproot

from agc_coffea import agc_selection, cutflow, nanoevents
from analysis.load import load_config
from conftest import ROOT, SHARED, law_run, requires_shared

CASES = {
    "cms2015_files": ("cms2015_ttbar_agc_200ev.root", "ttbar_2015", "btagCSVV2", 0.5),
    "nanoaod_v12": ("nano_tt_v12.root", "ttbar_v12", "btagDeepFlavB", 0.3),
    "nanoaod_v15": ("nano_tt_v15.root", "ttbar_v15", "btagPNetB", 0.245),
}


def independent_cutflow(path, btag_branch, btag_cut) -> dict:
    """The AGC selection with coffea NanoEvents' named IDs (tests/agc_coffea.py)."""
    return cutflow(agc_selection(nanoevents(path), btag=btag_branch, working_point=btag_cut))


@requires_shared("nanoaod")
@pytest.mark.parametrize("config_name", sorted(CASES))
def test_real_nanoaod_cutflow_matches_independent_count(config_name, store):
    filename, dataset, btag_branch, btag_cut = CASES[config_name]
    law_run("Histograms", ROOT / "configs" / f"{config_name}.yaml", store)
    select = store / "by-name" / config_name / "Select" / dataset
    cutflow = json.loads((select / "cutflow.json").read_text())
    expected = independent_cutflow(SHARED / "nanoaod" / filename, btag_branch, btag_cut)
    assert cutflow["events"] == expected
    hists = json.loads((store / "by-name" / config_name / "Histograms" / "all" / "histograms.json").read_text())
    assert f"{dataset}/4j1b/ht" in hists and f"{dataset}/4j2b/m_bjj" in hists
    skim_prov = json.loads((store / "by-name" / config_name / "Skim" / f"{dataset}__0" / "provenance.json").read_text())
    assert skim_prov["inputs"]["file"]["name"] == filename
    assert len(skim_prov["inputs"]["file"]["blake3"]) == 64
    # only the branches the config reads were kept
    with uproot.open(select.parent.parent / "Skim" / f"{dataset}__0" / "skim.root") as skim:
        kept = set(skim["Events"].keys())
    assert f"Jet_{btag_branch}" in kept and "Jet_pt" in kept
    assert len(kept) < 40 and "Photon_pt" not in kept


@requires_shared("nanoaod")
def test_real_file_histogram_matches_independent_fill(store):
    import hist

    law_run("Histograms", ROOT / "configs" / "nanoaod_v12.yaml", store)
    path = store / "by-name" / "nanoaod_v12" / "Histograms" / "all" / "histograms.json"
    from analysis.hist import histograms

    merged = histograms.load(path)
    events = nanoevents(SHARED / "nanoaod" / "nano_tt_v12.root")
    selection = agc_selection(events, btag="btagDeepFlavB", working_point=0.3)
    jets = events.Jet[(events.Jet.pt > 30) & (abs(events.Jet.eta) < 2.4) & events.Jet.isTightLeptonVeto]
    ht = ak.to_numpy(ak.sum(jets.pt, axis=1)[selection["masks"]["4j1b"]])
    expected = hist.Hist.new.Reg(25, 50, 550).Double().fill(ht).values()
    cfg = load_config(ROOT / "configs" / "nanoaod_v12.yaml")
    assert cfg.lumi == 3378.0                       # the AGC's, inherited from cms2015_files.yaml
    scale = cfg.datasets["ttbar_v12"]["xsec"] * cfg.lumi / len(events)
    got = merged["ttbar_v12/4j1b/ht"][{"variation": "nominal"}].values()
    np.testing.assert_allclose(got, expected * scale, rtol=1e-9)
