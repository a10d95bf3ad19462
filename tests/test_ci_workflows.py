"""The CI definitions in workflows/ci/ (no CI service here): they parse, their steps come
in the order that makes the store cache work, their store cache key covers what can
change a result, the cache leaves the generated events out (the same store on GitHub and
GitLab), the preservation jobs run the right commands, and the image is pushed from the
default branch only.

What the analysis job runs is tested for real in test_ci_cache.py (CI runs on one cached
store, saved as the GitHub template says). Both files also pass check-jsonschema's
vendored GitHub-workflow and GitLab-CI schemas (checked by hand; not a dependency here).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from analysis.load import load_config
from conftest import ROOT, VENV_BIN

CI = ROOT / "workflows" / "ci"
SCRIPT = "workflows/ci/run-analysis.sh"
CHECKS = "workflows/ci/preservation-checks.sh"
PRESERVE_JOBS = {"exports": ("exports", "export-drift"), "validate": ("validate", "validate"),
                 "recast": ("recast", "recast-entry")}           # check: (GitHub job, GitLab job)
DEFAULT_BRANCH_ONLY = "github.event_name == 'push' && github.ref == format('refs/heads/{0}', " \
                      "github.event.repository.default_branch)"


def github_doc() -> dict:
    return yaml.safe_load((CI / "github-actions.yml").read_text())


def gitlab_doc() -> dict:
    return yaml.safe_load((CI / "gitlab-ci.yml").read_text())


@pytest.fixture(scope="module")
def github():
    doc = github_doc()
    return doc, doc["jobs"]["analysis"]


@pytest.fixture(scope="module")
def gitlab():
    doc = gitlab_doc()
    return doc, doc["analysis"]


def step_index(steps, predicate, what) -> int:
    found = [i for i, step in enumerate(steps) if predicate(step)]
    assert len(found) == 1, f"{what}: {len(found)} steps"
    return found[0]


def uses(action):
    return lambda step: step.get("uses", "").startswith(action + "@")


def runs(command):
    return lambda step: command in step.get("run", "")


def uv_cache(step) -> bool:
    return uses("actions/cache")(step) and step["with"]["key"].startswith("uv-")


def script_results_dir(command: str) -> str:
    """The RESULTS argument of a run-analysis.sh call."""
    words = command.split()
    return words[words.index(SCRIPT) + 2]


def github_env(doc: dict, job: dict, text: str) -> str:
    """``text`` with its ``${{ env.NAME }}`` expressions replaced from the workflow's and job's env."""
    for name, value in {**doc.get("env", {}), **job.get("env", {})}.items():
        text = text.replace(f"${{{{ env.{name} }}}}", str(value))
    return text


# ---- what the caches hold --------------------------------------------------------------

def _pattern_matches(pattern: str, path: str) -> bool:
    parts, names = pattern.split("/"), path.split("/")
    return len(parts) == len(names) and all(p in ("*", n) for p, n in zip(parts, names))


def actions_cache_roots(workspace: Path, patterns: list[str]) -> list[str]:
    """What actions/cache puts in its tar archive for the ``path`` patterns, relative to the
    workspace: the paths that @actions/glob yields with ``implicitDescendants: false`` (a
    path is yielded when the last pattern that matches it is not a ``!`` pattern), each
    archived whole by tar. Only the pattern forms that the templates use are accepted:
    literal paths, and ``*`` as a whole path segment."""
    rules = []
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.removeprefix("!")
        assert all(part == "*" or "*" not in part and "?" not in part and "[" not in part
                   for part in body.split("/")), f"pattern form not modelled: {pattern}"
        rules.append((negate, body))
    roots = []
    for folder, dirs, files in os.walk(workspace):
        for name in dirs + files:
            path = (Path(folder) / name).relative_to(workspace).as_posix()
            yielded = False
            for negate, body in rules:
                if _pattern_matches(body, path):
                    yielded = not negate
            if yielded:
                roots.append(path)
    nested = [(a, b) for a in roots for b in roots if b.startswith(a + "/")]
    assert not nested, f"archived twice (a yielded folder and a path inside it): {nested}"
    return sorted(roots)


def github_store_cache_patterns() -> list[str]:
    steps = github_doc()["jobs"]["analysis"]["steps"]
    save = steps[step_index(steps, uses("actions/cache/save"), "save")]
    return [line.strip() for line in save["with"]["path"].splitlines() if line.strip()]


def members(workspace: Path, roots) -> set[str]:
    """Every file and link under the archived ``roots`` (relative to the workspace)."""
    out = set()
    for root in roots:
        path = workspace / root
        if path.is_symlink() or path.is_file():
            out.add(root)
            continue
        for folder, dirs, files in os.walk(path):
            for name in dirs + files:
                item = Path(folder) / name
                if item.is_symlink() or item.is_file():
                    out.add(item.relative_to(workspace).as_posix())
    return out


def fake_store(workspace: Path) -> Path:
    """A store after a CI run: every folder of the layout, a by-name link to each output."""
    store = workspace / "store"
    for family, key in (("Generate", "ab" * 20), ("Skim", "cd" * 20), ("Select", "ef" * 20), ("Plot", "01" * 20)):
        obj = store / "objects" / family / key[:2] / key
        obj.mkdir(parents=True)
        (obj / "provenance.json").write_text("{}")
        (obj / ("events.root" if family == "Generate" else "out.bin")).write_bytes(b"x" * 100)
        link = store / "by-name" / "ana" / family / "all"
        link.parent.mkdir(parents=True)
        link.symlink_to(os.path.relpath(obj, link.parent))
    for debris in ("tmp/Skim-cdcd-123-abcdef01/partial.root", "locks/Skim-cdcd.lock",
                   "quarantine/Skim-0000/why.txt", "manifests/files.json", "manifests/code.json"):
        (store / debris).parent.mkdir(parents=True, exist_ok=True)
        (store / debris).write_text("x")
    (store / "runs.jsonl").write_text("{}\n")
    return store


CACHED = {"store/objects/Skim/cd/" + "cd" * 20 + "/provenance.json", "store/objects/Skim/cd/" + "cd" * 20 + "/out.bin",
          "store/objects/Select/ef/" + "ef" * 20 + "/provenance.json", "store/objects/Select/ef/" + "ef" * 20 + "/out.bin",
          "store/objects/Plot/01/" + "01" * 20 + "/provenance.json", "store/objects/Plot/01/" + "01" * 20 + "/out.bin",
          "store/by-name/ana/Generate/all", "store/by-name/ana/Skim/all", "store/by-name/ana/Select/all",
          "store/by-name/ana/Plot/all", "store/manifests/files.json", "store/manifests/code.json", "store/runs.jsonl"}


def test_github_store_cache_holds_what_reruns_need_without_generated_events(tmp_path):
    fake_store(tmp_path)
    roots = actions_cache_roots(tmp_path, github_store_cache_patterns())
    assert members(tmp_path, roots) == CACHED


def test_gitlab_store_cache_holds_the_same(tmp_path):
    """GitLab's cache:paths cannot exclude: the job's after_script deletes what the cache
    leaves out (it runs before the cache is saved, also after a failed script)."""
    doc = gitlab_doc()
    job = doc["analysis"]
    store = fake_store(tmp_path)
    env = dict(os.environ, CI_PROJECT_DIR=str(tmp_path), HEIRLOOM_STORE=str(store))
    for line in job["after_script"]:
        subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, check=True)
    store_cache, = [c for c in job["cache"] if "store/" in c["paths"]]
    roots = [p.rstrip("/") for p in store_cache["paths"]]
    assert members(tmp_path, roots) == CACHED


# ---- GitHub: the analysis job -----------------------------------------------------------

def test_github_triggers_and_python(github):
    doc, _ = github
    triggers = doc.get("on", doc.get(True))            # YAML 1.1 reads a bare `on` as True
    assert {"push", "pull_request"} <= set(triggers)
    assert doc["defaults"]["run"]["shell"] == "bash"   # bash -eo pipefail in every run step
    for name, job in doc["jobs"].items():
        setup_python = job["steps"][step_index(job["steps"], uses("actions/setup-python"), f"{name}: setup-python")]
        assert github_env(doc, job, str(setup_python["with"]["python-version"])) == "3.11", name


def test_github_steps_in_cache_order(github):
    _, job = github
    steps = job["steps"]
    order = [
        step_index(steps, uses("actions/checkout"), "checkout"),
        step_index(steps, uses("actions/cache/restore"), "store restore"),
        step_index(steps, uses("actions/setup-python"), "setup-python"),
        step_index(steps, uv_cache, "uv cache"),
        step_index(steps, runs("./setup.sh"), "setup.sh"),
        step_index(steps, runs(SCRIPT), "the analysis"),
        step_index(steps, uses("actions/cache/save"), "store save"),
        step_index(steps, uses("actions/upload-artifact"), "artifacts"),
    ]
    assert order == sorted(order), order
    # the key is computed on the checkout as committed: nothing has run yet (setup.sh
    # writes __pycache__ folders into analysis/ and tasks/, which hashFiles would read)
    assert not any("run" in step for step in steps[:order[1]])


def test_github_uv_caches_are_keyed_on_the_locks_and_setup(github):
    doc, _ = github
    for name, job in doc["jobs"].items():
        step = job["steps"][step_index(job["steps"], uv_cache, f"{name}: uv cache")]
        key = step["with"]["key"]
        assert "'requirements.lock'" in key and "'setup.sh'" in key, name
        if any(runs("./setup.sh preserve")(s) for s in job["steps"]):
            assert "'requirements-preserve.lock'" in key, name
        assert step["with"]["path"] == doc["env"]["UV_CACHE_DIR"]


def test_github_store_cache_key_covers_what_changes_results(github):
    doc, job = github
    steps = job["steps"]
    restore = steps[step_index(steps, uses("actions/cache/restore"), "restore")]
    save = steps[step_index(steps, uses("actions/cache/save"), "save")]
    key = restore["with"]["key"]
    hashed = key[key.index("hashFiles(") + len("hashFiles("):key.rindex(")")]
    files = [part.strip() for part in hashed.split(",")]
    assert files[0] == "env.HEIRLOOM_CI_CONFIG"          # the CI config, named explicitly
    assert {"'configs/**'", "'analysis/**'", "'tasks/**'", "'requirements.lock'", "'pyproject.toml'",
            "'setup.sh'"} <= set(files)                   # configs/** also holds what it extends
    assert (ROOT / job["env"]["HEIRLOOM_CI_CONFIG"]).resolve().is_relative_to(ROOT / "configs")
    assert "-py${{ env.PYTHON_VERSION }}-" in key         # the Python version enters every task key
    prefixes = [line.strip() for line in restore["with"]["restore-keys"].splitlines() if line.strip()]
    assert prefixes and all(key.startswith(prefix) and len(prefix) < len(key) for prefix in prefixes)
    # the path list is part of the cache's version: the same in both steps
    assert restore["with"]["path"] == save["with"]["path"]
    assert all(p.removeprefix("!").startswith(job["env"]["HEIRLOOM_STORE"] + "/")
               for p in github_store_cache_patterns())
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


# ---- GitLab: the analysis job -----------------------------------------------------------

def test_gitlab_caches_setup_run_and_artifacts(gitlab):
    doc, job = gitlab
    assert job["stage"] in doc["stages"]
    assert job.get("image", doc["default"]["image"]).startswith("python:3.11")
    script = job["script"]
    assert script[0] == "./setup.sh" and SCRIPT in script[1]
    project = "$CI_PROJECT_DIR/"
    store = job["variables"]["HEIRLOOM_STORE"].removeprefix(project)
    uv_dir = doc["variables"]["UV_CACHE_DIR"].removeprefix(project)
    uv, = [c for c in job["cache"] if isinstance(c["key"], dict)]
    store_cache, = [c for c in job["cache"] if c is not uv]
    assert uv == doc["default"]["cache"] and uv["paths"] == [uv_dir + "/"]
    assert store_cache["paths"] == [store + "/"]
    assert store_cache["fallback_keys"] and store_cache["when"] == "always"
    assert "$CI_COMMIT_REF_SLUG" in store_cache["key"]     # one store per branch, saved after every job
    assert job["artifacts"]["when"] == "always"
    paths = {p.rstrip("/") for p in job["artifacts"]["paths"]}
    assert {script_results_dir(script[1]), f"{store}/runs.jsonl"} <= paths


def test_gitlab_uv_cache_key_files(gitlab):
    doc, _ = gitlab
    assert set(doc["default"]["cache"]["key"]["files"]) == {"requirements.lock", "setup.sh"}
    for _, name in PRESERVE_JOBS.values():                 # they make .venv-preserve too
        cache = doc[name]["cache"]
        assert set(cache["key"]["files"]) == {"requirements-preserve.lock", "setup.sh"}, name
        assert cache["paths"] == doc["default"]["cache"]["paths"]
    for job in [doc["default"]] + [value for value in doc.values() if isinstance(value, dict)]:
        for cache in job.get("cache", []) if isinstance(job.get("cache"), list) else [job.get("cache", {})]:
            if isinstance(cache.get("key"), dict):
                assert len(cache["key"]["files"]) <= 2     # GitLab's limit for cache:key:files


def test_gitlab_job_names_are_not_keywords():
    reserved = {"image", "services", "stages", "types", "before_script", "after_script", "variables", "cache",
                "include", "default", "workflow", "spec", "true", "false", "nil"}
    doc = gitlab_doc()
    jobs = {name for name, value in doc.items() if isinstance(value, dict) and "script" in value}
    assert jobs == {"analysis", "export-drift", "validate", "recast-entry", "build-image"}
    assert not jobs & reserved
    for name in jobs:
        assert doc[name]["stage"] in doc["stages"] and doc[name]["needs"] == [], name


def test_both_run_the_same_small_config(github, gitlab):
    config = github[1]["env"]["HEIRLOOM_CI_CONFIG"]
    assert gitlab[1]["variables"]["HEIRLOOM_CI_CONFIG"] == config
    cfg = load_config(ROOT / config)
    assert cfg.data["demo"]["events"] <= 200_000          # the reduced demo, not the full AGC
    assert len(cfg.datasets) < len(load_config(ROOT / "configs" / "agc_ttbar.yaml").datasets)


# ---- the preservation jobs --------------------------------------------------------------

@pytest.mark.parametrize("check", sorted(PRESERVE_JOBS))
def test_preservation_jobs_run_their_check(check):
    github_job, gitlab_job = PRESERVE_JOBS[check]
    doc = github_doc()
    job = doc["jobs"][github_job]
    steps = job["steps"]
    order = [step_index(steps, uses("actions/checkout"), "checkout"),
             step_index(steps, runs("./setup.sh preserve"), "./setup.sh preserve"),
             step_index(steps, lambda s: s.get("run", "").strip() == f"{CHECKS} {check}", "the check")]
    assert order == sorted(order)
    assert "HEIRLOOM_IMAGE" not in {**doc.get("env", {}), **job.get("env", {})}   # exports name the default image
    gitlab = gitlab_doc()
    assert gitlab[gitlab_job]["script"] == ["./setup.sh preserve", f"{CHECKS} {check}"]
    assert "HEIRLOOM_IMAGE" not in {**gitlab.get("variables", {}), **gitlab[gitlab_job].get("variables", {})}


def test_preservation_checks_run_the_commands_of_test_export():
    """The commands in the script are those that made and check the committed exports
    (tests/test_export.py): compared as words, without the script's quoting."""
    text = " ".join((ROOT / CHECKS).read_text().replace('"', " ").replace("(", " ").replace(")", " ").split())
    for command in (
            "heirloom export all --config configs/agc_ttbar.yaml",
            "heirloom export recast --config configs/reinterpret_example.yaml "
            "--new-signal configs/reinterpret_zprime_1000.yaml",
            "git diff --exit-code -- workflows reana.yaml",
            "$TOOLS/reana-client validate -f reana.yaml",
            "heirloom export check --reana reana.yaml workflows/yadage/agc_ttbar workflows/recast/agc_zprime/specs",
            "RECAST_ATLAS_CATALOGUE=workflows/recast/agc_zprime $TOOLS/recast catalogue check heirloom/agc_zprime",
            "env -u HEIRLOOM_IMAGE"):
        assert command in text, command
    assert "TOOLS=.venv-preserve/bin" in text and "BIN=.venv/bin" in text


