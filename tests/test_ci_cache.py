"""Two CI runs on one cached store: the second, after one cut changed, reruns only what
depends on that cut.

Each "CI run" is what workflows/ci/github-actions.yml and gitlab-ci.yml do after setup:
restore the store from the cache into a fresh job folder, run
``workflows/ci/run-analysis.sh`` there, and save the store back. The cache is a tar
archive, as actions/cache makes one; the job folders are deleted after their run, so
the restored store lives at another absolute path than the one that made it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import ROOT, VENV_BIN, runs, small_demo

SCRIPT = ROOT / "workflows" / "ci" / "run-analysis.sh"
ANALYSIS = "ci_tiny"
TIGHTER_JETS = ('objects:\n  jets:\n    where: "(Jet.pt > 35) & (abs(Jet.eta) < 2.4) & ((Jet.jetId & 4) > 0)"\n')
CUT_DEPENDENTS = {"Select", "Histogram", "Histograms", "Fit", "Plot"}


def ci_job(job: Path, cache: Path, config_extra: str = "") -> dict:
    """One CI job in the fresh folder ``job``: restore ``cache`` (if any), run, save it back.

    The config is written into the job folder like a checkout's file; the store path is
    relative (``store``), as in the CI definitions. Returns what a reader of the job sees.
    """
    job.mkdir()
    store = job / "store"
    if cache.exists():                                   # actions/cache restore: untar
        with tarfile.open(cache) as archive:
            archive.extractall(job, **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))
    config = small_demo(job, name=ANALYSIS, extra=config_extra)
    before = len(runs(store))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "HEIRLOOM_"))}
    env.update(HEIRLOOM_STORE="store", PATH=f"{VENV_BIN}:{env.get('PATH', '')}")
    proc = subprocess.run(["bash", str(SCRIPT), config.name, "results"], cwd=job, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    with tarfile.open(cache, "w") as archive:             # actions/cache save: tar the store
        archive.add(store, arcname="store")
    return {"job": job, "store": store, "stdout": proc.stdout, "results": job / "results",
            "ran": [(r["task"], r["label"], r["key"]) for r in runs(store)[before:]],
            "objects": {p.relative_to(store) for p in store.glob("objects/*/*/*")}}


def keys(records) -> dict:
    return {(family, label): key for family, label, key in records}


@pytest.fixture(scope="module")
def two_ci_runs(tmp_path_factory):
    """Run 1 on an empty cache; run 2 (another folder, run 1's folder gone) after the
    commit that tightens the jet pt cut from 30 to 35 GeV."""
    base = tmp_path_factory.mktemp("ci")
    cache = base / "cache" / "heirloom-store.tar"
    cache.parent.mkdir()
    first = ci_job(base / "job1", cache)
    first["keys"] = keys(first["ran"])
    shutil.rmtree(first["job"])                           # the runner is gone
    second = ci_job(base / "job2", cache, TIGHTER_JETS)
    return first, second, cache


def test_first_run_runs_the_whole_chain(two_ci_runs):
    first, _, _ = two_ci_runs
    families = {family for family, _ in first["keys"]}
    assert families == {"Generate", "Skim"} | CUT_DEPENDENTS, families
    assert len(first["ran"]) == len(first["keys"])        # each task once
    assert "tasks ran (0 runs in the restored store)" in first["stdout"]


def test_changed_cut_reruns_exactly_its_dependents(two_ci_runs):
    first, second, _ = two_ci_runs
    ran = [(family, label) for family, label, _ in second["ran"]]
    expected = {(family, label) for family, label in first["keys"] if family in CUT_DEPENDENTS}
    assert sorted(ran) == sorted(expected), ran            # each of them once, nothing else
    assert not {family for family, _ in ran} & {"Generate", "Skim"}
    selects = {label for family, label in ran if family == "Select"}
    assert selects == {"ttbar", "single_top_s_chan", "single_top_t_chan", "single_top_tW", "wjets", "data"}
    for (family, label), key in keys(second["ran"]).items():
        assert key != first["keys"][(family, label)], (family, label)   # new content addresses


def test_unaffected_outputs_of_the_first_run_are_reused(two_ci_runs):
    first, second, _ = two_ci_runs
    store = second["store"]
    assert first["objects"] <= second["objects"]           # the restored store holds run 1's outputs
    reused = {fl: key for fl, key in first["keys"].items() if fl[0] in ("Generate", "Skim")}
    assert reused
    for (family, label), key in reused.items():
        link = store / "by-name" / ANALYSIS / family / label
        assert not os.readlink(link).startswith("/"), "by-name links must be relative to move with the store"
        assert link.resolve().name == key, (family, label)
        assert link.resolve().is_relative_to(store.resolve())
    for label in {label for family, label in first["keys"] if family == "Select"}:
        prov = json.loads((store / "by-name" / ANALYSIS / "Select" / label / "provenance.json").read_text())
        skims = {v["key"] for v in prov["inputs"].values()}
        assert skims and skims <= set(reused.values()), label
        assert "Jet.pt > 35" in json.dumps(prov["components"]["config"])   # the Selects of run 2


def test_artifacts_hold_results_run_log_and_provenance(two_ci_runs):
    first, second, _ = two_ci_runs
    results = second["results"]
    ran = [json.loads(line) for line in (results / "ran.jsonl").read_text().splitlines()]
    assert [(r["task"], r["label"], r["key"]) for r in ran] == second["ran"]
    assert (results / "runs.jsonl").read_text() == (second["store"] / "runs.jsonl").read_text()
    named = results / "by-name" / ANALYSIS
    plot, fit = named / "Plot" / "all", named / "Fit" / "all"
    assert not plot.is_symlink() and (plot / "cutflow.md").is_file() and list(plot.glob("*.png"))
    assert (fit / "fit_result.json").is_file()
    newest = first["keys"] | keys(second["ran"])           # Skim: run 1's output, reused
    for folder in (plot, fit, named / "Select" / "ttbar", named / "Skim" / "ttbar__0"):
        prov = json.loads((folder / "provenance.json").read_text())
        assert prov["key"] == newest[(folder.parent.name, folder.name)], folder
    assert not list(named.glob("Skim/*/*.root")) and not list(named.glob("Generate/*/*.root"))
    summary = (results / "summary.txt").read_text()
    assert f"{len(second['ran'])} tasks ran" in summary and "ttbar_norm" in summary
    assert summary in second["stdout"]


def test_unchanged_commit_runs_nothing(two_ci_runs, tmp_path):
    _, second, cache = two_ci_runs
    third = ci_job(tmp_path / "job3", cache, TIGHTER_JETS)
    assert third["ran"] == []
    assert "nothing ran" in third["stdout"]
    assert (third["results"] / "ran.jsonl").read_text() == ""
    assert (third["results"] / "by-name" / ANALYSIS / "Plot" / "all" / "cutflow.md").is_file()
