"""The eight ADL benchmark queries (configs/adl/q*.yaml) on the parquet sample, each
histogram checked against an independent computation written here with plain awkward +
numpy + hist (no coffea, no vector behaviours, no Heirloom code); and parquet inputs:
nested schemas, row-range chunks, branch listing."""

from __future__ import annotations

import json

import awkward as ak
import hist
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, SHARED, law_run, requires_shared, write_config

PARQUET = SHARED / "adl" / "Run2012B_SingleMu-1000.parquet"
QUERIES = [f"q{n}" for n in range(1, 9)]
#: histogram name (dataset/region/observable) of each query -> (bins, low, high)
HISTOGRAMS = {
    "q1": {"run2012b/every_event/met": (100, 0, 2000)},
    "q2": {"run2012b/every_event/jet_pt": (100, 15, 60)},
    "q3": {"run2012b/every_event/jet_pt": (100, 15, 60)},
    "q4": {"run2012b/two_jets/met": (100, 0, 2000)},
    "q5": {"run2012b/z_mumu/met": (100, 0, 2000)},
    "q6": {"run2012b/three_jets/trijet_pt": (100, 15, 40), "run2012b/three_jets/trijet_btag": (100, 0, 1)},
    "q7": {"run2012b/every_event/ht": (100, 15, 200)},
    "q8": {"run2012b/sfos/mt": (100, 15, 250)},
}

pytestmark = requires_shared("adl", "Run2012B_SingleMu-1000.parquet")


# ---- the independent computation --------------------------------------------------
def _p4(events, name):
    """Cartesian four-momenta (float64) of a collection, as a plain record array."""
    pt, eta, phi, mass = (ak.values_astype(events[f"{name}_{f}"], np.float64) for f in ("pt", "eta", "phi", "mass"))
    return ak.zip({"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta),
                   "e": np.sqrt((pt * np.cosh(eta)) ** 2 + mass ** 2), "pt": pt, "eta": eta, "phi": phi})


def _add(*vectors):
    return {k: sum(v[k] for v in vectors) for k in ("px", "py", "pz", "e")}


def _mass(v):
    return np.sqrt(np.maximum(v["e"] ** 2 - v["px"] ** 2 - v["py"] ** 2 - v["pz"] ** 2, 0))


def _dphi(a, b):
    return (a - b + np.pi) % (2 * np.pi) - np.pi


