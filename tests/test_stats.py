"""Statistical model, fit and fit plots (analysis.stats.statmodel / fitting / plotting).

Synthetic inputs: a ttbar peak, a falling W+jets and three single-top datasets in two
regions (25 bins, 50..550), with jes_up, btag_var_0_up/down and (W+jets only)
wjets_scale_up/down variations; data = 1.2 x ttbar + backgrounds, exact or Poisson.
"""

from __future__ import annotations

import copy
import json

import hist
import numpy as np
import pytest
import uproot

from analysis.stats import discovery, fitting
from analysis.plot import plotting
from analysis.stats import statmodel
from analysis.stats.discovery import significance
from analysis.stats.ranking import rank

EDGES = np.linspace(50, 550, 26)
CENTRES = 0.5 * (EDGES[1:] + EDGES[:-1])
MU = 1.2
FACTORS = {
    "jes_up": 1.04 + 0.05 * (CENTRES - 300) / 250,
    "btag_var_0_up": np.full(25, 1.02),
    "btag_var_0_down": np.full(25, 0.98),
    "wjets_scale_up": 1.10 - 0.05 * (CENTRES - 300) / 250,
    "wjets_scale_down": 0.90 + 0.05 * (CENTRES - 300) / 250,
}
MODEL = {
    "poi": "ttbar_norm",
    "data": "data",
    "regions": {"4j1b": {"name": "4j1b CR"}, "4j2b": {"name": "4j2b SR"}},
    "rebin": {"low": 110, "high": 550, "merge": 2},
    "samples": {
        "ttbar": {"datasets": ["ttbar"], "label": "ttbar"},
        "single_top": {"datasets": ["single_top_s_chan", "single_top_t_chan", "single_top_tW"],
                       "label": "single top"},
        "wjets": {"datasets": ["wjets"], "label": "W+jets"},
    },
    "norm_factors": {"ttbar_norm": {"samples": ["ttbar"], "nominal": 1.0, "bounds": [0, 10]}},
    "systematics": {
        "jes": {"type": "shape", "up": "jes_up", "symmetrize": True},
        "btag_var_0": {"type": "shape", "up": "btag_var_0_up", "down": "btag_var_0_down"},
        "wjets_scale": {"type": "shape", "up": "wjets_scale_up", "down": "wjets_scale_down",
                        "samples": ["wjets"]},
        "lumi": {"type": "normalization", "up": 0.03, "down": -0.03},
    },
}
FIT = {"strategy": 1, "tolerance": None, "minos": ["ttbar_norm"], "asimov": False}


def _hist(variations: dict) -> hist.Hist:
    h = hist.Hist(hist.axis.StrCategory(list(variations), name="variation"),
                  hist.axis.Regular(25, 50, 550, name="ht", label="H_T [GeV]"),
                  storage=hist.storage.Weight())
    for i, values in enumerate(variations.values()):
        h.view()[i]["value"] = values
        h.view()[i]["variance"] = 0.01 * values
    return h


def _nominals(region: str) -> dict:
    k = 1.0 if region == "4j1b" else 0.6
    ttbar = 2000 * k * np.exp(-0.5 * ((CENTRES - 250) / 80) ** 2) + 5
    wjets = (1500 if region == "4j1b" else 200) * np.exp(-(CENTRES - 50) / 120) + 1
    top = 150 * k * np.exp(-0.5 * ((CENTRES - 230) / 100) ** 2) + 0.5
    return {"ttbar": ttbar, "wjets": wjets, "single_top_s_chan": 0.2 * top,
            "single_top_t_chan": 0.5 * top, "single_top_tW": 0.3 * top}


