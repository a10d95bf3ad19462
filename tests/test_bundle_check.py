"""Self-contained bundles (tasks/export/bundle.py) and `heirloom export check` (tasks/export/check.py).

A bundle copies every local input beside ``analysis.yaml`` (``inputs/``, listed with
their sha256 in ``inputs.sha256``), names them relatively and computes the task keys of
the original config; exporting again rewrites nothing. ``heirloom export check`` passes
on a good bundle and names a missing input, an unpinned image, a path out of a REANA
workspace and a declared output in ``store/by-name``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, SHARED, VENV_BIN, write_config

PINNED = "heirloom/analysis:0.1.0-0123456789ab"

FILES_CONFIG = """
extends: {parent}
name: bundled_files
lumi: 3378.0
datasets:
  ttbar_2015: null
  sample: {{kind: mc, xsec: 729.84, files: ["data/a/*.root"]}}
  other: {{kind: mc, xsec: 10.0, files: ["data/b/events.root"{remote}]}}
"""


def heirloom(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    return subprocess.run([str(VENV_BIN / "heirloom"), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def write_events(path: Path, scale: float) -> None:
    """300 generated ttbar events as NanoAOD (``scale`` multiplies Jet_pt: other bytes)."""
    import awkward as ak
    import numpy as np
    import uproot

    from analysis.io.generate import generate_events

    path.parent.mkdir(parents=True, exist_ok=True)
    events = {k: ak.Array(v) for k, v in generate_events("ttbar", 300, seed=3).items()}
    events["Jet"] = ak.with_field(events["Jet"], events["Jet"].pt * np.float32(scale), "pt")
    with uproot.recreate(path) as file:
        tree = file.mktree("Events", {k: v.type.content for k, v in events.items()},
                           counter_name=lambda counted: "n" + counted,
                           field_name=lambda outer, inner: inner if outer == "" else outer + "_" + inner)
        tree.extend(events)


@pytest.fixture(scope="module")
def files_config(tmp_path_factory) -> Path:
    """A config whose datasets read local files: a glob (two files) and a second
    ``events.root`` with other bytes (a name clash)."""
    folder = tmp_path_factory.mktemp("files")
    write_events(folder / "data" / "a" / "events.root", 1.0)
    write_events(folder / "data" / "a" / "more.root", 1.1)
    write_events(folder / "data" / "b" / "events.root", 1.25)
    return write_config(folder, "files.yaml", FILES_CONFIG.format(parent=ROOT / "configs" / "cms2015_files.yaml",
                                                                  remote=""))


def dag_keys(task) -> dict:
    """``{(family, label): key}`` of ``task`` and everything it needs."""
    out: dict = {}

    def visit(t):
        if (t.task_family, t.label()) not in out:
            out[(t.task_family, t.label())] = t.key()
            for child in t.input_tasks().values():
                visit(child)

    visit(task)
    return out


def same_keys(config: Path, bundle: Path, final: str) -> None:
    import tasks

    original = dag_keys(getattr(tasks, final)(config=str(config)))
    bundled = dag_keys(getattr(tasks, final)(config=str(bundle / "analysis.yaml")))
    assert original == bundled and len(original) > 1


def bundle_of(config: Path, outdir: Path) -> Path:
    from analysis.load import load_config
    from tasks.export.bundle import write_bundle

    write_bundle(load_config(str(config)), outdir, source=config.name)
    return outdir


# ---- the bundle -----------------------------------------------------------------------
def test_bundle_copies_every_local_input_and_keeps_the_keys(files_config, tmp_path, monkeypatch):
    monkeypatch.setenv("HEIRLOOM_STORE", str(tmp_path / "store"))
    bundle = bundle_of(files_config, tmp_path / "bundle")
    text = (bundle / "analysis.yaml").read_text()
    assert str(files_config.parent) not in text and str(ROOT) not in text       # no host paths
    datasets = yaml.safe_load(text)["datasets"]
    from tasks.export.manifest import sha256_file

    clash = sha256_file(files_config.parent / "data" / "b" / "events.root")[:12]
    assert datasets["sample"]["files"] == ["inputs/events.root", "inputs/more.root"]          # the glob, sorted
    assert datasets["other"]["files"] == [f"inputs/{clash}/events.root"]
    lines = (bundle / "inputs.sha256").read_text().splitlines()
    assert lines == sorted(lines, key=lambda line: line.split("  ", 1)[1])
    assert {line.split("  ", 1)[1] for line in lines} == {
        "inputs/events.root", "inputs/more.root", f"inputs/{clash}/events.root",
        "plugins/agc.py", "corrections/agc_btag.json"}
    if shutil.which("sha256sum"):
        proc = subprocess.run(["sha256sum", "-c", "inputs.sha256"], cwd=bundle, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    same_keys(files_config, bundle, "Histograms")


def test_a_models_onnx_file_travels_with_the_bundle(tmp_path, monkeypatch):
    """The ML fork's model is copied into ``models/``, listed in ``inputs.sha256``, and the
    bundled config keeps Select's key (the model's content enters it, not its path)."""
    monkeypatch.setenv("HEIRLOOM_STORE", str(tmp_path / "store"))
    config = ROOT / "configs" / "agc_ttbar_ml.yaml"
    bundle = bundle_of(config, tmp_path / "bundle")
    data = yaml.safe_load((bundle / "analysis.yaml").read_text())
    assert data["models"]["assignment"]["file"] == "models/agc_assignment.onnx"
    assert (bundle / "models" / "agc_assignment.onnx").read_bytes() == \
        (ROOT / "configs" / "models" / "agc_assignment.onnx").read_bytes()
    assert "models/agc_assignment.onnx" in (bundle / "inputs.sha256").read_text()
    assert heirloom("export", "check", bundle).returncode == 0
    same_keys(config, bundle, "Histograms")


def test_urls_stay_remote(files_config):
    remote = write_config(files_config.parent, "remote.yaml", FILES_CONFIG.format(
        parent=ROOT / "configs" / "cms2015_files.yaml", remote=', "root://eos.example//store/x.root"'))
    bundle = bundle_of(remote, files_config.parent / "remote-bundle")
    files = yaml.safe_load((bundle / "analysis.yaml").read_text())["datasets"]["other"]["files"]
    assert files[1] == "root://eos.example//store/x.root"
    assert "root:" not in (bundle / "inputs.sha256").read_text()


def test_exporting_again_rewrites_nothing_and_drops_unnamed_inputs(files_config, tmp_path):
    bundle = bundle_of(files_config, tmp_path / "bundle")
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino) for p in bundle.rglob("*") if p.is_file()}
    (bundle / "inputs" / "stale.root").write_bytes(b"left by an earlier export")
    bundle_of(files_config, bundle)
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino) for p in bundle.rglob("*") if p.is_file()}
    copies = [p for p in before if p.relative_to(bundle).parts[0] in ("inputs", "plugins", "corrections")]
    assert {p: before[p] for p in copies} == {p: after[p] for p in copies}       # not even touched
    assert {p: v[0] for p, v in before.items()} == {p: v[0] for p, v in after.items()}


@pytest.mark.parametrize("config, final, needs", [
    ("sbottom_regionA.yaml", "ExclusionPlot", ("likelihoods", "pyhf-ins1748602-probability-models.tar.gz")),
    ("cms2015_files.yaml", "Histograms", ("nanoaod", "cms2015_ttbar_agc_200ev.root")),
], ids=["likelihood-archive", "dataset-files"])
def test_bundles_of_configs_with_shared_inputs_keep_the_keys(config, final, needs, tmp_path, monkeypatch):
    if not SHARED.joinpath(*needs).exists():
        pytest.skip(f"needs {SHARED.joinpath(*needs)} (../shared/data is absent here)")
    monkeypatch.setenv("HEIRLOOM_STORE", str(tmp_path / "store"))
    bundle = bundle_of(ROOT / "configs" / config, tmp_path / "bundle")
    assert (bundle / "inputs" / needs[-1]).read_bytes() == SHARED.joinpath(*needs).read_bytes()
    assert f"inputs/{needs[-1]}" in (bundle / "analysis.yaml").read_text()
    same_keys(ROOT / "configs" / config, bundle, final)


# ---- heirloom export check ------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_bundle(tmp_path_factory) -> Path:
    """``heirloom export yadage`` of configs/demo.yaml with a pinned image (generated data: no inputs/)."""
    out = tmp_path_factory.mktemp("demo") / "yadage"
    proc = heirloom("export", "yadage", "--config", "configs/demo.yaml", "--image", PINNED, "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (out / "inputs").exists()
    return out


def copy_of(bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(bundle, target)
    return target


def test_check_passes_on_a_good_bundle(demo_bundle):
    proc = heirloom("export", "check", demo_bundle)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout + proc.stderr


def test_check_names_a_missing_input(files_config, tmp_path):
    out = tmp_path / "yadage"
    proc = heirloom("export", "yadage", "--config", files_config, "--task", "Histograms", "--image", PINNED,
                    "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert heirloom("export", "check", out).returncode == 0
    (out / "inputs" / "more.root").unlink()
    proc = heirloom("export", "check", out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"heirloom export check: {out / 'analysis.yaml'}: datasets.sample.files[1]: missing input " \
           "inputs/more.root" in proc.stderr.splitlines()
    assert f"{out / 'inputs.sha256'}: missing file inputs/more.root" in proc.stderr


def test_check_fails_on_an_unpinned_image(tmp_path):
    out = tmp_path / "yadage"
    proc = heirloom("export", "yadage", "--config", "configs/demo.yaml", "--task", "Fit",
                    "--image", "heirloom/analysis:0.1.0", "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = heirloom("export", "check", out)
    assert proc.returncode == 1
    assert f"{out / 'workflow.yml'}: stage Generate: image heirloom/analysis:0.1.0 is not pinned" in proc.stderr


def test_check_fails_on_paths_that_leave_the_bundle_or_changed_bytes(demo_bundle, tmp_path):
    from tasks.export.check import check_folder

    bundle = copy_of(demo_bundle, tmp_path)
    data = yaml.safe_load((bundle / "analysis.yaml").read_text())
    data["corrections"]["btag"] = str(ROOT / "configs" / "corrections" / "agc_btag.json")
    (bundle / "outside.py").symlink_to(ROOT / "configs" / "plugins" / "agc.py")
    data["plugins"]["agc"] = "outside.py"
    (bundle / "analysis.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (bundle / "corrections" / "agc_btag.json").write_text("{}")
    found = {problem for _, problem in check_folder(bundle)}
    assert any(p.startswith("corrections.btag: absolute path") for p in found), found
    assert any(p.startswith("plugins.agc: outside.py is a symlink leading outside") for p in found), found
    assert "corrections/agc_btag.json: sha256 differs from the manifest (changed since the export)" in found


def write_reana(workspace: Path, spec: dict) -> Path:
    path = workspace / "reana.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_check_reana_fails_on_paths_outside_the_workspace(demo_bundle, tmp_path):
    workspace = tmp_path / "ws"
    shutil.copytree(demo_bundle, workspace / "bundle")
    (tmp_path / "elsewhere").mkdir()
    good = {"version": "0.9.0", "inputs": {"directories": ["bundle"]},
            "workflow": {"type": "yadage", "file": "bundle/workflow.yml"},
            "outputs": {"files": ["results/fit.json"]}}
    proc = heirloom("export", "check", "--reana", write_reana(workspace, good))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bad = {**good, "inputs": {"directories": ["bundle", "../elsewhere"], "files": ["/etc/hostname"]},
           "outputs": {"directories": ["store/by-name/agc_demo"]}}
    proc = heirloom("export", "check", "--reana", write_reana(workspace, bad))
    reana = workspace / "reana.yaml"
    assert proc.returncode == 1
    assert f"heirloom export check: {reana}: inputs.directories: ../elsewhere leaves the folder" in proc.stderr
    assert f"{reana}: inputs.files: absolute path /etc/hostname" in proc.stderr
    assert f"{reana}: outputs.directories: store/by-name/agc_demo is in store/by-name" in proc.stderr


def test_check_reana_fails_on_a_missing_workflow_and_symlinked_outputs(demo_bundle, tmp_path):
    from tasks.export.check import check_reana

    workspace = tmp_path / "ws"
    shutil.copytree(demo_bundle, workspace / "bundle")
    (workspace / "results").mkdir()
    (workspace / "results" / "fit.json").symlink_to(workspace / "bundle" / "inputs.yml")
    (workspace / "bundle" / "corrections" / "agc_btag.json").unlink()
    spec = {"inputs": {"directories": ["bundle"]}, "workflow": {"file": "bundle/missing.yml"},
            "outputs": {"directories": ["results"]}}
    found = [problem for _, problem in check_reana(write_reana(workspace, spec))]
    assert "workflow.file: missing file bundle/missing.yml" in found
    assert "outputs.directories: results holds a symlink (results/fit.json)" in found
    assert "corrections.btag: missing file corrections/agc_btag.json" in found       # the bundle, checked too
