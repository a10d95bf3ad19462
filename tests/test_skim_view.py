"""A Skim that keeps every event of a fast-to-read local file refers to it instead of
copying it (``view.json``), and Select reads the file's entries: the same histograms as a
copy, a cut change that reuses the view, and a copy wherever a view would cost later."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conftest import ROOT, law_run, runs

EVENTS = 6000


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    """The same generated events as a ZLIB file (as generate.py writes) and an LZ4 one."""
    import uproot

    from analysis.io.generate import generate_file
    from analysis.io.skim import read_chunk, write_tree

    folder = tmp_path_factory.mktemp("view_inputs")
    zlib = folder / "zlib.root"
    generate_file(zlib, "ttbar", EVENTS, 3)
    names = uproot.open(zlib)["Events"].keys()
    lz4 = folder / "lz4.root"
    write_tree(lz4, read_chunk(str(zlib), "Events", names, 0, EVENTS))
    return {"zlib": zlib, "lz4": lz4}


def config(folder: Path, name: str, path: Path, skim: str) -> Path:
    out = folder / f"{name}.yaml"
    out.write_text(f"extends: {ROOT / 'configs' / 'cms2015_files.yaml'}\nname: {name}\n"
                   f"datasets:\n  ttbar_2015:\n    files: ['{path}']\nskim:\n{skim}")
    return out


KEEP_ALL = "  preselection: 'ak.num(Jet) >= 0'\n"


def skim_folder(store: Path, name: str) -> Path:
    return store / "by-name" / name / "Skim" / "ttbar_2015__0"


def histograms(store: Path, name: str) -> str:
    path = store / "by-name" / name / "Histogram" / "ttbar_2015" / "histograms.json"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_skim_that_keeps_everything_of_an_lz4_file_is_a_view(inputs, tmp_path):
    store = tmp_path / "store"
    law_run("Histograms", config(tmp_path, "view", inputs["lz4"], KEEP_ALL), store)
    law_run("Histograms", config(tmp_path, "copied", inputs["lz4"], KEEP_ALL + "  copy: always\n"), store)
    view, copied = skim_folder(store, "view"), skim_folder(store, "copied")
    assert sorted(p.name for p in view.iterdir()) == ["provenance.json", "stats.json", "view.json"]
    assert json.loads((view / "view.json").read_text()) == {"tree": "Events", "entries": [0, EVENTS]}
    assert (copied / "skim.root").exists()
    assert json.loads((view / "stats.json").read_text()) == json.loads((copied / "stats.json").read_text())
    assert histograms(store, "view") == histograms(store, "copied")      # the same bytes


def test_a_cut_change_reads_the_file_through_the_view(inputs, tmp_path):
    store = tmp_path / "store"
    law_run("Histograms", config(tmp_path, "view", inputs["lz4"], KEEP_ALL), store)
    before = len(runs(store))
    changed = config(tmp_path, "view", inputs["lz4"], KEEP_ALL).read_text() + \
        "regions:\n  4j1b: {cut: '(ak.num(bjets) == 1) & (ak.sum(jets.pt, axis=1) > 250)'}\n"
    (tmp_path / "view.yaml").write_text(changed)
    law_run("Histograms", tmp_path / "view.yaml", store)
    ran = [r["task"] for r in runs(store)[before:]]
    assert "Skim" not in ran and "Select" in ran


@pytest.mark.parametrize("which, skim", [("zlib", KEEP_ALL),                   # slow to read again: copied
                                         ("lz4", "  preselection: 'ak.num(Jet) >= 4'\n")])   # cuts: copied
def test_otherwise_the_skim_copies_the_needed_branches(inputs, tmp_path, which, skim):
    store = tmp_path / "store"
    law_run("Histograms", config(tmp_path, "c", inputs[which], skim), store)
    folder = skim_folder(store, "c")
    assert (folder / "skim.root").exists() and not (folder / "view.json").exists()
    stats = json.loads((folder / "stats.json").read_text())
    assert stats["events_in"] == EVENTS and (stats["events_out"] < EVENTS) == (which == "lz4")


def test_views_on_the_run_pool(inputs, tmp_path):
    """--executor futures --cores 2: the pool's Skims make the same views and histograms."""
    store, alone = tmp_path / "store", tmp_path / "alone"
    path = config(tmp_path, "view", inputs["lz4"], KEEP_ALL + "  chunk_size: 1000\n")
    law_run("Histograms", path, store, "--executor", "futures", "--cores", "2")
    law_run("Histograms", path, alone)
    views = sorted((store / "by-name" / "view" / "Skim").glob("*/view.json"))
    assert len(views) > 1
    assert histograms(store, "view") == histograms(alone, "view")
