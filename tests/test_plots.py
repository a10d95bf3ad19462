"""The Plot task's exploration outputs and plot style (analysis/plot, tasks/plots.py).

Every region x observable gets a plot with or without a fit model; the weighted yield
tables agree with sums computed here from histograms.json; a process keeps its colour
across forks; off-scale ratio points become arrows; style and limit/ranking plot fixes.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest

from analysis.config.model import region_observables
from analysis.errors import ConfigError
from analysis.load import load_config
from analysis.plot import exploration, layout as plot_layout, plotting, style as plot_style, yields
from conftest import law_run, runs, small_demo, write_config

# the tiny demo, with a second observable in 4j1b: every region x observable is plotted
EXPLORE = """\
extends: tiny.yaml
name: explore
regions:
  4j1b: {observable: null, observables: [ht, njets]}
observables:
  njets: {expr: "ak.num(jets)", bins: 6, range: [4, 10], label: "number of jets"}
"""

# ... without a fit model: pseudo-data instead of the generated data (whose mixture is
# drawn from the model's samples)
NO_MODEL = """\
extends: explore.yaml
name: nomodel
model: null
datasets:
  data: null
  pseudodata:
    kind: pseudodata
    combine: {ttbar: 1.0, single_top_s_chan: 1.0, single_top_t_chan: 1.0, single_top_tW: 1.0, wjets: 1.0}
