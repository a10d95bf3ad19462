"""A memory budget per worker (select.memory_mb, analysis/select/memory.py; skim.memory_mb,
analysis/io/budget.py): a budget that cannot hold a chunk stops the run with the config
line before its loop; a budget leaves the results as they are (Select's keys too), and
provenance records the peak memory and the chunk size."""

from __future__ import annotations

import json

import pytest

from conftest import law_run, small_demo, write_config


def _select(store, name="tiny"):
    folder = store / "by-name" / name / "Select" / "ttbar"
    return json.loads((folder / "provenance.json").read_text()), json.loads((folder / "cutflow.json").read_text())


@pytest.mark.parametrize("step", ["select", "skim"])
def test_a_budget_too_small_for_a_chunk_is_a_located_error(tmp_path, step):
    small_demo(tmp_path)
    config = write_config(tmp_path, "budget.yaml", f"extends: tiny.yaml\nname: tight\n{step}:\n  memory_mb: 120\n")
    proc = law_run("Select", config, tmp_path / "store", "--dataset", "ttbar", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"budget.yaml:4: key '{step}.memory_mb'" in out and "leaves no room for a chunk" in out
    stopped = {"select": "Select", "skim": ""}[step]          # skim: before any task ran (its chunks are planned)
    assert not (tmp_path / "store" / "by-name" / "tight" / stopped).exists()


def test_a_budget_keeps_results_and_keys_and_provenance_says_the_peak(tmp_path):
    plain = small_demo(tmp_path)
    budget = write_config(tmp_path, "budget.yaml", "extends: tiny.yaml\nselect: {memory_mb: 100000}\n")
    law_run("Select", plain, tmp_path / "a", "--dataset", "ttbar")
    law_run("Select", budget, tmp_path / "b", "--dataset", "ttbar")
    (prov_a, cutflow_a), (prov_b, cutflow_b) = _select(tmp_path / "a"), _select(tmp_path / "b")
    assert prov_a["key"] == prov_b["key"]                       # a performance setting: no key
    assert cutflow_a == cutflow_b
    assert prov_b["chunk_size"] == 200_000 and 50 < prov_b["peak_memory_mb"] < 100_000


def _skims(store, name="tiny", dataset="ttbar"):
    return sorted((store / "by-name" / name / "Skim").glob(f"{dataset}__*"))


def test_a_skim_budget_sets_the_chunks_and_keeps_the_results(tmp_path):
    """skim.memory_mb: the chunks that fit it (here half of skim.chunk_size), the same
    cutflow, each Skim's peak in its provenance and a line where it passed the budget."""
    from analysis.io.budget import SKIM_FACTOR, SKIM_OVERHEAD_MB, generated_bytes_per_event
    from analysis.io.columns import needed_branches
    from analysis.io.demo_streams import BRANCHES
    from analysis.load import load_config

    plain = small_demo(tmp_path, chunk_size=5_000)
    cfg = load_config(plain)
    per_event = generated_bytes_per_event(("ttbar",), "{}", tuple(needed_branches(cfg, tuple(BRANCHES))))
    budget = int(SKIM_OVERHEAD_MB + 2_600 * per_event * SKIM_FACTOR / 1e6) + 1       # room for 2,600 events, not 5,000
    config = write_config(tmp_path, "budget.yaml", f"extends: tiny.yaml\nskim: {{memory_mb: {budget}}}\n")
    law_run("Select", plain, tmp_path / "a", "--dataset", "ttbar")
    proc = law_run("Select", config, tmp_path / "b", "--dataset", "ttbar")
    assert len(_skims(tmp_path / "a")) == 3                        # 12,000 events in chunks of 5,000
    assert len(_skims(tmp_path / "b")) > 3
    (_, cutflow_a), (_, cutflow_b) = _select(tmp_path / "a"), _select(tmp_path / "b")
    assert cutflow_a == cutflow_b
    peaks = [json.loads((s / "provenance.json").read_text())["peak_memory_mb"] for s in _skims(tmp_path / "b")]
    assert all(peak > 50 for peak in peaks)
    assert ("passed skim.memory_mb" in proc.stdout + proc.stderr) == any(peak > budget for peak in peaks)