def make_histograms(poisson_seed: int | None = None) -> dict:
    rng = np.random.default_rng(poisson_seed)
    out: dict = {}
    for region in ("4j1b", "4j2b"):
        nominals = _nominals(region)
        for dataset, nominal in nominals.items():
            names = ["jes_up", "btag_var_0_up", "btag_var_0_down"]
            names += ["wjets_scale_up", "wjets_scale_down"] if dataset == "wjets" else []
            out.setdefault(dataset, {})[region] = _hist(
                {"nominal": nominal, **{name: nominal * FACTORS[name] for name in names}})
        expected = MU * nominals["ttbar"] + sum(v for k, v in nominals.items() if k != "ttbar")
        data = expected if poisson_seed is None else rng.poisson(expected).astype(float)
        out.setdefault("data", {})[region] = _hist({"nominal": data})
    return out


@pytest.fixture(scope="module")
def asimov_ws(tmp_path_factory):
    return statmodel.build_workspace(make_histograms(), MODEL, FIT, tmp_path_factory.mktemp("asimov"))


@pytest.fixture(scope="module")
def poisson_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("poisson")


@pytest.fixture(scope="module")
def poisson_ws(poisson_dir):
    return statmodel.build_workspace(make_histograms(7), MODEL, FIT, poisson_dir)


@pytest.fixture(scope="module")
def poisson_fit(poisson_ws):
    return fitting.fit_workspace(poisson_ws, FIT)


# ---- rebinning ----------------------------------------------------------------------
def test_rebin_cuts_and_merges_exactly():
    h = make_histograms()["ttbar"]["4j1b"]
    out = statmodel.rebin_for_fit(h, MODEL["rebin"])
    np.testing.assert_array_equal(out.axes["ht"].edges, np.linspace(110, 550, 12))
    for variation in ("nominal", "jes_up"):
        values, variances = h[variation, :].values(), h[variation, :].variances()
        np.testing.assert_array_equal(out[variation, :].values(), values[3::2] + values[4::2])
        np.testing.assert_array_equal(out[variation, :].variances(), variances[3::2] + variances[4::2])
    assert statmodel.rebin_for_fit(h, None) is h


@pytest.mark.parametrize("rebin", [{"low": 115, "high": 550, "merge": 2},
                                   {"low": 110, "high": 545, "merge": 2},
                                   {"low": 110, "high": 550, "merge": 3}])
def test_rebin_misaligned_raises(rebin):
    with pytest.raises(ValueError, match="rebin"):
        statmodel.rebin_for_fit(make_histograms()["ttbar"]["4j1b"], rebin)


# ---- templates and workspace --------------------------------------------------------
def test_template_file(tmp_path):
    histograms = make_histograms()
    path = tmp_path / "templates.root"
    statmodel.write_templates(histograms, MODEL, path)
    with uproot.open(path) as file:
        keys = set(file.keys(cycle=False))
        single_top = file["4j2b__single_top__nominal"].values()
        edges = file["4j1b__data__nominal"].axis().edges()
    assert {"4j1b__data__nominal", "4j2b__ttbar__nominal", "4j1b__ttbar__jes_up",
            "4j1b__wjets__wjets_scale_down", "4j2b__single_top__btag_var_0_down"} <= keys
    assert "4j1b__ttbar__jes_down" not in keys              # symmetrised: built by cabinetry
    assert "4j1b__ttbar__wjets_scale_up" not in keys        # no such variation for ttbar
    expected = sum(statmodel.rebin_for_fit(histograms[d]["4j2b"], MODEL["rebin"])["nominal", :].values()
                   for d in MODEL["samples"]["single_top"]["datasets"])
    np.testing.assert_allclose(single_top, expected, rtol=1e-12)
    np.testing.assert_array_equal(edges, np.linspace(110, 550, 12))


