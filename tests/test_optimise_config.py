"""The ``optimise:`` section and relaxed expressions (issue 16, items 1 and 2).

- every ordinary task sees the parameter's value: the compiled cut, Select's excerpt (so
  its key) and the texts as written kept for the Optimise task;
- each mistake is a ConfigError with the key and line;
- a relaxed compile of an expression without parameters gives exactly the ordinary
  values; with parameters it is a smooth weight that tends to the hard cut and whose
  derivative jax computes.
"""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from analysis.config import ConfigError
from analysis.errors import ExpressionError
from analysis.lang.expr import compile_expression
from analysis.lang.relax import relax
from analysis.load import load_config
from analysis.select.selection import plan_from_config
from conftest import ROOT

OPTIMISE_DEMO = ROOT / "configs" / "optimise_demo.yaml"
HT_CUT = ("regions", "4j2b", "cut")


def fork(tmp_path, text: str, name="fork.yaml"):
    path = tmp_path / name
    path.write_text(f"extends: {OPTIMISE_DEMO}\nname: fork\n" + text)
    return path


def test_ordinary_tasks_see_the_value_and_its_key_follows_it(tmp_path):
    cfg = load_config(OPTIMISE_DEMO)
    assert cfg.expression(*HT_CUT).text == "(ak.num(bjets) >= 2) & (ak.sum(jets.pt, axis=1) > 150.0)"
    assert cfg.parametrised == {HT_CUT: "(ak.num(bjets) >= 2) & (ak.sum(jets.pt, axis=1) > opt.ht_min)"}
    moved = load_config(fork(tmp_path, "optimise:\n  parameters:\n    ht_min: {value: 180}\n"))
    assert moved.expression(*HT_CUT).text.endswith("> 180.0)")
    excerpt = plan_from_config(cfg, "ttbar").excerpt()
    assert excerpt["regions"]["4j2b"]["cut"].endswith("> 150.0)")
    assert plan_from_config(moved, "ttbar").excerpt()["regions"] != excerpt["regions"]
    same = load_config(fork(tmp_path, "optimise:\n  method: {name: adam, steps: 7}\n", "method.yaml"))
    assert plan_from_config(same, "ttbar").excerpt() == excerpt            # the method is not Select's business


@pytest.mark.parametrize("text, line, key, words", [
    ("optimise:\n  parameters:\n    ht_min: {value: 500}\n", 5, "optimise.parameters.ht_min.value",
     "value 500 is outside its bounds [100, 300]"),
    ("optimise:\n  parameters:\n    ht_min: {bounds: [300, 100]}\n", 5, "optimise.parameters.ht_min.bounds",
     "bounds [300, 100] must have low < high"),
    ("regions:\n  4j1b: {cut: 'ak.num(bjets) == opt.ht_min'}\n", 4, "regions.4j1b.cut",
     "'==' on an optimisation parameter cannot be relaxed"),
    ("regions:\n  4j1b: {cut: 'ak.num(bjets) > opt.nb'}\n", 4, "regions.4j1b.cut",
     "unknown optimisation parameter 'opt.nb' (the optimise section declares ht_min)"),
    ("regions:\n  4j1b: {cut: 'abs(ak.num(bjets) - opt.ht_min) < 1'}\n", 4, "regions.4j1b.cut",
     "may only be compared, or used in arithmetic"),
    ("optimise:\n  parameters:\n    spare: {value: 1, bounds: [0, 2], slope: 1}\n", 5, "optimise.parameters.spare",
     "parameter 'spare' is named by no expression"),
    ("optimise:\n  method: {name: L-BFGS-B, learning_rate: 0.1}\n", 4, "optimise.method.learning_rate",
     "learning_rate is a setting of adam only"),
    ("optimise:\n  parameters:\n    ht_min: {slope: 0}\n", 5, "optimise.parameters.ht_min.slope",
     "less than or equal to the minimum of 0"),
])
def test_mistakes_are_located(tmp_path, text, line, key, words):
    with pytest.raises(ConfigError) as info:
        load_config(fork(tmp_path, text))
    assert words in info.value.message, info.value.message
    assert (info.value.key, info.value.line) == (key, line), str(info.value)


