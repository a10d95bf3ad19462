"""Tests for analysis.io.generate: determinism, NanoAOD TTree output, AGC-selection physics."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis.io import generate as gen

N = 20_000
COLLECTIONS = ("Electron", "Muon", "Jet")
# (name, collection, cut) of the AGC object selection; used for N-1 checks
OBJECT_CUTS = [
    ("e_pt", "Electron", lambda o: o.pt > 30), ("e_eta", "Electron", lambda o: abs(o.eta) < 2.1),
    ("e_id", "Electron", lambda o: o.cutBased == 4), ("e_sip3d", "Electron", lambda o: o.sip3d < 4),
    ("mu_pt", "Muon", lambda o: o.pt > 30), ("mu_eta", "Muon", lambda o: abs(o.eta) < 2.1),
    ("mu_id", "Muon", lambda o: o.tightId), ("mu_sip3d", "Muon", lambda o: o.sip3d < 4),
    ("mu_iso", "Muon", lambda o: o.pfRelIso04_all < 0.15),
    ("jet_pt", "Jet", lambda o: o.pt > 30), ("jet_eta", "Jet", lambda o: abs(o.eta) < 2.4),
    ("jet_id", "Jet", lambda o: (o.jetId & 4) != 0),   # tight + lepton veto (coffea isTightLeptonVeto)
]


def agc_selection(ev, drop=()):
    """The AGC ttbar selection in plain awkward; returns (n_lep, selected jets, masks)."""
    good = {c: ak.ones_like(ev[c].pt, dtype=bool) for c in COLLECTIONS}
    for name, coll, cut in OBJECT_CUTS:
        if name not in drop:
            good[coll] = good[coll] & cut(ev[coll])
    n_lep = ak.to_numpy(ak.sum(good["Electron"], 1) + ak.sum(good["Muon"], 1))
    jets = ev["Jet"][good["Jet"]]
    sel = np.ones(len(jets), bool)
    if "one_lepton" not in drop:
        sel &= n_lep == 1
    if "four_jets" not in drop:
        sel &= ak.to_numpy(ak.num(jets)) >= 4
    n_b = ak.to_numpy(ak.sum(jets.btagCSVV2 > 0.5, 1))
    return n_lep, jets, {"all": sel, "4j1b": sel & (n_b == 1), "4j2b": sel & (n_b >= 2)}


def m_bjj(jets):
    """Mass of the highest-pt trijet containing >= 1 b-tagged jet."""
    p = ak.zip({"px": jets.pt * np.cos(jets.phi), "py": jets.pt * np.sin(jets.phi),
                "pz": jets.pt * np.sinh(jets.eta),
                "e": np.sqrt((jets.pt * np.cosh(jets.eta)) ** 2 + jets.mass ** 2),
                "b": jets.btagCSVV2 > 0.5})
    a, b, c = ak.unzip(ak.combinations(p, 3))
    px, py, pz, e = (a[k] + b[k] + c[k] for k in ("px", "py", "pz", "e"))
    pt = ak.where(a.b | b.b | c.b, np.hypot(px, py), -1.0)
    mass = np.sqrt(np.maximum(e ** 2 - px ** 2 - py ** 2 - pz ** 2, 0))
    return ak.to_numpy(ak.drop_none(ak.flatten(mass[ak.argmax(pt, axis=1, keepdims=True)])))


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(ak.array_equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def samples():
    return {p: gen.generate_events(p, N, seed=11) for p in ("ttbar", "wjets", "single_top_t_chan")}


# ----------------------------------------------------------------------------- API / determinism
def test_process_names_and_params():
    assert len(gen.PROCESSES) == 10 and "zprime_ttbar" in gen.PROCESSES and "ttbar__PS_var" in gen.PROCESSES
    assert same(gen.generate_events("ttbar__nominal", 500, 3), gen.generate_events("ttbar", 500, 3))
    with pytest.raises(ValueError, match="unknown process"):
        gen.generate_events("ttbar__bogus", 10, 1)
    with pytest.raises(ValueError, match="unknown generator parameter"):
        gen.generate_events("ttbar", 10, 1, params={"mas": 3})
    assert gen.process_spec("zprime_ttbar", {"mass": 2000}).mass == 2000


def test_deterministic_and_seed_dependent():
    a, b = gen.generate_events("ttbar", 3000, 5), gen.generate_events("ttbar", 3000, 5)
    assert same(a, b)
    assert not ak.array_equal(a["Jet"].pt, gen.generate_events("ttbar", 3000, 6)["Jet"].pt)
    assert not ak.array_equal(a["Jet"].pt, gen.generate_events("ttbar__scaleup", 3000, 5)["Jet"].pt)
    with_params = gen.generate_events("zprime_ttbar", 3000, 5, params={"mass": 1500})
    assert not ak.array_equal(gen.generate_events("zprime_ttbar", 3000, 5)["Jet"].pt, with_params["Jet"].pt)


def test_stream_is_stable_across_interpreters():
    """Seeding must not use Python's salted hash(): a fresh interpreter gives the same events."""
    code = ("import awkward as ak; from analysis.io.generate import generate_events as g; "
            "print(repr(float(ak.sum(g('single_top_tW', 2000, 3)['Jet'].pt))))")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(gen.__file__))))   # the repository
    env = {**os.environ, "PYTHONHASHSEED": "12345",
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert float(out.stdout) == float(ak.sum(gen.generate_events("single_top_tW", 2000, 3)["Jet"].pt))


def test_first_event_is_a_window_of_the_stream():
    full = gen.generate_events("single_top_tW", 25_000, 2)
    window = gen.generate_events("single_top_tW", 7_000, 2, first_event=8_000)   # crosses blocks
    assert same({k: v[8_000:15_000] for k, v in full.items()}, window)
    assert window["event"][0] == 8_000 and window["luminosityBlock"][0] == 9
    assert len(gen.generate_events("wjets", 0, 1)["Jet"]) == 0


def test_types_sorting_and_weights(samples):
    ev = samples["ttbar"]
    assert {k: str(v.type.content) for k, v in ev.items() if k not in COLLECTIONS} == {
        "run": "uint32", "luminosityBlock": "uint32", "event": "uint64",
        "genWeight": "float32", "MET_pt": "float32", "MET_phi": "float32"}
    assert str(ev["Muon"].tightId.type.content.content) == "bool"
    assert str(ev["Electron"].cutBased.type.content.content) == "int32"
    assert str(ev["Jet"].jetId.type.content.content) == "int32"
    assert str(ev["Jet"].btagCSVV2.type.content.content) == "float32"
    for coll in COLLECTIONS:
        pt = ev[coll].pt
        assert ak.all(pt[:, :-1] >= pt[:, 1:])
    assert ak.all(ev["genWeight"] == 1)
    w = ak.to_numpy(gen.generate_events("ttbar__ME_var", N, 11)["genWeight"])
    assert set(np.unique(w)) == {-1.0, 1.0} and 0.03 < np.mean(w < 0) < 0.07


# ----------------------------------------------------------------------------------- writing
def test_file_is_nanoaod_ttree_independent_of_chunking(tmp_path):
    path = tmp_path / "tt.root"
    assert gen.generate_file(path, "ttbar", 12_345, 4, chunk_size=5_000) == 12_345
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tt.root"]          # no temp leftovers
    with uproot.open(path) as f:
        tree = f["Events"]
        assert isinstance(tree, uproot.TTree) and tree.num_entries == 12_345
        names = set(tree.keys())
        assert {"run", "luminosityBlock", "event", "genWeight", "MET_pt", "MET_phi", "nElectron",
                "nMuon", "nJet", "Jet_pt", "Jet_btagCSVV2", "Jet_jetId", "Electron_cutBased",
                "Electron_sip3d", "Muon_tightId", "Muon_pfRelIso04_all", "Muon_charge"} <= names
        assert tree["Muon_tightId"].typename == "bool[]" and tree["nJet"].typename == "int32_t"
        arrays = tree.arrays(["nJet", "Jet_pt", "event"])
    ref = gen.generate_events("ttbar", 12_345, 4)
    assert ak.array_equal(arrays["Jet_pt"], ref["Jet"].pt)
    assert np.array_equal(ak.to_numpy(arrays["nJet"]), ak.to_numpy(ak.num(ref["Jet"])))
    assert np.array_equal(ak.to_numpy(arrays["event"]), np.arange(12_345))
    again = tmp_path / "again.root"
    gen.generate_file(again, "ttbar", 12_345, 4, chunk_size=100_000)
    with uproot.open(path) as f1, uproot.open(again) as f2:
        assert ak.array_equal(f1["Events"].arrays(), f2["Events"].arrays())


def test_reads_through_coffea_nanoaodschema(tmp_path):
    nanoevents = pytest.importorskip("coffea.nanoevents")
    path = tmp_path / "wjets.root"
    gen.generate_file(path, "wjets", 3_000, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # missing NanoAOD cross-reference branches
        events = nanoevents.NanoEventsFactory.from_root(
            {str(path): "Events"}, schemaclass=nanoevents.NanoAODSchema, mode="virtual").events()
        assert len(events) == 3_000
        ref = gen.generate_events("wjets", 3_000, 1)
        for coll, field in (("Jet", "pt"), ("Muon", "tightId"), ("Electron", "cutBased")):
            got = ak.materialize(events[coll][field])
            assert ak.array_equal(got, ref[coll][field], check_parameters=False), (coll, field)
        assert ak.all(ak.materialize(events.genWeight) == 1)


def test_write_is_atomic(tmp_path):
    path = tmp_path / "out.root"
    path.write_text("old")

    def broken():
        yield gen.generate_events("ttbar", 100, 1)
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        gen.write_nanoaod(path, broken())
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.root"]
    assert gen.write_nanoaod(path, gen.generate_events("ttbar", 0, 1)) == 0
    with uproot.open(path) as f:
        assert isinstance(f["Events"], uproot.TTree) and f["Events"].num_entries == 0


def test_cli(tmp_path, capsys):
    out = tmp_path / "zp.root"
    assert gen.main(["zprime_ttbar", "500", "3", str(out), "--param", "mass=1500"]) == 0
    assert "wrote 500 events of zprime_ttbar" in capsys.readouterr().out
    with uproot.open(out) as f:
        assert f["Events"].num_entries == 500


# ----------------------------------------------------------------------------------- physics
def test_regions_populated_and_shapes(samples):
    res = {p: agc_selection(ev) for p, ev in samples.items()}
    frac = {p: {r: m.mean() for r, m in masks.items()} for p, (_, _, masks) in res.items()}
    assert frac["ttbar"]["4j1b"] > 0.05 and frac["ttbar"]["4j2b"] > 0.05
    assert frac["wjets"]["4j1b"] > 0 and frac["single_top_t_chan"]["4j1b"] > 0
    assert frac["wjets"]["4j2b"] < 0.05 * frac["ttbar"]["4j2b"]
    # hadronic top peak in 4j2b
    _, jets, masks = res["ttbar"]
    assert 140 < np.median(m_bjj(jets[masks["4j2b"]])) < 210
    # wjets is softer in HT
    ht = {p: ak.to_numpy(ak.sum(res[p][1].pt[res[p][2]["4j1b"]], 1)) for p in ("ttbar", "wjets")}
    assert ht["wjets"].mean() < 0.85 * ht["ttbar"].mean()


def test_every_cut_removes_events(samples):
    ev = samples["ttbar"]
    n_lep, _, masks = agc_selection(ev)
    assert np.any(n_lep == 0) and np.any(n_lep == 2)
    n_sel = masks["all"].sum()
    for cut in [name for name, _, _ in OBJECT_CUTS] + ["one_lepton", "four_jets"]:
        assert agc_selection(ev, drop=(cut,))[2]["all"].sum() != n_sel, cut


def test_variations_and_signal():
    mean_pt = {p: ak.mean(gen.generate_events(p, N, 2)["Jet"].pt)
               for p in ("ttbar", "ttbar__scaleup", "ttbar__scaledown", "zprime_ttbar")}
    assert mean_pt["ttbar__scaledown"] < mean_pt["ttbar"] < mean_pt["ttbar__scaleup"]
    assert mean_pt["zprime_ttbar"] > 1.3 * mean_pt["ttbar"]
    sel = {p: agc_selection(gen.generate_events(p, N, 2))[2]["4j2b"].mean()
           for p in ("ttbar", "ttbar__ME_var", "ttbar__PS_var")}
    assert all(0.8 < sel[p] / sel["ttbar"] < 1.2 for p in sel)


# ----------------------------------------------------------------------------------- mixture
def test_generate_mixture(tmp_path):
    expected = {"ttbar": 4000.0, "wjets": 2500.5, "single_top_s_chan": 0.0}
    path = tmp_path / "data.root"
    counts = gen.generate_mixture(path, expected, 9, chunk_size=3_000)
    assert list(counts) == list(expected) and counts["single_top_s_chan"] == 0
    for p, mu in expected.items():
        assert abs(counts[p] - mu) <= 5 * np.sqrt(mu) + 1e-9
    other = [gen.generate_mixture(tmp_path / f"s{s}.root", {"ttbar": 4000.0}, s)["ttbar"] for s in (1, 2, 3)]
    assert len(set(other)) > 1   # Poisson fluctuations, not round(expected)
    assert gen.generate_mixture(tmp_path / "again.root", dict(reversed(expected.items())), 9) == counts
    with uproot.open(path) as f:
        tree = f["Events"]
        assert isinstance(tree, uproot.TTree) and tree.num_entries == sum(counts.values())
        data = tree.arrays(["event", "genWeight", "Jet_pt"])
    with uproot.open(tmp_path / "again.root") as f:
        assert ak.array_equal(f["Events"].arrays(["Jet_pt"])["Jet_pt"], data["Jet_pt"])
    assert np.array_equal(ak.to_numpy(data["event"]), np.arange(sum(counts.values())))
    assert ak.all(data["genWeight"] == 1)
    # data events are not a copy of the MC made with the same seed, and are shuffled
    mc = gen.generate_events("ttbar", counts["ttbar"], 9)
    assert not ak.array_equal(data["Jet_pt"][: counts["ttbar"]], mc["Jet"].pt)
    empty = gen.generate_mixture(tmp_path / "empty.root", {}, 1)
    assert empty == {}
