"""The operator-precedence slip: ``Jet.pt > 30 & abs(Jet.eta) < 2.4``.

In Python, and so in the expression language, ``&``, ``|`` and ``^`` bind tighter than
the comparisons. That line therefore reads ``Jet.pt > (30 & abs(Jet.eta)) < 2.4``: a
chained comparison around a bitwise ``&`` of a number and a float array. On floats it
fails in the event loop; on integers (``nJet >= 4 & nMuon == 1``) it runs and selects the
wrong events. The compiler refuses the two shapes that can only be this slip: a bare
bitwise operation between two comparisons (``a > b & c < d``) and one after a comparison
that starts with a number (``a > 30 & b``). It accepts ``Jet.jetId & 4 > 0``, which means
``(Jet.jetId & 4) > 0``. The checks on type-only arrays give the same hint when a bitwise
operation next to a comparison fails on its types (:func:`hint`).

>>> regrouped("Jet.pt > 30 & abs(Jet.eta) < 2.4")
'(Jet.pt > 30) & (abs(Jet.eta) < 2.4)'
"""

from __future__ import annotations

import ast
import io
import tokenize

BITWISE = {ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^"}


def _bare_bitwise(node: ast.AST, source: str) -> bool:
    """A bitwise operation that is not wrapped in its own parentheses in ``source``."""
    if not (isinstance(node, ast.BinOp) and type(node.op) in BITWISE):
        return False
    before = source.encode()[:node.col_offset].decode(errors="ignore").rstrip()
    return not before.endswith("(")


def slip(node: ast.Compare, source: str) -> ast.BinOp | None:
    """The bare bitwise operand of comparison ``node`` that can only be a precedence slip,
    or None. ``source``: the text ``node``'s offsets refer to.

    >>> text = "x > 30 & y < 2"
    >>> ast.unparse(slip(ast.parse(text, mode="eval").body, text))
    '30 & y'
    >>> text = "(x & 4) > 0"
    >>> slip(ast.parse(text, mode="eval").body, text) is None
    True
    """
    last = len(node.comparators) - 1
    for index, operand in enumerate(node.comparators):
        if not _bare_bitwise(operand, source):
            continue
        assert isinstance(operand, ast.BinOp)
        left = operand.left
        if index < last or (isinstance(left, ast.Constant) and isinstance(left.value, (int, float))
                            and not isinstance(left.value, bool)):
            return operand
    return None


def message(node: ast.Compare, operand: ast.BinOp, source: str) -> str:
    """What a slip reads as, and the hint.

    >>> text = "Jet.pt > 30 & abs(Jet.eta) < 2.4"
    >>> node = ast.parse(text, mode="eval").body
    >>> message(node, slip(node, text), text)
    "'&' binds tighter than comparisons, so this reads as 'Jet.pt > (30 & abs(Jet.eta)) < 2.4' (hint: wrap each comparison in parentheses: (Jet.pt > 30) & (abs(Jet.eta) < 2.4))"
    """
    segment = ast.get_source_segment(source, node) or ast.unparse(node)
    return (f"'{BITWISE[type(operand.op)]}' binds tighter than comparisons, so this reads as "
            f"{_explicit(node)!r} (hint: wrap each comparison in parentheses: {regrouped(segment)})")


_COMPARISONS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}


def _explicit(node: ast.Compare) -> str:
    """A comparison with its bitwise operands in parentheses (``ast.unparse`` leaves them out)."""
    def operand(value: ast.expr) -> str:
        text = ast.unparse(value)
        return f"({text})" if isinstance(value, ast.BinOp) and type(value.op) in BITWISE else text

    out = operand(node.left)
    for op, value in zip(node.ops, node.comparators):
        out += f" {_COMPARISONS.get(type(op), '?')} {operand(value)}"
    return out


def hint(text: str) -> str | None:
    """For an expression whose evaluation failed: the parenthesised form when a bare
    bitwise operation sits next to a comparison (the likely cause), else None.

    >>> hint("Muon.tightId & Muon.pt > 30")
    'wrap each comparison in parentheses: Muon.tightId & (Muon.pt > 30)'
    >>> hint("(Jet.pt > 30) & (Jet.eta < 2)") is None
    True
    """
    source = text.replace("\r", " ").replace("\n", " ").strip()
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(_bare_bitwise(o, source) for o in [node.left, *node.comparators]):
            segment = ast.get_source_segment(source, node) or ast.unparse(node)
            return f"wrap each comparison in parentheses: {regrouped(segment)}"
    return None


def regrouped(text: str) -> str:
    """``text`` split at its top-level ``&``, ``|`` and ``^``, each part that compares in
    its own parentheses.

    >>> regrouped("nJet >= 4 & nMuon == 1 | nElectron == 1")
    '(nJet >= 4) & (nMuon == 1) | (nElectron == 1)'
    """
    parts, ops, depth, start = [], [], 0, 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type != tokenize.OP:
                continue
            if token.string in "([{":
                depth += 1
            elif token.string in ")]}":
                depth -= 1
            elif depth == 0 and token.string in ("&", "|", "^"):
                parts.append(text[start:token.start[1]].strip())
                ops.append(token.string)
                start = token.end[1]
    except (tokenize.TokenError, SyntaxError):
        return text
    parts.append(text[start:].strip())
    wrapped = [f"({part})" if _compares(part) else part for part in parts]
    return wrapped[0] + "".join(f" {op} {part}" for op, part in zip(ops, wrapped[1:]))


def _compares(text: str) -> bool:
    try:
        return isinstance(ast.parse(text, mode="eval").body, ast.Compare)
    except SyntaxError:
        return False
