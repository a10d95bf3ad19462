"""Closure of the full AGC analysis on generated data (what `./setup.sh demo` runs) and of
a fork with other pseudo-data (seed, injected ttbar normalisation): the fit finds the
injected value within 2 standard deviations."""

from __future__ import annotations

import json

import pytest

from analysis.load import load_config
from conftest import ROOT, law_run, runs


@pytest.fixture(scope="module")
def store(agc_store):
    """One store for both configs (the session's AGC store): the fork reuses every MC output."""
    return agc_store


@pytest.mark.parametrize("config_name", ["agc_ttbar", "agc_ttbar_fork"])
def test_full_demo_closure(config_name, store, tmp_path):
    config = tmp_path / f"{config_name}.yaml"      # the config itself, less the (slow) impact ranking
    config.write_text(f"extends: {ROOT / 'configs' / config_name}.yaml\nfit: {{ranking: false, significance: false}}\n")
    cfg = load_config(config)
    injected = cfg.data["demo"]["inject"]["ttbar"]
    before = len(runs(store))
    law_run("Fit", config, store, "--executor", "futures", "--workers", "2")
    if config_name == "agc_ttbar_fork":         # only the pseudo-data chain and the fit reran
        assert {(r["task"], r["label"].split("__")[0]) for r in runs(store)[before:]} == {
            ("Generate", "data"), ("Skim", "data"), ("Select", "data"), ("Histogram", "data"),
            ("Histograms", "all"), ("Fit", "all")}
    prov = json.loads((store / "by-name" / cfg.name / "Fit" / "all" / "provenance.json").read_text())
    value, error = prov["poi"]["value"], prov["poi"]["uncertainty"]
    assert prov["poi"]["name"] == "ttbar_norm"
    assert 0 < error < 0.2
    assert abs(value - injected) < 2 * error, (value, error, injected)


def test_reinterpretation_fork_runs_only_the_signal_and_the_statistics(store, tmp_path):
    """configs/reinterpret_example.yaml after the AGC analysis (test above, same store): only
    the Z' chain, the merge of the histograms and the limit run; every background output
    keeps its key. (The limit on a coarse grid here; the file itself uses a root search.)"""
    agc = tmp_path / "agc.yaml"
    agc.write_text(f"extends: {ROOT / 'configs' / 'agc_ttbar.yaml'}\n")
    law_run("Histograms", agc, store)                 # done already when the closure test ran
    before = len(runs(store))
    fork = tmp_path / "reinterpret.yaml"
    fork.write_text(f"extends: {ROOT / 'configs' / 'reinterpret_example.yaml'}\n"
                    "limit: {bracket: null, scan: {low: 0, high: 6, points: 7}}\n")
    law_run("Limit", fork, store)
    ran = [(r["task"], r["label"].split("__")[0]) for r in runs(store)[before:]]
    signal_chain = {("Generate", "zprime"), ("Skim", "zprime"), ("Select", "zprime"), ("Histogram", "zprime")}
    assert set(ran) == signal_chain | {("Histograms", "all"), ("Limit", "all")}, ran
    assert len(ran) == len(signal_chain) + 2 + sum(1 for t, _ in ran if t == "Skim") - 1   # Skim: one per chunk
    cfg = load_config(fork)
    limit = json.loads((store / "by-name" / cfg.name / "Limit" / "all" / "limit.json").read_text())
    assert limit["poi"] == "mu_zprime" and limit["format"] == "heirloom.limit"
    assert 0 < limit["expected"][0] < limit["expected"][2] < limit["expected"][4]
    assert 0 < limit["observed"] < 6
    assert (store / "by-name" / cfg.name / "Limit" / "all" / "limit.png").exists()
