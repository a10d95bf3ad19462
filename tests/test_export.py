"""Exporters (tasks/export): yadage, Snakemake and REANA files from the live law DAG.

The exported yadage workflow's local stages reuse a given store; the exported Snakefile
(snakemake) computes the same Fit key and POI as ``law run`` (the yadage workflow in
containers: tests/test_container_workflows.py); ``reana-client
validate`` accepts reana.yaml; exports are byte-identical when repeated and a changed cut
changes parameters (the bundled config), not the structure. The tools come from
.venv-preserve, which ``./setup.sh test`` makes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, VENV_BIN, runs, write_config, trust_plugin

TOOLS = ROOT / ".venv-preserve" / "bin"

def tool(name: str) -> Path:
    path = TOOLS / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run ./setup.sh preserve (./setup.sh test makes it)")
    return path


def env() -> dict:
    return dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")


def heirloom(*args, cwd=ROOT, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(VENV_BIN / "heirloom"), *map(str, args)], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"heirloom {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def fit_of(store: Path) -> tuple[str, float, float]:
    """(key, POI value, uncertainty) of the one Fit in ``store``."""
    [fit] = [r for r in runs(store) if r["task"] == "Fit"]
    result = json.loads((store / "objects" / "Fit" / fit["key"][:2] / fit["key"] / "fit_result.json").read_text())
    assert result["poi"] == "ttbar_norm"
    return fit["key"], result["bestfit"], result["uncertainty"]


def assert_same_fit(store: Path, law_store: Path) -> str:
    """The Fit in ``store`` has the key and POI (to 1e-6) of the one ``law run`` made."""
    key, value, error = fit_of(store)
    law_key, law_value, law_error = fit_of(law_store)
    assert key == law_key
    assert value == pytest.approx(law_value, abs=1e-6) and error == pytest.approx(law_error, abs=1e-6)
    return law_key


@pytest.fixture
def reference(roundtrip):
    """The small analysis run with ``law run Fit`` (conftest's session fixture)."""
    return roundtrip


def test_yadage_local_workflow_reuses_a_given_store(reference, tmp_path):
    """workflow-local.yml (each step a local process) given law run's store as its cache:
    every step finds its tasks there, computes nothing, and the last step publishes the
    Fit that law run made (the container run of the same stages: test_container_workflows)."""
    config, law_store = reference
    out = tmp_path / "yadage"
    heirloom("export", "yadage", "--config", config, "--task", "Fit", "--out", out)
    shutil.copytree(law_store, out / "store")            # the init folder's store: the workflow's cache
    proc = subprocess.run([str(tool("yadage-run")), str(tmp_path / "work"), "workflow-local.yml", "inputs.yml",
                           "-d", f"initdir={out}"], cwd=out, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    law_key, _, _ = fit_of(law_store)
    published = yaml.safe_load((tmp_path / "work" / "Fit" / "heirloom-step.yml").read_text())
    assert published["key"] == law_key and Path(published["output"]).is_relative_to(out / "store")
    assert [s.parent.name for s in sorted((tmp_path / "work").glob("*/store"))] == \
        ["Fit", "Generate", "Histogram", "Histograms", "Select", "Skim"]
    assert not [r for s in (tmp_path / "work").glob("*/store") for r in runs(s)]     # nothing recomputed
    assert (tmp_path / "work" / "Fit" / "results" / "Fit" / "all" / "fit_result.json").is_file()


def test_snakemake_round_trip(reference, tmp_path):
    config, law_store = reference
    out = tmp_path / "snake"
    heirloom("export", "snakemake", "--config", config, "--task", "Fit", "--out", out)
    store, workdir = tmp_path / "store", tmp_path / "run"
    workdir.mkdir()
    command = [str(tool("snakemake")), "-s", str(out / "Snakefile"), "--cores", "2", "--config", f"store={store}"]
    proc = subprocess.run(command, cwd=workdir, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    law_key = assert_same_fit(store, law_store)
    marker = yaml.safe_load((workdir / "heirloom-done" / "Fit" / "all.yml").read_text())
    assert marker["key"] == law_key
    # a second snakemake run has nothing to do
    again = subprocess.run(command, cwd=workdir, env=env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_reana_yaml_validates(tmp_path):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    heirloom("export", "reana", "--config", ROOT / "configs" / "agc_ttbar.yaml", cwd=workspace)
    proc = subprocess.run([str(tool("reana-client")), "validate", "-f", "reana.yaml"], cwd=workspace,
                          capture_output=True, text=True, timeout=120)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert report.count("SUCCESS") == 4, report
    assert "WARNING" not in report and "ERROR" not in report, report


def test_committed_exports_are_current(tmp_path):
    """workflows/yadage/agc_ttbar, workflows/snakemake/agc_ttbar and reana.yaml are what
    ``heirloom export all`` writes for configs/agc_ttbar.yaml today (no drift)."""
    workspace = tmp_path / "ws"
    (workspace / "configs").mkdir(parents=True)
    for item in (ROOT / "configs").iterdir():
        target = workspace / "configs" / item.name
        shutil.copytree(item, target) if item.is_dir() else shutil.copy(item, target)
    for plugin in (workspace / "configs" / "plugins").glob("*.py"):
        trust_plugin(plugin)                     # a copy outside the repository: approved for the test
    heirloom("export", "all", "--config", "configs/agc_ttbar.yaml", cwd=workspace)
    heirloom("export", "recast", "--config", "configs/reinterpret_example.yaml",
             "--new-signal", "configs/reinterpret_zprime_1000.yaml", cwd=workspace)
    written = sorted(p.relative_to(workspace) for p in workspace.rglob("*")
                     if p.is_file() and p.parts[len(workspace.parts)] != "configs")
    assert {Path("reana.yaml"), Path("workflows/snakemake/agc_ttbar/Snakefile"),
            Path("workflows/recast/agc_zprime/recast.yml")} <= set(written)
    stale = [str(p) for p in written if (ROOT / p).read_bytes() != (workspace / p).read_bytes()]
    assert not stale, (f"{stale} differ: run `heirloom export all --config configs/agc_ttbar.yaml` and "
                       "`heirloom export recast --config configs/reinterpret_example.yaml "
                       "--new-signal configs/reinterpret_zprime_1000.yaml`")


def test_recast_catalogue_entry_is_valid(tmp_path):
    folder = tmp_path / "agc_zprime"
    heirloom("export", "recast", "--config", ROOT / "configs" / "reinterpret_example.yaml",
             "--new-signal", ROOT / "configs" / "reinterpret_zprime_1000.yaml", "--out", folder)
    run = dict(env(), RECAST_ATLAS_CATALOGUE=str(folder))
    check = subprocess.run([str(tool("recast")), "catalogue", "check", "heirloom/agc_zprime"], env=run,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and "Everything looks good" in check.stdout, check.stdout + check.stderr
    entry = yaml.safe_load((folder / "recast.yml").read_text())
    assert set(entry["example_inputs"]) == {"default", "newsignal"}
    default, new = (entry["example_inputs"][k]["initdata"] for k in ("default", "newsignal"))
    assert default == {"config": f"{folder}/specs/analysis.yaml", "cache": "store"}
    assert new == {"config": f"{folder}/specs/newsignal.yaml", "cache": "store"}
    assert {entry["example_inputs"][k]["dataopts"]["initdir"] for k in ("default", "newsignal")} == {".."}
    signal = yaml.safe_load((folder / "specs" / "newsignal.yaml").read_text())["datasets"]["zprime"]
    assert signal["generator"]["params"]["mass"] == 1000
    assert entry["results"] == [{"name": "Limit: observed and expected results",
                                 "relpath": "Limit/heirloom-step.yml", "load_yaml": True}]


def test_exports_repeat_byte_for_byte_and_a_cut_changes_only_parameters(tmp_path):
    parent = ROOT / "configs" / "agc_ttbar.yaml"
    cut = write_config(tmp_path, "cut.yaml", f"extends: {parent}\nname: agc_ttbar\n"
                       "objects:\n  jets: {from: Jet, where: \"(Jet.pt > 35) & (abs(Jet.eta) < 2.4) & ((Jet.jetId & 4) > 0)\"}\n")
    exports = {}
    for label, config in (("a", parent), ("b", parent), ("cut", cut)):
        out = tmp_path / label
        heirloom("export", "yadage", "--config", config, "--out", out / "yadage")
        heirloom("export", "snakemake", "--config", config, "--out", out / "snake")
        exports[label] = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert exports["a"] == exports["b"]
    structure = [Path("yadage/workflow.yml"), Path("yadage/workflow-local.yml"), Path("snake/Snakefile")]
    parameters = [Path("yadage/inputs.yml"), Path("snake/config.yaml")]
    for name in structure + parameters:
        assert _body(exports["cut"][name]) == _body(exports["a"][name]), name
    for bundled in (Path("yadage/analysis.yaml"), Path("snake/analysis.yaml")):
        changed = yaml.safe_load(exports["cut"][bundled])
        assert changed["objects"]["jets"]["where"].startswith("(Jet.pt > 35)")
        assert yaml.safe_load(exports["a"][bundled])["objects"]["jets"]["where"].startswith("(Jet.pt > 30)")


def _body(data: bytes) -> bytes:
    """A file without its header comment (which names the source config)."""
    return b"\n".join(line for line in data.splitlines() if not line.startswith(b"#"))


def test_step_needs_an_absolute_store(tmp_path):
    proc = heirloom("step", "Fit", "--config", ROOT / "configs" / "demo.yaml", "--store", "relative/store",
                    cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "relative" in proc.stderr and "absolute" in proc.stderr
    assert not (tmp_path / "relative").exists()


@pytest.mark.parametrize("env_bin", [VENV_BIN, TOOLS], ids=["analysis", "preserve"])
def test_both_environments_are_consistent(env_bin):
    """`pip check` is clean in the analysis environment and in .venv-preserve (the tools'
    old jsonschema pins live apart from pyhf's requirements)."""
    python = env_bin / "python"
    if not python.exists():
        pytest.fail(f"{python} is missing: run ./setup.sh preserve (./setup.sh test makes it)")
    proc = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "No broken requirements" in proc.stdout, proc.stdout + proc.stderr


def test_image_setting_names_and_tags(monkeypatch, tmp_path):
    """The image is named by its content: the version and a hash of every file it copies."""
    from analysis import __version__
    from tasks.export.image import IMAGE_INPUTS, content_hash, default_image

    monkeypatch.delenv("HEIRLOOM_IMAGE", raising=False)
    tag = f"{__version__}-{content_hash()}"
    assert default_image() == f"heirloom/analysis:{tag}"
    monkeypatch.setenv("HEIRLOOM_IMAGE", "registry.example:5000/group/heirloom")
    assert default_image() == f"registry.example:5000/group/heirloom:{tag}"
    assert default_image("me/img:v2") == "me/img:v2"
    assert default_image("me/img@sha256:" + "a" * 64) == "me/img@sha256:" + "a" * 64
    # a changed line of code names another image; byte-code caches do not count
    copy = tmp_path / "checkout"
    for name in IMAGE_INPUTS:
        source = ROOT / name
        shutil.copytree(source, copy / name) if source.is_dir() else \
            (copy / name).parent.mkdir(parents=True, exist_ok=True) or shutil.copy(source, copy / name)
    assert content_hash(copy) == content_hash()
    (copy / "tasks" / "__pycache__").mkdir(exist_ok=True)
    (copy / "tasks" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert content_hash(copy) == content_hash()
    (copy / "tasks" / "select.py").write_text((copy / "tasks" / "select.py").read_text() + "\n# changed\n")
    assert content_hash(copy) != content_hash()