def test_workspace_structure(asimov_ws):
    assert [c["name"] for c in asimov_ws["channels"]] == ["4j1b CR", "4j2b SR"]
    assert [o["name"] for o in asimov_ws["observations"]] == ["4j1b CR", "4j2b SR"]
    assert all(len(o["data"]) == 11 for o in asimov_ws["observations"])
    measurement = asimov_ws["measurements"][0]["config"]
    assert measurement["poi"] == "ttbar_norm"
    assert {"name": "ttbar_norm", "inits": [1.0], "bounds": [[0.0, 10.0]]} in measurement["parameters"]
    for channel in asimov_ws["channels"]:
        modifiers = {s["name"]: {(m["name"], m["type"]) for m in s["modifiers"]} for s in channel["samples"]}
        assert set(modifiers) == {"ttbar", "single_top", "wjets"}
        common = {("lumi", "normsys"), ("jes", "normsys"), ("jes", "histosys"),
                  ("btag_var_0", "normsys"), ("btag_var_0", "histosys")}
        for sample, found in modifiers.items():
            assert common <= found
            assert (("ttbar_norm", "normfactor") in found) == (sample == "ttbar")
            assert (("wjets_scale", "histosys") in found) == (sample == "wjets")
            assert any(kind == "staterror" for _, kind in found)


def test_workspace_is_deterministic(asimov_ws, tmp_path):
    again = statmodel.build_workspace(make_histograms(), MODEL, FIT, tmp_path)
    assert json.dumps(again, sort_keys=True) == json.dumps(asimov_ws, sort_keys=True)
    # the saved cabinetry config points into its own folder, wherever that moves
    saved = (tmp_path / "cabinetry_config.json").read_text()
    assert str(tmp_path) not in saved
    general = json.loads(saved)["General"]
    assert general["InputPath"].startswith(statmodel.TEMPLATE_FILE + ":") and general["HistogramFolder"] == "histograms"


def test_sample_variation_from_other_datasets(tmp_path):
    histograms = make_histograms()
    for name, factor in (("ttbar__scaleup", 1.05), ("ttbar__scaledown", 0.97), ("ttbar__ME_var", 1.02)):
        histograms[name] = {r: _hist({"nominal": h["nominal", :].values() * factor})
                            for r, h in histograms["ttbar"].items()}
    model = copy.deepcopy(MODEL)
    model["systematics"]["ttbar_scale"] = {"type": "shape", "samples": ["ttbar"],
                                           "up_dataset": "ttbar__scaleup", "down_dataset": "ttbar__scaledown"}
    model["systematics"]["ttbar_me"] = {"type": "shape", "samples": ["ttbar"],
                                        "up_dataset": "ttbar__ME_var", "symmetrize": True}
    ws = statmodel.build_workspace(histograms, model, FIT, tmp_path)
    for sample in ws["channels"][0]["samples"]:
        norms = {m["name"]: m["data"] for m in sample["modifiers"] if m["type"] == "normsys"}
        assert ("ttbar_scale" in norms) == ("ttbar_me" in norms) == (sample["name"] == "ttbar")
    norms = {m["name"]: m["data"] for m in ws["channels"][0]["samples"][0]["modifiers"] if m["type"] == "normsys"}
    assert norms["ttbar_scale"]["hi"] == pytest.approx(1.05) and norms["ttbar_scale"]["lo"] == pytest.approx(0.97)
    assert norms["ttbar_me"]["hi"] == pytest.approx(1.02) and norms["ttbar_me"]["lo"] == pytest.approx(0.98)


def test_systematic_without_templates_raises(tmp_path):
    model = copy.deepcopy(MODEL)
    model["systematics"]["jer"] = {"type": "shape", "up": "jer_up", "symmetrize": True}
    with pytest.raises(ValueError, match="jer"):
        statmodel.write_templates(make_histograms(), model, tmp_path / "t.root")


# ---- fits ---------------------------------------------------------------------------
def test_fit_asimov_like_data(asimov_ws):
    result = fitting.fit_workspace(asimov_ws, FIT)
    assert result.poi == "ttbar_norm" and result.converged
    assert abs(result.bestfit - MU) < 1e-3
    down, up = result.minos["ttbar_norm"]
    assert down < 0 < up
    assert result.parameter("ttbar_norm") == (result.bestfit, result.uncertainty)


