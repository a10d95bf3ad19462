"""Two CI runs on one cached store: the second, after one cut changed, reruns only what
depends on that cut.

Each "CI run" is what workflows/ci/github-actions.yml and gitlab-ci.yml do after setup:
restore the store from the cache into a fresh job folder, run
``workflows/ci/run-analysis.sh`` there, and save the store back. The cache is a tar
archive of what the GitHub template's save step names, as actions/cache makes it: the
store without its generated events (objects/Generate) and without tmp/ and locks/
(test_ci_workflows.py shows that GitLab's cache holds the same). The job folders are
deleted after their run, so the restored store lives at another absolute path than the
one that made it, and has none of the Generate outputs that its Skims were made from.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import ROOT, VENV_BIN, law_run, runs, small_demo
from test_ci_workflows import actions_cache_roots, github_store_cache_patterns

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
    with tarfile.open(cache, "w") as archive:             # actions/cache save: tar what the patterns name
        for root in actions_cache_roots(job, github_store_cache_patterns()):
            archive.add(job / root, arcname=root)
    return {"job": job, "store": store, "stdout": proc.stdout, "results": job / "results",
            "ran": [(r["task"], r["label"], r["key"]) for r in runs(store)[before:]],
            "objects": {p.relative_to(store) for p in store.glob("objects/*/*/*")},
            "generated": {p.parent.name: hashlib.sha256(p.read_bytes()).hexdigest()
                          for p in store.glob("objects/Generate/*/*/events.root")}}


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
    cached = {obj for obj in first["objects"] if obj.parts[1] != "Generate"}
    assert cached <= second["objects"]                     # the restored store holds run 1's outputs,
    assert not {obj for obj in second["objects"] if obj.parts[1] == "Generate"}   # but no generated events
    reused = {fl: key for fl, key in first["keys"].items() if fl[0] in ("Generate", "Skim")}
    assert reused
    for (family, label), key in reused.items():
        link = store / "by-name" / ANALYSIS / family / label
        assert not os.readlink(link).startswith("/"), "by-name links must be relative to move with the store"
        assert link.resolve().name == key, (family, label)
        assert link.resolve().is_relative_to(store.resolve())
        assert link.exists() == (family == "Skim"), (family, label)   # Generate's link points at nothing now
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
    """The cache holds no generated events, yet nothing reruns: a task is complete when its
    own output is, and the Skims that read the events are in the cache."""
    _, second, cache = two_ci_runs
    third = ci_job(tmp_path / "job3", cache, TIGHTER_JETS)
    assert third["ran"] == []
    assert "nothing ran" in third["stdout"]
    assert not (third["store"] / "objects" / "Generate").exists()
    assert (third["results"] / "ran.jsonl").read_text() == ""
    assert (third["results"] / "by-name" / ANALYSIS / "Plot" / "all" / "cutflow.md").is_file()


def test_generated_events_left_out_of_the_cache_regenerate_identically(two_ci_runs, tmp_path):
    """When a task that reads them must run again (here a Skim whose output is gone), law
    finds the Generate output missing and runs it first: same key, same bytes as in run 1."""
    first, _, cache = two_ci_runs
    with tarfile.open(cache) as archive:
        archive.extractall(tmp_path, **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))
    store = tmp_path / "store"
    skim_key = first["keys"][("Skim", "single_top_s_chan__0")]
    shutil.rmtree(store / "objects" / "Skim" / skim_key[:2] / skim_key)
    before = len(runs(store))
    config = small_demo(tmp_path, name=ANALYSIS, extra=TIGHTER_JETS)
    law_run("Skim", config, store, "--dataset", "single_top_s_chan", "--chunk", "0")
    ran = [(r["task"], r["label"], r["key"]) for r in runs(store)[before:]]
    generate_key = first["keys"][("Generate", "single_top_s_chan")]
    assert ran == [("Generate", "single_top_s_chan", generate_key), ("Skim", "single_top_s_chan__0", skim_key)]
    events = store / "objects" / "Generate" / generate_key[:2] / generate_key / "events.root"
    assert hashlib.sha256(events.read_bytes()).hexdigest() == first["generated"][generate_key]
