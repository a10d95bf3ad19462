"""ONNX inference in Select (`models:`): identical columns in-process and on every executor,
a loud failure where CUDA is asked for and absent, located config errors, the model's
content in Select's key, and the ML fork of the AGC analysis end to end."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from analysis.config import ConfigError
from analysis.errors import InputError
from analysis.load import load_config
from conftest import ROOT, law_run, write_config

MODEL = ROOT / "configs" / "models" / "agc_assignment.onnx"
PLUGIN = ROOT / "configs" / "plugins" / "agc_ml.py"
ML_CONFIG = ROOT / "configs" / "agc_ttbar_ml.yaml"
EVENTS, CHUNK = 3000, 1000

SMALL = """
name: ml_small
plugins: {{agc_ml: {plugin}}}
datasets:
  ttbar: {{kind: mc, xsec: 729.84, files: [tt.root]}}
objects:
  electrons: {{from: Electron, where: "(Electron.pt > 30) & (abs(Electron.eta) < 2.1) & (Electron.cutBased == 4)"}}
  muons: {{from: Muon, where: "(Muon.pt > 30) & (abs(Muon.eta) < 2.1) & Muon.tightId"}}
  jets: {{from: Jet, where: "(Jet.pt > 30) & (abs(Jet.eta) < 2.4) & ((Jet.jetId & 4) > 0)"}}
models:
  assignment:
    file: {file}
    inputs: {{features: "agc_ml.assignment_features(jets, electrons, muons)"}}
    outputs: {{score: assignment_score}}
    device: {device}
regions:
  everything: {{cut: "True", observable: score}}
observables:
  score: {{expr: "assignment_score", bins: 10, range: [0, 1]}}
"""


def small_config(folder: Path, name: str = "ml.yaml", *, file: str = "models/agc_assignment.onnx",
                 device: str = "cpu", **replace: str) -> Path:
    """A config over ``folder/tt.root`` whose one region holds every event's scores
    (one row per candidate assignment); ``replace`` swaps parts of its text."""
    text = SMALL.format(plugin=PLUGIN, file=file, device=device)
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return write_config(folder, name, text)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Generated ttbar events and a copy of the model, next to the configs of this module."""
    from analysis.io.generate import generate_file

    path = tmp_path_factory.mktemp("ml")
    generate_file(path / "tt.root", "ttbar", EVENTS, seed=11)
    (path / "models").mkdir()
    shutil.copy(MODEL, path / "models" / MODEL.name)
    return path


def plugin():
    """configs/plugins/agc_ml.py, imported here (not through a config)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("agc_ml_direct", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def direct_scores(folder: Path) -> np.ndarray:
    """The model's scores of every candidate of every event, computed here without Select:
    NanoEvents, the plugin's features and a fresh single-threaded session."""
    import onnxruntime
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    from analysis.ml.onnx_model import feature_matrix

    events = NanoEventsFactory.from_root({str(folder / "tt.root"): "Events"}, schemaclass=NanoAODSchema,
                                         mode="eager").events()
    e, m, j = events.Electron, events.Muon, events.Jet
    features = plugin().assignment_features(j[(j.pt > 30) & (abs(j.eta) < 2.4) & ((j.jetId & 4) > 0)],
                                          e[(e.pt > 30) & (abs(e.eta) < 2.1) & (e.cutBased == 4)],
                                          m[(m.pt > 30) & (abs(m.eta) < 2.1) & m.tightId])
    matrix, counts = feature_matrix(features)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(MODEL.read_bytes(), options, providers=["CPUExecutionProvider"])
    scores = session.run(["score"], {"features": matrix})[0]
    assert counts is not None and counts.sum() == len(scores) > 1000 and set(np.unique(counts)) == {0, 12}
    return scores.astype(np.float64)


def select_scores(config: Path, executor_name: str) -> np.ndarray:
    """Select's score column (every chunk, in order) with one executor."""
    from analysis.select.executors import make_executor
    from analysis.select.processor import run_selection
    from analysis.select.selection import plan_from_config

    plan = plan_from_config(load_config(config), "ttbar")
    output = run_selection([str(config.parent / "tt.root")], plan, make_executor(executor_name, workers=2,
                                                                                 progress=False), chunksize=CHUNK)
    assert len(output["chunks"]) == EVENTS // CHUNK
    return np.concatenate([groups["nominal|everything"]["obs_score"] for _, groups in sorted(output["chunks"].items())])