def test_fit_poisson_data(poisson_fit):
    assert poisson_fit.uncertainty > 0
    assert abs(poisson_fit.bestfit - MU) < 3 * poisson_fit.uncertainty
    assert 0 <= poisson_fit.goodness_of_fit <= 1
    assert {name for name, _, _ in fitting.pulls(poisson_fit)} == {"jes", "btag_var_0", "wjets_scale", "lumi"}
    n = len(poisson_fit.labels)
    assert len(poisson_fit.correlation) == n and all(len(row) == n for row in poisson_fit.correlation)


def test_fit_result_json_round_trip(poisson_fit):
    text = poisson_fit.to_json()
    data = json.loads(text)                                   # strict JSON: no NaN, no pickles
    assert data["format"] == "heirloom.fit-result" and data["poi"] == "ttbar_norm"
    assert fitting.FitResult.from_json(text) == poisson_fit
    data["format"] = "something-else"
    with pytest.raises(ValueError):
        fitting.FitResult.from_dict(data)


def test_fit_rejects_unknown_minos_parameter(asimov_ws):
    with pytest.raises(fitting.FitError, match="not_a_parameter"):
        fitting.fit_workspace(asimov_ws, {**FIT, "minos": ["not_a_parameter"]})


# ---- plots --------------------------------------------------------------------------
def _assert_png(path):
    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots(poisson_ws, poisson_fit, poisson_dir, tmp_path):
    config = statmodel.cabinetry_config(MODEL, FIT, poisson_dir / statmodel.TEMPLATE_FILE)   # real bin edges
    labels = {name: spec["label"] for name, spec in MODEL["samples"].items()}
    written = plotting.plot_prefit_postfit(poisson_ws, poisson_fit, tmp_path, config=config, labels=labels)
    assert sorted(p.name for p in written) == ["4j1b-CR_postfit.png", "4j1b-CR_prefit.png",
                                               "4j2b-SR_postfit.png", "4j2b-SR_prefit.png"]
    written += plotting.plot_pulls(poisson_fit, tmp_path)
    written += plotting.plot_correlation(poisson_fit, tmp_path)
    assert [p.name for p in written[-2:]] == ["pulls.png", "correlation_matrix.png"]
    for path in written:
        _assert_png(path)


def test_plot_style_formats_title_and_log_axis(poisson_ws, poisson_fit, tmp_path, monkeypatch):
    import matplotlib.figure

    drawn = []
    save = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, path, **kw: (drawn.append((fig, path)), save(fig, path, **kw))[1])
    style = {"title": "My analysis", "cms_label": "Simulation", "log_y": True, "formats": ["pdf", "svg"]}
    written = plotting.plot_prefit_postfit(poisson_ws, poisson_fit, tmp_path, style=style)
    written += plotting.plot_pulls(poisson_fit, tmp_path, style=style)
    assert sorted(p.name for p in written if p.stem == "4j1b-CR_prefit") == ["4j1b-CR_prefit.pdf", "4j1b-CR_prefit.svg"]
    assert {p.suffix for p in written} == {".pdf", ".svg"} and not list(tmp_path.glob("*.png"))
    assert written[0].read_bytes()[:5] == b"%PDF-" and b"<svg" in written[1].read_bytes()[:500]
    distribution = drawn[0][0]
    assert distribution._suptitle.get_text() == "My analysis"
    assert distribution.axes[0].get_yscale() == "log"
    assert {"CMS", "Simulation"} <= {t.get_text() for t in distribution.axes[0].texts}


# ---- fit products: Hessian cross-check, ranking, significance -----------------------------
@pytest.fixture(scope="module")
def coarse_ws(tmp_path_factory):
    """2 bins per region (few staterror parameters): a ranking in seconds."""
    model = copy.deepcopy(MODEL)
    model["rebin"] = {"low": 110, "high": 550, "merge": 11}
    return statmodel.build_workspace(make_histograms(11), model, FIT, tmp_path_factory.mktemp("coarse"))


@pytest.fixture(scope="module")
def coarse_fit(coarse_ws):
    return fitting.fit_workspace(coarse_ws, FIT)


