"""Histograms made elsewhere (``external_histograms:``): reading, mapping, variances, the
ExternalHistograms -> Fit -> Plot chain, and the AGC reference fits (../shared/data/agc).

The AGC numbers (../shared/docs/REFERENCES.md, section 1): ttbar_norm = 0.954 +- 0.089
(5 files per process) and 0.960 +- 0.104 (1 file), from an independent cabinetry 0.6.0
reproduction of the AGC notebook; the all-files histograms need MINUIT strategy 2.
MINUIT's Hessian error of this model scatters by about +-0.004 with the strategy and the
parameter order (see docs/fit-products.md), hence the tolerance of 0.01.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import hist
import numpy as np
import pytest

from analysis.hist import external
from analysis.hist import histograms
from analysis.config import ConfigError
from analysis.load import load_config
from analysis.hist.external import ExternalHistogramError
from analysis.stats.modelspec import fit_model
from conftest import ROOT, SHARED, law_run, requires_shared, runs

EDGES = [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
WEIGHTS = {"signal": 0.5, "background": 2.0}


# ---- a small external analysis (no shared data needed) ----------------------------------
def _counts(region: str) -> dict:
    k = 1 if region == "sr" else 3
    return {"signal": np.array([5, 40, 90, 40, 5]) // k, "background": np.array([61, 47, 30, 19, 11]) * k}


def tiny_histograms(scale_jes: float = 1.05) -> dict:
    """{name: {edges, contents}} in the AGC JSON layout; contents = weight x integer counts."""
    out = {}
    for region in ("sr", "cr"):
        counts = _counts(region)
        for process, n in counts.items():
            w = WEIGHTS[process]
            out[f"{region}_{process}"] = n * w
            out[f"{region}_{process}_jes_up"] = np.rint(n * scale_jes) * w
        out[f"{region}_data"] = np.rint(1.2 * counts["signal"] * WEIGHTS["signal"]
                                        + counts["background"] * WEIGHTS["background"])
    return {name: {"edges": EDGES, "contents": [0.0, *map(float, values), 0.0]} for name, values in out.items()}


TINY = """
name: {name}
external_histograms:
  file: {file}
  format: agc_json
  name: "{{region}}_{{dataset}}{{variation}}"
  regions:
    SR: {{name: sr, observable: x, label: "x [GeV]"}}
    CR: cr
  datasets: {{sig: signal, bkg: background, data: data}}
  variations: {{jes_up: _jes_up}}
  variances: per_event_weight
datasets:
  sig: {{kind: mc, xsec: 1.0, label: signal}}
  bkg: {{kind: mc, xsec: 1.0}}
  data: {{kind: data}}
  asimov_like: {{kind: pseudodata, combine: {{sig: 1.2, bkg: 1.0}}}}
regions:
  SR: {{label: signal region}}
  CR: {{label: control region}}
systematics:
  jes: {{type: template, up: jes_up, symmetrize: true}}
  lumi: {{type: normalization, up: 0.02}}
model:
  poi: mu
  data: data
  samples: {{signal: {{datasets: [sig]}}, background: {{datasets: [bkg]}}}}
  norm_factors: {{mu: {{samples: [signal], nominal: 1.0, bounds: [0, 10]}}}}
fit:
  strategy: 1
  minos: [mu]
