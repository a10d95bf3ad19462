"""Batch jobs on a real Slurm (single node on 127.0.0.1, fake GPU gres): ``--workflow slurm``.

``./setup.sh test`` installs slurm-wlm and munge; the module fixture starts the daemons
(tests/services/slurm.sh) and stops them at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, VENV_BIN, law_run, write_config

SERVICE = ROOT / "tests" / "services" / "slurm.sh"
FAMILIES = ("Generate", "Skim", "Select", "Histogram")

# configs/demo.yaml with fewer events and without single top (12 tasks below Histograms:
# seconds each, not minutes; benchmarks/batch_slurm.py runs configs/demo.yaml itself and
# checks the same equalities), and GPU batch slots for Select and Histogram: resources
# never enter a key
DEMO_ON_GPU_SLOTS = """\
extends: {demo}
name: demo_batch
lumi: 0.3
datasets:
  ttbar: {{generator: {{process: ttbar, events: 8000}}}}
  single_top_s_chan: null
  single_top_t_chan: null
  single_top_tW: null
  wjets: {{generator: {{process: wjets, events: 12000}}}}
model: {{samples: {{single_top: null}}}}
skim: {{chunk_size: 6000}}
resources:
  default: {{cpus: 1, memory: 1GB, walltime: "00:20:00"}}
  Select: {{gpus: 1}}
  Histogram: {{gpus: 1}}
