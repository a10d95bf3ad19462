"""Heirloom's AGC analysis selects what the AGC's own coffea processor selects.

Every cutflow step and the selected-jet multiplicity of Heirloom's Select are compared with
``tests/agc_coffea.py``, the AGC selection written with coffea NanoEvents' named IDs
(``Jet.isTightLeptonVeto`` and friends), on generated events and on the real 2015 file.
"""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
import yaml

from agc_coffea import (NJETS_OBSERVABLE, agc_selection, cutflow, heirloom_njets_counts, nanoevents,
                        njets_counts)
from conftest import ROOT, SHARED, law_run, requires_shared, small_demo, write_config

WITH_NJETS = {
    "observables": {"njets": NJETS_OBSERVABLE},
    "regions": {"4j1b": {"observable": None, "observables": ["ht", "njets"]},
                "4j2b": {"observable": None, "observables": ["m_bjj", "njets"]}},
}


def test_agc_config_uses_the_agc_jet_id_and_constants():
    """The bit is tight + lepton veto (value 4), not tight (value 2); cross-sections are the AGC's."""
    from analysis.load import load_config

    cfg = load_config(ROOT / "configs" / "agc_ttbar.yaml")
    assert "(Jet.jetId & 4) > 0" in cfg.data["objects"]["jets"]["where"]
    agc_xsec = {"ttbar": 396.87 + 332.97, "single_top_s_chan": 2.0268 + 1.2676,
                "single_top_t_chan": (36.993 + 22.175) / 0.252, "single_top_tW": 37.936 + 37.906,
                "wjets": 61457 * 0.252}
    for dataset, xsec in agc_xsec.items():
        assert cfg.datasets[dataset]["xsec"] == pytest.approx(xsec, rel=1e-3), dataset
    assert load_config(ROOT / "configs" / "cms2015_files.yaml").lumi == 3378.0


def test_generated_cutflow_and_jet_multiplicity_match_coffea(tmp_path, store):
    extra = yaml.safe_dump(WITH_NJETS)
    config = small_demo(tmp_path, name="fidelity", extra="\n" + extra)
    law_run("Histograms", config, store)
    base = store / "by-name" / "fidelity"
    checked = 0
    for dataset in ("ttbar", "wjets", "single_top_tW", "data"):
        events = nanoevents(base / "Generate" / dataset / "events.root")
        nominal = agc_selection(events)
        select = base / "Select" / dataset
        got = json.loads((select / "cutflow.json").read_text())["events"]
        assert got == cutflow(nominal), dataset
        for region in ("4j1b", "4j2b"):
            assert heirloom_njets_counts(select / "selected.parquet", region) == njets_counts(nominal, region)
        if dataset != "data":       # the jet energy scale variation: pt x 1.03 before the selection
            scaled = agc_selection(events, jet_scale=1.03)
            for region in ("4j1b", "4j2b"):
                assert (heirloom_njets_counts(select / "selected.parquet", region, "jes_up")
                        == njets_counts(scaled, region)), (dataset, region)
        checked += got["4j1b"] + got["4j2b"]
    assert checked > 500            # the comparison saw real selections, not empty ones


@requires_shared("nanoaod", "cms2015_ttbar_agc_200ev.root")
def test_2015_file_cutflow_and_jet_multiplicity_match_coffea(tmp_path, store):
    fork = {"extends": str(ROOT / "configs" / "cms2015_files.yaml"), "name": "fidelity2015", **WITH_NJETS}
    config = write_config(tmp_path, "fidelity2015.yaml", yaml.safe_dump(fork))
    law_run("Histograms", config, store)
    select = store / "by-name" / "fidelity2015" / "Select" / "ttbar_2015"
    events = nanoevents(SHARED / "nanoaod" / "cms2015_ttbar_agc_200ev.root")
    expected = agc_selection(events)
    got = json.loads((select / "cutflow.json").read_text())["events"]
    assert got == cutflow(expected)
    assert got["one_lepton"] > 0
    # the file has tight jets without the lepton veto (jetId 2), so the wrong bit would show
    jets = events.Jet[(events.Jet.pt > 30) & (abs(events.Jet.eta) < 2.4)]
    assert int(ak.sum(jets.isTight & ~jets.isTightLeptonVeto)) > 0


@requires_shared("nanoaod", "cms2015_ttbar_agc_200ev.root")
def test_2015_file_selected_jet_multiplicity_of_every_event_matches_coffea(tmp_path, store):
    """200 real events leave no 4-jet event, so the multiplicity is compared on all events:
    the same jet definition, with the skim and the event selection opened up."""
    fork = {"extends": str(ROOT / "configs" / "cms2015_files.yaml"), "name": "multiplicity2015",
            "skim": {"preselection": "ak.num(Jet.pt) >= 0"},
            "selection": [{"name": "any", "cut": "ak.num(jets) >= 0"}],
            "observables": {"njets": NJETS_OBSERVABLE},
            "regions": {"4j1b": None, "4j2b": None,
                        "every_event": {"cut": "ak.num(jets) >= 0", "observable": "njets"},
                        "tagged": {"cut": "ak.num(bjets) >= 1", "observable": "njets"}},
            "systematics": None}
    config = write_config(tmp_path, "multiplicity2015.yaml", yaml.safe_dump(fork))
    law_run("Select", config, store, "--dataset", "ttbar_2015")
    table = store / "by-name" / "multiplicity2015" / "Select" / "ttbar_2015" / "selected.parquet"
    events = nanoevents(SHARED / "nanoaod" / "cms2015_ttbar_agc_200ev.root")
    jets = events.Jet[(events.Jet.pt > 30) & (abs(events.Jet.eta) < 2.4) & events.Jet.isTightLeptonVeto]
    n_jets = ak.to_numpy(ak.num(jets))
    tagged = ak.to_numpy(ak.sum(jets.btagCSVV2 > 0.5, axis=1) >= 1)
    assert heirloom_njets_counts(table, "every_event") == np.bincount(n_jets, minlength=16).tolist()
    assert heirloom_njets_counts(table, "tagged") == np.bincount(n_jets[tagged], minlength=16).tolist()
    assert n_jets.max() >= 3