def test_columns_are_identical_in_process_and_on_every_executor(folder):
    expected = direct_scores(folder)
    config = small_config(folder)
    for executor in ("iterative", "futures", "dask"):
        scores = select_scores(config, executor)
        assert scores.dtype == expected.dtype and np.array_equal(scores, expected), executor


def test_a_list_of_feature_expressions_gives_the_same_columns(folder):
    """``inputs: {features: [one expression per feature]}`` stacks them into the same matrix."""
    listed = ", ".join(f'"agc_ml.assignment_feature(jets, electrons, muons, \'{f}\')"' for f in plugin().FEATURES)
    config = small_config(folder, "listed.yaml", **{'{features: "agc_ml.assignment_features(jets, electrons, muons)"}':
                                                    "{features: [" + listed + "]}"})
    assert np.array_equal(select_scores(config, "iterative"), direct_scores(folder))


def test_cuda_without_a_gpu_fails_loudly_instead_of_falling_back_to_the_cpu(folder):
    import onnxruntime

    from analysis.ml.onnx_model import load_session

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        assert "CUDAExecutionProvider" in load_session(MODEL.read_bytes(), "cuda").get_providers()
        return
    config = small_config(folder, "cuda.yaml", device="cuda")      # the config itself is fine
    with pytest.raises(InputError, match="model 'assignment': device 'cuda' needs ONNX Runtime's "
                                         r"CUDAExecutionProvider, but the session got only \['CPUExecutionProvider'\]"):
        select_scores(config, "iterative")


@pytest.mark.parametrize("replace, key, message", [
    ({"file: models/agc_assignment.onnx": "file: models/missing.onnx"}, "models.assignment.file",
     "model file not found"),
    ({"file: models/agc_assignment.onnx": "file: tt.root"}, "models.assignment.file",
     "not an ONNX model that onnxruntime can load"),
    ({"file: models/agc_assignment.onnx": "file: ../outside.onnx"}, "models.assignment.file",
     "a model file must be inside the folder of the config that names it"),
    ({"{features: ": "{feats: "}, "models.assignment.inputs.feats", "the model has no input 'feats' (its inputs: features)"),
    ({"{score: assignment_score}": "{probabilities: assignment_score}"}, "models.assignment.outputs.probabilities",
     "the model has no output 'probabilities' (its outputs: score)"),
    ({'{features: "agc_ml.assignment_features(jets, electrons, muons)"}': '{features: ["ak.num(jets)", "ak.num(muons)"]}'},
     "models.assignment.inputs.features", "the model's input 'features' takes 10 features; 2 expressions are given"),
    ({"{score: assignment_score}": "{score: jets}"}, "models.assignment.outputs.score", "column 'jets' is already an object"),
    ({"device: cpu": "device: tpu"}, "models.assignment.device", "'tpu' is not one of ['cpu', 'cuda']"),
    ({"{expr: \"assignment_score\"": "{expr: \"assignment_scor\""}, None, None),
])
def test_config_errors_are_located(folder, replace, key, message):
    (folder.parent / "outside.onnx").write_bytes(MODEL.read_bytes())
    config = small_config(folder, "bad.yaml", **replace)
    if key is None:                  # a typo in a column's name: found with the input files' branches
        from analysis.config.model import check_names

        with pytest.raises(ConfigError, match="unknown name 'assignment_scor'") as info:
            import uproot

            with uproot.open(folder / "tt.root") as events:
                check_names(load_config(config), events["Events"].keys())
        assert info.value.key == "observables.score.expr"
        return
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")) as info:
        load_config(config)
    assert info.value.key == key and info.value.line and info.value.file == str(config)


