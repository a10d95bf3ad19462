"""Config loading: extends/merge, schema errors with file, key and line, expressions."""

from __future__ import annotations

import pytest

from analysis.config import ConfigError
from analysis.load import load_config
from analysis.config.loader import deep_merge
from conftest import ROOT, law_run

DEMO = ROOT / "configs" / "demo.yaml"


def test_demo_config_loads_and_compiles():
    cfg = load_config(DEMO)
    assert cfg.name == "agc_demo"
    assert set(cfg.regions) == {"4j1b", "4j2b"}
    assert [v.name for v in cfg.shape_variations("ttbar")] == ["nominal", "jes_up"]
    assert "btag_var_0_up" in [v.name for v in cfg.weight_variations("ttbar")]
    assert cfg.weight_variations("data") == []          # systematics apply to MC only
    assert cfg.expression("regions", "4j1b", "cut").names == {"bjets"}


def test_fork_is_a_deep_merge(tmp_path):
    fork = tmp_path / "fork.yaml"
    fork.write_text(f"extends: {DEMO}\nname: fork\nobjects:\n  jets:\n    where: 'Jet.pt > 40'\n"
                    "systematics:\n  btag_var_1: null\n")
    cfg = load_config(fork)
    assert cfg.name == "fork"
    assert cfg.data["objects"]["jets"] == {"from": "Jet", "where": "Jet.pt > 40"}   # 'from' kept
    assert "btag_var_1" not in cfg.systematics and "btag_var_0" in cfg.systematics  # null removes
    assert cfg.datasets["ttbar"]["xsec"] == 729.84
    # a key from the fork is located in the fork, a key from the parent in the parent
    assert cfg.error("x", "objects", "jets", "where").file == str(fork)
    assert cfg.error("x", "datasets", "ttbar").file == str(ROOT / "configs" / "agc_ttbar.yaml")


def test_deep_merge_replaces_lists_and_scalars():
    merged, _ = deep_merge({"a": [1, 2], "b": {"c": 1}}, {"a": [3], "b": {"d": 2}}, {}, {})
    assert merged == {"a": [3], "b": {"c": 1, "d": 2}}


BAD = {
    "malformed_yaml": ("name: [unclosed\n", None, 2, "malformed YAML"),
    "unknown_top_key": ("name: x\ndatasetz: {}\n", "datasetz", 2, "unknown key 'datasetz'"),
    "unknown_nested_key": ("selection:\n  - {name: x, cutt: 'ak.num(jets) > 1'}\n",
                           "selection.0.cutt", 2, "unknown key 'cutt'"),
    "syntax_error": ("objects:\n  jets: {from: Jet, where: 'Jet.pt >'}\n",
                     "objects.jets.where", 2, "syntax error"),
    "unknown_function": ("objects:\n  jets: {from: Jet, where: 'ak.to_parquet(Jet)'}\n",
                         "objects.jets.where", 2, "not allowed"),
    "import": ("regions:\n  4j1b:\n    cut: \"__import__('os').system('true')\"\n",
               "regions.4j1b.cut", 3, "__import__"),
    "dunder": ("observables:\n  ht:\n    expr: 'jets.pt.__class__'\n", "observables.ht.expr", 3, "__class__"),
    "wrong_type": ("lumi: lots\n", "lumi", 1, "not of type"),
    "duplicate_key": ("lumi: 1\nlumi: 2\n", "lumi", 2, "duplicate key"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_names_file_key_and_line(tmp_path, case):
    body, key, line, text = BAD[case]
    path = tmp_path / "bad.yaml"
    header = "" if case == "malformed_yaml" else f"extends: {DEMO}\n"
    path.write_text(header + body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert err.file == str(path)
    assert err.line == line + (0 if case == "malformed_yaml" else 1)
    if key:
        assert err.key == key
    assert text in str(err)
    assert f"{path}:{err.line}:" in str(err)


def test_unknown_name_is_reported_with_its_line(tmp_path):
    from analysis.config.model import check_names
    from analysis.io.demo_streams import BRANCHES

    path = tmp_path / "typo.yaml"
    path.write_text(f"extends: {DEMO}\nobjects:\n  jets:\n    where: 'Jets.pt > 30'\n")
    cfg = load_config(path)
    with pytest.raises(ConfigError, match="unknown name 'Jets'") as info:
        check_names(cfg, BRANCHES)
    assert info.value.line == 4 and info.value.key == "objects.jets.where"


def test_bad_config_fails_law_run_and_writes_nothing(tmp_path, store):
    path = tmp_path / "bad.yaml"
    path.write_text(f"extends: {DEMO}\nregions:\n  4j1b: {{cut: \"__import__('os')\"}}\n")
    proc = law_run("Plot", path, store, check=False, timeout=120)
    assert proc.returncode != 0
    assert f"{path}:3" in proc.stderr and "regions.4j1b.cut" in proc.stderr
    assert not store.exists()


def test_unknown_branch_fails_law_run_with_location(tmp_path, store):
    path = tmp_path / "typo.yaml"
    path.write_text(f"extends: {DEMO}\nobjects:\n  jets:\n    where: 'Jet.ptt > 30'\n")
    proc = law_run("Skim", path, store, "--dataset", "ttbar", "--chunk", "0", check=False, timeout=120)
    assert proc.returncode != 0
    assert f"{path}:4" in proc.stdout + proc.stderr and "no branch 'Jet_ptt'" in proc.stdout + proc.stderr
    assert not (store / "objects").exists()