"""


def tiny_config(folder: Path, name: str = "ext_tiny", extra: str = "", histos: dict | None = None,
                file: str = "histos.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / file).write_text(json.dumps(histos if histos is not None else tiny_histograms()))
    path = folder / f"{name}.yaml"
    path.write_text(TINY.format(name=name, file=file) + extra)
    return path


def with_extra(base: Path, text: str, name: str = "fork.yaml") -> Path:
    path = base.parent / name
    path.write_text(f"extends: {base.name}\n{text}")
    return path


# ---- per-event weights --------------------------------------------------------------------
def test_infer_weight_finds_the_common_step():
    assert external.infer_weight(np.array([0.0, 0.75, 1.25, 2.5])) == pytest.approx(0.25)
    w = 0.008930046783290502                      # AGC ttbar, all files: the smallest bin is 108 w
    counts = np.array([108, 893, 5000, 123457, 2, 0])
    values = np.array([sum([w] * int(n)) for n in counts])         # summed event by event
    found = external.infer_weight(values)
    assert found == pytest.approx(w, rel=1e-9)
    assert external.infer_weight(np.zeros(4)) is None
    assert external.infer_weight(np.array([1.0, np.sqrt(2.0)]), max_steps=1000) is None


# ---- reading and mapping ------------------------------------------------------------------
def test_read_agc_json_layouts(tmp_path):
    path = tmp_path / "h.json"
    path.write_text(json.dumps({"a": {"edges": [0, 1, 2], "contents": [1, 2, 3, 4]},
                                "b": {"edges": [0, 1, 2], "contents": [2, 3]}}))
    raw = external.read_file(path, "agc_json")
    np.testing.assert_array_equal(raw["a"].values, [1, 2, 3, 4])
    np.testing.assert_array_equal(raw["b"].values, [0, 2, 3, 0])          # no flow bins given
    assert raw["a"].variances is None
    path.write_text(json.dumps({"a": {"edges": [0, 1, 2], "contents": [1, 2, 3]}}))
    with pytest.raises(ExternalHistogramError, match="3 contents for 2 bins"):
        external.read_file(path, "agc_json")


def test_build_maps_names_axes_and_variances(tmp_path):
    cfg = load_config(tiny_config(tmp_path))
    merged, summary = external.read(cfg)
    assert sorted(merged) == ["asimov_like/CR/observable", "asimov_like/SR/x", "bkg/CR/observable",
                              "bkg/SR/x", "data/CR/observable", "data/SR/x", "sig/CR/observable", "sig/SR/x"]
    h = merged["sig/SR/x"]
    assert list(h.axes["variation"]) == ["nominal", "jes_up"]
    assert isinstance(h.axes["x"], hist.axis.Regular) and h.axes["x"].label == "x [GeV]"
    np.testing.assert_array_equal(h.axes["x"].edges, EDGES)
    assert h.storage_type is hist.storage.Weight
    assert summary["weights"] == {"sig": pytest.approx(0.5), "bkg": pytest.approx(2.0)}
    np.testing.assert_allclose(h["nominal", :].variances(), 0.5 * h["nominal", :].values())
    bkg = merged["bkg/SR/x"]
    np.testing.assert_allclose(bkg["nominal", :].variances(), 2.0 * bkg["nominal", :].values())
    data = merged["data/SR/x"]
    np.testing.assert_allclose(data["nominal", :].variances(), data["nominal", :].values())   # Poisson
    expected = 1.2 * h["nominal", :].values() + bkg["nominal", :].values()
    np.testing.assert_allclose(merged["asimov_like/SR/x"]["nominal", :].values(), expected)
    assert summary["unused"] == [] and summary["used"] == 10
    assert summary["variations"]["data"] == ["nominal"]
    # the layout of Histograms: a uhi.io JSON round trip
    histograms.dump(merged, tmp_path / "histograms.json")
    again = histograms.load(tmp_path / "histograms.json")
    np.testing.assert_array_equal(again["sig/SR/x"].view(flow=True)["variance"], h.view(flow=True)["variance"])


@pytest.mark.parametrize("mode, factor", [("contents", 1.0), ("zero", 0.0)])
def test_other_variance_modes(tmp_path, mode, factor):
    cfg = load_config(with_extra(tiny_config(tmp_path), f"external_histograms:\n  variances: {mode}\n"))
    merged, summary = external.read(cfg)
    h = merged["bkg/SR/x"]["nominal", :]
    np.testing.assert_allclose(h.variances(), factor * h.values())
    assert summary["weights"] == {}


def test_explicit_weight_overrides_inference(tmp_path):
    cfg = load_config(with_extra(tiny_config(tmp_path), "external_histograms:\n  weights: {bkg: 4.0}\n"))
    merged, summary = external.read(cfg)
    assert summary["weights"]["bkg"] == 4.0
    h = merged["bkg/SR/x"]["nominal", :]
    np.testing.assert_allclose(h.variances(), 4.0 * h.values())


def test_missing_and_misspelt_histograms_are_errors(tmp_path):
    histos = tiny_histograms()
    del histos["cr_background"]
    with pytest.raises(ExternalHistogramError, match="'bkg', region 'CR': no histogram 'cr_background'"):
        external.read(load_config(tiny_config(tmp_path / "a", histos=histos)))
    histos = tiny_histograms()
    del histos["cr_signal_jes_up"]
    with pytest.raises(ExternalHistogramError, match="region 'CR' lacks variations"):
        external.read(load_config(tiny_config(tmp_path / "b", histos=histos)))
    base = tiny_config(tmp_path / "c")
    typo = with_extra(base, "external_histograms:\n  variations: {jes_up: _jes_upp}\n")
    with pytest.raises(ExternalHistogramError, match="variation 'jes_up' matches no histogram"):
        external.read(load_config(typo))


def test_weights_of_weighted_events_cannot_be_inferred(tmp_path):
    histos = tiny_histograms()
    rng = np.random.default_rng(1)
    for region in ("sr", "cr"):                     # event weights that vary: no common step
        contents = np.asarray(histos[f"{region}_background"]["contents"])
        histos[f"{region}_background"]["contents"] = list(contents * rng.uniform(0.95, 1.05, contents.size))
    with pytest.raises(ExternalHistogramError, match="dataset 'bkg'.*weights: \\{bkg: w\\}"):
        external.read(load_config(tiny_config(tmp_path, histos=histos)))


def test_root_format_with_variances_from_the_file(tmp_path):
    import uproot

    with uproot.recreate(tmp_path / "h.root") as out:
        for name, entry in tiny_histograms().items():
            h = hist.Hist(hist.axis.Regular(5, 0, 100, name="x"), storage=hist.storage.Weight())
            values = np.asarray(entry["contents"])
            h.view(flow=True)["value"] = values
            h.view(flow=True)["variance"] = 0.1 * values
            out[name] = h
    base = tiny_config(tmp_path)
    cfg = load_config(with_extra(base, "external_histograms:\n  file: h.root\n  format: root\n"
                                       "  variances: file\n"))
    merged, _ = external.read(cfg)
    h = merged["bkg/SR/x"]["nominal", :]
    np.testing.assert_allclose(h.variances(), 0.1 * h.values())


# ---- config checks ------------------------------------------------------------------------
@pytest.mark.parametrize("extra, key, message", [
    ('external_histograms:\n  name: "{region}_{sample}{variation}"\n', "external_histograms.name",
     "unknown placeholder {sample}"),
    ("external_histograms:\n  datasets: {nope: x}\n", "external_histograms.datasets.nope", "unknown dataset"),
    ("external_histograms:\n  variances: file\n", "external_histograms.format", "store no variances"),
    ("systematics:\n  jer: {type: template, up: jer_up}\n", "systematics.jer.up", "unknown variation 'jer_up'"),
    ("regions:\n  VR: {label: x}\n", "regions.VR", "not mapped in external_histograms.regions"),
    ("external_histograms:\n  weights: {data: 1.0}\n", "external_histograms.weights.data", None),
])
def test_config_errors_are_located(tmp_path, extra, key, message):
    with pytest.raises(ConfigError) as err:
        load_config(with_extra(tiny_config(tmp_path), extra))
    assert err.value.key == key, str(err.value)
    if message:
        assert message in str(err.value)


def test_datasets_and_regions_need_no_event_level_keys(tmp_path):
    cfg = load_config(tiny_config(tmp_path))                   # no files, generators, cuts, observables
    assert "files" not in cfg.datasets["sig"] and "cut" not in cfg.regions["SR"]
    plain = tmp_path / "plain.yaml"                            # without external_histograms: still needed
    plain.write_text("name: plain\ndatasets:\n  a: {kind: mc, xsec: 1.0, files: [a.root]}\n"
                     "regions:\n  SR: {label: no cut}\n")
    with pytest.raises(ConfigError, match="a region needs 'cut'"):
        load_config(plain)


def test_template_systematics_name_their_templates(tmp_path):
    cfg = load_config(with_extra(tiny_config(tmp_path), "systematics:\n  energy: {type: template, up: jes_up}\n"))
    model = fit_model(cfg)
    assert model["systematics"]["jes"] == {"type": "shape", "up": "jes_up", "symmetrize": True}
    assert model["systematics"]["energy"] == {"type": "shape", "up": "jes_up", "symmetrize": True}


# ---- the chain: ExternalHistograms -> Fit -> Plot -------------------------------------------
def test_chain_on_external_histograms(tmp_path):
    config = tiny_config(tmp_path / "a")
    store = tmp_path / "store"
    law_run("Plot", config, store)
    assert [r["task"] for r in runs(store)] == ["ExternalHistograms", "Fit", "Plot"]     # no ranking needed
    law_run("All", config, store)
    assert sorted(r["task"] for r in runs(store)[3:]) == ["Ranking", "Significance"]
    fit = (store / "by-name" / "ext_tiny" / "Fit" / "all").resolve()
    result = json.loads((fit / "fit_result.json").read_text())
    assert result["poi"] == "mu" and abs(result["bestfit"] - 1.2) < 2 * result["uncertainty"]
    ranked = (store / "by-name" / "ext_tiny" / "Ranking" / "all").resolve()
    ranking = json.loads((ranked / "ranking.json").read_text())
    assert ranking["format"] == "heirloom.ranking" and "jes" in ranking["labels"] and "mu" not in ranking["labels"]
    impacts = [max(abs(u), abs(d)) for u, d in zip(ranking["postfit_up"], ranking["postfit_down"])]
    assert impacts == sorted(impacts, reverse=True)                 # most important first
    assert ranking["strategy"] == 1
    assert (ranked / "ranking.png").exists()
    significance = json.loads((store / "by-name" / "ext_tiny" / "Significance" / "all" / "significance.json").read_text())
    assert significance["strategy"] == 1 and significance["observed_p_value"] < 0.05
    assert significance["observed_log10_p_value"] < -1.3 and significance["method"] == "hypotest"
    assert set(json.loads((fit / "provenance.json").read_text())["seconds"]) == {"fit"}
    assert set(json.loads((ranked / "provenance.json").read_text())["seconds"]) == {"ranking"}
    plot = (store / "by-name" / "ext_tiny" / "Plot" / "all").resolve()
    pngs = {p.name for p in plot.glob("*.png")}
    assert {"SR_prefit.png", "SR_postfit.png", "pulls.png", "correlation_matrix.png"} <= pngs
    assert not (plot / "cutflow.md").exists()                        # no event selection ran
    ext = (store / "by-name" / "ext_tiny" / "ExternalHistograms" / "all").resolve()
    prov = json.loads((ext / "provenance.json").read_text())
    source = prov["inputs"]["histograms_file"]
    assert len(source["blake3"]) == 64 and source["file"].endswith("histos.json")

    # no-op rerun; the same content elsewhere (another path, another name) is the same result
    before = len(runs(store))
    law_run("All", config, store)
    moved = tiny_config(tmp_path / "b", file="renamed.json")
    law_run("All", moved, store)
    assert len(runs(store)) == before
    # other content: everything reruns
    changed = tiny_config(tmp_path / "c", histos=tiny_histograms(scale_jes=1.10))
    law_run("Fit", changed, store)
    assert [r["task"] for r in runs(store)[before:]] == ["ExternalHistograms", "Fit"]


def test_ranking_and_significance_can_be_switched_off(tmp_path):
    config = with_extra(tiny_config(tmp_path), "fit:\n  ranking: false\n  significance: false\n")
    store = tmp_path / "store"
    law_run("All", config, store)
    assert [r["task"] for r in runs(store)] == ["ExternalHistograms", "Fit", "Plot"]
    assert not (store / "by-name" / "ext_tiny" / "Ranking").exists()
    assert not (store / "by-name" / "ext_tiny" / "Significance").exists()
    plot = (store / "by-name" / "ext_tiny" / "Plot" / "all").resolve()
    assert (plot / "pulls.png").exists()


def test_missing_file_names_the_file(tmp_path):
    config = tiny_config(tmp_path)
    (tmp_path / "histos.json").unlink()
    proc = law_run("Fit", config, tmp_path / "store", check=False)
    assert proc.returncode != 0
    assert "histos.json" in proc.stdout + proc.stderr


# ---- the AGC reference histograms ---------------------------------------------------------
AGC = SHARED / "agc"
REFERENCE = {"5files": (0.954, 0.089), "1file": (0.960, 0.104)}


def agc_fit(store: Path, name: str) -> dict:
    fit = (store / "by-name" / f"agc_reference_{name}" / "Fit" / "all").resolve()
    return json.loads((fit / "fit_result.json").read_text())


def quick(config: Path, tmp_path: Path) -> Path:
    """The config with the same fit but no ranking/significance (they cost minutes, not the fit)."""
    path = tmp_path / config.name
    path.write_text(f"extends: {config}\nfit:\n  ranking: false\n  significance: false\n")
    return path


@requires_shared("agc", "histos_5_file_per_process.json")
def test_agc_reference_5_files(tmp_path):
    """The full products of the 5-files config: fit, ranking, significance, plots."""
    store = tmp_path / "store"
    law_run("All", ROOT / "configs" / "agc_reference_5files.yaml", store, timeout=900)
    result = agc_fit(store, "5files")
    value, error = REFERENCE["5files"]
    assert result["bestfit"] == pytest.approx(value, abs=0.01)
    assert result["uncertainty"] == pytest.approx(error, abs=0.01)
    assert result["extra"]["hessian_check"]["poi_uncertainty"] == pytest.approx(error, abs=0.01)
    assert result["strategy"] == 2
    down, up = result["minos"]["ttbar_norm"]
    assert -0.10 < down < -0.07 and 0.08 < up < 0.11
    ranked = (store / "by-name" / "agc_reference_5files" / "Ranking" / "all").resolve()
    ranking = json.loads((ranked / "ranking.json").read_text())
    assert set(ranking["labels"][:3]) == {"ttbar_ps", "ttbar_me", "ttbar_scale"}   # the ttbar modelling
    assert ranking["strategy"] == 2
    ext = (store / "by-name" / "agc_reference_5files" / "ExternalHistograms" / "all").resolve()
    summary = json.loads((ext / "external.json").read_text())
    assert summary["used"] == 124 and summary["unused"] == []
    assert summary["weights"]["ttbar"] == pytest.approx(729.84 * 3378 / 6_390_000, rel=0.01)  # xsec lumi / N
    plot = (store / "by-name" / "agc_reference_5files" / "Plot" / "all").resolve()
    assert {"4j1b-CR_postfit.png", "4j2b-SR_postfit.png", "pulls.png", "correlation_matrix.png"} \
        <= {p.name for p in plot.glob("*.png")} and (ranked / "ranking.png").exists()


@requires_shared("agc", "histos_1_file_per_process.json")
def test_agc_reference_1_file(tmp_path):
    store = tmp_path / "store"
    law_run("Fit", quick(ROOT / "configs" / "agc_reference_1file.yaml", tmp_path), store)
    result = agc_fit(store, "1file")
    value, error = REFERENCE["1file"]
    assert result["bestfit"] == pytest.approx(value, abs=0.01)
    assert result["uncertainty"] == pytest.approx(error, abs=0.01)
    assert result["extra"]["hessian_check"]["poi_uncertainty"] == pytest.approx(error, abs=0.01)


@requires_shared("agc", "histos_all_file_per_process.json")
def test_agc_reference_all_files_converges_with_strategy_2(tmp_path):
    store = tmp_path / "store"
    law_run("Fit", quick(ROOT / "configs" / "agc_reference_all.yaml", tmp_path), store)
    result = agc_fit(store, "all")
    assert result["converged"] and result["strategy"] == 2
    assert 0.8 < result["bestfit"] < 1.1 and 0 < result["uncertainty"] < 0.15
    down, up = result["minos"]["ttbar_norm"]                 # MINOS and the curvature agree
    assert result["extra"]["hessian_check"]["poi_uncertainty"] == pytest.approx((up - down) / 2, rel=0.1)
    ext = (store / "by-name" / "agc_reference_all" / "ExternalHistograms" / "all").resolve()
    weights = json.loads((ext / "external.json").read_text())["weights"]
    assert weights["ttbar"] == pytest.approx(0.008930046783290502, rel=1e-9)   # 1/108 of the smallest bin


@requires_shared("agc", "histos_5_file_per_process.json")
def test_agc_pseudodata_is_the_agc_recipe():
    """The file's pseudodata = (ttbar ME_var + ttbar PS_var) / 2 + W+jets (REFERENCES)."""
    for files in ("1", "5", "all"):
        raw = external.read_file(AGC / f"histos_{files}_file_per_process.json", "agc_json")
        for region in ("4j1b", "4j2b"):
            recipe = (raw[f"{region}_ttbar_ME_var"].values + raw[f"{region}_ttbar_PS_var"].values) / 2 \
                + raw[f"{region}_wjets"].values
            np.testing.assert_allclose(raw[f"{region}_pseudodata"].values, recipe, rtol=1e-9, atol=1e-9)


def test_reference_configs_load_without_the_data(tmp_path):
    """The configs are valid where ../shared/data is absent (the file is read by the task)."""
    for name in ("5files", "1file", "all"):
        shutil.copy(ROOT / "configs" / f"agc_reference_{name}.yaml", tmp_path)
    for name in ("5files", "1file", "all"):
        cfg = load_config(tmp_path / f"agc_reference_{name}.yaml")
        assert cfg.data["model"]["data"] == "pseudodata"
        assert not any("files" in d or "generator" in d for d in cfg.datasets.values())
        assert not any("cut" in r for r in cfg.regions.values())
