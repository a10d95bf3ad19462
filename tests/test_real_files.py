"""Real NanoAOD of two generations through Skim/Select/Histogram, checked against an
independent count written here with plain uproot + awkward."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
import uproot

from conftest import ROOT, SHARED, law_run, requires_shared

CASES = {
    "cms2015_files": ("cms2015_ttbar_agc_200ev.root", "ttbar_2015", "btagCSVV2", 0.5),
    "nanoaod_v12": ("nano_tt_v12.root", "ttbar_v12", "btagDeepFlavB", 0.3),
    "nanoaod_v15": ("nano_tt_v15.root", "ttbar_v15", "btagPNetB", 0.245),
}


def jet_id(events):
    """Tight-lepton-veto jet ID: the jetId bit where the file has it, else (NanoAODv15)
    recomputed from energy fractions and multiplicities."""
    if "Jet_jetId" in events.fields:
        return (events.Jet_jetId & 2) > 0
    return ((events.Jet_neHEF < 0.99) & (events.Jet_neEmEF < 0.9)
            & ((events.Jet_chMultiplicity + events.Jet_neMultiplicity) > 1) & (events.Jet_chHEF > 0.01)
            & (events.Jet_chMultiplicity > 0) & (events.Jet_muEF < 0.8) & (events.Jet_chEmEF < 0.8))


def independent_cutflow(path, btag_branch, btag_cut) -> dict:
    """The AGC selection written out by hand on the raw file."""
    events = uproot.open(path)["Events"].arrays(filter_name=["Jet_*", "Electron_*", "Muon_*"], library="ak")
    jet_pt, ele_pt, mu_pt = events.Jet_pt, events.Electron_pt, events.Muon_pt
    presel = (ak.sum(jet_pt > 25, axis=1) >= 4) & ((ak.sum(ele_pt > 25, axis=1) + ak.sum(mu_pt > 25, axis=1)) >= 1)
    good_ele = ((ele_pt > 30) & (abs(events.Electron_eta) < 2.1) & (events.Electron_cutBased == 4)
                & (events.Electron_sip3d < 4))
    good_mu = ((mu_pt > 30) & (abs(events.Muon_eta) < 2.1) & events.Muon_tightId & (events.Muon_sip3d < 4)
               & (events.Muon_pfRelIso04_all < 0.15))
    good_jet = (jet_pt > 30) & (abs(events.Jet_eta) < 2.4) & jet_id(events)
    n_lep = ak.sum(good_ele, axis=1) + ak.sum(good_mu, axis=1)
    n_jet = ak.sum(good_jet, axis=1)
    n_b = ak.sum(good_jet & (events[f"Jet_{btag_branch}"] > btag_cut), axis=1)
    one_lepton = presel & (n_lep == 1)
    four_jets = one_lepton & (n_jet >= 4)
    return {"all": len(events), "preselected": int(ak.sum(presel)), "one_lepton": int(ak.sum(one_lepton)),
            "four_jets": int(ak.sum(four_jets)), "4j1b": int(ak.sum(four_jets & (n_b == 1))),
            "4j2b": int(ak.sum(four_jets & (n_b >= 2)))}


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
    assert len(skim_prov["inputs"]["file"]["uuid"]) >= 32
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
    from analysis import histograms

    merged = histograms.load(path)
    events = uproot.open(SHARED / "nanoaod" / "nano_tt_v12.root")["Events"].arrays(library="ak")
    good_jet = (events.Jet_pt > 30) & (abs(events.Jet_eta) < 2.4) & ((events.Jet_jetId & 2) > 0)
    good_ele = ((events.Electron_pt > 30) & (abs(events.Electron_eta) < 2.1) & (events.Electron_cutBased == 4)
                & (events.Electron_sip3d < 4))
    good_mu = ((events.Muon_pt > 30) & (abs(events.Muon_eta) < 2.1) & events.Muon_tightId
               & (events.Muon_sip3d < 4) & (events.Muon_pfRelIso04_all < 0.15))
    presel = (ak.sum(events.Jet_pt > 25, axis=1) >= 4) & (
        (ak.sum(events.Electron_pt > 25, axis=1) + ak.sum(events.Muon_pt > 25, axis=1)) >= 1)
    n_b = ak.sum(good_jet & (events.Jet_btagDeepFlavB > 0.3), axis=1)
    sel = presel & ((ak.sum(good_ele, axis=1) + ak.sum(good_mu, axis=1)) == 1) & (ak.sum(good_jet, axis=1) >= 4)
    ht = ak.to_numpy(ak.sum(events.Jet_pt[good_jet], axis=1)[sel & (n_b == 1)])
    expected = hist.Hist.new.Reg(25, 50, 550).Double().fill(ht).values()
    scale = 923.6 * 30.0 / 200
    got = merged["ttbar_v12/4j1b/ht"][{"variation": "nominal"}].values()
    np.testing.assert_allclose(got, expected * scale, rtol=1e-9)