def test_the_model_content_enters_selects_key_and_only_where_a_config_has_models(folder, tmp_path, monkeypatch):
    from luigi.task_register import Register

    from tasks import Select

    monkeypatch.setenv("HEIRLOOM_STORE", str(tmp_path / "store"))
    copy = tmp_path / "models" / MODEL.name
    copy.parent.mkdir()
    shutil.copy(MODEL, copy)
    shutil.copy(folder / "tt.root", tmp_path / "tt.root")
    config = small_config(tmp_path)
    before = Select(config=str(config), dataset="ttbar")
    excerpt = before.config_excerpt()["models"]["assignment"]
    assert excerpt["sha256"] == hashlib.sha256(MODEL.read_bytes()).hexdigest()
    assert excerpt["onnxruntime"].startswith("onnxruntime") and excerpt["device"] == "cpu"
    key = before.key()
    data = copy.read_bytes()
    at = data.index(b"AGC ttbar jet-parton")          # one byte of the doc string: still a valid model
    copy.write_bytes(data[:at] + b"a" + data[at + 1:])
    Register.clear_instance_cache()                   # a new task, as in a new `law run`
    assert Select(config=str(config), dataset="ttbar").key() != key
    copy.write_bytes(data)
    Register.clear_instance_cache()
    assert Select(config=str(config), dataset="ttbar").key() == key
    demo = Select(config=str(ROOT / "configs" / "demo.yaml"), dataset="ttbar").config_excerpt()
    assert "models" not in demo and set(demo) == {"objects", "steps", "order", "regions", "observables",
                                                 "event_weight", "shape_variations", "weight_variations", "is_mc",
                                                 "plugins", "corrections"}


ML_FORK = """
extends: {ml}
name: ml_fork
lumi: 2.0
demo: {{seed: 5, events: 2000}}
datasets:
  ttbar: {{generator: {{process: ttbar, events: 6000}}}}
  single_top_s_chan: {{generator: {{process: single_top_s_chan, events: 1000}}}}
  single_top_t_chan: {{generator: {{process: single_top_t_chan, events: 1000}}}}
  single_top_tW: {{generator: {{process: single_top_tW, events: 1000}}}}
  wjets: {{generator: {{process: wjets, events: 20000}}}}
skim: {{chunk_size: 10000}}
fit: {{ranking: false, significance: false}}
"""


def test_the_ml_fork_runs_end_to_end_and_plots_the_score(tmp_path):
    config = write_config(tmp_path, "ml_fork.yaml", ML_FORK.format(ml=ML_CONFIG))
    store = tmp_path / "store"
    law_run("Plot", config, store)
    named = store / "by-name" / "ml_fork"
    from analysis.hist import histograms

    merged = histograms.load(named / "Histograms" / "all" / "histograms.json")
    score = merged["ttbar/4j2b/ml_score"][{"variation": "nominal"}]
    assert score.values().sum() > 10 and score.values()[-3:].sum() > score.values()[1:4].sum()   # right picks score high
    top = merged["ttbar/4j2b/m_top_ml"][{"variation": "nominal"}]
    assert 140 <= top.axes[0].centers[np.argmax(top.values())] <= 200          # the top mass peak
    assert (named / "Plot" / "all" / "4j2b-SR_prefit.png").stat().st_size > 10_000
    fit_templates = json.loads((named / "Fit" / "all" / "workspace.json").read_text())
    assert any(c["name"] == "4j2b SR" for c in fit_templates["channels"])
    select = json.loads((named / "Select" / "ttbar" / "provenance.json").read_text())
    assert select["config_excerpt"]["models"]["assignment"]["sha256"] == hashlib.sha256(MODEL.read_bytes()).hexdigest()


def test_a_law_run_on_cuda_without_a_gpu_fails_before_any_event_is_selected(folder, tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: the session check is tested above")
    shutil.copytree(folder / "models", tmp_path / "models")
    shutil.copy(folder / "tt.root", tmp_path / "tt.root")
    config = small_config(tmp_path, device="cuda")
    proc = law_run("Select", config, tmp_path / "store", "--dataset", "ttbar", check=False)
    assert proc.returncode != 0
    assert "device 'cuda' needs ONNX Runtime's CUDAExecutionProvider" in proc.stdout + proc.stderr
    assert not (tmp_path / "store" / "objects" / "Select").exists()