def test_hessian_cross_check_agrees_with_minuit(poisson_fit):
    check = poisson_fit.extra["hessian_check"]
    assert check["poi_uncertainty"] == pytest.approx(poisson_fit.uncertainty, rel=0.03)
    assert check["minuit_poi_uncertainty"] == poisson_fit.uncertainty
    assert fitting.FitResult.from_json(poisson_fit.to_json()).extra == poisson_fit.extra


def test_ranking(coarse_ws, coarse_fit):
    ranking = rank(coarse_ws, coarse_fit, FIT, progress=None)
    assert "ttbar_norm" not in ranking.labels
    assert set(ranking.labels) == set(coarse_fit.labels) - {"ttbar_norm"}
    impacts = [max(abs(u), abs(d)) for _, _, _, u, d in ranking.impacts()]
    assert impacts == sorted(impacts, reverse=True) and impacts[0] > 0
    i = ranking.labels.index("lumi")                # lumi raises every sample: ttbar_norm goes down
    assert ranking.postfit_up[i] < 0 < ranking.postfit_down[i]
    assert ranking.strategy == 1 and ranking.seconds > 0
    assert fitting.Ranking.from_json(ranking.to_json()) == ranking
    assert list(ranking.to_cabinetry().labels) == list(ranking.labels)


def test_ranking_on_two_workers_is_cabinetrys_ranking(coarse_ws, coarse_fit):
    """The parameters spread over two processes give cabinetry's own ranking (its serial
    loop of the same fits, with HESSE after each), parameter by parameter, bit for bit."""
    import cabinetry

    spread = rank(coarse_ws, coarse_fit, FIT, workers=2, progress=None)
    model, data = cabinetry.model_utils.model_and_data(coarse_ws)
    reference = cabinetry.fit.ranking(model, data, fit_results=coarse_fit.to_cabinetry(),
                                      init_pars=list(coarse_fit.values), **fitting.minimiser_settings(FIT))
    assert sorted(spread.labels) == sorted(reference.labels)
    for k, label in enumerate(reference.labels):
        i = spread.labels.index(label)
        mine = (spread.prefit_up[i], spread.prefit_down[i], spread.postfit_up[i], spread.postfit_down[i])
        theirs = (reference.prefit_up[k], reference.prefit_down[k], reference.postfit_up[k], reference.postfit_down[k])
        assert mine == tuple(float(x) for x in theirs), label


def test_significance(coarse_ws):
    result = significance(coarse_ws, FIT)
    assert result.poi == "ttbar_norm" and result.strategy == 1
    assert 0 <= result.observed_p_value < 1e-3
    assert fitting.Significance.from_json(result.to_json()) == result


