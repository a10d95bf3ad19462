"""AGCHistograms: Heirloom's histograms in the AGC's layout, read back by the AGC's tools
(its cabinetry config's path pattern) and by ExternalHistograms, to the same fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from conftest import ROOT, law_run, write_config

SMALL_AGC = """
extends: {parent}
name: small_agc
demo: {{events: 8000}}
lumi: 3.0
datasets:
  ttbar: {{generator: {{process: ttbar, events: 16000}}}}
  single_top_s_chan: {{generator: {{process: single_top_s_chan, events: 8000}}}}
  single_top_t_chan: {{generator: {{process: single_top_t_chan, events: 8000}}}}
  single_top_tW: {{generator: {{process: single_top_tW, events: 8000}}}}
  wjets: {{generator: {{process: wjets, events: 40000}}}}
skim: {{chunk_size: 20000}}
fit: {{ranking: false, significance: false}}
"""

AGC_VARIATIONS = ["pt_scale_up", "pt_res_up"] + [f"btag_var_{i}_{d}" for i in range(4) for d in ("up", "down")] \
    + ["scale_var_up", "scale_var_down"]
SAMPLE_VARIATIONS = {"ttbar__ME_var": "ttbar_ME_var", "ttbar__PS_var": "ttbar_PS_var",
                     "ttbar__scaleup": "ttbar_scaleup", "ttbar__scaledown": "ttbar_scaledown"}

# Heirloom reading the AGC-layout file as it reads the AGC's own histograms
# (configs/agc_reference_5files.yaml), with variances from the file's Sumw2.
EXTERNAL = {
    "extends": "small_agc.yaml", "name": "small_agc_external",
    "external_histograms": {
        "file": None, "format": "root", "name": "{region}_{dataset}{variation}",
        "regions": {"4j1b": "4j1b", "4j2b": "4j2b"},
        "datasets": {"ttbar": "ttbar", **SAMPLE_VARIATIONS, "single_top_s_chan": "single_top_s_chan",
                     "single_top_t_chan": "single_top_t_chan", "single_top_tW": "single_top_tW", "wjets": "wjets",
                     "data": "data", "pseudodata": "pseudodata"},
        "variations": {"nominal": "", **{v: f"_{v}" for v in AGC_VARIATIONS}},
        "variances": "file"},
    "systematics": {
        "jes": {"type": "template", "up": "pt_scale_up", "agc_name": None},
        "jer": {"type": "template", "up": "pt_res_up", "agc_name": None},
        **{f"btag_var_{i}": {"type": "template", "up": f"btag_var_{i}_up", "down": f"btag_var_{i}_down"}
           for i in range(4)},
        "wjets_scale": {"type": "template", "up": "scale_var_up", "down": "scale_var_down", "agc_name": None}},
}


@pytest.fixture(scope="module")
def agc_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("agc_layout")
    store = folder / "store"
    config = write_config(folder, "small_agc.yaml", SMALL_AGC.format(parent=ROOT / "configs" / "agc_ttbar.yaml"))
    law_run("AGCHistograms", config, store)
    law_run("Fit", config, store)
    return {"folder": folder, "store": store, "config": config,
            "layout": store / "by-name" / "small_agc" / "AGCHistograms" / "all",
            "histograms": store / "by-name" / "small_agc" / "Histograms" / "all" / "histograms.json"}


def test_layout_holds_the_merged_histograms_under_the_agcs_names(agc_run):
    import uproot

    from analysis.hist import histograms
    from analysis.hist.external import read_file

    merged = histograms.load(agc_run["histograms"])
    layout = histograms.load(agc_run["layout"] / "hist_dict.json")
    assert sorted(layout) == ["4j1b", "4j2b"]
    assert layout["4j1b"].axes.name == ("observable", "process", "variation")
    assert sorted(layout["4j1b"].axes["process"]) == sorted(
        ["ttbar", "single_top_s_chan", "single_top_t_chan", "single_top_tW", "wjets", "data"])
    assert set(layout["4j2b"].axes["variation"]) == {"nominal", "ME_var", "PS_var", "scaleup", "scaledown",
                                                     *AGC_VARIATIONS}
    with uproot.open(agc_run["layout"] / "histograms.root") as file:
        names = {key.split(";")[0] for key in file.keys()}
        pairs = [("ttbar/4j1b/ht", "nominal", "4j1b_ttbar"), ("ttbar/4j1b/ht", "jes_up", "4j1b_ttbar_pt_scale_up"),
                 ("ttbar/4j2b/m_bjj", "jer_up", "4j2b_ttbar_pt_res_up"),
                 ("wjets/4j1b/ht", "wjets_scale_down", "4j1b_wjets_scale_var_down"),
                 ("wjets/4j2b/m_bjj", "btag_var_3_up", "4j2b_wjets_btag_var_3_up"),
                 ("ttbar__ME_var/4j2b/m_bjj", "nominal", "4j2b_ttbar_ME_var"),
                 ("data/4j1b/ht", "nominal", "4j1b_data")]
        for name, variation, agc_name in pairs:
            mine = merged[name][{"variation": variation}]
            theirs = file[agc_name]
            np.testing.assert_array_equal(theirs.values(flow=True), mine.values(flow=True))
            np.testing.assert_array_equal(theirs.variances(flow=True), mine.variances(flow=True))
        pseudo = (merged["ttbar__ME_var/4j1b/ht"][{"variation": "nominal"}].values(flow=True)
                  + merged["ttbar__PS_var/4j1b/ht"][{"variation": "nominal"}].values(flow=True)) / 2 \
            + merged["wjets/4j1b/ht"][{"variation": "nominal"}].values(flow=True)
        np.testing.assert_allclose(file["4j1b_pseudodata"].values(flow=True), pseudo, rtol=1e-12)
    assert "4j1b_wjets_ME_var" not in names and "4j1b_data_pt_scale_up" not in names   # empty: not written
    assert not any("jes" in name or "jer" in name for name in names)
    # the AGC's reference-file format holds the same contents
    as_json = read_file(agc_run["layout"] / "histos.json", "agc_json")
    assert set(as_json) == names
    np.testing.assert_array_equal(as_json["4j2b_ttbar"].values,
                                  merged["ttbar/4j2b/m_bjj"][{"variation": "nominal"}].values(flow=True))


def test_layout_round_trips_through_external_histograms_to_the_same_fit(agc_run):
    external = dict(EXTERNAL)
    external["external_histograms"] = {**EXTERNAL["external_histograms"],
                                       "file": str(agc_run["layout"] / "histograms.root")}
    config = write_config(agc_run["folder"], "small_agc_external.yaml", yaml.safe_dump(external, sort_keys=False))
    law_run("Fit", config, agc_run["store"])
    by_name = agc_run["store"] / "by-name"
    direct = json.loads((by_name / "small_agc" / "Fit" / "all" / "fit_result.json").read_text())
    again = json.loads((by_name / "small_agc_external" / "Fit" / "all" / "fit_result.json").read_text())
    assert direct["labels"] == again["labels"] and "ttbar_norm" in direct["labels"]
    np.testing.assert_allclose(again["bestfit"], direct["bestfit"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(again["uncertainty"], direct["uncertainty"], rtol=0, atol=1e-6)
    summary = json.loads((by_name / "small_agc_external" / "ExternalHistograms" / "all" / "external.json").read_text())
    assert summary["unused"] == []          # every histogram of the file was read


def test_the_agcs_cabinetry_path_pattern_reads_the_layout(agc_run, tmp_path):
    """A cabinetry config in the AGC's form (InputPath histograms.root:{RegionPath}_{SamplePath}
    {VariationPath}) collects every template it names from the file."""
    import cabinetry
    import uproot

    systematics = [{"Name": "jes", "Type": "NormPlusShape", "Up": {"VariationPath": "_pt_scale_up"},
                    "Down": {"Symmetrize": True}},
                   {"Name": "wjets_scale", "Type": "NormPlusShape", "Up": {"VariationPath": "_scale_var_up"},
                    "Down": {"VariationPath": "_scale_var_down"}, "Samples": "W+jets"},
                   {"Name": "ME", "Type": "NormPlusShape", "Up": {"VariationPath": "_ME_var"},
                    "Down": {"Symmetrize": True}, "Samples": "ttbar"}]
    config = {
        "General": {"Measurement": "agc", "POI": "ttbar_norm", "HistogramFolder": str(tmp_path / "templates"),
                    "InputPath": str(agc_run["layout"] / "histograms.root") + ":{RegionPath}_{SamplePath}{VariationPath}",
                    "VariationPath": ""},
        "Regions": [{"Name": "4j1b CR", "RegionPath": "4j1b", "Variable": "HT"},
                    {"Name": "4j2b SR", "RegionPath": "4j2b", "Variable": "m_bjj"}],
        "Samples": [{"Name": "Pseudodata", "SamplePath": "pseudodata", "Data": True},
                    {"Name": "ttbar", "SamplePath": "ttbar"}, {"Name": "W+jets", "SamplePath": "wjets"}],
        "Systematics": systematics,
        "NormFactors": [{"Name": "ttbar_norm", "Samples": "ttbar", "Nominal": 1.0, "Bounds": [0, 10]}],
    }
    cabinetry.configuration.validate(config)
    cabinetry.templates.collect(config)
    workspace = cabinetry.workspace.build(config)
    channels = {c["name"]: c for c in workspace["channels"]}
    ttbar = next(s for s in channels["4j2b SR"]["samples"] if s["name"] == "ttbar")
    with uproot.open(agc_run["layout"] / "histograms.root") as file:
        np.testing.assert_allclose(ttbar["data"], file["4j2b_ttbar"].values(), rtol=1e-12)
        data = next(o for o in workspace["observations"] if o["name"] == "4j1b CR")["data"]
        np.testing.assert_allclose(data, file["4j1b_pseudodata"].values(), rtol=1e-12)
    assert {m["name"] for m in ttbar["modifiers"]} >= {"jes", "ME", "ttbar_norm"}


def test_agc_name_is_checked_at_load(tmp_path):
    from analysis.config import ConfigError
    from analysis.load import load_config

    parent = ROOT / "configs" / "agc_ttbar.yaml"
    bad = write_config(tmp_path, "bad.yaml", f"extends: {parent}\nname: bad\nsystematics:\n"
                       "  lumi: {agc_name: lumi_var}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:4: key 'systematics.lumi.agc_name'.*event-level"):
        load_config(bad)
    clash = write_config(tmp_path, "clash.yaml", f"extends: {parent}\nname: clash\nsystematics:\n"
                         "  jer: {agc_name: btag_var_0}\n")
    with pytest.raises(ConfigError, match="already the name of another variation"):
        load_config(clash)
