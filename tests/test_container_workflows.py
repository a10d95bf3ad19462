"""The exported workflows on the real analysis image (podman, through its Docker API).

The image is built here with containers/build.sh (a local Debian base, the lock, byte
code). Then:

- the docker-encapsulated yadage workflow of a small analysis runs with its steps
  started as REANA starts them (a non-root uid, no working directory) and gives the Fit
  key and POI of ``law run``; a rerun does nothing; a step started as packtivity starts
  it (``-w <step folder>``) publishes into that folder;
- ``recast run`` of the Z' example with the docker backend (yadage in the runner image,
  steps in the analysis image) gives the documented limit, and runs only the signal's
  chain and the statistics when the analysis's store is given;
- the bundle of the sbottom fork runs in a container that sees nothing but the bundle.

``./setup.sh test`` installs podman and mmdebstrap (Debian packages) when missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, SHARED, VENV_BIN, requires_shared, runs

TOOLS = ROOT / ".venv-preserve" / "bin"
PODMAN_CONF = ROOT / "containers" / "podman.conf"
DOCKER_SOCKET = Path("/var/run/docker.sock")       # recast's docker backend mounts this path
NON_ROOT = "1000:1000"


def container_env(**extra) -> dict:
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}", **extra)
    env.setdefault("CONTAINERS_CONF", str(PODMAN_CONF))
    return env


def run(command: list, *, cwd=ROOT, env=None, timeout=900, umask=None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in command], cwd=cwd, env=env or container_env(), capture_output=True,
                          text=True, timeout=timeout, preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)
    assert proc.returncode == 0, f"{' '.join(map(str, command))} failed ({proc.returncode}):\n" \
                                 f"{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}"
    return proc


@pytest.fixture(scope="module")
def docker_host():
    """podman's Docker API on a socket of this module's, also at /var/run/docker.sock
    (where recast's docker backend looks) when nothing is there; stopped afterwards."""
    if not shutil.which("podman"):
        pytest.fail("podman is missing: ./setup.sh test installs it (Debian: podman mmdebstrap runc uidmap)")
    folder = Path(tempfile.mkdtemp(prefix="hl-podman-", dir="/tmp"))     # a short path: a unix socket's limit
    socket = folder / "podman.sock"
    log = open(folder / "service.log", "w")
    service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{socket}"],
                               env=container_env(), stdout=log, stderr=subprocess.STDOUT)
    host = f"unix://{socket}"
    linked = False
    try:
        for _ in range(120):                       # ready within a minute, or fail
            ready = subprocess.run(["docker", "--host", host, "version"], capture_output=True, timeout=30)
            if ready.returncode == 0:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"podman's Docker API did not answer on {socket}: {(folder / 'service.log').read_text()}")
        if not DOCKER_SOCKET.exists() and not DOCKER_SOCKET.is_symlink():
            DOCKER_SOCKET.symlink_to(socket)
            linked = True
        yield host
    finally:
        if linked:
            DOCKER_SOCKET.unlink()
        service.terminate()
        service.wait(timeout=60)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def analysis_image(docker_host) -> str:
    """The analysis image of this checkout, under the name the exports write."""
    from tasks.export.image import default_image

    image = run([ROOT / "containers" / "build.sh"], timeout=1200).stdout.strip().splitlines()[-1]
    assert image == default_image(), (image, default_image())
    return image


@pytest.fixture(scope="module")
def runner_image(docker_host) -> str:
    return run([ROOT / "containers" / "build.sh", "--runner"], timeout=1200).stdout.strip().splitlines()[-1]


def step_runs(work: Path) -> list:
    """The run records of every step's store in a yadage work folder."""
    return [r for store in sorted(work.glob("*/store")) for r in runs(store)]


