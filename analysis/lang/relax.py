"""Relaxed expressions: cuts on optimisation parameters as smooth weights.

A hard cut ``x > opt.cut`` has no useful derivative in ``cut``. The relaxed form is a
sigmoid, ``s(slope * (x - cut))``, with the slope the config declares for the parameter;
logical operators on relaxed values become their probabilistic forms (``a & b`` ->
``a * b``, ``a | b`` -> ``1 - (1 - a)(1 - b)``, ``~a`` -> ``1 - a``). Only what involves a
parameter is relaxed: every maximal part of the expression that names no parameter is a
*leaf*, evaluated exactly by the ordinary compiler (Select writes the leaves as flat
per-event columns), so an expression without parameters is one leaf and its relaxed
value is exactly its ordinary value. ``==`` and ``!=`` on a parameter have no smooth form
and are refused, as is any other use of a parameter than arithmetic and comparisons.
An infinite slope gives the exact cut (the hard selection at any parameter value).

The relaxed function takes an array namespace (``numpy`` or ``jax.numpy``), so that the
same compiled expression is evaluated on numpy columns and differentiated by jax.

>>> r = relax("(ak.num(jets) >= 4) & (MET.pt > opt.met_min)", {"met_min": 0.5})
>>> r.leaves, sorted(r.parameters)
(('ak.num(jets) >= 4', 'MET.pt'), ['met_min'])
>>> import numpy as np
>>> r.evaluate({"ak.num(jets) >= 4": np.array([True, True, False]), "MET.pt": np.array([40.0, 20.0, 40.0])},
...            {"met_min": 30.0}, np).round(4).tolist()
[0.9933, 0.0067, 0.0]
"""

from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from analysis.errors import ExpressionError
from analysis.lang.parameters import ROOT

_LESS = (ast.Lt, ast.LtE)
_GREATER = (ast.Gt, ast.GtE)
_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


@dataclass(frozen=True)
class Relaxed:
    """A relaxed expression: ``leaves`` (texts of its parameter-free parts, in order; the
    names of the columns :meth:`evaluate` reads), the ``parameters`` it names."""

    text: str
    leaves: tuple[str, ...]
    parameters: frozenset[str]
    _fn: Callable = field(repr=False, compare=False)

    def evaluate(self, columns: Mapping[str, Any], theta: Mapping[str, Any], xp: Any) -> Any:
        """The relaxed value per event, from the leaves' ``columns`` and the parameters'
        values ``theta``, with array namespace ``xp``."""
        return self._fn(columns, theta, xp)


def sigmoid(x: Any, xp: Any) -> Any:
    """The logistic function, written with tanh (no overflow for large |x|).

    >>> import numpy as np
    >>> sigmoid(np.array([-800.0, 0.0, 800.0]), np).tolist()
    [0.0, 0.5, 1.0]
    """
    return 0.5 * (1.0 + xp.tanh(0.5 * x))


def relax(text: str, slopes: Mapping[str, float]) -> Relaxed:
    """Compile ``text`` in relaxed mode; ``slopes``: {parameter: slope}. Raises
    ExpressionError (with the column) for a use of a parameter that cannot be relaxed.

    >>> relax("nJet == opt.n", {"n": 1.0})
    Traceback (most recent call last):
    analysis.errors.ExpressionError: '==' on an optimisation parameter cannot be relaxed (no smooth form); use <, <=, > or >= in expression 'nJet == opt.n' at column 0
    """
    source = text.replace("\r", " ").replace("\n", " ")
    lead = len(source) - len(source.lstrip())
    try:
        tree = ast.parse(source[lead:], mode="eval").body
    except SyntaxError as err:
        raise ExpressionError(f"syntax error: {err.msg}", expression=text, reason="syntax error") from None
    builder = _Builder(text, lead, slopes)
    fn = builder.visit(tree)
    return Relaxed(text, tuple(builder.leaves), frozenset(builder.parameters), fn)


