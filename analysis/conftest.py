"""Objects for the docstring examples of ``analysis/`` (``pytest --doctest-modules analysis``).

Every example runs at the repository root (configs are named ``configs/...``). An example
that names one of the objects below gets it in its namespace; each is made once per
session and only when an example needs it, and none needs ../shared/data:

- ``cfg``: ``configs/demo.yaml``, loaded; ``load_config``: :func:`analysis.load.load_config`
- ``outdir``: an empty temporary folder (one per docstring)
- ``merged``: small made-up merged histograms of ``cfg`` (``dataset/region/observable``;
  the MC datasets with every variation Select would make, and Poisson data);
  ``histograms`` and ``model``: their fit histograms and the fit model of ``cfg``
- ``ws``: the pyhf workspace built from them (in the folder ``work``); ``fit_result``: its fit
- ``tiny_ws``: a one-channel, three-bin workspace (POI ``mu``, three nuisance parameters)
  for the costly statistics (ranking, significance, limits); ``ranking`` and
  ``limit_result``: its impact ranking and its CLs limit (a 11-point grid);
  ``tiny_model_and_data``: its pyhf model and data
- ``events``: 2000 generated ttbar events (an awkward record array, as Select sees a
  chunk); ``plan``: the SelectionPlan of ttbar in ``cfg``
- ``nano``: a NanoAOD-like ROOT file of 1000 generated ttbar events; ``events_parquet``:
  100 of them as parquet (one row per event, ``Jet`` a list of structs)
- ``ext_cfg``: a config with ``external_histograms:`` and its tiny ``agc_json`` file ``ext_file``
- ``lh_cfg``: a config with ``likelihood:`` and its toy HEPData-like archive ``archive``
  (a background-only workspace ``bkg`` and a 3 x 3 grid of signal patches); ``likelihood``:
  what :func:`analysis.likelihood.published.read_likelihood` reads from it; ``patches``: its
  PatchSet entries; ``ops``: the JSON-patch operations of one point; ``points``: the CLs of
  every point
"""

from __future__ import annotations

import io
import json
import math
import re
import tarfile
from pathlib import Path
from typing import Any, Callable, cast

import pytest

from analysis.config.model import AnalysisConfig
from analysis.likelihood.published import Likelihood
from analysis.select.selection import SelectionPlan
from analysis.stats.fitting import FitResult, Ranking
from analysis.stats.limits import LimitResult

Loader = Callable[..., AnalysisConfig]      # the type of load_config

ROOT = Path(__file__).resolve().parent.parent


# ---- the namespace ------------------------------------------------------------------------
#: name in the examples -> the fixture that makes it
PROVIDED = {
    "cfg": "doctest_cfg", "load_config": "doctest_load_config", "outdir": "tmp_path",
    "merged": "doctest_merged", "histograms": "doctest_histograms", "model": "doctest_model",
    "ws": "doctest_ws", "work": "doctest_work", "fit_result": "doctest_result",
    "tiny_ws": "doctest_tiny_ws", "tiny_model_and_data": "doctest_tiny_model_and_data",
    "ranking": "doctest_ranking", "limit_result": "doctest_limit_result",
    "events": "doctest_events", "plan": "doctest_plan", "nano": "doctest_nano",
    "events_parquet": "doctest_events_parquet", "ext_cfg": "doctest_ext_cfg", "ext_file": "doctest_ext_file",
    "lh_cfg": "doctest_lh_cfg", "archive": "doctest_archive", "bkg": "doctest_bkg",
    "likelihood": "doctest_likelihood", "patches": "doctest_patches", "ops": "doctest_ops",
    "points": "doctest_points",
}
_USES = {name: re.compile(rf"(?<![\w.'\"]){name}(?![\w'\"])") for name in PROVIDED}
_BINDS = {name: re.compile(rf"^[\w, ]*(?<![\w.]){name}\b[\w, ]*=(?!=)", re.MULTILINE) for name in PROVIDED}


def _wanted(name: str, source: str) -> bool:
    """Whether the examples read ``name`` without binding it themselves (``ws = ...``)."""
    return bool(_USES[name].search(source)) and not _BINDS[name].search(source)