MODEST = {"channels": [{"name": "ch", "samples": [
    {"name": "signal", "data": [5.0, 8.0], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
    {"name": "bkg", "data": [50.0, 40.0], "modifiers": [{"name": "bkg_unc", "type": "shapesys", "data": [5.0, 4.0]}]}]}],
    "observations": [{"name": "ch", "data": [60.0, 52.0]}],
    "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}], "version": "1.0.0"}


def test_a_significance_beyond_a_doubles_p_value_is_a_number(coarse_ws, monkeypatch):
    """Where the p-value underflows to 0 (cabinetry: Z infinite), Z comes from the test
    statistic; on a modest signal that route gives cabinetry's own numbers."""
    import cabinetry

    strong = significance(coarse_ws, FIT)                   # the coarse AGC model: p below 1e-308
    assert strong.method == "q0" and strong.observed_p_value == 0.0
    assert 37.5 < strong.observed_significance < 1e4 and strong.observed_log10_p_value < -308
    record = json.loads(strong.to_json())
    assert None not in (record["observed_significance"], record["expected_significance"],
                        record["observed_log10_p_value"], record["expected_log10_p_value"])

    modest = significance(MODEST, FIT)
    reference = cabinetry.fit.significance(*cabinetry.model_utils.model_and_data(MODEST),
                                           **fitting.minimiser_settings(FIT))     # with HESSE after MIGRAD
    assert (modest.observed_p_value, modest.observed_significance, modest.expected_p_value,
            modest.expected_significance) == tuple(float(x) for x in reference)   # bit for bit
    monkeypatch.setattr(discovery, "p_values", lambda *args: (0.0, 0.0))   # a very strong signal's answer
    rerouted = significance(MODEST, FIT)
    assert modest.method == "hypotest" and rerouted.method == "q0" and 1 < modest.observed_significance < 5
    assert rerouted.observed_significance == pytest.approx(modest.observed_significance, rel=1e-3)
    assert rerouted.expected_significance == pytest.approx(modest.expected_significance, rel=1e-3)
    assert rerouted.observed_log10_p_value == pytest.approx(modest.observed_log10_p_value, rel=1e-3)


def test_minimiser_settings_reach_every_fit(coarse_ws, coarse_fit, monkeypatch):
    import pyhf

    from analysis.stats import lean_minuit

    seen = {}
    real_fit, real_p_values = pyhf.infer.mle.fit, discovery.p_values

    def fit(*args, **kwargs):                  # the ranking's fits: pyhf's, through MIGRAD alone
        optimizer = pyhf.get_backend()[1]
        seen.setdefault("ranking", ({k: kwargs.get(k) for k in ("strategy", "tolerance", "maxiter")},
                                    type(optimizer) is type(lean_minuit.optimizer())))
        return real_fit(*args, **kwargs)

    def recorded_p_values(model, data, settings):
        seen["significance"] = dict(settings)
        return real_p_values(model, data, settings)

    settings = {"strategy": 2, "tolerance": 0.05, "maxiter": 50_000}
    monkeypatch.setattr(pyhf.infer.mle, "fit", fit)
    ranked = rank(coarse_ws, coarse_fit, {**FIT, **settings}, progress=None)
    monkeypatch.setattr(pyhf.infer.mle, "fit", real_fit)
    monkeypatch.setattr(discovery, "p_values", recorded_p_values)
    result = significance(coarse_ws, {**FIT, **settings})
    assert seen == {"ranking": (settings, True), "significance": settings}
    assert (ranked.strategy, ranked.tolerance, ranked.maxiter) == (2, 0.05, 50_000)
    assert (result.strategy, result.tolerance, result.maxiter) == (2, 0.05, 50_000)


def test_failed_ranking_fit_is_a_fit_error(coarse_ws, coarse_fit, monkeypatch):
    import pyhf

    def failing(*args, **kwargs):
        raise pyhf.exceptions.FailedMinimization(type("R", (), {"message": "no convergence"})())

    backend = pyhf.get_backend()
    monkeypatch.setattr(pyhf.infer.mle, "fit", failing)
    with pytest.raises(fitting.FitError, match="impact ranking .*: no convergence"):
        rank(coarse_ws, coarse_fit, FIT, progress=None)
    assert pyhf.get_backend() == backend


def test_ranking_plot(coarse_ws, coarse_fit, tmp_path):
    ranking = rank(coarse_ws, coarse_fit, FIT, progress=None)
    written = plotting.plot_ranking(ranking, tmp_path)
    assert [p.name for p in written] == ["ranking.png"]
    _assert_png(written[0])


def test_minuit_nan_warnings_are_summarised(capfd):
    import os

    from analysis.stats.minuit_output import summarised

    with summarised("a fit"):
        os.write(1, b"W FCN result is NaN for [ nan nan ]\nW MnPosDef Matrix forced pos-def\n" * 3)
        os.write(1, b"W VariableMetricBuilder FunctionMinimum is invalid after second try\n" * 40)
        print("from python")
    out = capfd.readouterr().out
    assert "FCN result is NaN" not in out and "W MnPosDef" not in out and "W VariableMetric" not in out
    assert out.splitlines() == ["from python", 'MINUIT (a fit): 43 warning(s): "FunctionMinimum is invalid after second '
                                'try" x40, "Matrix forced pos-def" x3; 3 evaluations returned NaN (parameter values '
                                'with a negative expected yield)']