"""


@pytest.fixture(scope="module")
def explored(tmp_path_factory):
    """One store with ``law run Plot`` of the fork with a model and of the one without."""
    folder = tmp_path_factory.mktemp("explore")
    small_demo(folder, name="tiny")
    configs = {"explore": write_config(folder, "explore.yaml", EXPLORE),
               "nomodel": write_config(folder, "nomodel.yaml", NO_MODEL)}
    store = folder / "store"
    for config in configs.values():
        law_run("Plot", config, store)
    return configs, store


def plot_folder(store: Path, name: str) -> Path:
    return (store / "by-name" / name / "Plot" / "all").resolve()


def expected_distributions(config: Path) -> set:
    cfg = load_config(config)
    return {f"{region}_{obs}.png" for region, spec in cfg.regions.items() for obs in region_observables(spec)}


# ---- every region x observable, with and without a model --------------------------------
def test_config_without_model_plots_every_region_and_observable(explored):
    configs, store = explored
    folder = plot_folder(store, "nomodel")
    names = expected_distributions(configs["nomodel"])
    assert names == {"4j1b_ht.png", "4j1b_njets.png", "4j2b_m_bjj.png"}
    assert {p.name for p in folder.glob("*.png")} == names           # no fit plots: there is no fit
    for png in folder.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert {p.name for p in folder.glob("yields*")} == {"yields.md", "yields.csv", "yields.tex"}
    assert (folder / "cutflow.md").exists()
    assert not (store / "by-name" / "nomodel" / "Fit").exists()        # Plot needs no fit without a model
    assert "Plot" in {r["task"] for r in runs(store)}
    table = _csv(folder / "yields.csv")
    assert {r["region"] for r in table if r["process"] == "data"} == {"4j1b", "4j2b"}
    assert "Pseudo-data" in (folder / "yields.md").read_text()


def test_config_with_model_keeps_fit_plots_and_adds_distributions(explored):
    configs, store = explored
    folder = plot_folder(store, "explore")
    fit_plots = {"4j1b-CR_prefit.png", "4j1b-CR_postfit.png", "4j2b-SR_prefit.png", "4j2b-SR_postfit.png",
                 "pulls.png", "correlation_matrix.png"}
    assert {p.name for p in folder.glob("*.png")} == expected_distributions(configs["explore"]) | fit_plots
    assert not (folder / "ranking.png").exists()                     # the Ranking task draws it
    assert {p.name for p in folder.glob("yields*")} == {f"yields{s}.{t}" for s in ("", "_postfit")
                                                        for t in ("md", "csv", "tex")}


# ---- yield tables against independent sums ------------------------------------------------
def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def _merged(store: Path, name: str) -> dict:
    import hist
    import uhi.io.json

    path = store / "by-name" / name / "Histograms" / "all" / "histograms.json"
    raw = json.loads(path.read_text(), object_hook=uhi.io.json.object_hook)
    return {key: hist.Hist(value) for key, value in raw.items()}


def test_prefit_yields_equal_sums_of_histograms(explored):
    configs, store = explored
    merged = _merged(store, "explore")
    samples = load_config(configs["explore"]).data["model"]["samples"]
    first = {"4j1b": "ht", "4j2b": "m_bjj"}
    expected = {}
    for region, observable in first.items():
        for sample, spec in {**samples, "data": {"datasets": ["data"]}}.items():
            cells = [merged[f"{d}/{region}/{observable}"][{"variation": "nominal"}].view(flow=True)
                     for d in spec["datasets"]]
            expected[(region, sample)] = (sum(float(c["value"].sum()) for c in cells),
                                          math.sqrt(sum(float(c["variance"].sum()) for c in cells)))
    folder = plot_folder(store, "explore")
    table = {(r["region"], r["process"]): (float(r["yield"]), float(r["uncertainty"]))
             for r in _csv(folder / "yields.csv")}
    assert set(expected) <= set(table)
    for key, (value, error) in expected.items():
        assert table[key] == pytest.approx((value, error), rel=1e-12), key
    total = sum(v for (region, p), (v, _) in expected.items() if region == "4j2b" and p != "data")
    assert table[("4j2b", "total")][0] == pytest.approx(total, rel=1e-12)
    # Markdown and LaTeX show the same numbers, rounded to what they print
    md = (folder / "yields.md").read_text()
    tex = (folder / "yields.tex").read_text()
    labels = {"ttbar": r"$t\bar{t}$", "wjets": "W+jets", "single_top": "single top", "data": "pseudo-data"}
    for sample, label in labels.items():
        row = next(line for line in md.splitlines() if line.startswith(f"| {label} |"))
        cells = [c.strip() for c in row.strip("|").split("|")][1:]
        assert len(cells) == 2
        for cell, region in zip(cells, first):
            value, error = expected[(region, sample)]
            shown, shown_error = (float(x) for x in cell.split(" ± "))
            digits = len(cell.split(" ± ")[0].partition(".")[2])
            assert abs(shown - value) <= 0.51 * 10 ** -digits and abs(shown_error - error) <= 0.51 * 10 ** -digits
            assert f"${cell.replace('±', chr(92) + 'pm')}$" in tex


def test_postfit_yields_come_from_the_fit(explored):
    import hist

    configs, store = explored
    merged = _merged(store, "explore")
    folder = plot_folder(store, "explore")
    rows = {(r["region"], r["process"]): r for r in _csv(folder / "yields_postfit.csv")}
    assert {p for _, p in rows} == {"ttbar", "wjets", "single_top", "total", "data"}
    fit_range = slice(hist.loc(110), hist.loc(550))              # model.rebin: the fit's range
    for channel, region, observable in (("4j1b CR", "4j1b", "ht"), ("4j2b SR", "4j2b", "m_bjj")):
        data = merged[f"data/{region}/{observable}"][{"variation": "nominal"}][fit_range].sum().value
        assert float(rows[(channel, "data")]["postfit"]) == pytest.approx(data)
        ttbar = merged[f"ttbar/{region}/{observable}"][{"variation": "nominal"}][fit_range].sum().value
        assert float(rows[(channel, "ttbar")]["prefit"]) == pytest.approx(ttbar, rel=1e-6)   # ttbar_norm = 1
        post = float(rows[(channel, "ttbar")]["postfit"])
        assert post != pytest.approx(ttbar, rel=1e-6)               # scaled by the fitted ttbar_norm
        assert float(rows[(channel, "total")]["postfit_uncertainty"]) > 0
    fit = json.loads((store / "by-name" / "explore" / "Fit" / "all" / "fit_result.json").read_text())
    norm = fit["values"][fit["labels"].index("ttbar_norm")]
    assert norm != pytest.approx(1.0, abs=1e-3)


# ---- colours, labels and style from the config ---------------------------------------------
REORDER_1 = """\
extends: {parent}
name: reordered
datasets: {{ttbar: null, wjets: null}}
"""
REORDER_2 = """\
extends: reorder1.yaml
datasets:
  wjets: {{kind: mc, xsec: 15487.164, label: "W+jets", generator: {{process: wjets, events: 60000}}}}
  ttbar: {{kind: mc, xsec: 729.84, label: "ttbar", generator: {{process: ttbar, events: 12000}}}}