def test_preservation_checks_usage_and_the_recast_entry():
    script = ROOT / CHECKS
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    wrong = subprocess.run(["bash", str(script), "nothing"], capture_output=True, text=True, timeout=30)
    assert wrong.returncode == 2 and "usage" in wrong.stderr
    if not (ROOT / ".venv-preserve" / "bin" / "recast").exists():
        pytest.fail(".venv-preserve is missing: run ./setup.sh preserve (./setup.sh test makes it)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RECAST_"))}
    proc = subprocess.run(["bash", str(script), "recast"], cwd="/", env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Everything looks good" in proc.stdout and "the recast catalogue entry is valid" in proc.stderr


# ---- the image job ----------------------------------------------------------------------

def fake_docker(tmp_path: Path) -> tuple[dict, Path]:
    """An environment whose `docker` only writes its arguments to a log (and, like docker,
    reads the password that `login --password-stdin` is given: otherwise `echo` may die of
    SIGPIPE and `pipefail` fails the script at random)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "docker.log"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(f'#!/bin/sh\necho "$*" >> {log}\n'
                                    'case "$1" in image) echo ghcr.io/x/y@sha256:0 ;;\n'
                                    '  login) cat > /dev/null ;; esac\n')   # reads the password, as docker does
    (bin_dir / "docker").chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}"), log


def test_github_image_is_built_always_and_pushed_from_the_default_branch(tmp_path):
    doc = github_doc()
    job = doc["jobs"]["image"]
    assert job["permissions"]["packages"] == "write" and job["env"]["HEIRLOOM_ENGINE"] == "docker"
    steps = job["steps"]
    build = steps[step_index(steps, runs("./setup.sh image"), "build")]
    login = steps[step_index(steps, uses("docker/login-action"), "login")]
    push = steps[step_index(steps, runs("docker push"), "push")]
    assert "if" not in build                               # built on every push and pull request
    assert build["id"] and "tail -n 1" in build["run"]     # the reference: the last line of ./setup.sh image
    assert login["if"] == push["if"] == DEFAULT_BRANCH_ONLY
    assert login["with"] == {"registry": "ghcr.io", "username": "${{ github.actor }}",
                             "password": "${{ secrets.GITHUB_TOKEN }}"}
    assert push["env"]["REF"] == f"${{{{ steps.{build['id']}.outputs.ref }}}}"
    env, log = fake_docker(tmp_path)
    env.update(REF="heirloom/analysis:0.1.0-3f9c0e1a2b4d", GITHUB_REPOSITORY="Some-Owner/Heirloom",
               GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"))
    subprocess.run(["bash", "-eo", "pipefail", "-c", push["run"]], env=env, check=True, cwd=tmp_path)
    target = "ghcr.io/some-owner/heirloom/heirloom-analysis:0.1.0-3f9c0e1a2b4d"
    assert log.read_text().splitlines()[:2] == [f"tag heirloom/analysis:0.1.0-3f9c0e1a2b4d {target}",
                                                f"push {target}"]


@pytest.mark.parametrize("branch, pushed", [("main", True), ("feature", False), ("", False)])
def test_gitlab_image_is_built_always_and_pushed_from_the_default_branch(tmp_path, branch, pushed):
    job = gitlab_doc()["build-image"]
    assert any(s["name"].startswith("docker:") and s["name"].endswith("-dind") for s in job["services"])
    assert job["variables"]["HEIRLOOM_ENGINE"] == "docker" and "rules" not in job and "only" not in job
    script = job["script"]
    build = [i for i, line in enumerate(script) if "./setup.sh image" in line]
    assert len(build) == 1
    env, log = fake_docker(tmp_path)
    (tmp_path / "image-ref.txt").write_text("[setup] ...\nheirloom/analysis:0.1.0-3f9c0e1a2b4d\n")
    env.update(CI_COMMIT_BRANCH=branch, CI_DEFAULT_BRANCH="main", CI_REGISTRY="registry.example.org",
               CI_REGISTRY_IMAGE="registry.example.org/group/heirloom", CI_REGISTRY_USER="ci-user",
               CI_REGISTRY_PASSWORD="secret")
    rest = "\n".join(script[build[0] + 1:])                # what follows the build, as one shell
    proc = subprocess.run(["bash", "-eo", "pipefail", "-c", rest], env=env, cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines() if log.exists() else []
    target = "registry.example.org/group/heirloom/heirloom-analysis:0.1.0-3f9c0e1a2b4d"
    if pushed:
        assert calls[:3] == ["login -u ci-user --password-stdin registry.example.org",
                             f"tag heirloom/analysis:0.1.0-3f9c0e1a2b4d {target}", f"push {target}"]
    else:
        assert calls == [] and "built, not pushed" in proc.stdout


# ---- the script -------------------------------------------------------------------------

def test_script_is_valid_bash_and_stops_on_a_missing_config(tmp_path):
    assert subprocess.run(["bash", "-n", str(ROOT / SCRIPT)]).returncode == 0
    env = dict(os.environ, HEIRLOOM_STORE=str(tmp_path / "store"), PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    proc = subprocess.run(["bash", str(ROOT / SCRIPT), "no/such.yaml", "results"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"no such config: {tmp_path / 'no/such.yaml'}" in proc.stderr
    assert not (tmp_path / "store").exists()
