"""A small, safe expression language for cuts and observables in analysis configs.

Expressions look like Python and act on whole (awkward/numpy) arrays::

    (Electron.pt > 30) & (abs(Electron.eta) < 2.1) & (Electron.cutBased == 4)
    ak.num(good_jets) >= 4 and 30 < MET.pt < 500
    Jet.pt if Jet.pt > 50 else 0                        # -> ak.where(cond, a, b)
    agc.m_bjj(jets, 0.5)                                # plugin function

They are parsed with :mod:`ast` (``mode="eval"``) and *compiled* once into a tree of
small closures; nothing is ever handed to ``eval``/``exec``. Every node is checked
against a whitelist, so a config written by a stranger can read data and call the
functions listed below, and nothing else:

* literals: int, float, bool, None, str; lists/tuples only as call arguments or
  subscripts (``ak.combinations(jets, 2, fields=["j1", "j2"])``, ``x[:, 0]``);
* arithmetic, bitwise and comparison operators; chained comparisons
  (``30 < x < 50`` -> ``(30 < x) & (x < 50)``); ``in``/``is`` are refused;
* ``and``/``or``/``not`` work element-wise on arrays (``np.logical_and`` etc.) and
  as usual on Python scalars; ``a if c else b`` becomes ``ak.where(c, a, b)``
  (both branches are computed for every event, so ``x[:, 0]`` there still needs
  every event to have an entry);
* attribute access reads record fields and vector properties (``Jet.pt``,
  ``jets.mass``); names or attributes starting with ``_`` are never allowed;
* calls of :data:`BUILTIN_FUNCTIONS`, ``ak.``:data:`AK_FUNCTIONS`,
  ``np.``:data:`NP_FUNCTIONS`, the physics methods :data:`METHODS`
  (``jets.delta_r(electron)``) and the plugin callables given to
  :func:`compile_expression`. ``np.``:data:`NP_CONSTANTS` may be used as values.

Root names (``Jet``, ``good_jets``) are looked up in the namespace passed to
:meth:`Expression.evaluate`; ``ak``, ``np``, plugin names and Python builtins are
resolved when compiling and cannot be shadowed. Errors are :class:`ExpressionError`
with the offending column.
"""

from __future__ import annotations

import ast
import builtins
import functools
import operator
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from analysis.errors import ExpressionError
from analysis.lang import jagged, precedence, sandbox
from analysis.lazy import np      # imported when an expression first evaluates

def _ak():
    """awkward, imported on first use: compiling a config must stay fast (no-op reruns)."""
    import awkward

    return awkward


def _ak_function(name: str) -> Callable:
    def call(*args, **kwargs):
        return getattr(_ak(), name)(*args, **kwargs)
    call.__name__ = f"ak.{name}"
    return call

__all__ = ["Expression", "ExpressionError", "compile_expression", "evaluate"]

BUILTIN_FUNCTIONS = frozenset({"abs", "min", "max"})
AK_FUNCTIONS = frozenset({
    "num", "sum", "prod", "any", "all", "max", "min", "argmax", "argmin", "firsts",
    "count", "count_nonzero", "combinations", "argcombinations", "cartesian",
    "argcartesian", "where", "fill_none", "is_none", "zip", "local_index", "mask",
    "sort", "argsort", "flatten", "singletons", "pad_none", "values_astype",
    "broadcast_arrays", "concatenate", "mean", "std", "var", "ptp", "drop_none",
    "nan_to_none", "ravel",
})
NP_FUNCTIONS = frozenset({
    "sqrt", "abs", "exp", "log", "log10", "cos", "sin", "tan", "cosh", "sinh", "tanh",
    "arccos", "arcsin", "arctan", "arctan2", "hypot", "where", "minimum", "maximum",
    "clip", "sign", "floor", "ceil", "isfinite", "isnan", "square", "power",
})
NP_CONSTANTS = frozenset({"pi", "e", "inf", "nan"})
METHODS = frozenset({"delta_r", "delta_phi", "metric_table", "nearest", "add"})
CONSTANT_TYPES = (bool, int, float, str, type(None))
RESERVED_NAMES = frozenset(dir(builtins)) | {"ak", "np"}

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
           ast.Pow: operator.pow, ast.BitAnd: operator.and_, ast.BitOr: operator.or_,
           ast.BitXor: operator.xor, ast.LShift: operator.lshift, ast.RShift: operator.rshift}
