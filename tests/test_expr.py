"""Tests for the restricted expression language in analysis/lang/expr.py."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from analysis.lang.expr import Expression, ExpressionError, compile_expression, evaluate


@pytest.fixture
def ns():
    electron = ak.zip({
        "pt": [[45.0, 25.0], [], [31.0, 60.0, 12.0]],
        "eta": [[0.5, -2.3], [], [2.0, -1.0, 0.1]],
        "cutBased": [[4, 4], [], [2, 4, 4]],
    })
    jet = ak.zip({
        "pt": [[120.0, 80.0, 45.0, 30.0], [60.0], [90.0, 40.0]],
        "btagCSVV2": [[0.9, 0.1, 0.6, 0.2], [0.7], [0.3, 0.55]],
        "jetId": [[6, 2, 0, 4], [2], [1, 7]],
    })
    met = np.array([10.0, 40.0, 70.0])
    return {"Electron": electron, "Jet": jet, "nJet": ak.num(jet), "met": met}


def same(a, b):
    return ak.to_list(a) == ak.to_list(b)


# --- arithmetic, comparison, bitwise on jagged arrays ----------------------------------

def test_electron_selection_matches_handwritten(ns):
    e = ns["Electron"]
    got = evaluate("(Electron.pt > 30) & (abs(Electron.eta) < 2.1) & (Electron.cutBased == 4)", ns)
    assert same(got, (e.pt > 30) & (abs(e.eta) < 2.1) & (e.cutBased == 4))
    assert same(got, [[True, False], [], [False, True, False]])


def test_arithmetic_and_subscript(ns):
    jets = ns["Jet"][ak.num(ns["Jet"]) > 0]
    got = evaluate("1 + 0.075 * jets.pt[:, 0] / 50", {"jets": jets})
    assert np.allclose(ak.to_numpy(got), 1 + 0.075 * ak.to_numpy(jets.pt[:, 0]) / 50)
    assert same(evaluate("-Jet.pt // 7 % 5 ** 2", ns), -ns["Jet"].pt // 7 % 5 ** 2)


def test_bitwise_and_shift(ns):
    j = ns["Jet"]
    assert same(evaluate("(Jet.jetId & 2) > 0", ns), (j.jetId & 2) > 0)
    assert same(evaluate("(Jet.jetId >> 1 | 8) ^ ~Jet.jetId << 1", ns),
                ((j.jetId >> 1) | 8) ^ (~j.jetId << 1))


def test_chained_comparison(ns):
    j = ns["Jet"]
    assert same(evaluate("40 < Jet.pt <= 90", ns), (j.pt > 40) & (j.pt <= 90))
    assert evaluate("30 < x < 50", {"x": 40}) is True
    assert evaluate("30 < x < 50", {"x": 60}) is False


def test_and_or_not_are_elementwise_on_arrays(ns):
    j = ns["Jet"]
    got = evaluate("Jet.pt > 50 and not Jet.btagCSVV2 > 0.5 or Jet.jetId == 7", ns)
    assert same(got, ((j.pt > 50) & ~(j.btagCSVV2 > 0.5)) | (j.jetId == 7))
    assert same(evaluate("not met > 30", ns), [True, False, False])
    assert evaluate("x > 1 and y", {"x": 2, "y": 0}) is False
    assert evaluate("not x", {"x": 0}) is True


# --- functions, subscripts, if-expressions, plugins -------------------------------------

def test_ak_num_and_sum_with_axis(ns):
    j = ns["Jet"]
    assert same(evaluate("ak.num(Jet) >= 2", ns), [True, False, True])
    assert same(evaluate("ak.sum(Jet.pt, axis=1)", ns), ak.sum(j.pt, axis=1))
    assert same(evaluate("ak.sum(Jet.pt, axis=-1) / ak.num(Jet, axis=1)", ns), [68.75, 60.0, 65.0])


def test_numpy_functions_and_constants(ns):
    got = evaluate("np.sqrt(met) * np.cos(np.pi) + max(met, 20) - min(met, 50, 65)", ns)
    met = ns["met"]
    assert np.allclose(got, np.sqrt(met) * -1 + np.maximum(met, 20) - np.minimum(met, 50))
    assert evaluate("max(3, 4) + abs(-2)", {}) == 6


def test_boolean_mask_and_field_string_subscripts(ns):
    j = ns["Jet"]
    got = evaluate("jets[jets.btagCSVV2 > 0.5]", {"jets": j})
    assert same(got.pt, j.pt[j.btagCSVV2 > 0.5])
    assert same(evaluate('Jet["pt"][:, :2]', ns), j.pt[:, :2])
    assert same(evaluate('Jet[["pt", "jetId"]]', ns), j[["pt", "jetId"]])
    assert same(evaluate("Jet.pt[..., ::-1]", ns), j.pt[..., ::-1])


def test_ifexp_is_ak_where(ns):
    j = ns["Jet"]
    assert same(evaluate("Jet.pt if Jet.btagCSVV2 > 0.5 else -1", ns),
                ak.where(j.btagCSVV2 > 0.5, j.pt, -1))
    assert np.array_equal(evaluate("met if met > 30 else 0", ns), [0.0, 40.0, 70.0])
    # a python-bool condition short-circuits: the untaken branch is never evaluated
    assert evaluate("1 if flag else missing", {"flag": True}) == 1


def test_list_literals_in_calls(ns):
    got = evaluate('ak.combinations(Jet, 2, fields=["j1", "j2"])', ns)
    assert ak.fields(got) == ["j1", "j2"]
    assert same(ak.num(got), [6, 0, 1])
    both = evaluate("ak.concatenate([Jet.pt, Electron.pt], axis=1)", ns)
    assert same(ak.num(both), [6, 1, 5])


def test_plugin_call_with_alias_and_bare_name(ns):
    def m_bjj(jets, cut):
        return ak.sum(jets.pt[jets.btagCSVV2 > cut], axis=1)

    plugins = {"agc.m_bjj": m_bjj, "double": lambda x: 2 * x}
    e = compile_expression("double(agc.m_bjj(Jet, cut=0.5))", plugins=plugins)
    assert same(e.evaluate(ns), 2 * m_bjj(ns["Jet"], 0.5))
    assert e.functions == {"agc.m_bjj", "double"}
    assert e.names == {"Jet"}


def test_physics_method_and_vector_property():
    vector = pytest.importorskip("coffea.nanoevents.methods.vector")
    jets = ak.zip({"pt": [[50.0, 30.0]], "eta": [[0.0, 1.0]], "phi": [[0.0, 1.0]],
                   "mass": [[5.0, 4.0]]}, with_name="PtEtaPhiMLorentzVector",
                  behavior=vector.behavior)
    e = compile_expression("jets[:, 0].delta_r(jets[:, 1]) + 0 * jets.mass[:, 0]")
    assert np.allclose(ak.to_numpy(e.evaluate({"jets": jets})), [np.sqrt(2.0)])
    assert ".delta_r" in e.functions
    with pytest.raises(ExpressionError, match="is a method, not a field"):
        evaluate("jets.delta_r", {"jets": jets})


NANO_DY = Path(__file__).resolve().parents[2] / "shared" / "data" / "nanoaod" / "nano_dy.root"


@pytest.mark.filterwarnings("ignore")
def test_on_real_nanoevents():
    nanoevents = pytest.importorskip("coffea.nanoevents")
    if not NANO_DY.exists():
        pytest.skip(f"{NANO_DY} not available")
    events = nanoevents.NanoEventsFactory.from_root(
        {str(NANO_DY): "Events"}, schemaclass=nanoevents.NanoAODSchema, mode="eager").events()
    ns = {"Jet": events.Jet, "Muon": events.Muon}
    jet, muon = events.Jet, events.Muon
    good = evaluate("(Jet.pt > 30) & (abs(Jet.eta) < 2.4) & ((Jet.jetId & 4) > 0)", ns)
    assert same(good, (jet.pt > 30) & (abs(jet.eta) < 2.4) & ((jet.jetId & 4) > 0))
    assert same(evaluate("(Muon.pt > 20) & Muon.tightId", ns), (muon.pt > 20) & muon.tightId)
    dr = evaluate("ak.firsts(Muon).delta_r(ak.firsts(Jet))", ns)
    assert same(dr, ak.firsts(muon).delta_r(ak.firsts(jet)))
    assert np.allclose(ak.flatten(evaluate("Jet.mass ** 2", ns)), ak.flatten(jet.mass) ** 2)


# --- metadata ---------------------------------------------------------------------------

def test_names_fields_functions():
    e = compile_expression(
        '(Electron.pt > 30) & (abs(Electron.eta) < 2.1) & (ak.num(good_jets) >= nJet)'
        ' & (Muon["iso"] < np.pi) & (Jet.pt[:, 0].x > 1)')
    assert isinstance(e, Expression)
    assert e.names == {"Electron", "good_jets", "nJet", "Muon", "Jet"}
    assert e.fields == {"Electron.pt", "Electron.eta", "good_jets", "nJet", "Muon.iso", "Jet.pt"}
    assert e.functions == {"abs", "ak.num"}


def test_compile_is_cached_and_known_names():
    assert compile_expression("a + b") is compile_expression("a + b")
    assert compile_expression("a + b", known_names=["a", "b"]).names == {"a", "b"}
    with pytest.raises(ExpressionError, match="unknown name 'c'") as info:
        compile_expression("a + c", known_names=["a", "b"])
    assert info.value.column == 4 and info.value.reason == "unknown name"


def test_unknown_name_at_evaluation():
    with pytest.raises(ExpressionError, match="unknown name 'nope'") as info:
        evaluate("1 + nope", {"x": 1})
    assert info.value.expression == "1 + nope" and info.value.column == 4


def test_evaluation_failures_become_expression_errors(ns):
    with pytest.raises(ExpressionError, match="has no field or property 'ptt'"):
        evaluate("Jet.ptt", ns)
    with pytest.raises(ExpressionError, match="evaluation failed"):
        evaluate("Jet.pt[:, 5]", ns)


def test_unhashable_plugin_is_not_cached():
    class Scale:
        __hash__ = None

        def __call__(self, x):
            return 3 * x

    assert evaluate("scale(x)", {"x": 2}, plugins={"scale": Scale()}) == 6


@pytest.mark.parametrize("text, column", [
    ("Jet.pt.__class__", 7), ("ak.to_parquet(Jet)", 3), ("(é + Jet).__class__", 10),
    ("1 + open()", 4), ("x.tofile", 2),
])
def test_error_columns_point_at_the_culprit(text, column):
    with pytest.raises(ExpressionError) as info:
        evaluate(text, {"x": np.zeros(2)})
    assert info.value.column == column


def test_multiline_and_leading_whitespace():
    assert evaluate("  x +\n 1", {"x": 1}) == 2
    with pytest.raises(ExpressionError) as info:
        compile_expression("  x + _y")
    assert info.value.column == 6


# --- rejections ---------------------------------------------------------------------------

REJECTED = [
    ("__import__('os')", "unknown name '__import__'"),
    ("open('/etc/passwd')", "call of 'open' is not allowed"),
    ("getattr(Jet, 'pt')", "call of 'getattr' is not allowed"),
    ("().__class__", "attribute '__class__' is not allowed"),
    ("Jet.pt.__class__", "attribute '__class__' is not allowed"),
    ("Jet._private", "attribute '_private' is not allowed"),
    ("ak.__dict__", "attribute '__dict__' is not allowed"),
    ("ak.to_parquet(Jet, 'x.parquet')", "call of 'ak.to_parquet' is not allowed"),
    ("np.save('x', met)", "call of 'np.save' is not allowed"),
    ("np.load", "'np.load' is not allowed here"),
    ("ak", "module 'ak' can only be used"),
    ("exec('1')", "call of 'exec' is not allowed"),
    ("exec", "name 'exec' is not allowed"),
    ("eval", "name 'eval' is not allowed"),
    ("abs", "function 'abs' can only be called"),
    ("lambda: 1", "lambda is not allowed"),
    ("[x for x in Jet]", "list comprehension is not allowed"),
    ("(x for x in Jet)", "generator expression is not allowed"),
    ("{'a': Jet}", "dict literal is not allowed"),
    ("{Jet}", "set literal is not allowed"),
    ("f'{Jet}'", "f-string is not allowed"),
    ("(y := 1)", "assignment expression ':=' is not allowed"),
    ("ak.num(*Jet)", "*-unpacking is not allowed"),
    ("ak.num(**Jet)", "**kwargs is not allowed"),
    ("Jet.pt @ Jet.pt", "operator MatMult is not allowed"),
    ("1 in Jet", "comparison 'in' is not allowed"),
    ("Jet is None", "comparison 'is' is not allowed"),
    ("Jet.pt.to_numpy()", "call of 'Jet.pt.to_numpy' is not allowed"),
    ("Jet.pt[0](1)", "call of this expression is not allowed"),
    ("'abc'.upper", "attribute access on a constant is not allowed"),
    ("b'x'", "constant of type bytes is not allowed"),
    ("1j", "constant of type complex is not allowed"),
    ("[1, 2]", "list literal is only allowed"),
    ("(1, 2)", "tuple literal is only allowed"),
    ("...", "constant of type ellipsis is not allowed"),
    ("min(Jet.pt)", "min() takes two or more positional arguments"),
    ("max(a, b, key=c)", "max() takes two or more positional arguments"),
    ("Jet +", "syntax error"),
]


@pytest.mark.parametrize("text, message", REJECTED)
def test_rejected_at_compile_time(text, message):
    with pytest.raises(ExpressionError) as info:
        compile_expression(text)
    assert message in str(info.value)
    assert info.value.expression == text and info.value.reason


def test_syntax_error_column():
    with pytest.raises(ExpressionError, match="syntax error") as info:
        compile_expression("ak.num(Jet.pt > 3")
    assert "never closed" in info.value.message and info.value.column == 6


@pytest.mark.parametrize("text", ["9 ** 9 ** 9 ** 9", "1 << 10 ** 9", "'a' * 10 ** 9",
                                  "'%999999999d' % 1"])
def test_scalar_blowups_are_refused(text):
    with pytest.raises(ExpressionError, match="too large|not allowed"):
        evaluate(text, {})


def test_too_deeply_nested():
    with pytest.raises(ExpressionError, match="too deeply nested"):
        compile_expression("-" * 5000 + "x")


# --- vectorisation ----------------------------------------------------------------------------

def test_large_flat_array_is_vectorised():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=1_000_000), rng.normal(size=1_000_000)
    text = "np.sqrt(x ** 2 + y ** 2) * (x > 0) + np.where(y < 0, np.abs(y), 0)"
    expected = np.sqrt(x**2 + y**2) * (x > 0) + np.where(y < 0, np.abs(y), 0)
    got = evaluate(text, {"x": x, "y": y})
    assert isinstance(got, np.ndarray) and got.shape == (1_000_000,)
    assert np.allclose(got, expected)
    got_ak = evaluate(text, {"x": ak.Array(x), "y": ak.Array(y)})
    assert isinstance(got_ak, ak.Array) and np.allclose(ak.to_numpy(got_ak), expected)
