"""Bad input loses nothing: corrupt files are named, a killed run leaves nothing that
looks complete, and a rerun finishes the job."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, VENV_BIN, law_run, runs, small_demo


def files_config(folder: Path, path: Path) -> Path:
    config = folder / "files.yaml"
    config.write_text(f"extends: {ROOT / 'configs' / 'cms2015_files.yaml'}\nname: corrupt\n"
                      f"datasets:\n  ttbar_2015:\n    files: ['{path}']\n")
    return config


@pytest.mark.parametrize("args", [[], ["--executor", "futures", "--cores", "2"]])   # in law, on the pool
def test_truncated_root_file_is_named(tmp_path, store, args):
    from analysis.io.generate import generate_file

    good = tmp_path / "good.root"
    generate_file(good, "ttbar", 2000, 1)
    bad = tmp_path / "truncated.root"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    proc = law_run("Select", files_config(tmp_path, bad), store, "--dataset", "ttbar_2015", *args, check=False)
    assert proc.returncode != 0
    assert str(bad) in proc.stdout + proc.stderr
    assert not (store / "objects").exists()


@pytest.mark.parametrize("args", [[], ["--executor", "futures", "--cores", "2"]])   # in law, on the pool
def test_damaged_basket_is_named(tmp_path, store, args):
    """A file whose header reads but one of whose baskets does not decompress: the Skim
    that reads it fails naming the file, whether it ran in law's process or on the pool."""
    from analysis.io.generate import generate_file

    good = tmp_path / "good.root"
    generate_file(good, "ttbar", 20000, 1)
    data = bytearray(good.read_bytes())
    middle = int(len(data) * 0.3)
    data[middle:middle + 4000] = b"U" * 4000
    bad = tmp_path / "damaged.root"
    bad.write_bytes(bytes(data))
    proc = law_run("Select", files_config(tmp_path, bad), store, "--dataset", "ttbar_2015", *args, check=False)
    assert proc.returncode != 0
    said = proc.stdout + proc.stderr
    assert str(bad) in said and "Skim[ttbar_2015" in said
    assert not (store / "objects" / "Select").exists() and not list((store / "tmp").glob("Skim-*"))


def test_garbage_file_is_named(tmp_path, store):
    bad = tmp_path / "garbage.root"
    bad.write_bytes(b"this is not a ROOT file" * 100)
    proc = law_run("Select", files_config(tmp_path, bad), store, "--dataset", "ttbar_2015", check=False)
    assert proc.returncode != 0
    assert str(bad) in proc.stdout + proc.stderr


def test_failing_task_exits_nonzero_and_commits_nothing(tmp_path, store):
    config = small_demo(tmp_path, extra="model:\n  poi: not_a_norm_factor\n")
    proc = law_run("Fit", config, store, check=False)
    assert proc.returncode != 0


def assert_store_consistent(store: Path) -> None:
    """Every committed output has its provenance and its files match their checksums."""
    for prov_dir in (store / "objects").glob("*/*/*"):
        prov_path = prov_dir / "provenance.json"
        assert prov_path.exists(), f"{prov_dir} looks committed but has no provenance"
        prov = json.loads(prov_path.read_text())
        for name, checksum in prov["outputs"].items():
            digest = hashlib.sha256((prov_dir / name).read_bytes()).hexdigest()
            assert checksum == "sha256:" + digest, f"{prov_dir / name} does not match its provenance"


def test_kill_9_mid_run_then_rerun_completes(tmp_path, store):
    config = small_demo(tmp_path, name="killed")
    env = dict(os.environ, HEIRLOOM_STORE=str(store), PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    proc = subprocess.Popen([str(VENV_BIN / "law"), "run", "Plot", "--config", str(config)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    try:
        # wait until the run is inside a task that stages output (a Select), then kill it hard
        while time.time() < deadline:
            staged = list((store / "tmp").glob("Select-*")) if (store / "tmp").exists() else []
            if staged:
                break
            assert proc.poll() is None, "the run finished before it could be killed"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    finished = {(r["task"], r["label"]) for r in runs(store)}
    assert ("Plot", "all") not in finished
    assert_store_consistent(store)
    law_run("Plot", config, store)
    assert_store_consistent(store)
    assert ("Plot", "all") in {(r["task"], r["label"]) for r in runs(store)}
    assert not list((store / "tmp").iterdir())          # the dead run's staging was cleaned up
