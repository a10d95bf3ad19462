"""The AGC plugin's m_bjj (configs/plugins/agc.py): numpy on flat arrays, bit for bit the
masses of the same arithmetic written on awkward arrays (the form the AGC writes, kept
here as the reference), for float32 and float64 jets, events with fewer than three jets
and events without a b-tagged trijet."""

from __future__ import annotations

import importlib.util

import awkward as ak
import numpy as np
import pytest

from conftest import ROOT


def awkward_m_bjj(jets, btagged):
    """The reference: every step on jagged awkward arrays."""
    pt, eta, phi, mass = jets.pt, jets.eta, jets.phi, jets.mass
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = np.sqrt(px * px + py * py + pz * pz + mass * mass)
    i, j, k = ak.unzip(ak.argcombinations(pt, 3))
    sum_px, sum_py = px[i] + px[j] + px[k], py[i] + py[j] + py[k]
    sum_pz, sum_e = pz[i] + pz[j] + pz[k], energy[i] + energy[j] + energy[k]
    trijet_pt2 = sum_px * sum_px + sum_py * sum_py
    trijet_m2 = sum_e * sum_e - trijet_pt2 - sum_pz * sum_pz
    has_btag = btagged[i] | btagged[j] | btagged[k]
    best = ak.argmax(ak.where(has_btag, trijet_pt2, -1.0), axis=1, keepdims=True)
    best_has_btag = ak.fill_none(ak.firsts(has_btag[best]), False)
    return ak.mask(np.sqrt(np.maximum(ak.firsts(trijet_m2[best]), 0.0)), best_has_btag)


@pytest.fixture(scope="module")
def agc():
    spec = importlib.util.spec_from_file_location("agc_plugin_under_test", ROOT / "configs" / "plugins" / "agc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    from analysis.io.generate import generate_file

    path = tmp_path_factory.mktemp("agc") / "ttbar.root"
    generate_file(path, "ttbar", 20_000, seed=5)
    return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager").events()


def _bits(masses):
    values = ak.to_numpy(ak.fill_none(masses, -1.0))
    return ak.to_numpy(ak.is_none(masses)), values.view(np.uint64 if values.dtype == np.float64 else np.uint32)


@pytest.mark.parametrize("variant", ["every jet", "selected jets", "pt scaled (float32)", "pt smeared (float64)",
                                     "fewer than three jets", "no events"])
def test_m_bjj_is_bit_for_bit_the_awkward_form(agc, events, variant):
    jets = events.Jet
    if variant != "every jet":
        jets = jets[(jets.pt > 30) & (abs(jets.eta) < 2.4)]
    if variant == "pt scaled (float32)":
        jets = ak.with_field(jets, jets.pt * 1.03, "pt")
    elif variant == "pt smeared (float64)":
        jets = ak.with_field(jets, jets.pt * agc.jer_factor(jets.pt, events.event), "pt")
    elif variant == "fewer than three jets":
        jets = jets[ak.num(jets) < 3]
    elif variant == "no events":
        jets = jets[:0]
    btagged = jets.btagCSVV2 > 0.5
    expected, got = awkward_m_bjj(jets, btagged), agc.m_bjj(jets, btagged)
    (none_expected, bits_expected), (none_got, bits_got) = _bits(expected), _bits(got)
    assert len(got) == len(jets)
    np.testing.assert_array_equal(none_got, none_expected)
    np.testing.assert_array_equal(bits_got, bits_expected)
    if variant in ("every jet", "selected jets"):
        assert 0 < int((~none_got).sum()) < len(jets)          # some events have a b-tagged trijet, some not