_GUARDED = (operator.pow, operator.lshift, operator.mul, operator.mod)
_BITAND = jagged.elementwise(operator.and_)
_CMPOPS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
           ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}
_CMP_WORDS = {ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}
_CONSTRUCTS = dict(Lambda="lambda", ListComp="list comprehension", SetComp="set comprehension",
                   DictComp="dict comprehension", GeneratorExp="generator expression",
                   Starred="*-unpacking", NamedExpr="assignment expression ':='", Await="await",
                   JoinedStr="f-string", Yield="yield", Dict="dict literal", Set="set literal")
_SCALARS = (bool, int, float, type(None))


def _is_scalar(value: Any) -> bool:
    """A Python or numpy scalar (numpy scalars exist only once numpy is imported)."""
    if isinstance(value, _SCALARS):
        return True
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.generic)
_SAFE_NODES = (ast.Constant, ast.Slice, ast.List, ast.Tuple)
_MAX_INT_BITS = 100_000        # guards `9**9**9` style denial of service on Python ints


@dataclass(frozen=True)
class Expression:
    """A validated expression, ready to evaluate on any number of chunks.

    >>> e = compile_expression("ak.num(Jet.pt[Jet.pt > 30]) >= 2")
    >>> sorted(e.names), sorted(e.fields), sorted(e.functions)
    (['Jet'], ['Jet.pt'], ['ak.num'])
    """

    text: str
    names: frozenset[str]
    fields: frozenset[str]
    functions: frozenset[str]
    _fn: Callable[[Mapping[str, Any]], Any] = field(repr=False, compare=False)

    def evaluate(self, namespace: Mapping[str, Any]) -> Any:
        """Evaluate on whole arrays: one walk of the tree, vectorised work.

        >>> compile_expression("x * 2 + 1").evaluate({"x": 3})
        7
        """
        try:
            return self._fn(namespace)
        except ExpressionError as err:
            err.expression = self.text
            err.args = (str(err),)
            raise
        except Exception as err:
            raise ExpressionError(f"evaluation failed: {type(err).__name__}: {err}",
                                  expression=self.text, reason="evaluation error") from err


def _is_event_data(value: Any) -> bool:
    """Awkward arrays and records: what has fields, properties and physics methods."""
    return isinstance(value, sandbox.awkward_types())


def _elementwise(scalar_fn, ufunc: str):
    """Python semantics when all operands are scalars, else reduce with numpy's ``ufunc``."""
    def f(*args):
        if all(_is_scalar(a) for a in args):
            return scalar_fn(args)
        return functools.reduce(jagged.elementwise(getattr(np, ufunc)), args)
    return f


_BUILTIN_IMPLS = {"abs": jagged.elementwise(builtins.abs), "min": _elementwise(builtins.min, "minimum"),
                  "max": _elementwise(builtins.max, "maximum")}
_AND = _elementwise(lambda args: all(map(bool, args)), "logical_and")
_OR = _elementwise(lambda args: any(map(bool, args)), "logical_or")


def _not(x: Any) -> Any:
    return (not x) if _is_scalar(x) else np.logical_not(x)


def _guarded(op, a, b, apply):
    """``apply(a, b)`` (``op`` or its fast form), refusing absurdly large Python ints and
    string repetition/formatting."""
    if isinstance(a, int) and isinstance(b, int) and (
            (op is operator.pow and b > 0 and a.bit_length() * b > _MAX_INT_BITS)
            or (op is operator.lshift and b > _MAX_INT_BITS)
            or (op is operator.mul and a.bit_length() + b.bit_length() > _MAX_INT_BITS)):
        raise ExpressionError("integer result too large", reason="integer too large")
    if isinstance(a, str) or isinstance(b, str):
        raise ExpressionError("string repetition/formatting is not allowed", reason="string op")
    return apply(a, b)


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of Name/Attribute nodes, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


