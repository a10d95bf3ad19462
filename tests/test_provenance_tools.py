"""Provenance tools: ``heirloom diff`` of two results, the files a run used that git does not
hold as committed, ``heirloom runs`` by analysis."""

from __future__ import annotations

import json
import os
import subprocess

from conftest import ROOT, VENV_BIN, law_run, small_demo, write_config


def heirloom(store, *args, check=True) -> subprocess.CompletedProcess:
    env = dict(os.environ, HEIRLOOM_STORE=str(store))
    proc = subprocess.run([str(VENV_BIN / "heirloom"), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 or not check, proc.stdout + proc.stderr
    return proc


def test_diff_names_what_differs_between_two_results(tmp_path):
    small_demo(tmp_path, name="tiny")
    tight = write_config(tmp_path, "tight.yaml", 'extends: tiny.yaml\nname: tight\nregions:\n'
                         '  4j2b: {cut: "ak.num(bjets) >= 3"}\n')
    store = tmp_path / "store"
    for config in (tmp_path / "tiny.yaml", tight):
        law_run("Select", config, store, "--dataset", "ttbar")
    keys = [json.loads((store / "by-name" / name / "Select" / "ttbar" / "provenance.json").read_text())["key"]
            for name in ("tiny", "tight")]

    by_config = heirloom(store, "diff", "Select", "--config", str(tmp_path / "tiny.yaml"), "--config", str(tight),
                         "--dataset", "ttbar").stdout
    assert f"{keys[0][:12]}" in by_config and f"{keys[1][:12]}" in by_config
    assert "key component config.regions.4j2b.cut: 'ak.num(bjets) >= 2' -> 'ak.num(bjets) >= 3'" in by_config
    assert "output cutflow.json: content differs" in by_config

    by_key = heirloom(store, "diff", keys[0][:8], keys[1][:8]).stdout.splitlines()
    assert by_key[0] == f"Select {keys[0][:12]} -> Select {keys[1][:12]}"
    assert [line for line in by_key if line.startswith("key component config")] == \
        ["key component config.regions.4j2b.cut: 'ak.num(bjets) >= 2' -> 'ak.num(bjets) >= 3'"]
    same = heirloom(store, "diff", "Select", "--config", str(tight), "--config", str(tight), "--dataset", "ttbar")
    assert "the same key" in same.stdout
    wrong = heirloom(store, "diff", "0000000000", keys[1][:8], check=False)
    assert wrong.returncode == 2 and "no object with a key starting 0000000000" in wrong.stderr


def test_provenance_names_the_uncommitted_files_a_run_used(tmp_path):
    """A config outside the checkout (or untracked, or edited) makes the run dirty, by name."""
    config = small_demo(tmp_path, name="tiny")
    store = tmp_path / "store"
    law_run("Skim", config, store, "--dataset", "ttbar", "--chunk", "0")
    record = json.loads((store / "by-name" / "tiny" / "Skim" / "ttbar__0" / "provenance.json").read_text())
    assert record["git"]["dirty"] is True
    assert str(config) in record["git"]["uncommitted"]
    assert "configs/demo.yaml" not in record["git"]["uncommitted"]             # the committed parent config


def test_runs_show_and_filter_the_analysis(tmp_path):
    small_demo(tmp_path, name="tiny")
    other = write_config(tmp_path, "other.yaml", "extends: tiny.yaml\nname: other\n")
    store = tmp_path / "store"
    law_run("Generate", tmp_path / "tiny.yaml", store, "--dataset", "ttbar")
    law_run("Generate", other, store, "--dataset", "wjets")
    everything = heirloom(store, "runs").stdout.splitlines()
    assert any(" tiny " in line and "Generate" in line for line in everything)
    assert any(" other " in line and "Generate" in line for line in everything)
    only = heirloom(store, "runs", "--analysis", "other").stdout.splitlines()
    assert only and all(" other " in line for line in only) and len(only) < len(everything)


def test_task_help_lists_the_executor_options_and_names_are_suggested(tmp_path):
    """``law run Select --help`` shows where the event loop runs; a mistyped task name in
    ``heirloom`` gets the closest one."""
    helped = subprocess.run([str(VENV_BIN / "law"), "run", "Select", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120).stdout
    for option in ("--executor", "--scheduler", "--cluster", "--jobs", "--gpu-workers", "--debug"):
        assert f"  {option} " in helped, option
    wrong = heirloom(tmp_path / "store", "why", "Plto", "--config", str(ROOT / "configs" / "demo.yaml"), check=False)
    assert wrong.returncode != 0 and "did you mean Plot?" in wrong.stderr
