"""The whole chain on small generated data: outputs, closure, provenance, incremental reruns."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, law_run, runs, small_demo, trust_plugin


def ran(store: Path, since: int = 0) -> list:
    """(task family, label) of the tasks that ran, in order, after the first ``since`` records."""
    return [(r["task"], r["label"]) for r in runs(store)[since:]]


def families(records) -> set:
    return {family for family, _ in records}


def by_name(store: Path, analysis: str) -> dict:
    """{(family, label): key} of the newest outputs in the human-readable view."""
    out = {}
    for link in (store / "by-name" / analysis).glob("*/*"):
        out[(link.parent.name, link.name)] = link.resolve().name
    return out


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """One full run of a small demo fork; tests copy its store before changing anything."""
    folder = tmp_path_factory.mktemp("base")
    config = small_demo(folder)
    store = folder / "store"
    law_run("Plot", config, store)
    return config, store


def copy_store(store: Path, tmp_path: Path) -> Path:
    target = tmp_path / "store"
    shutil.copytree(store, target, symlinks=True)
    return target


def fit_poi(store: Path, analysis: str) -> tuple:
    link = store / "by-name" / analysis / "Fit" / "all"
    prov = json.loads((link / "provenance.json").read_text())
    return prov["poi"]["value"], prov["poi"]["uncertainty"]


def test_chain_leaves_fit_plots_cutflow_and_provenance(base_run):
    config, store = base_run
    plot = (store / "by-name" / "tiny" / "Plot" / "all").resolve()
    fit = (store / "by-name" / "tiny" / "Fit" / "all").resolve()
    result = json.loads((fit / "fit_result.json").read_text())
    assert "ttbar_norm" in json.dumps(result)
    pngs = sorted(p.name for p in plot.glob("*.png"))
    assert {"4j1b-CR_prefit.png", "4j1b-CR_postfit.png", "4j2b-SR_prefit.png", "4j2b-SR_postfit.png",
            "pulls.png", "correlation_matrix.png"} <= set(pngs)
    for png in plot.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (plot / "cutflow.md").read_text()
    assert "one_lepton" in table and "four_jets" in table and "4j2b" in table
    assert (plot / "cutflow.csv").exists()
    for folder in (plot, fit):
        prov = json.loads((folder / "provenance.json").read_text())
        assert prov["key"] == folder.name
        for name, checksum in prov["outputs"].items():
            assert checksum.startswith("sha256:") and (folder / name).exists()
        for field in ("components", "inputs", "config_excerpt", "code", "git", "versions", "host",
                      "started", "finished"):
            assert field in prov, field
        for package in ("law", "luigi", "coffea", "awkward", "uproot", "hist", "pyhf", "cabinetry"):
            assert prov["versions"][package], package
    select = json.loads(((store / "by-name" / "tiny" / "Select" / "ttbar") / "provenance.json").read_text())
    assert select["events_processed"] > 0
    assert all(v["task"] == "Skim" for v in select["inputs"].values())


def test_closure_default_seed(base_run):
    config, store = base_run
    value, error = fit_poi(store, "tiny")
    assert error > 0
    assert abs(value - 1.0) < 2 * error, (value, error)


def test_closure_other_seed_and_injected_value(tmp_path):
    config = small_demo(tmp_path, name="tiny_b", seed=99, inject=1.3)
    store = tmp_path / "store"
    law_run("Fit", config, store)
    value, error = fit_poi(store, "tiny_b")
    assert abs(value - 1.3) < 2 * error, (value, error)


def test_noop_rerun_runs_nothing(base_run, tmp_path):
    config, store = base_run
    store = copy_store(store, tmp_path)
    before = len(runs(store))
    law_run("Plot", config, store)
    assert ran(store, before) == []


def test_fit_setting_fork_reruns_only_fit_and_plot(base_run, tmp_path):
    config, store = base_run
    store = copy_store(store, tmp_path)
    before, keys_before = len(runs(store)), by_name(store, "tiny")
    fork = tmp_path / "fork.yaml"
    fork.write_text(f"extends: {config}\nfit:\n  strategy: 2\nplots:\n  title: another title\n")
    law_run("Plot", fork, store)
    assert families(ran(store, before)) == {"Fit", "Plot"}
    keys_after = by_name(store, "tiny")
    for (family, label), key in keys_before.items():
        if family in ("Generate", "Skim", "Select", "Histogram", "Histograms"):
            assert keys_after[(family, label)] == key, (family, label)


def test_jet_pt_cut_reruns_select_and_after_not_skim(base_run, tmp_path):
    config, store = base_run
    store = copy_store(store, tmp_path)
    before = len(runs(store))
    fork = tmp_path / "fork.yaml"
    fork.write_text(f"extends: {config}\nobjects:\n  jets:\n    where: "
                    "\"(Jet.pt > 35) & (abs(Jet.eta) < 2.4) & ((Jet.jetId & 4) > 0)\"\n")
    law_run("Plot", fork, store)
    done = families(ran(store, before))
    assert done == {"Select", "Histogram", "Histograms", "Fit", "Plot"}, done


def test_plugin_edit_reruns_only_its_callers(tmp_path):
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    shutil.copy(ROOT / "configs" / "plugins" / "agc.py", plugin_dir / "agc.py")
    trust_plugin(plugin_dir / "agc.py")          # outside the repository: runs only when approved
    config = small_demo(tmp_path, name="tiny_plugin", extra="plugins:\n  agc: plugins/agc.py\n")
    store = tmp_path / "store"
    law_run("Histograms", config, store)
    before = len(runs(store))
    source = (plugin_dir / "agc.py").read_text()
    edited = source.replace("has_btag = tagged[i] | tagged[j] | tagged[k]", "has_btag = tagged[i] | tagged[j]")
    assert edited != source
    (plugin_dir / "agc.py").write_text(edited)
    trust_plugin(plugin_dir / "agc.py")          # an edit withdraws the approval
    law_run("Histograms", config, store)
    done = ran(store, before)
    assert families(done) == {"Select", "Histogram", "Histograms"}
    assert {label for family, label in done if family == "Select"} == {
        "ttbar", "single_top_s_chan", "single_top_t_chan", "single_top_tW", "wjets", "data"}


def test_executor_and_workers_change_no_key(base_run, tmp_path):
    config, store = base_run
    store = copy_store(store, tmp_path)
    before = len(runs(store))
    law_run("Plot", config, store, "--executor", "futures", "--workers", "2")
    law_run("Plot", config, store, "--executor", "dask")
    assert ran(store, before) == []


def test_why_explains_a_changed_cut(base_run, tmp_path):
    import subprocess
    import sys

    config, store = base_run
    fork = tmp_path / "fork.yaml"
    fork.write_text(f"extends: {config}\nselection:\n  - {{name: one_lepton, cut: '(ak.num(electrons) + ak.num(muons)) == 1'}}\n"
                    "  - {name: four_jets, cut: 'ak.num(jets) >= 5'}\n")
    env = {"HEIRLOOM_STORE": str(store), "PATH": str(Path(sys.executable).parent)}
    out = subprocess.run([str(Path(sys.executable).parent / "heirloom"), "why", "Select", "--config", str(fork),
                          "--dataset", "ttbar"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Select[ttbar]: WOULD RUN" in out.stdout
    assert "ak.num(jets) >= 5" in out.stdout
    assert "Skim[ttbar__0]: up to date" in out.stdout


def test_weighted_events_normalise_to_their_sum(tmp_path):
    """With event_weight: genWeight (negative weights in the ME_var sample), MC is scaled
    by xsec * lumi / sum of weights of all generated events, and the cutflow's weighted
    column uses the same weights from the first row on."""
    import numpy as np
    import uproot

    base = small_demo(tmp_path, name="weighted_base")
    config = tmp_path / "weighted.yaml"
    config.write_text(f"extends: {base}\nname: weighted\nevent_weight: genWeight\n"
                      "datasets:\n  ttbar: {generator: {process: ttbar__ME_var}}\n")
    store = tmp_path / "store"
    law_run("Histogram", config, store, "--dataset", "ttbar")
    generated = (store / "by-name" / "weighted" / "Generate" / "ttbar" / "events.root")
    gen_weight = uproot.open(generated)["Events"]["genWeight"].array(library="np")
    assert (gen_weight < 0).any()
    cutflow = json.loads((store / "by-name" / "weighted" / "Select" / "ttbar" / "cutflow.json").read_text())
    assert cutflow["weighted"]["all"] == pytest.approx(float(gen_weight.sum()))
    assert cutflow["events"]["all"] == len(gen_weight)
    prov = json.loads((store / "by-name" / "weighted" / "Histogram" / "ttbar" / "provenance.json").read_text())
    assert prov["scale"] == pytest.approx(729.84 * 3.0 / float(np.sum(gen_weight)))
