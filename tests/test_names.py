"""Names follow one pattern (analysis.names), checked when a config loads, with file:line: key."""

from __future__ import annotations

import pytest

from analysis.config import ConfigError
from analysis.load import load_config
from analysis.names import bad_name, histogram_key, sample_variation, split_histogram_key
from conftest import ROOT, write_config

PARENT = ROOT / "configs" / "demo.yaml"


@pytest.mark.parametrize("name", ["tt/bar", "a|b", "..", ".hidden", "with space", "", "x.y"])
def test_bad_names_are_named(name):
    assert bad_name(name) is not None


@pytest.mark.parametrize("name", ["ttbar", "ttbar__ME_var", "4j1b", "btag_var_0", "agc-ttbar"])
def test_good_names_pass(name):
    assert bad_name(name) is None


@pytest.mark.parametrize("section, text, key", [
    ("dataset", "datasets:\n  tt/bar: {kind: mc, xsec: 1.0, generator: {process: ttbar}}\n", "datasets.tt/bar"),
    ("region", "regions:\n  a|b: {cut: 'ak.num(jets) >= 4', observable: ht}\n", "regions.a|b"),
    ("observable", "observables:\n  ..: {expr: 'ak.num(jets)', bins: 2, range: [0, 2]}\n", "observables..."),
    ("systematic", "systematics:\n  .lumi2: {type: normalization, up: 0.1}\n", "systematics..lumi2"),
    ("analysis", "name: my/analysis\n", "name"),
])
def test_a_bad_name_stops_the_load_at_its_line(tmp_path, section, text, key):
    config = write_config(tmp_path, "bad.yaml", f"extends: {PARENT}\n" + text)
    with pytest.raises(ConfigError) as err:
        load_config(config)
    message = str(err.value)
    line = 2 if section == "analysis" else 3                    # the line of the name itself
    assert message.startswith(f"{config}:{line}:") and "not a valid name" in message and f"key '{key}'" in message


def test_a_region_may_not_take_a_reserved_cutflow_row(tmp_path):
    config = write_config(tmp_path, "all.yaml", f"extends: {PARENT}\n"
                          "regions:\n  all: {cut: 'ak.num(jets) >= 4', observable: ht}\n")
    with pytest.raises(ConfigError, match=r"all.yaml:3: key 'regions.all': region 'all' would share its cutflow"):
        load_config(config)
    clash = write_config(tmp_path, "clash.yaml", f"extends: {PARENT}\n"
                         "regions:\n  four_jets: {cut: 'ak.num(jets) >= 4', observable: ht}\n")
    with pytest.raises(ConfigError, match="a selection step"):
        load_config(clash)


def test_composite_names_round_trip():
    assert split_histogram_key(histogram_key("ttbar__ME_var", "4j2b", "m_bjj")) == ("ttbar__ME_var", "4j2b", "m_bjj")
    assert sample_variation("ttbar__scaleup") == ("ttbar", "scaleup")
