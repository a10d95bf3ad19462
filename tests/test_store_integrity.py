"""The store checks itself, and two processes sharing it compute every task once.

The base store is made by two concurrent ``law run Plot`` of a small demo into one
empty store; the other tests damage copies of it the ways docs/security.md lists and
assert that the damage is named, never used, and repaired by the next run.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, VENV_BIN, law_run, runs, small_demo

ANALYSIS = "tiny"


def heirloom(*args, store: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HEIRLOOM_STORE=str(store))
    return subprocess.run([str(VENV_BIN / "heirloom"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def law_process(config: Path, store: Path) -> subprocess.Popen:
    env = dict(os.environ, HEIRLOOM_STORE=str(store), PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    return subprocess.Popen([str(VENV_BIN / "law"), "run", "Plot", "--config", str(config)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Two concurrent ``law run Plot`` into one empty store: (config, store, their outputs)."""
    folder = tmp_path_factory.mktemp("concurrent")
    config, store = small_demo(folder, name=ANALYSIS), folder / "store"
    first, second = law_process(config, store), law_process(config, store)
    outputs = [p.communicate(timeout=900)[0] for p in (first, second)]
    return config, store, [first.returncode, second.returncode], outputs


def copy_store(store: Path, tmp_path: Path) -> Path:
    target = tmp_path / "store"
    shutil.copytree(store, target, symlinks=True)
    return target


def obj(store: Path, family: str, label: str = "all") -> Path:
    return (store / "by-name" / ANALYSIS / family / label).resolve()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_concurrent_runs_compute_every_task_once(shared):
    config, store, codes, outputs = shared
    assert codes == [0, 0], "\n".join(o[-3000:] for o in outputs)
    counts = collections.Counter((r["task"], r["label"]) for r in runs(store))
    assert counts and max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]
    assert {"Generate", "Skim", "Select", "Histogram", "Histograms", "Fit", "Plot"} == {t for t, _ in counts}
    assert not list((store / "locks").glob("*.lock")) and not list((store / "tmp").iterdir())


def test_tampered_histograms_are_named_quarantined_and_recomputed(shared, tmp_path):
    config, base, _, _ = shared
    store = copy_store(base, tmp_path)
    path = obj(store, "Histograms") / "histograms.json"
    text = path.read_text()
    path.write_text(text.replace("1", "2", 1))     # a changed number, same size
    poi_before = json.loads((obj(base, "Fit") / "fit_result.json").read_text())["bestfit"]
    fork = tmp_path / "fork.yaml"
    fork.write_text(f"extends: {config}\nfit:\n  strategy: 2\n")   # only the fit changes
    proc = law_run("Fit", fork, store)
    warning = [line for line in proc.stderr.splitlines() if "is damaged" in line]
    assert len(warning) == 1 and "Histograms" in warning[0] and "quarantine" in warning[0]
    assert list((store / "quarantine" / "Histograms").glob("*.why"))
    assert [r["task"] for r in runs(store)[len(runs(base)):]] == ["Histograms", "Fit"]
    assert (obj(store, "Histograms") / "histograms.json").read_text() == text     # byte-identical again
    fitted = json.loads((obj(store, "Fit") / "fit_result.json").read_text())      # the fork's fit
    assert fitted["bestfit"] == pytest.approx(poi_before, abs=1e-3)


@pytest.mark.parametrize("damage", ["empty folder", "zero-byte png", "no provenance", "unlisted file"])
def test_incomplete_objects_are_rerun(shared, tmp_path, damage):
    config, base, _, _ = shared
    store = copy_store(base, tmp_path)
    plot = obj(store, "Plot")
    if damage == "empty folder":
        for item in plot.iterdir():
            item.unlink()
    elif damage == "zero-byte png":
        next(plot.glob("*.png")).write_bytes(b"")
    elif damage == "no provenance":
        (plot / "provenance.json").unlink()
    else:                                  # a file taken off the record (then edited unseen)
        record = json.loads((plot / "provenance.json").read_text())
        name = sorted(record["outputs"])[0]
        del record["outputs"][name], record["output_sizes"][name]
        (plot / "provenance.json").write_text(json.dumps(record))
    why = heirloom("why", "Plot", "--config", str(config), store=store)
    assert why.returncode == 0 and "damaged" in why.stdout and "Traceback" not in why.stderr
    show = heirloom("show", "--config", str(config), store=store)
    assert show.returncode == 1 and len(show.stderr.strip().splitlines()) == 1 and "Plot object" in show.stderr
    proc = law_run("Plot", config, store)
    assert [r["task"] for r in runs(store)[len(runs(base)):]] == ["Plot"], proc.stderr
    assert heirloom("verify", "--all", store=store).returncode == 0
    recorded = lambda root: json.loads((obj(root, "Plot") / "provenance.json").read_text())["outputs"]  # noqa: E731
    assert recorded(store) == recorded(base)         # the same bytes again: plots and tables


