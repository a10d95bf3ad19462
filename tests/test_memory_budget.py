"""A memory budget per worker (select.memory_mb, analysis/select/memory.py): a budget
that cannot hold a chunk stops Select with the config line before its loop; a budget
leaves the results and the keys as they are, and provenance records the peak memory
and the chunk size."""

from __future__ import annotations

import json

from conftest import law_run, small_demo, write_config


def _select(store, name="tiny"):
    folder = store / "by-name" / name / "Select" / "ttbar"
    return json.loads((folder / "provenance.json").read_text()), json.loads((folder / "cutflow.json").read_text())


def test_a_budget_too_small_for_a_chunk_is_a_located_error(tmp_path):
    small_demo(tmp_path)
    config = write_config(tmp_path, "budget.yaml", "extends: tiny.yaml\nselect: {memory_mb: 100}\n")
    proc = law_run("Select", config, tmp_path / "store", "--dataset", "ttbar", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "budget.yaml:2: key 'select.memory_mb'" in out and "leaves no room for a chunk" in out
    assert not (tmp_path / "store" / "by-name" / "tiny" / "Select").exists()


def test_a_budget_keeps_results_and_keys_and_provenance_says_the_peak(tmp_path):
    plain = small_demo(tmp_path)
    budget = write_config(tmp_path, "budget.yaml", "extends: tiny.yaml\nselect: {memory_mb: 100000}\n")
    law_run("Select", plain, tmp_path / "a", "--dataset", "ttbar")
    law_run("Select", budget, tmp_path / "b", "--dataset", "ttbar")
    (prov_a, cutflow_a), (prov_b, cutflow_b) = _select(tmp_path / "a"), _select(tmp_path / "b")
    assert prov_a["key"] == prov_b["key"]                       # a performance setting: no key
    assert cutflow_a == cutflow_b
    assert prov_b["chunk_size"] == 200_000 and 50 < prov_b["peak_memory_mb"] < 100_000