"""


def test_a_process_keeps_its_colour_across_forks_with_another_dataset_order(tmp_path):
    small_demo(tmp_path, name="tiny")
    write_config(tmp_path, "explore.yaml", EXPLORE)
    first = write_config(tmp_path, "nomodel.yaml", NO_MODEL)
    write_config(tmp_path, "reorder1.yaml", REORDER_1.format(parent="nomodel.yaml"))
    second = write_config(tmp_path, "reorder2.yaml", REORDER_2.format())
    a, b = load_config(first), load_config(second)
    assert list(a.datasets)[:2] == ["ttbar", "single_top_s_chan"] and list(b.datasets)[-2:] == ["wjets", "ttbar"]
    colors_a = {p["name"]: p["color"] for p in plot_layout.plot_layout(a)["processes"]}
    colors_b = {p["name"]: p["color"] for p in plot_layout.plot_layout(b)["processes"]}
    assert colors_a == colors_b and len(set(colors_a.values())) == len(colors_a) == 5
    assert set(colors_a.values()) <= set(plot_style.PALETTE)
    # a colour from the config wins, and moves no other process's colour
    green = write_config(tmp_path, "green.yaml", "extends: reorder2.yaml\ndatasets: {wjets: {color: green}}\n")
    colors_c = {p["name"]: p["color"] for p in plot_layout.plot_layout(load_config(green))["processes"]}
    assert colors_c == {**colors_a, "wjets": "green"}


def test_the_drawn_stack_uses_the_process_colours():
    import hist
    import matplotlib.colors

    mc = hist.Hist.new.Reg(3, 0, 3).Weight().fill([0.5, 1.5, 2.5], weight=[5.0, 5.0, 5.0])
    figure = exploration.data_mc_figure([("a", "#3f90da", mc), ("b", "#bd1f01", mc * 2)], None)
    faces = {matplotlib.colors.to_hex(p.get_facecolor()) for ax in figure.axes for p in ax.patches}
    faces |= {matplotlib.colors.to_hex(c.get_facecolor()[0]) for ax in figure.axes for c in ax.collections
              if len(c.get_facecolor())}
    assert {"#3f90da", "#bd1f01"} <= faces


def test_labels_from_the_config(tmp_path):
    small_demo(tmp_path, name="tiny")
    write_config(tmp_path, "explore.yaml", EXPLORE)
    layout = plot_layout.plot_layout(load_config(write_config(tmp_path, "nomodel.yaml", NO_MODEL)))
    assert layout["data"] == {"dataset": "pseudodata", "label": "Pseudo-data", "pseudo": True}
    assert [p["label"] for p in layout["processes"]] == ["ttbar", "single top s", "single top t", "tW", "W+jets"]
    assert layout["observables"]["ht"]["unit"] == "GeV" and layout["observables"]["njets"]["unit"] is None
    assert layout["style"]["lumi"] == "0.003" and layout["style"]["energy"] == 13
    assert plot_style.y_label([50, 70, 90], "GeV") == "Events / 20 GeV"


def test_experiment_label_lumi_and_energy_are_drawn():
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots()
    plot_style.experiment_label(ax, {"experiment": "CMS", "label": "Open Data", "lumi": "3.38", "energy": 13.6})
    texts = [t.get_text() for t in ax.texts]
    plt.close(figure)
    assert "CMS" in texts and "Open Data" in texts
    assert any("3.38" in t and "fb$^{-1}$" in t and "13.6 TeV" in t for t in texts), texts


def test_off_scale_ratio_points_are_arrows():
    import hist
    from matplotlib.text import Annotation

    mc = hist.Hist.new.Reg(3, 0, 3).Weight().fill([0.5, 1.5, 2.5], weight=[100.0, 100.0, 100.0])
    data = hist.Hist.new.Reg(3, 0, 3).Weight().fill([0.5, 1.5, 2.5], weight=[1000.0, 100.0, 105.0])
    figure = exploration.data_mc_figure([("mc", "#3f90da", mc)], ("Data", data), style={"ratio_range": [0.5, 1.5]})
    ratio_ax = figure.axes[1]
    assert ratio_ax.get_ylim() == (0.5, 1.5)
    arrows = [t for t in ratio_ax.texts if isinstance(t, Annotation) and t.arrow_patch is not None]
    assert len(arrows) == 1                       # data/MC = 10 in the first bin; 1.0 and 1.05 are on scale
    assert arrows[0].xy[0] == pytest.approx(0.5) and arrows[0].xy[1] > arrows[0].xyann[1]   # pointing up
    in_range = exploration.data_mc_figure([("mc", "#3f90da", mc)], ("Data", mc), style={"ratio_range": [0.5, 1.5]})
    assert not [t for t in in_range.axes[1].texts if isinstance(t, Annotation)]


# ---- config checks --------------------------------------------------------------------------
@pytest.mark.parametrize("extra, key, message", [
    ("plots: {ratio_range: [1.5, 0.5]}\n", "plots.ratio_range", "low < high"),
    ("datasets: {wjets: {color: not-a-colour}}\n", "datasets.wjets.color", "colour"),
    ("plots: {energy: -1}\n", "plots.energy", "positive"),
    ("plots: {experiment: [CMS]}\n", "plots.experiment", "string"),
])
def test_plot_config_errors_name_file_line_and_key(tmp_path, extra, key, message):
    small_demo(tmp_path, name="tiny")
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path, "fork.yaml", "extends: tiny.yaml\n" + extra))
    text = str(err.value)
    assert f"key '{key}'" in text and message in text and re.search(r"fork\.yaml:\d+", text), text


def test_a_distribution_may_not_take_another_plots_name(tmp_path):
    small_demo(tmp_path, name="tiny")
    clash = write_config(tmp_path, "clash.yaml", "extends: tiny.yaml\nregions: {correlation: {cut: 'True', "
                         "observable: matrix}}\nobservables: {matrix: {expr: '1.0', bins: 1, range: [0, 2]}}\n")
    with pytest.raises(ConfigError, match=r"correlation_matrix\.png") as err:
        load_config(clash)
    assert "regions.correlation" in str(err.value) and "clash.yaml:" in str(err.value)


# ---- the limit and ranking plots ----------------------------------------------------------
def _captured(monkeypatch) -> list:
    import matplotlib.figure

    drawn = []
    save = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, path, **kw: (drawn.append(fig), save(fig, path, **kw))[1])
    return drawn


def test_limit_plot_names_the_signal_and_a_readable_poi(tmp_path, monkeypatch):
    from analysis.stats.limits import LimitResult

    drawn = _captured(monkeypatch)
    scan = {"poi_values": [0.5, 1.0, 2.0], "observed_CLs": [0.4, 0.1, 0.01],
            "expected_CLs": [[0.3, 0.35, 0.4, 0.45, 0.5], [0.05, 0.07, 0.1, 0.12, 0.15], [0.0, 0.0, 0.01, 0.02, 0.03]]}
    result = LimitResult("mu_zprime", 0.95, 0.9, [0.6, 0.7, 0.9, 1.1, 1.3], scan)
    written = plotting.plot_limit(result, tmp_path, signal="Z' (750 GeV)", style={"title": "AGC ttbar"})
    assert [p.name for p in written] == ["limit.png"]
    figure = drawn[0]
    assert figure._suptitle.get_text() == "Z' (750 GeV)"
    assert "mu_zprime" not in figure.axes[0].get_xlabel() and r"\mu" in figure.axes[0].get_xlabel()


def test_ranking_title_does_not_overlap_its_legend(tmp_path, monkeypatch):
    from analysis.stats.fitting import Ranking

    drawn = _captured(monkeypatch)
    ranking = Ranking("mu", ("a", "b"), (0.1, -0.2), (0.9, 1.0), (0.05, -0.03), (-0.05, 0.03),
                      (0.04, -0.02), (-0.04, 0.02))
    plotting.plot_ranking(ranking, tmp_path, style={"title": "AGC ttbar"})
    figure = drawn[0]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure).draw()                  # the saved layout, on a canvas of its own
    renderer = figure.canvas.get_renderer()
    title = next(t for t in figure.texts if t.get_text() == "AGC ttbar")
    legend = figure.legends[0].get_window_extent(renderer)
    assert not title.get_window_extent(renderer).overlaps(legend)
    for ax in figure.axes:
        assert not ax.get_window_extent(renderer).overlaps(legend)
