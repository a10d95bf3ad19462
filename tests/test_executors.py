"""Executors are result-neutral: the futures executor gives the iterative histograms. Dask:
a separately started scheduler with a GPU-labelled and a plain worker in
tests/test_gpu_routing.py, Dask workers as Slurm jobs in tests/test_slurm.py, a local Dask
cluster in tests/test_ml_inference.py (Select's columns) and tests/test_published_likelihood.py
(CLs)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import law_run, small_demo

@pytest.fixture(scope="module")
def skimmed(tmp_path_factory):
    """A store where the ttbar and data skims exist, so each executor only runs Select on."""
    folder = tmp_path_factory.mktemp("executors")
    config = small_demo(folder, name="exec", chunk_size=5_000)       # ttbar in 3 chunks
    store = folder / "store"
    for dataset in ("ttbar", "data"):
        law_run("Skim", config, store, "--dataset", dataset, "--chunk", "0")
        law_run("Skim", config, store, "--dataset", dataset, "--chunk", "1")
    return config, store


def run_with(executor_args, skimmed, tmp_path) -> dict:
    config, base = skimmed
    store = tmp_path / "store"
    shutil.copytree(base, store, symlinks=True)
    for dataset in ("ttbar", "data"):
        law_run("Histogram", config, store, "--dataset", dataset, *executor_args)
    out = {}
    for dataset in ("ttbar", "data"):
        folder = store / "by-name" / "exec" / "Histogram" / dataset
        prov = json.loads((folder / "provenance.json").read_text())
        select = store / "by-name" / "exec" / "Select" / dataset
        out[dataset] = {
            "key": prov["key"],
            "hists": json.loads((folder / "histograms.json").read_text()),
            "cutflow": json.loads((select / "cutflow.json").read_text())["events"],
            "executor": json.loads((select / "provenance.json").read_text())["executor"],
        }
    return out


def assert_same(a: dict, b: dict) -> None:
    for dataset in a:
        assert a[dataset]["key"] == b[dataset]["key"]                 # result-neutral: same address
        assert a[dataset]["cutflow"] == b[dataset]["cutflow"]         # counts equal
        for name, h in a[dataset]["hists"].items():
            other = b[dataset]["hists"][name]
            assert h["axes"] == other["axes"]
            for field in ("values", "variances"):
                np.testing.assert_allclose(other["storage"][field], h["storage"][field], rtol=1e-9, atol=0)


@pytest.fixture(scope="module")
def iterative(skimmed, tmp_path_factory):
    return run_with(["--executor", "iterative"], skimmed, tmp_path_factory.mktemp("iter"))


@pytest.mark.parametrize("args, parallel_tasks", [(["--workers", "2"], 2),            # --workers sets both
                                                  (["--workers", "1", "--cores", "2"], 1)])  # a pool without luigi's
def test_futures_two_workers_equals_iterative(iterative, skimmed, tmp_path, args, parallel_tasks):
    futures = run_with(["--executor", "futures", *args], skimmed, tmp_path)
    assert futures["ttbar"]["executor"] == {"name": "futures", "workers": 2, "parallel_tasks": parallel_tasks,
                                            "scheduler": None}
    assert_same(iterative, futures)


def skim_objects(store) -> dict:
    """{label: (key, sha256 of skim.root, executor record)} of the ttbar Skims in ``store``."""
    import hashlib

    out = {}
    for folder in sorted((store / "by-name" / "exec" / "Skim").glob("ttbar__*")):
        prov = json.loads((folder / "provenance.json").read_text())
        out[folder.name] = (prov["key"], hashlib.sha256((folder / "skim.root").read_bytes()).hexdigest(),
                            prov["executor"]["workers"])
    return out


def test_skims_on_the_run_pool_are_the_ones_skimmed_in_process(skimmed, tmp_path):
    """--executor futures --cores 2 skims a dataset's chunks on the run's pool: the same
    files and keys as Skim in law's own process, and no folder of theirs left in tmp/."""
    config, base = skimmed
    store = tmp_path / "store"
    law_run("Select", config, store, "--dataset", "ttbar", "--executor", "futures", "--cores", "2")
    pooled, alone = skim_objects(store), skim_objects(base)
    assert len(pooled) >= 2 and set(alone) <= set(pooled)
    for label, (key, digest, _) in alone.items():
        assert pooled[label][:2] == (key, digest)
    assert {workers for _, _, workers in pooled.values()} == {2}
    assert not list((store / "tmp").iterdir())


@pytest.mark.parametrize("cores, workers, expected", [(0, 1, "available"), (0, 8, 8), (3, 1, 3), (1, 4, 1)])
def test_statistics_fits_use_the_cores_there_are_unless_told(monkeypatch, cores, workers, expected):
    """The ranking's and the limit's fits: --cores when given, else the cores this process
    may use (its CPU affinity), at least --workers; the event loop keeps --workers."""
    import os
    from types import SimpleNamespace

    from tasks import execution

    monkeypatch.setattr(execution, "execution", lambda: SimpleNamespace(cores=cores))
    monkeypatch.setattr(execution, "current_workers", lambda: workers)
    available = len(os.sched_getaffinity(0))
    assert execution.fit_pool_size() == (max(available, workers) if expected == "available" else expected)
    assert execution.pool_size() == (cores or workers)