def test_edited_fit_result_is_named_by_show(shared, tmp_path):
    config, base, _, _ = shared
    store = copy_store(base, tmp_path)
    path = obj(store, "Fit") / "fit_result.json"
    original = sha256(path)
    text = path.read_text()
    at = text.index('"bestfit": ') + len('"bestfit": ')
    at += next(i for i, c in enumerate(text[at:]) if c.isdigit())
    path.write_text(text[:at] + str((int(text[at]) + 1) % 10) + text[at + 1:])     # same size, other value
    proc = heirloom("show", "--config", str(config), store=store)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert "Fit object" in proc.stderr and "damaged" in proc.stderr
    assert heirloom("verify", "--config", str(config), store=store).returncode == 1     # quarantined
    law_run("Fit", config, store)
    assert [r["task"] for r in runs(store)[len(runs(base)):]] == ["Fit"]
    assert sha256(obj(store, "Fit") / "fit_result.json") == original              # the same bytes again
    recorded = lambda root: json.loads((obj(root, "Fit") / "provenance.json").read_text())["outputs"]  # noqa: E731
    assert recorded(store) == recorded(base)          # every file: templates.root, cabinetry's .npz


def test_verify_names_a_flipped_byte_in_a_skim_and_law_run_recomputes_it(shared, tmp_path):
    config, base, _, _ = shared
    store = copy_store(base, tmp_path)
    skim = obj(store, "Skim", "ttbar__0") / "skim.root"
    original = sha256(skim)
    data = bytearray(skim.read_bytes())
    data[len(data) // 2] ^= 0x01
    skim.write_bytes(bytes(data))
    key = skim.parent.name
    proc = heirloom("verify", "--all", store=store)
    assert proc.returncode == 1
    assert f"Skim/{key}" in proc.stdout and "DAMAGED" in proc.stdout and key[:12] in proc.stderr
    law_run("Skim", config, store, "--dataset", "ttbar", "--chunk", "0")
    assert [r["task"] for r in runs(store)[len(runs(base)):]] == ["Skim"]
    assert sha256(store / "objects" / "Skim" / key[:2] / key / "skim.root") == original    # same bytes
    assert heirloom("verify", "--all", store=store).returncode == 0


def test_damaged_store_files_give_one_line(shared, tmp_path):
    config, base, _, _ = shared
    store = copy_store(base, tmp_path)
    with open(store / "runs.jsonl", "a") as stream:
        stream.write("garbage {\n")
    proc = heirloom("runs", store=store)
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1 and "runs.jsonl:" in proc.stderr
    (store / "runs.jsonl").unlink()
    (store / "manifests" / "files.json").write_text("[1, 2, 3]")
    proc = heirloom("verify", "--inputs", store=store)
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1 and "files.json" in proc.stderr


def test_gc_keeps_what_a_config_reaches(shared, tmp_path):
    config, base, _, _ = shared
    store = copy_store(base, tmp_path)
    stray = store / "objects" / "Fit" / "ee" / ("ee" * 20)
    shutil.copytree(obj(store, "Fit"), stray)
    dry = heirloom("gc", "--config", str(config), store=store)
    assert dry.returncode == 0 and f"Fit/{'ee' * 20}" in dry.stdout and "dry run" in dry.stdout
    assert stray.exists() and dry.stdout.count("would remove") == 1
    done = heirloom("gc", "--config", str(config), "--delete", store=store)
    assert done.returncode == 0 and not stray.exists()
    assert heirloom("verify", "--config", str(config), store=store).returncode == 0


def test_live_staging_older_than_six_hours_survives_a_run_beside_it(shared, tmp_path):
    from analysis.store import locks

    config, base, _, _ = shared
    store = copy_store(base, tmp_path)
    key = obj(store, "Select", "ttbar").name
    with locks.hold(store, "Select", "f" * 40):                    # a long Select, still running
        stage = store / "tmp" / f"Select-{'f' * 40}-{os.getpid()}-0123abcd"
        stage.mkdir(parents=True)
        (stage / "partial.parquet").write_bytes(b"x" * 100)
        old = time.time() - 7 * 3600
        os.utime(stage, (old, old))
        dead = store / "tmp" / f"Select-{key}-999999-89abcdef"     # a crashed writer's debris
        dead.mkdir()
        os.utime(dead, (old, old))
        shutil.rmtree(obj(store, "Plot"))                         # so that the run does work
        law_run("Plot", config, store)
        assert stage.is_dir() and (stage / "partial.parquet").exists()
        assert not dead.exists()
