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
        ran = [r for r in runs(store)[before:] if r["analysis"] == cfg.name]    # other tests share the store
        assert {(r["task"], r["label"].split("__")[0]) for r in ran} == {
            ("Generate", "data"), ("Skim", "data"), ("Select", "data"), ("Histogram", "data"),
            ("Histograms", "all"), ("Fit", "all")}
    prov = json.loads((store / "by-name" / cfg.name / "Fit" / "all" / "provenance.json").read_text())
    value, error = prov["poi"]["value"], prov["poi"]["uncertainty"]
    assert prov["poi"]["name"] == "ttbar_norm"
    assert 0 < error < 0.2
    assert abs(value - injected) < 2 * error, (value, error, injected)


# The reinterpretation fork after this analysis (only the Z' chain and the statistics run, the
# documented limit): tests/test_container_workflows.py::test_recast_zprime_example_with_the_docker_backend,
# through recast-atlas and the analysis image, on the session's AGC store.
