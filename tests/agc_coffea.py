"""The AGC selection as the AGC's own coffea processor writes it, for cross-checks.

Written with coffea NanoEvents and its named IDs (``Jet.isTightLeptonVeto``,
``Electron.isTight``, ``Muon.tightId``) instead of Heirloom's config expressions or
re-typed bit arithmetic, so that a wrong bit in a config cannot hide in the comparison.
The object and event selection follow ``TtbarAnalysis.process`` of
iris-hep/analysis-grand-challenge (analyses/cms-open-data-ttbar); the preselection step is
Heirloom's loose skim (>= 4 jets and >= 1 lepton above 25 GeV), which the AGC does not
have and which removes no event that the AGC selects.
"""

from __future__ import annotations

import warnings

import awkward as ak
import numpy as np


def nanoevents(path):
    """All events of a NanoAOD file as coffea NanoEvents (eager)."""
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # cross-references a small file lacks
        return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema,
                                           mode="eager").events()


def tight_lepton_veto(jets):
    """coffea's named jet ID; for NanoAODv15 (no Jet_jetId, so no accessor) the Run 3
    AK4 PUPPI TightLeptonVeto criteria for |eta| <= 2.6 on coffea's named jet fields."""
    if "jetId" in jets.fields:
        return jets.isTightLeptonVeto
    return ((jets.neHEF < 0.99) & (jets.neEmEF < 0.9) & ((jets.chMultiplicity + jets.neMultiplicity) > 1)
            & (jets.chHEF > 0.01) & (jets.chMultiplicity > 0) & (jets.muEF < 0.8) & (jets.chEmEF < 0.8))


def agc_selection(events, btag: str = "btagCSVV2", working_point: float = 0.5, jet_scale: float = 1.0) -> dict:
    """Per-event masks of every cutflow step and the selected jet multiplicity.

    ``jet_scale`` multiplies jet pt before the selection, as the AGC's ``pt_scale_up``.
    Returns ``{"masks": {step: bool array}, "njets": int array}``.
    """
    elecs, muons, jets = events.Electron, events.Muon, events.Jet
    preselected = (ak.sum(jets.pt > 25, axis=1) >= 4) & (
        (ak.sum(elecs.pt > 25, axis=1) + ak.sum(muons.pt > 25, axis=1)) >= 1)
    if jet_scale != 1.0:
        jets = ak.with_field(jets, jets.pt * jet_scale, "pt")
    elecs = elecs[(elecs.pt > 30) & (np.abs(elecs.eta) < 2.1) & elecs.isTight & (elecs.sip3d < 4)]
    muons = muons[(muons.pt > 30) & (np.abs(muons.eta) < 2.1) & muons.tightId & (muons.sip3d < 4)
                  & (muons.pfRelIso04_all < 0.15)]
    jets = jets[(jets.pt > 30) & (np.abs(jets.eta) < 2.4) & tight_lepton_veto(jets)]
    n_b = ak.sum(jets[btag] > working_point, axis=1)
    one_lepton = preselected & ((ak.num(elecs) + ak.num(muons)) == 1)
    four_jets = one_lepton & (ak.num(jets) >= 4)
    masks = {"all": np.ones(len(events), bool), "preselected": preselected, "one_lepton": one_lepton,
             "four_jets": four_jets, "4j1b": four_jets & (n_b == 1), "4j2b": four_jets & (n_b >= 2)}
    return {"masks": {k: ak.to_numpy(v) for k, v in masks.items()}, "njets": ak.to_numpy(ak.num(jets))}


def cutflow(selection: dict) -> dict:
    """``{step: events passing}`` from :func:`agc_selection`."""
    return {step: int(mask.sum()) for step, mask in selection["masks"].items()}


def njets_counts(selection: dict, region: str, length: int = 16) -> list:
    """How many events of ``region`` have 0, 1, 2, ... selected jets."""
    n = selection["njets"][selection["masks"][region]]
    return np.bincount(n, minlength=length).tolist()


NJETS_OBSERVABLE = {"expr": "ak.num(jets)", "bins": 16, "range": [0, 16], "label": "selected jets"}


def heirloom_njets_counts(selected_parquet, region: str, variation: str = "nominal", length: int = 16) -> list:
    """The same counts from a Select output table (column ``obs_njets``)."""
    import pyarrow.parquet as pq

    table = pq.read_table(selected_parquet).to_pandas()
    rows = table[(table["region"] == region) & (table["variation"] == variation)]
    return np.bincount(rows["obs_njets"].to_numpy().astype(int), minlength=length).tolist()