@pytest.fixture(autouse=True)
def _doctest_objects(request, doctest_namespace, monkeypatch):
    """Run at the repository root, with plugin approvals in a file of the test's own (never
    the user's ~/.config); give a docstring the objects its examples name."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("HEIRLOOM_TRUST_FILE", str(request.getfixturevalue("tmp_path") / "trusted.sha256"))
    test = getattr(request.node, "dtest", None)
    added = []
    if test is not None:
        source = "\n".join(example.source for example in test.examples)
        for name, fixture in PROVIDED.items():
            if _wanted(name, source):
                doctest_namespace[name] = request.getfixturevalue(fixture)
                added.append(name)
    yield
    for name in added:
        doctest_namespace.pop(name, None)


# ---- an event analysis: configs/demo.yaml -------------------------------------------------
@pytest.fixture(scope="session")
def doctest_load_config() -> Loader:
    from analysis.load import load_config

    return load_config


@pytest.fixture(scope="session")
def doctest_cfg(doctest_load_config: Loader) -> AnalysisConfig:
    return doctest_load_config(ROOT / "configs" / "demo.yaml")


#: made-up expected events per (dataset, region) before the fit's rebinning, with the mean
#: and width of the observable (GeV): ttbar dominates 4j2b (m_bjj near the top mass)
_SHAPES = {
    "ttbar": {"4j1b": (1800, 320, 90), "4j2b": (2000, 190, 60)},
    "single_top_s_chan": {"4j1b": (4, 280, 90), "4j2b": (6, 200, 80)},
    "single_top_t_chan": {"4j1b": (70, 270, 90), "4j2b": (40, 210, 80)},
    "single_top_tW": {"4j1b": (90, 300, 90), "4j2b": (60, 200, 70)},
    "wjets": {"4j1b": (450, 240, 90), "4j2b": (50, 230, 100)},
}


def _spectrum(edges, events: float, mean: float, width: float):
    """A Gaussian peak (90 % of the events) on a falling exponential tail (10 %, slope 150 GeV)."""
    import numpy as np

    peak = np.array([0.5 * (1 + math.erf((e - mean) / (math.sqrt(2) * width))) for e in edges])
    tail = -np.exp(-(np.asarray(edges) - edges[0]) / 150.0)
    return events * (0.9 * np.diff(peak) + 0.1 * np.diff(tail))


def _variation(edges, centers, variation: str, events: float, mean: float, width: float):
    """Contents of one variation: jes shifts the observable up by 3 %, a b-tag weight
    tilts the spectrum (b-tag variation 0 by +-5 %, 1 by +-3 % at 300 GeV)."""
    if variation == "jes_up":
        return _spectrum(edges, events * 1.04, mean * 1.03, width * 1.03)
    values = _spectrum(edges, events, mean, width)
    if variation.startswith("btag_var_"):
        size = 0.05 if variation.startswith("btag_var_0") else 0.03
        sign = 1 if variation.endswith("_up") else -1
        values = values * (1 + sign * size * centers / 300.0)
    return values


@pytest.fixture(scope="session")
def doctest_merged(doctest_cfg: AnalysisConfig) -> dict[str, Any]:
    """``{dataset/region/observable: Hist}`` as the Histograms task writes them for
    ``cfg`` (variation axis first, Weight storage): MC in whole events of weight
    xsec x lumi / N, data Poisson-distributed around the MC sum (seeded)."""
    import hist
    import numpy as np

    from analysis.names import NOMINAL, histogram_key

    cfg = doctest_cfg
    merged: dict[str, Any] = {}
    expected: dict[str, Any] = {}

    def axis(observable):
        spec = cfg.observables[observable]
        return hist.axis.Regular(spec["bins"], *spec["range"], name=observable, label=spec.get("label", observable))

    for dataset, spec in cfg.datasets.items():
        if spec["kind"] != "mc":
            continue
        variations = [v.name for v in cfg.shape_variations(dataset)] + [v.name for v in cfg.weight_variations(dataset)]
        weight = spec["xsec"] * cfg.data["lumi"] / spec["generator"].get("events", cfg.data["demo"]["events"])
        for region, region_spec in cfg.regions.items():
            observable = region_spec["observable"]
            h = hist.Hist(hist.axis.StrCategory(variations, name="variation", label="variation", growth=True),
                          axis(observable), storage=hist.storage.Weight())
            x = h.axes[1]
            for i, variation in enumerate(variations):
                values = _variation(x.edges, x.centers, variation, *_SHAPES[dataset][region])
                values = np.round(values / weight) * weight
                h.view()[i] = np.stack([values, weight * values], axis=-1)
            merged[histogram_key(dataset, region, observable)] = h
            expected[region] = expected.get(region, 0.0) + cast(hist.Hist, h[{"variation": NOMINAL}]).values()
    rng = np.random.default_rng(6)
    for region, region_spec in cfg.regions.items():
        observable = region_spec["observable"]
        h = hist.Hist(hist.axis.StrCategory([NOMINAL], name="variation", label="variation", growth=True),
                      axis(observable), storage=hist.storage.Weight())
        counts = rng.poisson(expected[region]).astype(float)
        h.view()[0] = np.stack([counts, counts], axis=-1)
        merged[histogram_key("data", region, observable)] = h
    return merged


@pytest.fixture(scope="session")
def doctest_histograms(doctest_cfg: AnalysisConfig, doctest_merged: dict[str, Any]) -> dict:
    from analysis.stats.modelspec import fit_histograms

    return fit_histograms(doctest_cfg, doctest_merged)


@pytest.fixture(scope="session")
def doctest_model(doctest_cfg: AnalysisConfig) -> dict:
    from analysis.stats.modelspec import fit_model

    return fit_model(doctest_cfg)


@pytest.fixture(scope="session")
def doctest_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="session")
def doctest_ws(doctest_cfg: AnalysisConfig, doctest_histograms: dict, doctest_model: dict, doctest_work: Path) -> dict:
    from analysis.stats.statmodel import build_workspace

    return build_workspace(doctest_histograms, doctest_model, doctest_cfg.data["fit"], doctest_work)


@pytest.fixture(scope="session")
def doctest_result(doctest_cfg: AnalysisConfig, doctest_ws: dict) -> FitResult:
    from analysis.stats.fitting import fit_workspace

    return fit_workspace(doctest_ws, doctest_cfg.data["fit"])


# ---- a tiny workspace for the costly statistics -------------------------------------------
@pytest.fixture(scope="session")
def doctest_tiny_ws() -> dict:
    return {
        "channels": [{"name": "SR", "samples": [
            {"name": "signal", "data": [4.0, 9.0, 5.0], "modifiers": [
                {"name": "mu", "type": "normfactor", "data": None},
                {"name": "lumi", "type": "normsys", "data": {"hi": 1.03, "lo": 0.97}}]},
            {"name": "background", "data": [40.0, 30.0, 20.0], "modifiers": [
                {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                {"name": "jes", "type": "histosys", "data": {"hi_data": [42.0, 30.5, 19.0],
                                                             "lo_data": [38.0, 29.5, 21.0]}},
                {"name": "lumi", "type": "normsys", "data": {"hi": 1.03, "lo": 0.97}}]}]}],
        "observations": [{"name": "SR", "data": [47.0, 41.0, 22.0]}],
        "measurements": [{"name": "meas", "config": {"poi": "mu", "parameters": [
            {"name": "mu", "bounds": [[0, 10]]}]}}],
        "version": "1.0.0",
    }


@pytest.fixture(scope="session")
def doctest_tiny_model_and_data(doctest_tiny_ws: dict) -> tuple:
    import cabinetry

    return cabinetry.model_utils.model_and_data(doctest_tiny_ws)


@pytest.fixture(scope="session")
def doctest_ranking(doctest_tiny_ws: dict) -> Ranking:
    from analysis.stats.fitting import fit_workspace
    from analysis.stats.ranking import rank

    return rank(doctest_tiny_ws, fit_workspace(doctest_tiny_ws), progress=None)


@pytest.fixture(scope="session")
def doctest_limit_result(doctest_tiny_ws: dict) -> LimitResult:
    from analysis.stats.limits import upper_limit

    return upper_limit(doctest_tiny_ws, {"cl": 0.95, "scan": {"low": 0, "high": 5, "points": 11}})


# ---- events and files ---------------------------------------------------------------------
@pytest.fixture(scope="session")
def doctest_events() -> Any:
    import awkward as ak

    from analysis.io.generate import generate_events

    return ak.zip(generate_events("ttbar", 2000, seed=1), depth_limit=1)


@pytest.fixture(scope="session")
def doctest_plan(doctest_cfg: AnalysisConfig) -> SelectionPlan:
    from analysis.select.selection import plan_from_config

    return plan_from_config(doctest_cfg, "ttbar")


@pytest.fixture(scope="session")
def doctest_nano(tmp_path_factory: pytest.TempPathFactory) -> str:
    from analysis.io.generate import generate_events, write_nanoaod

    path = tmp_path_factory.mktemp("nano") / "nano.root"
    write_nanoaod(path, generate_events("ttbar", 1000, seed=1))
    return str(path)


@pytest.fixture(scope="session")
def doctest_events_parquet(tmp_path_factory: pytest.TempPathFactory) -> str:
    import awkward as ak

    from analysis.io.generate import generate_events

    path = tmp_path_factory.mktemp("parquet") / "events.parquet"
    ak.to_parquet(ak.zip(generate_events("ttbar", 100, seed=1), depth_limit=1), path)
    return str(path)


# ---- histograms made elsewhere ------------------------------------------------------------
_EXTERNAL = """\
name: ext_tiny
external_histograms:
  file: histos.json
  format: agc_json
  name: "{region}_{dataset}{variation}"
  regions: {SR: {name: sr, observable: x, label: "x [GeV]"}}
  datasets: {sig: signal, bkg: background, data: data}
  variations: {jes_up: _jes_up}
  variances: per_event_weight