class _Compiler:
    """Validates an AST and turns it into nested closures ``fn(namespace) -> value``."""

    def __init__(self, text, lead, known_names, plugins):
        self.text, self.lead, self.known, self.plugins = text, lead, known_names, plugins
        self.source = text[lead:].replace("\r", " ").replace("\n", " ")     # what ast parsed
        self.aliases = {q.split(".")[0] for q in plugins if "." in q}
        self.names, self.fields, self.functions = set(), set(), set()

    def later(self, node, message, reason):
        """A factory for a fresh error pointing at ``node`` (ast offsets are UTF-8 bytes)."""
        text, src = self.text, self.text[self.lead:]
        offset = node.col_offset                   # for ``a.b`` point at ``b``
        if isinstance(node, ast.Attribute):
            offset = (node.end_col_offset or 0) - len(node.attr.encode())
        col = self.lead + len(src.encode()[:offset].decode(errors="ignore"))
        return lambda: ExpressionError(message, expression=text, column=col, reason=reason)

    def error(self, node, message, reason):
        return self.later(node, message, reason)()

    def visit(self, node, ctx=None):
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            label = _CONSTRUCTS.get(type(node).__name__, f"construct '{type(node).__name__}'")
            raise self.error(node, f"{label} is not allowed", "construct not allowed")
        fn = method(node, ctx)
        if isinstance(node, _SAFE_NODES):       # their values are built from checked ones
            return fn
        text = ast.unparse(node)
        label = repr(text if len(text) <= 60 else text[:57] + "...")
        return sandbox.checked(fn, self.later(node, label, "value not allowed"))

    def visit_Constant(self, node, ctx):
        value = node.value
        if not isinstance(value, CONSTANT_TYPES) and not (value is Ellipsis and ctx == "index"):
            raise self.error(node, f"constant of type {type(value).__name__} is not allowed",
                             "constant not allowed")
        return lambda ns: value

    def visit_Name(self, node, ctx, bare=True):
        name = node.id
        if name.startswith("_"):
            raise self.error(node, f"unknown name {name!r} (names starting with '_' are "
                             "not allowed)", "private name")
        if name in self.plugins or name in BUILTIN_FUNCTIONS:
            raise self.error(node, f"function {name!r} can only be called", "function as value")
        if name in self.aliases or name in ("ak", "np"):
            raise self.error(node, f"module {name!r} can only be used to call its allowed "
                             "functions", "module as value")
        if name in RESERVED_NAMES:
            raise self.error(node, f"name {name!r} is not allowed (Python builtins are "
                             "reserved)", "reserved name")
        if self.known is not None and name not in self.known:
            raise self.error(node, f"unknown name {name!r}", "unknown name")
        self.names.add(name)
        if bare:
            self.fields.add(name)
        unknown = self.later(node, f"unknown name {name!r}", "unknown name")

        def lookup(ns):
            try:
                return ns[name]
            except KeyError:
                raise unknown() from None
        return lookup

    def _check_attr(self, node):
        if node.attr.startswith("_"):
            raise self.error(node, f"attribute {node.attr!r} is not allowed (dunder/private "
                             "attribute access is not allowed)", "private attribute")

    def visit_Attribute(self, node, ctx):
        self._check_attr(node)
        dotted, attr = _dotted(node), node.attr
        root = dotted.split(".")[0] if dotted else None
        if root == "np" and dotted is not None and dotted.count(".") == 1 and attr in NP_CONSTANTS:
            value = getattr(np, attr)
            return lambda ns: value
        if root in ("ak", "np") or root in self.aliases:
            raise self.error(node, f"{dotted!r} is not allowed here (only its whitelisted "
                             "functions can be called)", "module attribute")
        if isinstance(node.value, ast.Constant):
            raise self.error(node, "attribute access on a constant is not allowed",
                             "constant attribute")
        if isinstance(node.value, ast.Name):
            base = self.visit_Name(node.value, None, bare=False)
            self.fields.add(dotted)
        else:
            base = self.visit(node.value)
        where = _dotted(node.value) or "value"
        missing = self.later(node, f"{where!r} has no field or property {attr!r}", "missing field")
        method = self.later(node, f"'{where}.{attr}' is a method, not a field; only "
                            f"{sorted(METHODS)} may be called", "method as value")

        not_data = self.later(node, f"attribute {attr!r} is only for fields and properties of event data",
                              "attribute of non-data")

        def get(ns):
            owner = base(ns)
            if not _is_event_data(owner):
                raise not_data()
            try:
                value = sandbox.attribute(owner, attr)
            except AttributeError:
                raise missing() from None
            if callable(value):                # bound methods are only reachable via METHODS
                raise method()
            return value
        return get

    def visit_Subscript(self, node, ctx):
        index = node.slice
        if isinstance(node.value, ast.Name) and isinstance(index, ast.Constant) \
                and isinstance(index.value, str):
            base = self.visit_Name(node.value, None, bare=False)
            self.fields.add(f"{node.value.id}.{index.value}")
        else:
            base = self.visit(node.value)
        idx = self.visit(index, "index")
        not_data = self.later(node, "only event data can be subscripted", "subscript of non-data")
        bad_index = self.later(index, "a subscript takes fields, integers, slices and masks only",
                               "index not allowed")

        def subscript(ns):
            owner, key = base(ns), idx(ns)
            if not sandbox.is_data(owner):
                raise not_data()
            if not sandbox.is_index(key):
                raise bad_index()
            return jagged.keep(owner, key)             # owner[key]; a per-object mask made cheap
        return subscript

    def visit_Slice(self, node, ctx):
        if ctx != "index":
            raise self.error(node, "slice outside of a subscript", "slice not allowed")
        lo, hi, st = [self.visit(p) if p is not None else (lambda ns: None)
                      for p in (node.lower, node.upper, node.step)]
        return lambda ns: slice(lo(ns), hi(ns), st(ns))

    def visit_List(self, node, ctx):
        kind, make = ("tuple", tuple) if isinstance(node, ast.Tuple) else ("list", list)
        if ctx not in ("index", "arg"):
            raise self.error(node, f"{kind} literal is only allowed as a call argument or "
                             "subscript", f"{kind} not allowed")
        items = [self.visit(e, "index" if ctx == "index" and kind == "tuple" else None)
                 for e in node.elts]
        return lambda ns: make(i(ns) for i in items)

    visit_Tuple = visit_List

    def visit_UnaryOp(self, node, ctx):
        ops: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos,
                                                 ast.Invert: operator.invert, ast.Not: _not}
        op = ops[type(node.op)]
        op = op if op is _not else jagged.elementwise(op)
        operand = self.visit(node.operand)
        return lambda ns: op(operand(ns))

    def visit_BinOp(self, node, ctx):
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise self.error(node, f"operator {type(node.op).__name__} is not allowed", "operator")
        left, right = self.visit(node.left), self.visit(node.right)
        apply = jagged.elementwise(op)
        if op in _GUARDED:
            return lambda ns: _guarded(op, left(ns), right(ns), apply)
        return lambda ns: apply(left(ns), right(ns))

    def visit_BoolOp(self, node, ctx):
        combine = _AND if isinstance(node.op, ast.And) else _OR
        values = [self.visit(v) for v in node.values]
        return lambda ns: combine(*[v(ns) for v in values])

    def visit_Compare(self, node, ctx):
        for op in node.ops:
            if type(op) not in _CMPOPS:
                raise self.error(node, f"comparison {_CMP_WORDS[type(op)]!r} is not allowed",
                                 "comparison")
        slip = precedence.slip(node, self.source)        # a > 30 & b < 2: a > (30 & b) < 2
        if slip is not None:
            raise self.error(slip, precedence.message(node, slip, self.source), "operator precedence")
        ops = [jagged.elementwise(_CMPOPS[type(op)]) for op in node.ops]
        operands = [self.visit(node.left)] + [self.visit(c) for c in node.comparators]

        def compare(ns):                       # a < b < c  ->  (a < b) & (b < c)
            values = [o(ns) for o in operands]
            result = ops[0](values[0], values[1])
            for op, a, b in zip(ops[1:], values[1:], values[2:]):
                result = _BITAND(result, op(a, b))
            return result
        return compare

    def visit_IfExp(self, node, ctx):
        cond, a, b = self.visit(node.test), self.visit(node.body), self.visit(node.orelse)

        def where(ns):
            c = cond(ns)
            if isinstance(c, bool) or (_is_scalar(c) and isinstance(c, np.bool_)):   # scalar: short-circuit
                return a(ns) if c else b(ns)
            return (np.where if isinstance(c, np.ndarray) else _ak().where)(c, a(ns), b(ns))
        return where

    def _callee(self, func):
        """Resolve a callee statically: (qualified name, callable or None, receiver or None)."""
        if isinstance(func, ast.Attribute):
            self._check_attr(func)
        qual = _dotted(func)
        if qual is not None and qual in self.plugins:
            return qual, self.plugins[qual], None
        root, _, rest = (qual or "").partition(".")
        if root in ("ak", "np") and rest:
            if rest in (AK_FUNCTIONS if root == "ak" else NP_FUNCTIONS):
                return qual, (sandbox.bounded(rest, _ak_function(rest)) if root == "ak" else getattr(np, rest)), None
        elif isinstance(func, ast.Name):
            if func.id.startswith("_"):
                self.visit_Name(func, None)          # raises "unknown name '__import__'"
            if func.id in BUILTIN_FUNCTIONS:
                return func.id, _BUILTIN_IMPLS[func.id], None
        elif isinstance(func, ast.Attribute) and func.attr in METHODS and root not in self.aliases:
            return "." + func.attr, None, self.visit(func.value)
        what = repr(qual) if qual else "this expression"
        raise self.error(func, f"call of {what} is not allowed", "call not allowed")

    def visit_Call(self, node, ctx):
        qual, fn, receiver = self._callee(node.func)
        for kw in node.keywords:
            if kw.arg is None:
                raise self.error(kw.value, "**kwargs is not allowed", "construct not allowed")
            if kw.arg.startswith("_"):
                raise self.error(kw.value, f"keyword {kw.arg!r} is not allowed", "private keyword")
            if kw.arg in sandbox.FORBIDDEN_KEYWORDS and qual not in self.plugins:
                raise self.error(kw.value, f"keyword {kw.arg!r} is not allowed (it writes, retypes or re-wraps "
                                 "the result)", "keyword not allowed")
        if qual in ("min", "max") and (len(node.args) < 2 or node.keywords):
            raise self.error(node, f"{qual}() takes two or more positional arguments; "
                             f"use ak.{qual}(x, axis=...) to reduce an array", "bad arguments")
        self.functions.add(qual)
        args = [self.visit(a, "arg") for a in node.args]
        kwargs = {kw.arg: self.visit(kw.value, "arg") for kw in node.keywords}
        if receiver is None:
            return lambda ns: fn(*[a(ns) for a in args], **{k: v(ns) for k, v in kwargs.items()})
        attr = node.func.attr
        missing = self.later(node.func, f"{_dotted(node.func.value) or 'value'!r} has no "
                             f"method {attr!r}", "missing method")

        not_data = self.later(node.func, f"method {attr!r} is only for event data", "method of non-data")

        def call_method(ns):
            owner = receiver(ns)
            if not _is_event_data(owner):
                raise not_data()
            try:
                bound = getattr(owner, attr)
            except AttributeError:
                raise missing() from None
            call = sandbox.bounded_method(attr, owner, bound) if attr in ("metric_table", "nearest") else bound
            return call(*[a(ns) for a in args], **{k: v(ns) for k, v in kwargs.items()})
        return call_method


