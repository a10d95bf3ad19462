"""GPU slots on Dask, with fake GPU resources: every ``device: cuda`` step runs on the worker
that advertises ``GPU=1`` (as provenance records it), the annotation reaches the scheduler,
and the device path gives the CPU path's histograms byte for byte."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, law_run

BIN = Path(sys.executable).parent
GPU_WORKER, CPU_WORKER = "gpu-worker", "cpu-worker"
CONFIG = """
extends: {demo}
name: gpu
demo: {{seed: 7, events: 3000}}
datasets:
  ttbar: {{generator: {{process: ttbar, events: 6000}}}}
skim: {{chunk_size: 3000}}
histogram: {{device: cuda}}
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def gpu_cluster():
    """``dask scheduler`` and two ``dask worker``s on 127.0.0.1, one started with
    ``--resources GPU=1`` (no GPU behind it: the label is what routing reads)."""
    address = f"tcp://127.0.0.1:{_free_port()}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                                  address.rsplit(":", 1)[1], "--no-dashboard"], **quiet)
    common = ["--nworkers", "1", "--nthreads", "1", "--no-dashboard"]
    workers = [subprocess.Popen([str(BIN / "dask"), "worker", address, "--name", GPU_WORKER,
                                 "--resources", "GPU=1", *common], **quiet),
               subprocess.Popen([str(BIN / "dask"), "worker", address, "--name", CPU_WORKER, *common], **quiet)]
    try:
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for proc in (*workers, scheduler):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _drop(store: Path, name: str, *families: str) -> None:
    """Remove a family's objects and by-name links, so the next run computes them again."""
    for family in families:
        shutil.rmtree(store / "objects" / family, ignore_errors=True)
        shutil.rmtree(store / "by-name" / name / family, ignore_errors=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, gpu_cluster):
    """Select + Histogram of ttbar with ``histogram: {device: cuda}``: iterative, then on the
    Dask cluster above (the same skims, copied)."""
    folder = tmp_path_factory.mktemp("gpu")
    config = folder / "gpu.yaml"
    config.write_text(CONFIG.format(demo=ROOT / "configs" / "demo.yaml"))
    iterative = folder / "iterative"
    law_run("Histogram", config, iterative, "--dataset", "ttbar")
    dask = folder / "dask"
    shutil.copytree(iterative, dask, symlinks=True)
    _drop(dask, "gpu", "Select", "Histogram")
    proc = law_run("Histogram", config, dask, "--dataset", "ttbar", "--executor", "dask", "--scheduler", gpu_cluster)
    return {"config": config, "iterative": iterative, "dask": dask, "log": proc.stdout + proc.stderr}


def _object(store: Path, family: str, name: str = "gpu", label: str = "ttbar") -> Path:
    return store / "by-name" / name / family / label


def _provenance(store: Path, family: str) -> dict:
    return json.loads((_object(store, family) / "provenance.json").read_text())


def test_every_device_step_ran_on_the_gpu_worker(runs, gpu_cluster):
    prov = _provenance(runs["dask"], "Histogram")
    steps = prov["device_steps"]
    assert steps and all(step["step"] == "histogram_fill" and step["device"] == "cuda" for step in steps)
    assert {step["worker"] for step in steps} == {GPU_WORKER}
    assert all(step["resources"] == {"GPU": 1} for step in steps)
    gpu_address = {w["address"] for w in prov["executor"]["dask"]["workers"] if w["name"] == GPU_WORKER}
    assert {step["address"] for step in steps} == gpu_address
    # the cluster as provenance saw it: one GPU-labelled worker and one plain one
    assert prov["executor"]["scheduler"] == gpu_cluster and prov["executor"]["cluster"] == "remote"
    assert sorted((w["name"], w["resources"]) for w in prov["executor"]["dask"]["workers"]) == [
        (CPU_WORKER, {}), (GPU_WORKER, {"GPU": 1})]
    assert prov["executor"]["dask"]["startup_s"] >= 0
    if steps[0]["backend"] == "numpy":       # no cupy here: the fall-back is said and recorded
        assert steps[0]["fallback"] and "filled with numpy" in runs["log"]


