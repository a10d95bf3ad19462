"""Input files are identified by their content (BLAKE3), never by name, size, ROOT UUID or mtime."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import numpy as np
import pytest

from conftest import ROOT, VENV_BIN, law_run, runs, write_config

FIXED = uuid.UUID("12345678-1234-5678-1234-567812345678")

CONFIG = """
extends: {parent}
name: identity
lumi: 3378.0
datasets:
  ttbar_2015: null
  sample:
    kind: mc
    xsec: 729.84
    files: ["{file}"]
"""


def write_events(path, scale: float = 1.0) -> None:
    """400 generated ttbar events as an uncompressed NanoAOD TTree with a fixed ROOT UUID:
    the same size and UUID whatever ``scale`` is (only the bytes of Jet_pt differ)."""
    import awkward as ak
    import uproot

    from analysis.io.generate import generate_events

    events = {k: ak.Array(v) for k, v in generate_events("ttbar", 400, seed=5).items()}
    events["Jet"] = ak.with_field(events["Jet"], events["Jet"].pt * np.float32(scale), "pt")
    with uproot.recreate(path, compression=None, uuid_function=lambda: FIXED) as file:
        tree = file.mktree("Events", {k: v.type.content for k, v in events.items()},
                           counter_name=lambda counted: "n" + counted,
                           field_name=lambda outer, inner: inner if outer == "" else outer + "_" + inner)
        tree.extend(events)


def select_runs(store) -> list:
    return [r for r in runs(store) if r["task"] == "Select"]


@pytest.fixture
def analysis(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    events = data / "events.root"
    write_events(events)
    config = write_config(tmp_path, "identity.yaml",
                          CONFIG.format(parent=ROOT / "configs" / "cms2015_files.yaml", file=events))
    return {"events": events, "config": config, "store": tmp_path / "store", "data": data}


def test_same_size_same_uuid_rewrite_changes_the_key_and_reruns(analysis):
    import uproot

    law_run("Select", analysis["config"], analysis["store"], "--dataset", "sample")
    first = select_runs(analysis["store"])
    size = analysis["events"].stat().st_size
    write_events(analysis["events"], scale=1.25)                  # Jet_pt x 1.25, same size and UUID
    assert analysis["events"].stat().st_size == size
    with uproot.open(analysis["events"]) as handle:
        assert str(handle.file.uuid) == str(FIXED)
    law_run("Select", analysis["config"], analysis["store"], "--dataset", "sample")
    second = select_runs(analysis["store"])
    assert len(first) == 1 and len(second) == 2 and second[1]["key"] != first[0]["key"]


def test_mtime_preserving_copy_of_another_file_changes_the_key(analysis):
    law_run("Select", analysis["config"], analysis["store"], "--dataset", "sample")
    other = analysis["data"] / "other" / "events.root"             # ROOT files store their own name
    other.parent.mkdir()
    write_events(other, scale=1.25)                                 # other bytes, same size and UUID
    stat = analysis["events"].stat()
    assert other.stat().st_size == stat.st_size
    shutil.copyfile(other, analysis["events"])
    os.utime(analysis["events"], ns=(stat.st_atime_ns, stat.st_mtime_ns))   # cp -p / rsync -a keep the mtime
    assert analysis["events"].stat().st_mtime_ns == stat.st_mtime_ns
    law_run("Select", analysis["config"], analysis["store"], "--dataset", "sample")
    keys = [r["key"] for r in select_runs(analysis["store"])]
    assert len(keys) == 2 and keys[0] != keys[1]


def test_a_copy_elsewhere_under_another_name_is_the_same_input(analysis, tmp_path):
    law_run("Select", analysis["config"], analysis["store"], "--dataset", "sample")
    moved = tmp_path / "elsewhere" / "renamed.root"
    moved.parent.mkdir()
    shutil.copy(analysis["events"], moved)
    config = write_config(tmp_path, "moved.yaml", CONFIG.format(parent=ROOT / "configs" / "cms2015_files.yaml",
                                                                 file=moved))
    law_run("Select", config, analysis["store"], "--dataset", "sample")
    assert len(select_runs(analysis["store"])) == 1                 # nothing reran


def test_verify_inputs_rehashes_and_names_a_file_changed_behind_the_cache(analysis):
    law_run("Skim", analysis["config"], analysis["store"], "--dataset", "sample", "--chunk", "0")
    env = dict(os.environ, HEIRLOOM_STORE=str(analysis["store"]))
    ok = subprocess.run([str(VENV_BIN / "heirloom"), "verify", "--inputs"], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "1 input files rehashed, 0 changed" in ok.stdout, ok.stdout + ok.stderr
    # corrupt the cached record (as a file changed in place with its stamp restored would look)
    manifest = analysis["store"] / "manifests" / "files.json"
    text = manifest.read_text()
    import json

    entries = json.loads(text)
    (entry,) = [e for e in entries.values() if e["path"] == str(analysis["events"])]
    entry["blake3"] = "0" * 64
    manifest.write_text(json.dumps(entries))
    bad = subprocess.run([str(VENV_BIN / "heirloom"), "verify", "--inputs"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"CHANGED  {analysis['events']}" in bad.stdout
    assert bad.stderr.strip().count("\n") == 0 and bad.stderr.startswith("heirloom: 1 input file(s) changed")
    again = subprocess.run([str(VENV_BIN / "heirloom"), "verify", "--inputs"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0                                    # the cache now holds the true digest


def test_a_new_store_reuses_the_users_identity_of_a_file_and_not_of_a_changed_one(tmp_path, monkeypatch):
    """The user's cache (``files.json``) gives a new store the identity another store
    computed, while the file's size, mtime, ctime and inode are unchanged; a rewritten
    file is hashed again."""
    from analysis.io import fileid

    path, shared = tmp_path / "events.root", tmp_path / "cache" / "files.json"
    write_events(path)
    first = fileid.Manifest(tmp_path / "store1", shared)
    known = first.identify(path)
    first.save()
    assert shared.exists()

    def no_hashing(*args):
        raise AssertionError("hashed again")

    monkeypatch.setattr(fileid, "file_digest", no_hashing)
    second = fileid.Manifest(tmp_path / "store2", shared)
    assert second.identify(path) == known
    second.save()
    assert (tmp_path / "store2" / "manifests" / "files.json").exists()      # the new store keeps it too
    monkeypatch.undo()
    write_events(path, scale=1.5)                                             # same size, other bytes
    changed = fileid.Manifest(tmp_path / "store3", shared).identify(path)
    assert changed.key() != known.key() and changed.size == known.size