def _parameter(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == ROOT:
        return node.attr
    return None


def _names_parameter(node: ast.AST) -> bool:
    return any(_parameter(n) is not None for n in ast.walk(node))


class _Builder:
    """Turns the parts of an AST that name a parameter into closures ``fn(columns, theta, xp)``."""

    def __init__(self, text: str, lead: int, slopes: Mapping[str, float]):
        self.text, self.lead, self.slopes = text, lead, slopes
        self.leaves: list[str] = []
        self.parameters: set[str] = set()

    def error(self, node: ast.AST, message: str) -> ExpressionError:
        column = self.lead + getattr(node, "col_offset", 0)
        return ExpressionError(message, expression=self.text, column=column, reason="not relaxable")

    def visit(self, node: ast.AST) -> Callable:
        if not _names_parameter(node):
            return self.leaf(node)
        name = _parameter(node)
        if name is not None:
            if name not in self.slopes:
                raise self.error(node, f"unknown optimisation parameter '{ROOT}.{name}'")
            self.parameters.add(name)
            return lambda columns, theta, xp: theta[name]
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise self.error(node, f"'{ast.unparse(node)}': an optimisation parameter may only be compared, or used "
                             "in arithmetic (+ - * /) inside a comparison")
        return method(node)

    def leaf(self, node: ast.AST) -> Callable:
        key = ast.unparse(node)
        if isinstance(node, ast.Constant):
            value = node.value
            return lambda columns, theta, xp: value
        if key not in self.leaves:
            self.leaves.append(key)
        return lambda columns, theta, xp: columns[key]

    def visit_Compare(self, node: ast.Compare) -> Callable:
        operands = [node.left, *node.comparators]
        pairs = []
        for op, left, right in zip(node.ops, operands, operands[1:]):
            if not isinstance(op, _LESS + _GREATER):
                word = {ast.Eq: "==", ast.NotEq: "!="}.get(type(op), type(op).__name__)
                raise self.error(node, f"'{word}' on an optimisation parameter cannot be relaxed (no smooth form); "
                                 "use <, <=, > or >=")
            named = sorted({p for n in ast.walk(ast.Compare(left, [op], [right])) if (p := _parameter(n)) is not None})
            if len(named) > 1:
                raise self.error(node, f"a comparison may name one optimisation parameter, not {named}")
            slope = self.slopes.get(named[0]) if named else None
            a, b = self.visit(left), self.visit(right)
            pairs.append(self.pair(op, a, b, slope))
        return lambda columns, theta, xp: _product([p(columns, theta, xp) for p in pairs])

    @staticmethod
    def pair(op, a, b, slope) -> Callable:
        if slope is None or math.isinf(slope):       # a hard comparison (or an infinite slope): exact
            exact = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}[type(op)]
            return lambda columns, theta, xp: exact(a(columns, theta, xp), b(columns, theta, xp)) * 1.0
        sign = 1.0 if isinstance(op, _GREATER) else -1.0     # a > b: s(slope (a - b)); a < b: s(slope (b - a))
        return lambda columns, theta, xp: sigmoid(sign * slope * (a(columns, theta, xp) - b(columns, theta, xp)), xp)

    def visit_BoolOp(self, node: ast.BoolOp) -> Callable:
        parts = [self.visit(v) for v in node.values]
        return self.logic(isinstance(node.op, ast.And), parts)

    def visit_BinOp(self, node: ast.BinOp) -> Callable:
        if isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            return self.logic(isinstance(node.op, ast.BitAnd), [self.visit(node.left), self.visit(node.right)])
        op = _ARITHMETIC.get(type(node.op))
        if op is None:
            raise self.error(node, f"operator {type(node.op).__name__} on an optimisation parameter cannot be relaxed")
        a, b = self.visit(node.left), self.visit(node.right)
        return lambda columns, theta, xp: op(a(columns, theta, xp), b(columns, theta, xp))

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Callable:
        inner = self.visit(node.operand)
        if isinstance(node.op, (ast.Not, ast.Invert)):
            return lambda columns, theta, xp: 1.0 - inner(columns, theta, xp) * 1.0
        if isinstance(node.op, ast.USub):
            return lambda columns, theta, xp: -inner(columns, theta, xp)
        raise self.error(node, f"operator {type(node.op).__name__} on an optimisation parameter cannot be relaxed")

    @staticmethod
    def logic(conjunction: bool, parts: list) -> Callable:
        if conjunction:
            return lambda columns, theta, xp: _product([p(columns, theta, xp) * 1.0 for p in parts])
        return lambda columns, theta, xp: 1.0 - _product([1.0 - p(columns, theta, xp) * 1.0 for p in parts])


def _product(values: list) -> Any:
    out = values[0]
    for value in values[1:]:
        out = out * value
    return out
