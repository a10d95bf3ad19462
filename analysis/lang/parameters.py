"""Optimisation parameters in expressions: ``opt.<name>``.

A config with an ``optimise:`` section may write a cut threshold as a parameter, e.g.
``ak.sum(jets.pt, axis=1) > opt.ht_min``. Every ordinary task evaluates the expression
with the parameter's ``value`` written in its place (:func:`substitute`), so its key
holds the number and a changed value reruns what depends on it; the Optimise task reads
the text as written (:mod:`analysis.lang.relax`).

>>> references("(MET.pt > opt.met_min) & (ak.num(jets) >= opt.n_jets)")
[('met_min', 10, 21), ('n_jets', 42, 52)]
>>> substitute("MET.pt > opt.met_min", {"met_min": 25.0})
'MET.pt > 25.0'
"""

from __future__ import annotations

import io
import tokenize
from typing import Mapping

from analysis.errors import ExpressionError

#: the name that prefixes a parameter in an expression
ROOT = "opt"


def references(text: str) -> list[tuple[str, int, int]]:
    """``(name, start, end)`` of every ``opt.<name>`` in ``text`` (character offsets of
    the whole reference), in order; text that does not tokenize has none (the expression
    compiler reports it)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text.replace("\n", " ")).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []
    found = []
    for first, dot, name in zip(tokens, tokens[1:], tokens[2:]):
        if (first.type, first.string, dot.string, name.type) == (tokenize.NAME, ROOT, ".", tokenize.NAME):
            found.append((name.string, first.start[1], name.end[1]))
    return found


def substitute(text: str, values: Mapping[str, float]) -> str:
    """``text`` with each ``opt.<name>`` replaced by ``repr(values[name])``; an unknown
    name raises ExpressionError with its column.

    >>> substitute("x > opt.cut", {})
    Traceback (most recent call last):
    analysis.errors.ExpressionError: unknown optimisation parameter 'opt.cut' (the optimise section declares none) in expression 'x > opt.cut' at column 4
    """
    out, last = [], 0
    for name, start, end in references(text):
        if name not in values:
            known = ", ".join(sorted(values)) or "none"
            raise ExpressionError(f"unknown optimisation parameter '{ROOT}.{name}' (the optimise section declares "
                                  f"{known})", expression=text, column=start, reason="unknown parameter")
        out += [text[last:start], repr(float(values[name]))]
        last = end
    return "".join(out) + text[last:]