def test_a_parameter_without_an_optimise_section_is_located(tmp_path):
    path = tmp_path / "plain.yaml"
    path.write_text(f"extends: {ROOT / 'configs' / 'demo.yaml'}\nname: plain\n"
                    "regions:\n  4j2b: {cut: 'ak.num(bjets) > opt.nb'}\n")
    with pytest.raises(ConfigError, match="names an optimisation parameter, but the config has no 'optimise'") as info:
        load_config(path)
    assert (info.value.key, info.value.line) == ("regions.4j2b.cut", 4)


PLAIN = [
    "(x > 3) & (y < 2) | ~(x == y)",
    "(ak.num(jets) >= 2) & (ak.sum(jets, axis=1) > 50)",
    "30 < x <= 50",
    "x * 2 + y",
    "not (x > 1) or y > 3",
]


@pytest.mark.parametrize("text", PLAIN)
def test_relaxed_compile_without_parameters_gives_exactly_the_ordinary_values(text):
    rng = np.random.default_rng(3)
    namespace = {"x": rng.normal(3, 2, 200).round(1), "y": rng.normal(2, 1, 200).round(1),
                 "jets": ak.unflatten(rng.exponential(30, 500), rng.multinomial(500, [1 / 200] * 200))}
    relaxed = relax(text, {})
    columns = {leaf: compile_expression(leaf).evaluate(namespace) for leaf in relaxed.leaves}
    ours = relaxed.evaluate(columns, {}, np)
    theirs = compile_expression(text).evaluate(namespace)
    assert len(relaxed.leaves) == 1 and relaxed.parameters == frozenset()
    assert type(ours) is type(theirs) and np.asarray(ours).dtype == np.asarray(theirs).dtype
    assert np.array_equal(np.asarray(ours), np.asarray(theirs))


def test_relaxed_cut_tends_to_the_hard_cut_and_jax_differentiates_it():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)          # as analysis.stats.jax_model sets it

    text = "(n >= 4) & ((ht > opt.ht_min) | (met < 0.5 * opt.ht_min - 10))"
    rng = np.random.default_rng(4)
    columns = {"n >= 4": rng.integers(2, 7, 1000) >= 4, "ht": rng.uniform(0, 400, 1000), "met": rng.uniform(0, 200, 1000)}
    hard = columns["n >= 4"] & ((columns["ht"] > 150) | (columns["met"] < 65))
    away = (np.abs(columns["ht"] - 150) > 5) & (np.abs(columns["met"] - 65) > 5)
    steep = relax(text, {"ht_min": 50.0}).evaluate(columns, {"ht_min": 150.0}, np)
    assert np.allclose(steep[away], hard[away], atol=1e-50) and not np.array_equal(steep, hard)
    relaxed = relax(text, {"ht_min": 0.1})
    assert relaxed.leaves == ("n >= 4", "ht", "met")

    def kept(cut):
        return jnp.sum(relaxed.evaluate({k: jnp.asarray(v) for k, v in columns.items()}, {"ht_min": cut}, jnp))

    for cut in (100.0, 150.0, 250.0):
        central = (float(kept(cut + 1e-3)) - float(kept(cut - 1e-3))) / 2e-3
        assert float(jax.grad(kept)(cut)) == pytest.approx(central, rel=1e-6)
        assert abs(central) > 0.1            # not flat: the check means something


def test_parameters_that_cannot_be_relaxed_are_refused_with_their_column():
    for text, column, words in [("x != opt.a", 0, "'!=' on an optimisation parameter"),
                                ("(x > 1) & (opt.a < opt.b)", 11, "one optimisation parameter, not ['a', 'b']"),
                                ("x > max(opt.a, 3)", 4, "may only be compared")]:
        with pytest.raises(ExpressionError) as info:
            relax(text, {"a": 1.0, "b": 1.0})
        assert words in info.value.message and info.value.column == column, (text, str(info.value))