@functools.lru_cache(maxsize=1024)
def _compile_cached(text: str, known: frozenset | None, plugins: tuple) -> Expression:
    src = text.replace("\r", " ").replace("\n", " ")     # YAML folded lines; keeps offsets
    lead = len(src) - len(src.lstrip())
    comp = _Compiler(text, lead, known, dict(plugins))
    try:
        fn = comp.visit(ast.parse(src[lead:], mode="eval").body)
    except SyntaxError as err:
        col = lead + (err.offset - 1 if err.offset else 0)
        raise ExpressionError(f"syntax error: {err.msg}", expression=text, column=col,
                              reason="syntax error") from None
    except (RecursionError, MemoryError):
        raise ExpressionError("expression is too deeply nested", expression=text,
                              reason="too complex") from None
    return Expression(text, frozenset(comp.names), frozenset(comp.fields),
                      frozenset(comp.functions), fn)


def compile_expression(text: str, *, known_names: Iterable[str] | None = None,
                       plugins: Mapping[str, Callable] | None = None) -> Expression:
    """Parse and validate ``text``; raises :class:`ExpressionError` on anything not allowed.

    ``known_names``: if given, root names outside it are refused at compile time.
    ``plugins``: ``{"agc.m_bjj": function}`` (or ``{"m_bjj": function}``) callables.
    Results are cached on (text, known_names, plugins).

    >>> compile_expression("agc.m_bjj(jets, 0.5)", plugins={"agc.m_bjj": max}).functions
    frozenset({'agc.m_bjj'})
    """
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be a string, not {type(text).__name__}",
                              expression=repr(text), reason="not a string")
    known = frozenset(known_names) if known_names is not None else None
    items = tuple(sorted((plugins or {}).items(), key=lambda kv: kv[0]))
    try:
        hash(items)
    except TypeError:                              # an unhashable plugin callable: no cache
        return _compile_cached.__wrapped__(text, known, items)
    return _compile_cached(text, known, items)


def evaluate(text: str, namespace: Mapping[str, Any],
             plugins: Mapping[str, Callable] | None = None) -> Any:
    """Compile (cached) and evaluate in one go.

    >>> evaluate("30 < x < 50", {"x": 40})
    True
    """
    return compile_expression(text, plugins=plugins).evaluate(namespace)