def test_dask_histograms_are_the_iterative_ones(runs):
    ours, theirs = (_object(runs[k], "Histogram") / "histograms.json" for k in ("dask", "iterative"))
    assert ours.read_bytes() == theirs.read_bytes()
    assert _provenance(runs["dask"], "Histogram")["key"] == _provenance(runs["iterative"], "Histogram")["key"]
    local = _provenance(runs["iterative"], "Histogram")["device_steps"]
    assert [(s["step"], s["device"], s["worker"]) for s in local] == [("histogram_fill", "cuda", None)]


def test_device_fill_gives_fill_from_table_byte_for_byte(runs, tmp_path):
    """On a real Select table: the device path (numpy here) and the CPU path write the same file."""
    import pyarrow.parquet as pq

    from analysis.config.model import region_observables
    from analysis.hist import histograms
    from analysis.hist.device_fill import fill_on_device
    from analysis.load import load_config

    cfg = load_config(runs["config"])
    regions = {name: region_observables(spec) for name, spec in cfg.regions.items()}
    table = pq.read_table(_object(runs["iterative"], "Select") / "selected.parquet")
    cpu = histograms.fill_from_table(table, regions, cfg.observables, 0.37)
    device, info = fill_on_device(table, regions, cfg.observables, 0.37, device="cuda")
    histograms.dump(cpu, tmp_path / "cpu.json")
    histograms.dump(device, tmp_path / "device.json")
    assert (tmp_path / "cpu.json").read_bytes() == (tmp_path / "device.json").read_bytes()
    assert info["device"] == "cuda"


def test_edge_values_and_order_of_sums():
    """Bin edges, flow, infinities, NaN observables and weights, an empty region, weight
    variations and many rows per bin (float sums in row order) give fill_from_table's hists."""
    import pyarrow as pa

    from analysis.hist.device_fill import backend, fill_on_device
    from analysis.hist.histograms import fill_from_table

    rng = np.random.default_rng(3)
    n = 20_000
    x = rng.normal(250, 150, n)
    x[::37], x[::41], x[::43], x[::47] = 50.0, 550.0, np.inf, -np.inf
    x[::53] = np.nan
    w = rng.normal(1.0, 0.4, n) * np.where(rng.random(n) < 0.01, 1e6, 1.0)   # large and small weights
    variation = rng.choice(["nominal", "jes_up", "jes_down"], n)
    up = np.where(variation == "nominal", w * 1.1, np.nan)
    table = pa.table({"variation": pa.array(variation).dictionary_encode(),
                      "region": pa.array(rng.choice(["A", "B"], n)).dictionary_encode(),
                      "obs_ht": x, "w_nominal": w, "w_btag_up": up, "w_empty": np.full(n, np.nan)})
    regions = {"A": ["ht"], "B": ["ht"], "C": ["ht"]}
    spec = {"ht": {"bins": 7, "range": [50, 550], "label": "H_T"}}
    ours, _ = fill_on_device(table, regions, spec, 0.1094761, device="cpu")
    assert ours == fill_from_table(table, regions, spec, 0.1094761)
    assert list(ours["A/ht"].axes["variation"]) == ["nominal", "btag_up", "jes_down", "jes_up"]
    assert list(ours["C/ht"].axes["variation"]) == ["nominal"]
    assert backend("cpu").name == "numpy"


def test_cuda_without_cupy_says_it_falls_back(caplog):
    try:
        import cupy  # noqa: F401

        pytest.skip("cupy is installed: benchmarks/gpu_check.py tests the GPU path")
    except ImportError:
        pass
    from analysis.hist.device_fill import backend

    backend.cache_clear()
    with caplog.at_level("WARNING", logger="heirloom.hist"):
        chosen = backend("cuda")
        backend("cuda")
    assert (chosen.name, chosen.fallback.startswith("cupy is not installed")) == ("numpy", True)
    assert len([r for r in caplog.records if "filling with numpy" in r.getMessage()]) == 1


def _probe(seconds: float = 0.05):
    """A chunk function that takes a moment (unrestricted, both workers would get some) and
    says where it ran. Made here, so that Dask ships it by value (cloudpickle)."""
    def where(item):
        import time as _time

        from distributed import get_worker

        _time.sleep(seconds)
        return {"n": 1, "workers": {get_worker().name: 1}}

    return where