datasets:
  sig: {kind: mc, xsec: 1.0}
  bkg: {kind: mc, xsec: 1.0}
  data: {kind: data}
regions:
  SR: {label: signal region}
"""


@pytest.fixture(scope="session")
def doctest_ext_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An AGC-style JSON file: signal in events of weight 0.5, background of weight 2."""
    edges = [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    counts = {"signal": (0.5, [3, 41, 90, 38, 5]), "background": (2.0, [61, 47, 30, 19, 11])}
    raw = {}
    for process, (weight, n) in counts.items():
        raw[f"sr_{process}"] = [weight * k for k in n]
        raw[f"sr_{process}_jes_up"] = [weight * round(k * 1.05) for k in n]
    raw["sr_data"] = [float(round(0.5 * s + 2.0 * b)) for s, b in zip(counts["signal"][1], counts["background"][1])]
    path = tmp_path_factory.mktemp("external") / "histos.json"
    path.write_text(json.dumps({name: {"edges": edges, "contents": [0.0, *values, 0.0]}
                                for name, values in raw.items()}))
    return str(path)


@pytest.fixture(scope="session")
def doctest_ext_cfg(doctest_ext_file: str, doctest_load_config: Loader) -> AnalysisConfig:
    path = Path(doctest_ext_file).parent / "ext_tiny.yaml"
    path.write_text(_EXTERNAL)
    return doctest_load_config(path)


# ---- a published likelihood ---------------------------------------------------------------
_BACKGROUND_ONLY = {
    "channels": [{"name": "SR", "samples": [{"name": "background", "data": [50.0, 30.0], "modifiers": [
        {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}}]}]}],
    "observations": [{"name": "SR", "data": [52.0, 28.0]}],
    "measurements": [{"name": "meas", "config": {"poi": "mu_SIG", "parameters": []}}],
    "version": "1.0.0",
}
_GRID = [(m_sbottom, m_neutralino2) for m_sbottom in (600, 800, 1000) for m_neutralino2 in (100, 200, 300)]