def test_yadage_workflow_in_the_image_as_reana_starts_steps(roundtrip, docker_host, analysis_image, tmp_path):
    config, law_store = roundtrip
    bundle, work = tmp_path / "bundle", tmp_path / "work"
    run([VENV_BIN / "heirloom", "export", "yadage", "--config", config, "--task", "Fit", "--out", bundle])
    name, tag = analysis_image.rsplit(":", 1)
    spec = yaml.safe_load((bundle / "workflow.yml").read_text())
    assert {(s["scheduler"]["step"]["environment"]["image"], s["scheduler"]["step"]["environment"]["imagetag"])
            for s in spec["stages"]} == {(name, tag)}
    # REANA: a non-root uid, no working directory (packtivity gives none: the step sets no workdir)
    env = container_env(DOCKER_HOST=docker_host, PACKTIVITY_DOCKER_NOPULL="1",
                        PACKTIVITY_DOCKER_CMD_MOD=f"--user {NON_ROOT}")
    yadage = [TOOLS / "yadage-run", work, "workflow.yml", "inputs.yml", "-d", f"initdir={bundle}"]
    start = time.time()
    run(yadage, cwd=bundle, env=env, umask=0)         # the workspace is writable by the job's user
    seconds = time.time() - start

    law_runs = runs(law_store)
    [law_fit] = [r for r in law_runs if r["task"] == "Fit"]
    law_result = json.loads((law_store / "by-name" / "roundtrip" / "Fit" / "all" / "fit_result.json").read_text())
    published = yaml.safe_load((work / "Fit" / "heirloom-step.yml").read_text())
    assert published["key"] == law_fit["key"]
    assert published["results"]["poi"]["value"] == pytest.approx(law_result["bestfit"], abs=1e-6)
    assert published["results"]["poi"]["uncertainty"] == pytest.approx(law_result["uncertainty"], abs=1e-6)
    # the declared outputs are plain files, and a non-root user wrote them
    result = work / "Fit" / "results" / "Fit" / "all" / "fit_result.json"
    assert not result.is_symlink() and json.loads(result.read_text())["bestfit"] == law_result["bestfit"]
    assert (work / "Fit" / "store" / "runs.jsonl").stat().st_uid == 1000
    # every task of the DAG ran once, in the step of its family
    ran = step_runs(work)
    assert sorted((r["task"], r["label"], r["key"]) for r in ran) == \
        sorted((r["task"], r["label"], r["key"]) for r in law_runs)
    assert all(r["task"] == store.parent.name for store in work.glob("*/store") for r in runs(store))

    # the workflow given a store that holds every result (here law run's, as its cache)
    # finds them all and computes nothing
    run(["cp", "-al", law_store, bundle / "store"])
    again = tmp_path / "again"
    start = time.time()
    run([TOOLS / "yadage-run", again, "workflow.yml", "inputs.yml", "-d", f"initdir={bundle}"],
        cwd=bundle, env=env, umask=0)
    print(f"container workflow: {seconds:.1f} s; no-op run: {time.time() - start:.1f} s")
    assert step_runs(again) == []
    assert yaml.safe_load((again / "Fit" / "heirloom-step.yml").read_text())["key"] == law_fit["key"]

    # packtivity's way: -w <step folder>, a relative publish file lands there
    stores = " ".join(str(s) for s in published["stores"][1:])
    run(["docker", "--host", docker_host, "run", "--rm", "--user", NON_ROOT, "-w", work / "Fit",
         "-v", f"{work}:{work}", "-v", f"{bundle}:{bundle}:ro", analysis_image, "sh", "-c",
         f"heirloom step Fit --of Fit --config {bundle}/analysis.yaml --store {work}/Fit/store "
         f"--publish again.yml --upstream {stores}"])
    assert yaml.safe_load((work / "Fit" / "again.yml").read_text())["key"] == law_fit["key"]
    assert len(step_runs(work)) == len(ran)


