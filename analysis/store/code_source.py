"""Code source: one project source file, parsed, classified, normalised and scanned.

The per-file half of :mod:`analysis.store.code_identity`: everything about a source file
that does not depend on its module's name or on any other file.  Pure standard library.

Classification
--------------
A :class:`Source` splits a module's top-level statements (the module docstring aside)
into three kinds:

* *units*, by top-level name: a ``def``, ``async def`` or ``class``, or a name bound by
  a top-level assignment or annotated assignment whose targets are all plain names
  (``a = b = 1`` and ``a, b = f()`` bind each name to the same statement; a name bound
  twice owns both statements; ``type X = ...`` binds ``X``);
* *top-level imports*;
* the *prelude*: every other statement (calls such as ``behavior.update(...)``,
  ``if``/``try``/``with`` blocks, augmented or attribute assignments,
  ``if __name__ ...``).  It runs at import time.

Normalisation
-------------
A statement's *dump* is ``ast.dump(stmt, annotate_fields=False, include_attributes=False)``
after normalising: docstrings are dropped (a body left empty becomes ``pass``), every
import statement becomes ``import <bound names>`` (module paths and relative levels are
dropped: ``from analysis.a import f as g`` and ``from .b import f as g`` both become
``import g``; ``import a.b.c`` becomes ``import a``) and string-prefix kinds are dropped.
Comments and formatting vanish by construction; module names and file paths never enter
a dump, so code moved unchanged to another module dumps the same.
:func:`source_fingerprint` applies this to a whole module's source.

Scanning
--------
:meth:`Source.scan` lists, per statement, the loaded names with the attribute chains
they are used through (``m.a.b`` -> ``m: ("a", "b")``; a bare use is ``()``) and every
import statement inside it; :meth:`Source.dynamic` lists the calls that load code static
analysis cannot follow (``importlib.import_module``, ``exec``, ...).

Files are parsed once per process: :func:`load_source` caches by (path, mtime_ns, size).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, NamedTuple

__all__ = ["Import", "Scan", "Source", "load_source", "project_modules", "source_fingerprint"]

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_IMPORTS = (ast.Import, ast.ImportFrom)


class Import(NamedTuple):
    kind: str            # "import", "from" or "star"
    bound: str           # local name bound ("*" for a star import)
    level: int           # relative level of a from-import
    module: str | None   # dotted module as written (full dotted name for "import")
    name: str | None     # the imported name of a from-import
    aliased: bool        # "import a.b as m" (binds the module a.b) vs "import a.b" (binds a)


def _is_docstring(stmt: ast.AST) -> bool:
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str))


def _target_names(target: ast.expr, out: list[str]) -> bool:
    """Collect the names of a pure-name assignment target; False for anything else."""
    if isinstance(target, ast.Name):
        out.append(target.id)
        return True
    if isinstance(target, (ast.Tuple, ast.List)):
        return all(_target_names(elt, out) for elt in target.elts)
    if isinstance(target, ast.Starred):
        return _target_names(target.value, out)
    return False


def _assigned_names(stmt: ast.stmt) -> list[str] | None:
    """Names bound by a simple top-level assignment, or None if it is not one."""
    names: list[str] = []
    if isinstance(stmt, ast.Assign):
        if not all(_target_names(t, names) for t in stmt.targets):
            return None
    elif isinstance(stmt, ast.AnnAssign):
        if not isinstance(stmt.target, ast.Name):
            return None
        names.append(stmt.target.id)
    elif type(stmt).__name__ == "TypeAlias":            # Python >= 3.12: type X = ...
        names.append(stmt.name.id)                       # type: ignore[attr-defined]
    else:
        return None
    return list(dict.fromkeys(names))


def _imports_of(node: ast.Import | ast.ImportFrom) -> list[Import]:
    out = []
    if isinstance(node, ast.Import):
        for a in node.names:
            if a.asname:
                out.append(Import("import", a.asname, 0, a.name, None, True))
            else:
                out.append(Import("import", a.name.partition(".")[0], 0, a.name, None, False))
    else:
        for a in node.names:
            if a.name == "*":
                out.append(Import("star", "*", node.level, node.module, None, False))
            else:
                out.append(Import("from", a.asname or a.name, node.level, node.module, a.name, False))
    return out


def _bound_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.asname or a.name.partition(".")[0] for a in node.names]
    return [a.asname or a.name for a in node.names]


def _normalise(node: ast.AST) -> ast.AST:
    """The node with docstrings and import statements dropped.

    What an import binds, and where it comes from, enters a unit's fingerprint through its
    binding signature (:mod:`analysis.store.code_identity`), so the statements themselves
    (their module paths, their grouping and order) do not count: moving a function to
    another module and importing it from there leaves its callers' fingerprints alone.
    Copies only along paths that change (never mutates the cached tree), so it costs a
    walk, not a deep copy.

    >>> tree = ast.parse("def f():\\n    'doc'\\n    from .a import x as y\\n    return y")
    >>> ast.unparse(_normalise(tree.body[0]))
    'def f():\\n    return y'
    """
    if isinstance(node, _IMPORTS):
        return ast.copy_location(ast.Pass(), node)       # a lone top-level import: nothing of it counts
    if isinstance(node, ast.Constant):
        return ast.copy_location(ast.Constant(value=node.value), node) if node.kind is not None else node
    changed: dict[str, object] = {}
    for field, value in ast.iter_fields(node):
        if isinstance(value, list):
            new = [_normalise(v) if isinstance(v, ast.AST) else v for v in value if not isinstance(v, _IMPORTS)]
            if field == "body" and isinstance(node, _DEFS) and new and _is_docstring(new[0]):
                new = new[1:]
            if field in ("body", "orelse", "finalbody") and value and not new:
                new = [ast.Pass()]
            if len(new) != len(value) or any(a is not b for a, b in zip(new, value)):
                changed[field] = new
        elif isinstance(value, ast.AST):
            new_node = _normalise(value)
            if new_node is not value:
                changed[field] = new_node
    if not changed:
        return node
    fields = {f: getattr(node, f, None) for f in node._fields}
    fields.update(changed)
    return ast.copy_location(type(node)(**fields), node)


def _dump(stmt: ast.stmt) -> str:
    return ast.dump(_normalise(stmt), annotate_fields=False, include_attributes=False)


_DYNAMIC_NAMES = {"__import__", "import_module", "exec", "eval", "run_path", "run_module",
                  "spec_from_file_location", "spec_from_loader", "module_from_spec"}
_DYNAMIC_ATTRS = {"__import__", "import_module", "exec_module", "load_module", "run_path",
                  "run_module", "spec_from_file_location", "spec_from_loader", "module_from_spec"}


def _is_dynamic_call(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id in _DYNAMIC_NAMES
    if isinstance(func, ast.Attribute):
        if func.attr in _DYNAMIC_ATTRS:
            return True
        # builtins.exec(...), builtins.eval(...), importlib.reload(...)
        return (isinstance(func.value, ast.Name)
                and ((func.value.id == "builtins" and func.attr in ("exec", "eval", "__import__"))
                     or (func.value.id == "importlib" and func.attr == "reload")))
    return False


class Scan(NamedTuple):
    uses: dict[str, set[tuple[str, ...]]]   # loaded name -> attribute chains (() = bare)
    imports: list[Import]                  # import statements anywhere inside


def _scan(node: ast.AST) -> Scan:
    uses: dict[str, set[tuple[str, ...]]] = {}
    imports: list[Import] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Attribute):
            attrs = []
            value: ast.AST = n
            while isinstance(value, ast.Attribute):
                attrs.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name):
                uses.setdefault(value.id, set()).add(tuple(reversed(attrs)))
            else:
                stack.append(value)
        elif isinstance(n, ast.Name):
            if isinstance(n.ctx, ast.Load):
                uses.setdefault(n.id, set()).add(())
        else:
            if isinstance(n, _IMPORTS):
                imports.extend(_imports_of(n))
            stack.extend(ast.iter_child_nodes(n))
    return Scan(uses, imports)


class Source:
    """A parsed file, classified into units, prelude and top-level imports (lazy details).

    ``units`` maps each unit name to its statement indices into ``body``; ``prelude``,
    ``top_imports`` and ``statements`` (all but the module docstring) are index lists.
    Without ``tree``, ``text`` is parsed (``Source(None, "")`` is an empty module).

    >>> src = Source(None, "'''Doc.'''\\nimport os\\nX = 1\\nprint(X)\\ndef f():\\n    return X\\n")
    >>> src.units, src.top_imports, src.prelude, src.statements
    ({'X': [2], 'f': [4]}, [1], [3], [1, 2, 3, 4])
    """

    def __init__(self, path: Path | None, text: str, tree: ast.Module | None = None):
        self.path = path
        self.text = text
        if tree is None:
            tree = _parse_text(text, str(path or "<source>"))
        self.body = tree.body
        self.units: dict[str, list[int]] = {}
        self.prelude: list[int] = []
        self.top_imports: list[int] = []
        self.statements: list[int] = []          # all but the module docstring
        for i, stmt in enumerate(self.body):
            if i == 0 and _is_docstring(stmt):
                continue
            self.statements.append(i)
            if isinstance(stmt, _IMPORTS):
                self.top_imports.append(i)
            elif isinstance(stmt, _DEFS):
                self.units.setdefault(stmt.name, []).append(i)
            else:
                names = _assigned_names(stmt)
                if names:
                    for name in names:
                        self.units.setdefault(name, []).append(i)
                else:
                    self.prelude.append(i)
        self._scans: dict[int, Scan] = {}
        self._dumps: dict[int, str] = {}
        self._dynamic: list[tuple[int, str]] | None = None

    def scan(self, i: int) -> Scan:
        """Names used and imports made by statement ``i`` (memoised)."""
        if i not in self._scans:
            self._scans[i] = _scan(self.body[i])
        return self._scans[i]

    def dump(self, i: int) -> str:
        """The normalised dump of statement ``i`` (memoised)."""
        if i not in self._dumps:
            self._dumps[i] = _dump(self.body[i])
        return self._dumps[i]

    def absolute(self, module: str, level: int, target: str | None) -> str | None:
        """The absolute name of module ``target`` imported ``level`` dots up from this
        file, loaded as ``module``; None where the import climbs above the top package.

        >>> Source(Path("pkg/sub/mod.py"), "").absolute("pkg.sub.mod", 2, "other")
        'pkg.other'
        >>> Source(Path("pkg/__init__.py"), "").absolute("pkg", 1, None)
        'pkg'
        """
        if level == 0:
            return target
        is_package = self.path is None or self.path.name == "__init__.py"
        parts = module.split(".") if is_package else module.split(".")[:-1]
        if level - 1 > len(parts) or (level - 1 == len(parts) and not target):
            return None
        parts = parts[: len(parts) - (level - 1)]
        if target:
            parts.extend(target.split("."))
        return ".".join(parts)

    def dynamic(self) -> list[tuple[int, str]]:
        """(line, call text) of every call that loads code dynamically, sorted."""
        if self._dynamic is None:
            found = []
            for stmt in self.body:
                for node in ast.walk(stmt):
                    if isinstance(node, ast.Call) and _is_dynamic_call(node):
                        text = ast.get_source_segment(self.text, node) or ast.unparse(node)
                        text = " ".join(text.split())
                        found.append((node.lineno, text[:200]))
            self._dynamic = sorted(found)
        return self._dynamic


def source_fingerprint(text: str, filename: str = "<source>") -> str:
    """sha256 hex of the normalised dump of a whole module's source.

    Docstrings, comments and formatting are ignored and import module paths dropped,
    exactly as for units (see Normalisation above); ``filename`` only names the source
    in the ``ValueError`` raised for a syntax error.  This is the statement part of a
    module's fingerprint in a code graph, without its binding signature.

    >>> before = source_fingerprint("import os\\ndef f(x):\\n    return x + 1\\n")
    >>> source_fingerprint("import os  # the OS\\n\\ndef f(x):  # add one\\n"
    ...                    "    return x + 1\\n") == before
    True
    >>> source_fingerprint("def f(x):\\n    return x + 2\\n") == before
    False
    """
    source = Source(None, text, _parse_text(text, filename))
    digest = hashlib.sha256()
    for i in source.statements:
        digest.update(source.dump(i).encode() + b"\n")
    return digest.hexdigest()


def project_modules(roots: Mapping[str, Path]) -> dict[str, Path | None]:
    """The ``.py`` file of every module under ``roots`` (name -> package folder or file).

    ``pkg/__init__.py`` is module ``pkg`` and wins over ``pkg.py``; folders starting with
    ``.`` and ``__pycache__`` are skipped; a package without ``__init__.py`` (a namespace
    package, or a parent of one) maps to None.
    """
    modules: dict[str, Path | None] = {}
    for name, root in roots.items():
        if root.is_file() and root.suffix == ".py":
            modules[name] = root
            continue
        if not root.is_dir():
            raise ValueError(f"code root {name!r}: {root} is not a directory")
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root)
            if any(p.startswith(".") or p == "__pycache__" for p in rel.parts[:-1]):
                continue
            parts = rel.with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            module = ".".join((name, *parts))
            if module in modules and path.name != "__init__.py":
                continue                        # pkg/ wins over pkg.py, as in Python
            modules[module] = path
    for module in list(modules):                # namespace packages: no __init__.py
        pieces = module.split(".")
        for k in range(1, len(pieces)):
            modules.setdefault(".".join(pieces[:k]), None)
    return modules


# ---------------------------------------------------------------------------------------
# The parse cache: by (path, mtime_ns, size), with the "racy git" check for files written
# so recently that a same-size edit within one timestamp tick could go unnoticed.

_RACY_NS = 2_000_000_000


@dataclass
class _Cached:
    mtime_ns: int
    size: int
    read_at_ns: int
    digest: str
    source: Source


_PARSE_CACHE: dict[str, _Cached] = {}
_CACHE_LOCK = threading.Lock()


def _parse_text(text: str, filename: str) -> ast.Module:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(text, filename=filename)
    except SyntaxError as exc:
        raise ValueError(f"{filename}:{exc.lineno}: syntax error: {exc.msg}") from exc


def _parse(path: Path, data: bytes) -> Source:
    try:
        text = importlib.util.decode_source(data)
    except (UnicodeDecodeError, LookupError) as exc:
        raise ValueError(f"{path}: cannot decode source: {exc}") from exc
    return Source(path, text, _parse_text(text, str(path)))


def load_source(path: Path) -> Source:
    """The parsed source of a file, from a process-wide cache keyed by (path, mtime_ns,
    size); a syntax or decoding error raises ``ValueError`` naming file and line."""
    key = str(path)
    stat = path.stat()
    with _CACHE_LOCK:
        cached = _PARSE_CACHE.get(key)
    if cached and cached.mtime_ns == stat.st_mtime_ns and cached.size == stat.st_size:
        if stat.st_mtime_ns < cached.read_at_ns - _RACY_NS:
            return cached.source
        data = path.read_bytes()                       # racy entry: verify the content
        if hashlib.sha256(data).hexdigest() == cached.digest:
            return cached.source
    read_at = time.time_ns()
    data = path.read_bytes()
    source = _parse(path, data)
    entry = _Cached(stat.st_mtime_ns, stat.st_size, read_at, hashlib.sha256(data).hexdigest(), source)
    with _CACHE_LOCK:
        _PARSE_CACHE[key] = entry
    return source