def test_annotation_reaches_the_scheduler(gpu_cluster):
    """The chunks' map (as RoutedDaskExecutor sends it) arrives at the scheduler with its
    resource restriction: no optimisation in between drops it."""
    from distributed import Client, wait

    from analysis.select.dask_cluster import GPU, collect_records, new_run
    from analysis.select.dask_routing import RoutingClient

    def scheduler_view(dask_scheduler, keys):
        return {key: (dask_scheduler.tasks[key].resource_restrictions, dask_scheduler.tasks[key].annotations)
                for key in keys if key in dask_scheduler.tasks}

    with Client(gpu_cluster, timeout="30s") as client:
        run = new_run()
        futures = RoutingClient(client, GPU, "probe", run).map(_probe(), range(6), pure=False)
        wait(futures)                   # held futures keep their task states on the scheduler
        seen = client.run_on_scheduler(scheduler_view, keys=[f.key for f in futures])
        assert seen and all(r == {"GPU": 1} and a.get("resources") == {"GPU": 1} for r, a in seen.values())
        assert {w for f in futures for w in f.result()["workers"]} == {GPU_WORKER}
        assert {r["worker"] for r in collect_records(client, run)} == {GPU_WORKER}


def test_routed_coffea_executor_runs_every_chunk_on_the_gpu_worker(gpu_cluster):
    from analysis.select import dask_cluster
    from analysis.select.dask_cluster import GPU, ClusterSpec
    from analysis.select.executors import make_executor

    spec = ClusterSpec(scheduler=gpu_cluster)
    executor = make_executor("dask", cluster=spec, resources=GPU, progress=False)
    try:
        out = executor(list(range(8)), _probe(), None)
    finally:
        _, client, _ = dask_cluster._CLUSTERS.pop(spec.key())
    client.close()
    result = out[0] if isinstance(out, tuple) else out
    assert result["n"] == 8 and set(result["workers"]) == {GPU_WORKER}
    assert len(executor.records) == 8 and {r["worker"] for r in executor.records} == {GPU_WORKER}


def test_select_routes_every_chunk_of_a_cuda_model(runs, gpu_cluster, monkeypatch, tmp_path):
    """Select with a ``device: cuda`` model on Dask: every chunk of the event loop runs on the
    GPU-labelled worker and provenance lists each. (A CUDA model needs CUDA to run, so the
    config's model list is stood in for; the routing does not look at the model.)"""
    import luigi

    import tasks.select as select_tasks
    from analysis.io.generate import generate_events, write_nanoaod
    from analysis.select import dask_cluster
    from analysis.select.processor import run_selection
    from analysis.select.selection import plan_from_config

    monkeypatch.setattr(select_tasks, "cuda_models", lambda cfg: ["assignment"])
    monkeypatch.setenv("HEIRLOOM_STORE", str(tmp_path / "store"))
    settings = luigi.configuration.get_config()
    settings.set("execution", "executor", "dask")
    settings.set("execution", "scheduler", gpu_cluster)
    nano = tmp_path / "nano.root"
    write_nanoaod(nano, generate_events("ttbar", 1000, seed=1))
    try:
        task = select_tasks.Select(config=str(runs["config"]), dataset="ttbar")
        executor = task._executor()
        output = run_selection([str(nano)], plan_from_config(task.cfg, "ttbar"), executor, chunksize=250)
        where = task._where(executor)
    finally:
        settings.remove_option("execution", "executor")
        settings.remove_option("execution", "scheduler")
        _, client, _ = dask_cluster._CLUSTERS.pop(dask_cluster.ClusterSpec(scheduler=gpu_cluster).key())
        client.close()
    steps = where["device_steps"]
    assert output["events"] == 1000 and len(steps) == 4
    assert sorted(step["item"] for step in steps) == [f"{tmp_path.name}/nano.root#{start}" for start in (0, 250, 500, 750)]
    assert {(step["worker"], step["device"], tuple(step["models"])) for step in steps} == {
        (GPU_WORKER, "cuda", ("assignment",))}
    assert {w["name"] for w in where["executor"]["dask"]["workers"]} == {GPU_WORKER, CPU_WORKER}


def test_no_batch_worker_in_time_is_one_error(monkeypatch):
    from analysis.errors import HeirloomError
    from analysis.select import dask_cluster

    class Empty:
        def scheduler_info(self):
            return {"workers": {}}

    monkeypatch.setenv("HEIRLOOM_DASK_WAIT", "0")
    with pytest.raises(HeirloomError, match="no Dask worker connected within 0 s of submitting 3 htcondor jobs"):
        dask_cluster._first_worker(Empty(), dask_cluster.ClusterSpec(kind="htcondor", jobs=3), time.monotonic() - 1)