@pytest.mark.timeout(1200)                  # seven container steps; under a loaded CI machine ~10 min
def test_recast_zprime_example_with_the_docker_backend(agc_store, docker_host, analysis_image, runner_image,
                                                        tmp_path):
    """recast-atlas's docker backend: yadage in the runner image, each step in the analysis
    image; the analysis's store is the example's cache, so only the Z' chain and the
    statistics run, and the limit is the one docs/recast.md gives."""
    root = tmp_path / "analysis"                       # the folder recast runs in (a checkout's root)
    root.mkdir()
    run([VENV_BIN / "heirloom", "export", "recast", "--config", ROOT / "configs" / "reinterpret_example.yaml",
         "--new-signal", ROOT / "configs" / "reinterpret_zprime_1000.yaml"], cwd=root)
    from analysis.load import load_config

    fork = load_config(ROOT / "configs" / "reinterpret_example.yaml").name
    (root / "store").mkdir()                           # the analysis's results, read-only for the workflow:
    for record in sorted((agc_store / "objects").glob("*/*/*/provenance.json")):    # not what the fork made
        if json.loads(record.read_text()).get("analysis") != fork:                  # (README's `law run Limit`)
            shutil.copytree(record.parent, root / "store" / record.parent.relative_to(agc_store),
                            copy_function=os.link)
    env = container_env(DOCKER_HOST=docker_host, RECAST_DOCKER_IMAGE=runner_image,
                        RECAST_ATLAS_CATALOGUE=str(root / "workflows" / "recast" / "agc_zprime"))
    proc = run([TOOLS / "recast", "run", "heirloom/agc_zprime", "--example", "default", "--backend", "docker",
                "--tag", "zprime"], cwd=root, env=env, timeout=1500)
    assert "RECAST result heirloom/agc_zprime" in proc.stdout + proc.stderr
    published = yaml.safe_load((root / "recast-zprime" / "Limit" / "heirloom-step.yml").read_text())
    limit = published["results"]["limit"]
    assert limit["poi"] == "mu_zprime"
    assert limit["observed"] == pytest.approx(0.834, abs=5e-4)               # docs/recast.md
    assert [round(x, 3) for x in limit["expected"]] == [0.366, 0.546, 0.886, 1.538, 2.707]
    ran = {(r["task"], r["label"].split("__")[0]) for r in step_runs(root / "recast-zprime")}
    assert ran == {("Generate", "zprime"), ("Skim", "zprime"), ("Select", "zprime"), ("Histogram", "zprime"),
                   ("Histograms", "all"), ("Limit", "all")}

    # a broken input: recast fails, and the step's one-line reason reaches the terminal
    (root / "broken.yml").write_text("dataopts: {initdir: ..}\ninitdata: {config: no/such.yaml, cache: store}\n")
    broken = subprocess.run([str(TOOLS / "recast"), "run", "heirloom/agc_zprime", "broken.yml", "--backend",
                             "docker", "--tag", "broken"], cwd=root, env=env, capture_output=True, text=True,
                            timeout=600)
    assert broken.returncode != 0
    assert "heirloom: config 'no/such.yaml' not found" in broken.stdout + broken.stderr


@requires_shared("likelihoods", "pyhf-ins1748602-probability-models.tar.gz")
def test_sbottom_bundle_runs_where_only_the_bundle_is(docker_host, analysis_image, tmp_path):
    config = tmp_path / "sbottom_subset.yaml"
    config.write_text(f"extends: {ROOT / 'configs' / 'sbottom_regionA.yaml'}\nname: sbottom_subset\n"
                      "likelihood:\n  points: [sbottom_1300_205_60, sbottom_600_300_60]\n")
    bundle, out = tmp_path / "bundle", tmp_path / "out"
    run([VENV_BIN / "heirloom", "export", "yadage", "--config", config, "--task", "ExclusionPlot", "--out", bundle])
    values = json.dumps(yaml.safe_load((bundle / "analysis.yaml").read_text()))    # no host path left
    assert str(SHARED) not in values and str(ROOT.parent) not in values and str(tmp_path) not in values
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    # no network, a non-root user, and nothing of the host but the bundle (read-only) and an output folder
    run(["docker", "--host", docker_host, "run", "--rm", "--network", "none", "--user", NON_ROOT,
         "-v", f"{bundle}:/bundle:ro", "-v", f"{out}:/out", analysis_image,
         "heirloom", "step", "ExclusionPlot", "--of", "ExclusionPlot", "--config", "/bundle/analysis.yaml",
         "--store", "/out/store", "--publish", "/out/step.yml", "--results", "/out/results"])
    assert "sbottom_1300_205_60" in (out / "results" / "ExclusionPlot" / "all" / "cls_table.csv").read_text()
    [scan] = [r for r in runs(out / "store") if r["task"] == "CLsScan"]
    cls = json.loads((out / "store" / "objects" / "CLsScan" / scan["key"][:2] / scan["key"] / "cls.json").read_text())
    reference = {row["name"]: row for row in cls["points"]}["sbottom_1300_205_60"]
    assert reference["cls_obs"] == pytest.approx(0.24443628, rel=1e-5)     # ../shared/docs/REFERENCES.md