def expected_values(events) -> dict:
    """{query: {histogram name: values to fill}} written from REFERENCES.md section 2."""
    out = {}
    met = ak.to_numpy(events.MET_pt)
    out["q1"] = {"run2012b/every_event/met": met}
    out["q2"] = {"run2012b/every_event/jet_pt": ak.flatten(events.Jet_pt)}
    out["q3"] = {"run2012b/every_event/jet_pt": ak.flatten(events.Jet_pt[abs(events.Jet_eta) < 1])}
    out["q4"] = {"run2012b/two_jets/met": met[ak.to_numpy(ak.sum(events.Jet_pt > 40, axis=1) >= 2)]}
    # q5: opposite-charge muon pair with 60 < m < 120
    muons = ak.with_field(_p4(events, "Muon"), events.Muon_charge, "charge")
    a, b = ak.unzip(ak.combinations(muons, 2))
    good = (a.charge != b.charge) & (_mass(_add(a, b)) > 60) & (_mass(_add(a, b)) < 120)
    out["q5"] = {"run2012b/z_mumu/met": met[ak.to_numpy(ak.any(good, axis=1))]}
    # q6: trijet closest to the top mass, in events with >= 3 jets
    jets = ak.with_field(_p4(events, "Jet"), events.Jet_btag, "btag")[ak.num(events.Jet_pt) >= 3]
    j1, j2, j3 = ak.unzip(ak.combinations(jets, 3))
    trijet = _add(j1, j2, j3)
    best = ak.argmin(abs(_mass(trijet) - 172.5), axis=1, keepdims=True)
    trijet_pt = np.hypot(trijet["px"], trijet["py"])[best]
    btag = np.maximum(np.maximum(j1.btag, j2.btag), j3.btag)[best]
    out["q6"] = {"run2012b/three_jets/trijet_pt": ak.flatten(trijet_pt),
                 "run2012b/three_jets/trijet_btag": ak.flatten(btag)}
    # q7: HT of jets with pt > 30 away (DeltaR >= 0.4) from every lepton with pt > 10
    jets = _p4(events, "Jet")
    clean = jets.pt > 30
    for name in ("Electron", "Muon"):
        leptons = _p4(events, name)
        leptons = leptons[leptons.pt > 10]
        pairs = ak.cartesian([jets, leptons], nested=True)
        dr = np.sqrt((pairs["0"].eta - pairs["1"].eta) ** 2 + _dphi(pairs["0"].phi, pairs["1"].phi) ** 2)
        clean = clean & ak.all(dr >= 0.4, axis=2)
    out["q7"] = {"run2012b/every_event/ht": ak.sum(jets.pt[clean], axis=1)}
    # q8: >= 3 leptons, SFOS pair closest to 91.2, mT(MET, leading other lepton)
    leptons = ak.concatenate([
        ak.with_field(ak.with_field(_p4(events, n), events[f"{n}_charge"], "charge"),
                      ak.full_like(events[f"{n}_charge"], flavour), "flavour")
        for n, flavour in (("Electron", 11), ("Muon", 13))], axis=1)
    values = []
    for event_leptons, met_pt, met_phi in zip(ak.to_list(leptons), ak.to_list(events.MET_pt),
                                              ak.to_list(events.MET_phi)):
        if len(event_leptons) < 3:
            continue
        best, best_distance = None, np.inf
        for i in range(len(event_leptons)):
            for j in range(i + 1, len(event_leptons)):
                li, lj = event_leptons[i], event_leptons[j]
                if li["flavour"] != lj["flavour"] or li["charge"] == lj["charge"]:
                    continue
                distance = abs(float(_mass(_add(li, lj))) - 91.2)
                if distance < best_distance:
                    best, best_distance = (i, j), distance
        if best is None:
            continue
        others = [lep for k, lep in enumerate(event_leptons) if k not in best]
        third = max(others, key=lambda lep: lep["pt"])
        values.append(np.sqrt(2 * third["pt"] * met_pt * (1 - np.cos(_dphi(met_phi, third["phi"])))))
    out["q8"] = {"run2012b/sfos/mt": np.array(values)}
    return out


def filled(values, bins, low, high):
    values = np.asarray(ak.to_numpy(values) if isinstance(values, ak.Array) else values, dtype=np.float64)
    return hist.Hist.new.Reg(bins, low, high).Double().fill(values).values(flow=True)


# ---- the runs -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def adl_store(tmp_path_factory):
    """Every query through `law run Histograms`, all in one store."""
    store = tmp_path_factory.mktemp("adl") / "store"
    for query in QUERIES:
        law_run("Histograms", ROOT / "configs" / "adl" / f"{query}.yaml", store)
    return store


@pytest.fixture(scope="module")
def expected():
    return expected_values(ak.from_parquet(PARQUET))


def merged_histograms(store, name):
    from analysis.hist import histograms

    return histograms.load(store / "by-name" / name / "Histograms" / "all" / "histograms.json")


@pytest.mark.parametrize("query", QUERIES)
def test_query_matches_independent_computation(query, adl_store, expected):
    got = merged_histograms(adl_store, f"adl_{query}")
    assert sorted(got) == sorted(HISTOGRAMS[query])
    for name, (bins, low, high) in HISTOGRAMS[query].items():
        values = got[name][{"variation": "nominal"}].values(flow=True)
        want = filled(expected[query][name], bins, low, high)
        assert want.sum() > 0, name
        np.testing.assert_array_equal(values, want, err_msg=f"{query} {name}")


def test_skims_keep_only_what_the_queries_read(adl_store):
    import uproot

    def kept(query):
        skim = adl_store / "by-name" / f"adl_{query}" / "Skim" / "run2012b__0" / "skim.root"
        with uproot.open(skim) as handle:
            return set(handle["Events"].keys())

    ids = {"run", "luminosityBlock", "event"}
    assert kept("q1") == ids | {"MET_pt", "MET_phi"}          # MET is built with its phi
    jet = {"nJet", "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"}
    assert kept("q6") == ids | jet | {"Jet_btag"}              # best_trijet.reads
    # sfos_mt.reads: MET has no eta/mass/charge branch, so only MET_pt/MET_phi are kept
    assert {b for b in kept("q8") if b.startswith("MET")} == {"MET_pt", "MET_phi"}
    assert "Tau_pt" not in kept("q8") and "Jet_pt" not in kept("q8")
    # Jet.metric_table(muons) needs the kinematics of both collections, nothing else
    assert kept("q7") == ids | jet | {
        f"{c}_{f}" for c in ("Muon", "Electron") for f in ("pt", "eta", "phi", "mass", "charge")} | {"nMuon", "nElectron"}
    prov = json.loads((adl_store / "by-name" / "adl_q1" / "Skim" / "run2012b__0" / "provenance.json").read_text())
    assert prov["inputs"]["file"]["name"] == PARQUET.name and len(prov["inputs"]["file"]["blake3"]) == 64