_LIKELIHOOD = """\
name: toy_reinterpretation
likelihood:
  archive: pyhf-ins0000001-toy.tar.gz
  region: RegionA
  labels: [m_sbottom, m_neutralino2]
  plot: {x: m_sbottom, y: m_neutralino2}
"""


def _signal_ops(m_sbottom: int, m_neutralino2: int) -> list:
    """The signal of one point added to the channel: larger for lighter particles."""
    events = 60.0 * math.exp(-(m_sbottom - 600) / 200) * (1 - m_neutralino2 / 600)
    return [{"op": "add", "path": "/channels/0/samples/0", "value": {
        "name": "signal", "data": [round(0.6 * events, 3), round(0.4 * events, 3)],
        "modifiers": [{"name": "mu_SIG", "type": "normfactor", "data": None}]}}]


@pytest.fixture(scope="session")
def doctest_bkg() -> dict:
    return json.loads(json.dumps(_BACKGROUND_ONLY))


@pytest.fixture(scope="session")
def doctest_ops() -> list:
    return _signal_ops(800, 200)


@pytest.fixture(scope="session")
def doctest_archive(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tar.gz as HEPData publishes it: ``RegionA/BkgOnly.json``, one patch file per point."""
    members = {"README.md": "toy likelihood", "RegionA/BkgOnly.json": _BACKGROUND_ONLY}
    members.update({f"RegionA/patch.sbottom_{a}_{b}.json": _signal_ops(a, b) for a, b in _GRID})
    path = tmp_path_factory.mktemp("likelihood") / "pyhf-ins0000001-toy.tar.gz"
    with tarfile.open(path, "w:gz") as handle:
        for name, content in members.items():
            data = (content if isinstance(content, str) else json.dumps(content)).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            handle.addfile(info, io.BytesIO(data))
    return str(path)


@pytest.fixture(scope="session")
def doctest_lh_cfg(doctest_archive: str, doctest_load_config: Loader) -> AnalysisConfig:
    path = Path(doctest_archive).parent / "toy_reinterpretation.yaml"
    path.write_text(_LIKELIHOOD)
    return doctest_load_config(path)


@pytest.fixture(scope="session")
def doctest_likelihood(doctest_lh_cfg: AnalysisConfig) -> Likelihood:
    from analysis.likelihood.published import read_likelihood

    return read_likelihood(doctest_lh_cfg)


@pytest.fixture(scope="session")
def doctest_patches(doctest_likelihood: Likelihood) -> list:
    """The PatchSet entries (``{"metadata": {"name", "values"}, "patch": [...]}``), heaviest first."""
    return list(reversed(doctest_likelihood.patchset["patches"]))


@pytest.fixture(scope="session")
def doctest_points(doctest_likelihood: Likelihood) -> list:
    from analysis.likelihood.cls_scan import ScanSettings, scan

    return scan(doctest_likelihood.background_only, doctest_likelihood.patchset["patches"], ScanSettings(),
                doctest_likelihood.patchset["metadata"]["labels"], report=lambda line: None)