"""


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the test Slurm needs root (its daemons switch users); ./setup.sh test runs as root in CI")
    if shutil.which("slurmctld") is None:
        pytest.fail("slurm-wlm is not installed: ./setup.sh test installs it (apt-get install slurm-wlm munge)")
    state = tmp_path_factory.mktemp("slurm")
    subprocess.run(["bash", str(SERVICE), "start", str(state)], check=True, timeout=120)
    try:
        yield {"SLURM_CONF": str(state / "slurm.conf")}
    finally:
        subprocess.run(["bash", str(SERVICE), "stop", str(state)], timeout=120)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    """The reduced demo and its local run (``law run Histograms``, no batch system)."""
    folder = tmp_path_factory.mktemp("batch-demo")
    config = write_config(folder, "demo_batch.yaml", DEMO_ON_GPU_SLOTS.format(demo=ROOT / "configs/demo.yaml"))
    law_run("Histograms", config, folder / "local")
    return config, folder / "local"


def _env(slurm: dict, store: Path, **extra) -> dict:
    return dict(os.environ, HEIRLOOM_STORE=str(store), PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}",
                **slurm, **extra)


def _objects(store: Path) -> dict:
    """``{(family, key): provenance}`` of every object in a store."""
    return {(p.parts[-4], p.parts[-2]): json.loads(p.read_text())
            for p in sorted((store / "objects").glob("*/*/*/provenance.json"))}


def _squeue(slurm: dict) -> list[tuple[str, str]]:
    out = subprocess.run(["squeue", "--states=all", "-h", "-o", "%i %T"], env=dict(os.environ, **slurm),
                         capture_output=True, text=True, timeout=30).stdout
    return [tuple(line.split()) for line in out.splitlines() if line.strip()]


def _cancel_first_running_job(slurm: dict, run: subprocess.Popen) -> str | None:
    """Cancel the first job seen running (a node failure, a preemption): law must resubmit it."""
    deadline = time.time() + 300
    while time.time() < deadline and run.poll() is None:
        running = [job for job, state in _squeue(slurm) if state == "RUNNING"]
        if running:
            subprocess.run(["scancel", running[0]], env=dict(os.environ, **slurm), check=True, timeout=30)
            return running[0]
        time.sleep(0.05)
    return None


def test_demo_on_slurm_matches_the_local_run(slurm, s3_server, reference, tmp_path):
    """``law run Histograms --workflow slurm`` with the store on S3 (no shared store folder:
    the jobs read and write it through node-local caches) gives the local run's keys and
    byte-identical histograms; a job cancelled while running is resubmitted and the run
    completes; every object records the Slurm job and host that made it; the GPU-slot jobs
    got the gres; the submitter's cache receives only what its own task read."""
    import s3fs

    config, local = reference
    s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_server["AWS_ENDPOINT_URL"]}, key=s3_server["AWS_ACCESS_KEY_ID"],
                      secret=s3_server["AWS_SECRET_ACCESS_KEY"]).call_s3("create_bucket", Bucket="batch-store")
    submitter, jobs = tmp_path / "submitter", tmp_path / "job-caches"
    env = dict(_env(slurm, submitter), **s3_server, HEIRLOOM_STORE="s3://batch-store/store",
               HEIRLOOM_CACHE=str(submitter), HEIRLOOM_JOB_CACHE=str(jobs))
    run = subprocess.Popen([str(VENV_BIN / "law"), "run", "Histograms", "--config", str(config), "--workflow", "slurm",
                            "--poll-interval", "1s", "--retries", "2", "--tasks-per-job", "2"],
                           cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cancelled = _cancel_first_running_job(slurm, run)
    output, _ = run.communicate(timeout=600)
    assert run.returncode == 0, output[-4000:]
    assert cancelled is not None, "no job was seen running"

    assert ("CANCELLED" in dict(_squeue(slurm)).get(cancelled, "")), _squeue(slurm)
    attempts = [json.loads(p.read_text())["attempts"]
                for p in (submitter / "batch" / "jobs").glob("*/*/slurm_jobs_*.json")]
    assert any(n >= 1 for a in attempts for n in a.values()), attempts        # law resubmitted the cancelled job

    here, mine, theirs = _objects(local), _objects(submitter), _objects(jobs)
    assert {family for family, _ in mine} == {"Histogram", "Histograms"}      # read by Histograms, made by it
    assert {family for family, _ in theirs} == set(FAMILIES)
    assert set(mine) | set(theirs) == set(here)
    for (family, key), record in (theirs | mine).items():
        name = Path("objects") / family / key[:2] / key / "histograms.json"
        made = (jobs if (family, key) in theirs else submitter) / name
        if made.exists():
            assert made.read_bytes() == (local / name).read_bytes(), (family, key)
        if family in FAMILIES:
            assert record["batch"]["system"] == "slurm" and record["batch"]["job_id"] and record["batch"]["host"]
        else:
            assert record["batch"] is None                                    # Histograms ran here
    histogram_jobs = {r["batch"]["job_id"] for (f, _), r in theirs.items() if f == "Histogram"}
    scripts = "".join(p.read_text() for p in (submitter / "batch" / "jobs").glob("*/Histogram/files/*.sh"))
    assert "#SBATCH --gres=gpu:1" in scripts and len(histogram_jobs) == 2          # 3 tasks, 2 per job

    rerun = subprocess.run([str(VENV_BIN / "law"), "run", "Histograms", "--config", str(config), "--workflow", "slurm",
                            "--poll-interval", "1s"], cwd=ROOT, env=dict(env, HEIRLOOM_CACHE=str(tmp_path / "other")),
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0 and "going to submit" not in rerun.stdout + rerun.stderr   # complete on S3


def test_a_job_from_a_modified_checkout_refuses_to_write(slurm, reference, tmp_path):
    """A job whose code differs from the submitted code computes other keys and writes nothing."""
    checkout = tmp_path / "checkout"
    for name in ("analysis", "tasks", "configs", ".law"):
        shutil.copytree(ROOT / name, checkout / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "law.cfg", checkout / "law.cfg")
    inputs = checkout / "tasks" / "inputs.py"
    inputs.write_text(inputs.read_text().replace('print(f"Generate[', 'print(f"Generated ['))   # an edited log line

    store = tmp_path / "store"
    proc = subprocess.run([str(VENV_BIN / "law"), "run", "Histograms", "--config", str(reference[0]),
                           "--workflow", "slurm", "--poll-interval", "1s", "--retries", "0"], cwd=ROOT,
                          env=_env(slurm, store, HEIRLOOM_BATCH_CODE=str(checkout)),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    logs = "".join(p.read_text() for p in (store / "batch" / "jobs").glob("*/Generate/logs/*.txt"))
    assert "so the job refuses to write" in logs and str(checkout) in logs
    assert not list((store / "objects").glob("Generate/*/*"))


def test_dask_workers_as_slurm_jobs_give_the_iterative_histograms(slurm, reference, tmp_path, monkeypatch):
    """``--executor dask --cluster slurm --jobs 1``: the Dask worker is a Slurm job in a GPU
    slot (``resources: {Select: {gpus: 1}}`` -> ``--gres=gpu:1``, worker resource GPU=1),
    its start-up is recorded, and the histograms are the iterative executor's, byte for byte."""
    config, local = reference
    monkeypatch.setenv("SLURM_CONF", slurm["SLURM_CONF"])
    dask = tmp_path / "dask"
    for family in ("Generate", "Skim"):            # inputs as the local run made them: only Select runs on Dask
        shutil.copytree(local / "objects" / family, dask / "objects" / family, symlinks=True)
    law_run("Histogram", config, dask, "--dataset", "ttbar", "--executor", "dask", "--cluster", "slurm", "--jobs", "1")
    here, there = _objects(local), _objects(dask)
    assert set(there) <= set(here) and {f for f, _ in there} == {"Generate", "Skim", "Select", "Histogram"}
    [(_, key)] = [k for k in there if k[0] == "Histogram"]
    assert (dask / "objects/Histogram" / key[:2] / key / "histograms.json").read_bytes() == \
        (local / "objects/Histogram" / key[:2] / key / "histograms.json").read_bytes()
    [select] = [r for (f, _), r in there.items() if f == "Select"]
    record = select["executor"]["dask"]
    assert select["executor"]["cluster"] == "slurm" and record["startup_s"] > 0
    assert [w["resources"] for w in record["workers"]] == [{"GPU": 1}]
    jobs = subprocess.run(["squeue", "--states=all", "-h", "-o", "%j|%b"], env=dict(os.environ, **slurm),
                          capture_output=True, text=True, timeout=30).stdout.splitlines()
    assert any(line.startswith("dask-worker|") and "gpu:1" in line for line in jobs), jobs     # a GPU slot


def test_the_jdl_of_a_gpu_family_parses_with_htcondor(tmp_path):
    """``--workflow htcondor``: the job file law writes for a family with ``resources:
    {gpus: 1, memory: 4GB}`` parses with the HTCondor bindings and requests the GPU."""
    import htcondor2

    config = write_config(tmp_path, "gpu.yaml", f"extends: {ROOT / 'configs/demo.yaml'}\n"
                          "resources:\n  Skim: {gpus: 1, memory: 4GB, walltime: '01:30:00'}\n")
    code = f"""
from law.job.dashboard import NoJobDashboard
from luigi.cmdline_parser import CmdlineParser
from tasks import Histograms
from tasks.batch.workflow import BatchBranches
with CmdlineParser.global_instance(["Histograms", "--config", {str(config)!r}, "--workflow", "htcondor"]):
    [skims] = [w for w in BatchBranches.for_top(Histograms(config={str(config)!r}, workflow="htcondor"))
               if w.family == "Skim"]
    proxy = skims.workflow_proxy
    proxy.job_file_factory, proxy.dashboard = proxy.create_job_file_factory(), NoJobDashboard()
    print(proxy.create_job_file(1, [0, 1])["job"])
"""
    env = dict(os.environ, HEIRLOOM_STORE=str(tmp_path / "store"))
    proc = subprocess.run([str(VENV_BIN / "python"), "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jdl = Path(proc.stdout.strip().splitlines()[-1]).read_text()
    submit = htcondor2.Submit(jdl)
    assert submit["request_gpus"] == "1"
    assert submit["request_memory"] == "4096"
    assert submit["getenv"] == "true"
    assert "bootstrap.sh" in jdl and "--branches" not in submit.get("executable", "")
