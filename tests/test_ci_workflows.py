"""The CI definitions in workflows/ci/ (no CI service here): they parse, their steps come
in the order that makes the store cache work, and they keep results and provenance.

What they run is tested for real in test_ci_cache.py (two CI runs on one cached store).
"""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from analysis.load import load_config
from conftest import ROOT, VENV_BIN

CI = ROOT / "workflows" / "ci"
SCRIPT = "workflows/ci/run-analysis.sh"


@pytest.fixture(scope="module")
def github():
    doc = yaml.safe_load((CI / "github-actions.yml").read_text())
    job, = doc["jobs"].values()
    return doc, job


@pytest.fixture(scope="module")
def gitlab():
    doc = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    return doc, doc["analysis"]


def step_index(steps, predicate, what) -> int:
    found = [i for i, step in enumerate(steps) if predicate(step)]
    assert len(found) == 1, f"{what}: {len(found)} steps"
    return found[0]


def uses(action):
    return lambda step: step.get("uses", "").startswith(action + "@")


def runs(command):
    return lambda step: command in step.get("run", "")


def script_results_dir(command: str) -> str:
    """The RESULTS argument of a run-analysis.sh call."""
    words = command.split()
    return words[words.index(SCRIPT) + 2]


def test_github_triggers_and_python(github):
    doc, job = github
    triggers = doc.get("on", doc.get(True))            # YAML 1.1 reads a bare `on` as True
    assert {"push", "pull_request"} <= set(triggers)
    setup_python = job["steps"][step_index(job["steps"], uses("actions/setup-python"), "setup-python")]
    assert str(setup_python["with"]["python-version"]) == "3.11"


def test_github_steps_in_cache_order(github):
    _, job = github
    steps = job["steps"]
    order = [
        step_index(steps, uses("actions/checkout"), "checkout"),
        step_index(steps, uses("actions/setup-python"), "setup-python"),
        step_index(steps, lambda s: uses("actions/cache")(s) and "uv" in s["with"]["key"], "uv cache"),
        step_index(steps, runs("./setup.sh"), "setup.sh"),
        step_index(steps, uses("actions/cache/restore"), "store restore"),
        step_index(steps, runs(SCRIPT), "the analysis"),
        step_index(steps, uses("actions/cache/save"), "store save"),
        step_index(steps, uses("actions/upload-artifact"), "artifacts"),
    ]
    assert order == sorted(order), order


def test_github_uv_cache_is_keyed_on_the_lock(github):
    _, job = github
    step = job["steps"][step_index(job["steps"], lambda s: uses("actions/cache")(s) and "uv" in s["with"]["key"], "uv")]
    assert "hashFiles('requirements.lock')" in step["with"]["key"]
    assert step["with"]["path"] == job["env"]["UV_CACHE_DIR"]


def test_github_store_cache_restores_an_older_store_and_saves_the_new_one(github):
    _, job = github
    steps = job["steps"]
    restore = steps[step_index(steps, uses("actions/cache/restore"), "restore")]
    save = steps[step_index(steps, uses("actions/cache/save"), "save")]
    key = restore["with"]["key"]
    assert "configs/**" in key and "analysis/**" in key and "tasks/**" in key and "requirements.lock" in key
    prefixes = [line.strip() for line in restore["with"]["restore-keys"].splitlines() if line.strip()]
    assert prefixes and all(key.startswith(prefix) and len(prefix) < len(key) for prefix in prefixes)
    assert restore["with"]["path"] == save["with"]["path"] == job["env"]["HEIRLOOM_STORE"]
    assert save["with"]["key"] == f"${{{{ steps.{restore['id']}.outputs.cache-primary-key }}}}"
    assert "always()" in save["if"] and "cache-hit != 'true'" in save["if"]


def test_github_artifacts_keep_results_and_provenance(github):
    _, job = github
    steps = job["steps"]
    run = steps[step_index(steps, runs(SCRIPT), "run")]["run"]
    upload = steps[step_index(steps, uses("actions/upload-artifact"), "upload")]
    paths = [line.strip() for line in upload["with"]["path"].splitlines() if line.strip()]
    assert script_results_dir(run).rstrip("/") in {p.rstrip("/") for p in paths}
    assert f"{job['env']['HEIRLOOM_STORE']}/runs.jsonl" in paths
    assert upload["if"] == "always()"


def test_gitlab_caches_setup_run_and_artifacts(gitlab):
    doc, job = gitlab
    assert job["stage"] in doc["stages"]
    assert job["image"].startswith("python:3.11")
    script = job["script"]
    assert script[0] == "./setup.sh" and SCRIPT in script[1]
    project = "$CI_PROJECT_DIR/"
    store = job["variables"]["HEIRLOOM_STORE"].removeprefix(project)
    uv_dir = job["variables"]["UV_CACHE_DIR"].removeprefix(project)
    uv_cache, = [c for c in job["cache"] if isinstance(c["key"], dict)]
    store_cache, = [c for c in job["cache"] if c is not uv_cache]
    assert "requirements.lock" in uv_cache["key"]["files"] and uv_cache["paths"] == [uv_dir + "/"]
    assert store_cache["paths"] == [store + "/"]
    assert store_cache["fallback_keys"] and store_cache["when"] == "always"
    assert job["artifacts"]["when"] == "always"
    paths = {p.rstrip("/") for p in job["artifacts"]["paths"]}
    assert {script_results_dir(script[1]), f"{store}/runs.jsonl"} <= paths


def test_both_run_the_same_small_config(github, gitlab):
    config = github[1]["env"]["HEIRLOOM_CI_CONFIG"]
    assert gitlab[1]["variables"]["HEIRLOOM_CI_CONFIG"] == config
    cfg = load_config(ROOT / config)
    assert cfg.data["demo"]["events"] <= 200_000          # the reduced demo, not the full AGC
    assert len(cfg.datasets) < len(load_config(ROOT / "configs" / "agc_ttbar.yaml").datasets)


def test_script_is_valid_bash_and_stops_on_a_missing_config(tmp_path):
    assert subprocess.run(["bash", "-n", str(ROOT / SCRIPT)]).returncode == 0
    env = dict(os.environ, HEIRLOOM_STORE=str(tmp_path / "store"), PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    proc = subprocess.run(["bash", str(ROOT / SCRIPT), "no/such.yaml", "results"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"no such config: {tmp_path / 'no/such.yaml'}" in proc.stderr
    assert not (tmp_path / "store").exists()
