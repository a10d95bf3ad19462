"""What may flow through an expression, and how much an allowed function may allocate.

The expression compiler (:mod:`analysis.lang.expr`) refuses constructs it does not
know; this module holds by construction at evaluation: every intermediate value is
checked, so that only event data (awkward arrays and records, numeric numpy arrays),
numbers, strings written in the expression, slices and tuples/lists of those can ever
be a value. A module, class, function, dict or any other object stops the evaluation,
whatever chain of attributes, subscripts or calls produced it. Subscripts take only
fields, integers, slices, ``None``/``...`` and masks or index arrays.

The combinatorial functions are bounded before they run: :func:`combinatorics_bound`
estimates the entries ``ak.combinations``/``ak.cartesian`` (and their ``arg`` forms)
or ``ak.pad_none`` would make and refuses more than :data:`MAX_ENTRIES`.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable

from analysis.errors import ExpressionError
from analysis.lazy import np        # imported when an expression first evaluates

#: entries one combinatorial call may create (``$HEIRLOOM_MAX_ENTRIES`` overrides)
def _max_entries() -> int:
    text = os.environ.get("HEIRLOOM_MAX_ENTRIES", "")
    try:
        return int(float(text)) if text else 50_000_000
    except ValueError:
        raise ExpressionError(f"HEIRLOOM_MAX_ENTRIES={text!r} is not a number", reason="bad setting") from None


MAX_ENTRIES = _max_entries()
_NUMBERS = (bool, int, float, complex, type(None))
_PLAIN = _NUMBERS + (str, slice)
_BOUNDED = frozenset({"combinations", "argcombinations", "cartesian", "argcartesian", "pad_none",
                      "metric_table", "nearest"})


def _ak():
    import awkward

    return awkward


_DATA_TYPES: tuple = ()


def awkward_types() -> tuple:
    """(ak.Array, ak.Record), imported on first use (compiling a config stays fast)."""
    global _DATA_TYPES
    if not _DATA_TYPES:
        ak = _ak()
        _DATA_TYPES = (ak.Array, ak.Record)
    return _DATA_TYPES


#: vector's properties that, on a record storing a coordinate under that very name (coffea's
#: PtEtaPhiM and PtEtaPhiE candidates), return the stored field itself
STORED_COORDINATES = frozenset({"pt", "eta", "phi", "mass", "energy"})


def attribute(owner: Any, name: str) -> Any:
    """``owner.name`` of event data. A coordinate stored as a field of that name is read as
    the field: the same array that vector's property returns, without its coordinate
    dispatch (about 0.5 to 1 ms per access, 10 to 20 times the field's cost, paid at every
    cut of every chunk).

    >>> import awkward as ak, vector
    >>> jets = ak.Array([[{"pt": 30.0, "eta": 0.5, "phi": 0.1, "mass": 5.0}]], with_name="Momentum4D",
    ...                 behavior=vector.backends.awkward.behavior)
    >>> attribute(jets, "pt").tolist(), attribute(jets, "pt").tolist() == jets.pt.tolist()
    ([[30.0]], True)
    >>> round(float(attribute(jets, "px")[0, 0]), 3)              # not stored: vector computes it
    29.85
    """
    if name in STORED_COORDINATES and name in owner.fields:
        return owner[name]
    return getattr(owner, name)


def is_data(value: Any) -> bool:
    """Event data: an awkward array or record, or a numeric numpy array or scalar.

    >>> is_data(np.arange(3)), is_data(np.array([object()])), is_data({"a": 1})
    (True, False, False)
    """
    if isinstance(value, _DATA_TYPES or awkward_types()):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biufcmMSU?"
    if isinstance(value, np.generic):
        return not isinstance(value, np.object_)
    return False


def is_value(value: Any) -> bool:
    """May ``value`` flow through an expression?

    >>> is_value(3.5), is_value("up"), is_value((1, slice(None))), is_value(os)
    (True, True, True, False)
    """
    if isinstance(value, _PLAIN) or value is Ellipsis:
        return True
    if isinstance(value, (tuple, list)):
        return all(is_value(item) for item in value)
    return is_data(value)


def is_index(value: Any) -> bool:
    """A subscript: a field, an integer, a slice, ``...``, a mask or index array, a list of
    field names, or a tuple of those. ``None`` (a new axis) is refused: broadcasting
    against it makes an N x N array no bound sees coming.

    >>> is_index("pt"), is_index((slice(None), 0)), is_index(1.5)
    (True, True, False)
    """
    if isinstance(value, (str, int, np.integer, slice)) or value is Ellipsis:
        return not isinstance(value, bool)
    if isinstance(value, tuple):
        return all(is_index(item) for item in value)
    if isinstance(value, list):
        return all(isinstance(item, str) for item in value)
    return is_data(value)


def checked(fn: Callable[[Any], Any], error: Callable[[], ExpressionError]) -> Callable[[Any], Any]:
    """Wrap a compiled node so that its value is checked every time it is computed.

    >>> node = checked(lambda ns: ns["x"], lambda: ExpressionError("'x'"))
    >>> node({"x": 2.5})
    2.5
    >>> node({"x": os})
    Traceback (most recent call last):
    analysis.errors.ExpressionError: 'x' gave a value of type module, which expressions may not use (only event data, numbers and strings)
    """
    def node(ns):
        value = fn(ns)
        if not is_value(value):
            err = error()
            err.message = (f"{err.message} gave a value of type {type(value).__name__}, which expressions "
                           "may not use (only event data, numbers and strings)")
            err.args = (str(err),)
            raise err
        return value
    return node


#: the largest ``n`` of ``ak.combinations`` (its cost grows like 2**len where n > len)
MAX_COMBINATION_N = 8
#: keywords no expression may pass to a library function (they write, retype or re-wrap)
FORBIDDEN_KEYWORDS = frozenset({"out", "dtype", "where", "casting", "order", "subok", "signature", "extobj",
                                "highlevel", "behavior", "attrs", "axes", "initial"})


def _entries(counts: Any) -> np.ndarray:
    ak = _ak()
    if isinstance(counts, ak.Array):
        counts = ak.flatten(ak.fill_none(counts, 0), axis=None)
    return np.asarray(counts, dtype=np.float64)


def _lists_at(array: Any, axis: int) -> float:
    """How many lists ``array`` has at ``axis`` (``pad_none`` pads each of them)."""
    if axis <= 1:
        return float(len(array))
    return float(np.sum(_entries(_ak().num(array, axis=axis - 1))))


def _choose(n: np.ndarray, k: int) -> np.ndarray:
    out = np.ones_like(n)
    for i in range(k):
        out *= np.clip(n - i, 0, None) / (i + 1)
    return out


def _estimate(name: str, args: tuple, kwargs: dict) -> float:
    """Entries a combinatorial call would create (an upper bound)."""
    ak = _ak()
    first: Any = args[0] if args else kwargs.get("array", kwargs.get("arrays"))
    if first is None:
        return 0.0
    if name == "pad_none":
        target = args[1] if len(args) > 1 else kwargs.get("target", 0)
        axis = int(args[2] if len(args) > 2 else kwargs.get("axis", 1))
        axis = axis + first.ndim if axis < 0 else axis
        return (_lists_at(first, axis) if axis >= 1 else 1.0) * max(int(target), 0) + float(len(first))
    if name in ("metric_table", "nearest"):                        # receiver x other, per event
        other = args[1] if len(args) > 1 else kwargs.get("other")
        if int(kwargs.get("axis", 1)) != 1:
            return math.inf
        return float(np.sum(_entries(ak.num(first, axis=1)) * _entries(ak.num(other, axis=1))))
    if name.endswith("combinations"):
        n = int(args[1] if len(args) > 1 else kwargs.get("n", 2))
        if not 1 <= n <= MAX_COMBINATION_N:
            raise ExpressionError(f"ak.{name} takes n from 1 to {MAX_COMBINATION_N}, not {n}", reason="too large")
        axis = int(kwargs.get("axis", 1))
        if axis == 0:
            return float(math.comb(len(first), n))
        counts = _entries(ak.num(first, axis=axis))
        if kwargs.get("replacement"):
            counts = counts + n - 1
        return float(np.sum(_choose(counts, n)))
    axis = int(args[1] if len(args) > 1 else kwargs.get("axis", 1))
    arrays = list(first.values()) if isinstance(first, dict) else list(first or [])
    if axis == 0:
        return float(np.prod([float(len(a)) for a in arrays]))
    product = None
    for array in arrays:
        counts = _entries(ak.num(array, axis=axis))
        product = counts if product is None else product * counts
    return float(np.sum(product)) if product is not None else 0.0


def bounded_method(name: str, receiver: Any, method: Callable[..., Any]) -> Callable[..., Any]:
    """A physics method of ``receiver`` (``metric_table``, ``nearest`` build tables of pairs),
    bounded like :func:`bounded`.

    >>> import awkward as ak
    >>> jets = ak.Array([[1.0, 2.0], [3.0]])
    >>> table = bounded_method("metric_table", jets, lambda other: ak.cartesian([jets, other], nested=True))
    >>> ak.num(table(jets), axis=2).tolist()
    [[2, 2], [1]]
    """
    bound = bounded(name, lambda _receiver, *args, **kwargs: method(*args, **kwargs))
    return lambda *args, **kwargs: bound(receiver, *args, **kwargs)


def bounded(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (the awkward function ``name``), refusing calls that would allocate more than
    :data:`MAX_ENTRIES` entries; other functions are returned as they are.

    >>> import awkward as ak
    >>> pairs = bounded("combinations", ak.combinations)
    >>> len(pairs(ak.Array([[1, 2, 3]]), 2)[0])
    3
    """
    if name not in _BOUNDED:
        return fn

    def call(*args, **kwargs):
        try:
            size = _estimate(name, args, kwargs)
        except ExpressionError:
            raise
        except Exception as err:        # what cannot be bounded does not run
            raise ExpressionError(f"cannot bound the size of {name}(...) here ({type(err).__name__}: {err})",
                                  reason="unbounded") from None
        if size > MAX_ENTRIES:
            raise ExpressionError(f"{name} would create about {size:.3g} entries in this chunk; the limit is "
                                  f"{MAX_ENTRIES:.3g} ($HEIRLOOM_MAX_ENTRIES): select fewer objects first",
                                  reason="too large")
        return fn(*args, **kwargs)
    call.__name__ = fn.__name__
    return call