# ---- parquet inputs: nested schema, row-range chunks --------------------------------
def nested_copy(path, row_group_size):
    """The sample rewritten with nested columns: Jet/Muon/Electron as lists of structs
    (no nX counters), MET as a struct, in several row groups."""
    events = ak.from_parquet(PARQUET)
    columns = {"run": events.run, "luminosityBlock": events.luminosityBlock, "event": events.event}
    for name in ("Jet", "Muon", "Electron"):
        columns[name] = ak.zip({f.split("_", 1)[1]: events[f] for f in events.fields if f.startswith(name + "_")})
    columns["MET"] = ak.zip({f[4:]: events[f] for f in events.fields if f.startswith("MET_")}, depth_limit=1)
    ak.to_parquet(ak.zip(columns, depth_limit=1), path, row_group_size=row_group_size)
    return path


def test_nested_parquet_schema_lists_flat_nanoaod_names(tmp_path):
    from analysis.io.fileid import Manifest

    path = nested_copy(tmp_path / "nested.parquet", 256)
    ident = Manifest(tmp_path / "store").identify(path)
    assert ident.format == "parquet" and ident.entries == 1000
    assert {"nJet", "Jet_pt", "Jet_btag", "nMuon", "Muon_charge", "MET_pt", "MET_phi", "event"} <= set(ident.branches)
    assert "Jet" not in ident.branches and "MET" not in ident.branches
    flat = Manifest(tmp_path / "store").identify(PARQUET)
    assert set(ident.branches) <= set(flat.branches)
    schema = pa.schema([("x", pa.list_(pa.list_(pa.float32()))), ("s", pa.string()), ("y", pa.float64())])
    from analysis.io.fileid import parquet_columns
    assert list(parquet_columns(schema)) == ["y"]                # lists of lists and strings are left out


@pytest.mark.parametrize("query", ["q2", "q6", "q8"])
def test_nested_parquet_in_row_range_chunks_gives_the_same_histograms(query, tmp_path, adl_store):
    """Chunks of 300 rows over row groups of 256 rows, read from nested columns."""
    path = nested_copy(tmp_path / "nested.parquet", 256)
    assert pq.ParquetFile(path).num_row_groups == 4
    config = write_config(tmp_path, f"nested_{query}.yaml",
                          f"extends: {ROOT / 'configs' / 'adl' / f'{query}.yaml'}\nname: nested_{query}\n"
                          f"datasets:\n  run2012b:\n    files: ['{path}']\n    format: parquet\n"
                          "skim:\n  chunk_size: 300\n")
    store = tmp_path / "store"
    law_run("Histograms", config, store)
    assert len(list((store / "objects" / "Skim").glob("*/*"))) == 4
    got, want = merged_histograms(store, f"nested_{query}"), merged_histograms(adl_store, f"adl_{query}")
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_array_equal(got[name].values(flow=True), want[name].values(flow=True))


def test_jagged_and_per_event_observables_share_a_region(tmp_path):
    """A per-event observable next to a jagged one is repeated once per object."""
    config = write_config(tmp_path, "mixed.yaml",
                          f"extends: {ROOT / 'configs' / 'adl' / 'q2.yaml'}\nname: mixed\n"
                          "regions:\n  every_event: {cut: 'MET.pt >= 0', observables: [jet_pt, met]}\n"
                          "observables:\n  met: {expr: 'MET.pt', bins: 100, range: [0, 2000]}\n")
    store = tmp_path / "store"
    law_run("Histograms", config, store)
    got = merged_histograms(store, "mixed")
    events = ak.from_parquet(PARQUET, columns=["Jet_pt", "MET_pt"])
    met_per_jet = ak.flatten(ak.broadcast_arrays(events.MET_pt, events.Jet_pt)[0])
    np.testing.assert_array_equal(got["run2012b/every_event/met"][{"variation": "nominal"}].values(flow=True),
                                  filled(met_per_jet, 100, 0, 2000))
