"""Code identity: the exact project code that can change a task's result, by static analysis.

A content address of a result must change when, and only when, code that can change the
result changes.  This module derives that code from the source itself (``ast``), never
from hand-kept lists.  Pure standard library.  Parsing, classifying, normalising and
scanning one file is :mod:`analysis.store.code_source`; this module resolves names across
files and computes closures, fingerprints and identities.

Terms
-----
*Project code* is every ``.py`` file under a set of root packages given by the caller,
e.g. ``{"analysis": Path("analysis"), "tasks": Path("tasks")}``; module names are dotted
(``analysis.hist.histograms``; ``pkg/__init__.py`` is module ``pkg``).  Everything else
(stdlib, numpy, ...) is external and ignored.

A *unit* is a pair (module, top-level name): a top-level ``def``, ``async def``, ``class``,
or a name bound by a top-level assignment whose targets are all plain names (the exact
rules are in :mod:`~analysis.store.code_source`).  ``Unit(module, "*")`` is the whole
module.  The *prelude* of a module (every other top-level statement that is not an
import or the module docstring: calls, ``if``/``try``/``with`` blocks, ...) runs at
import time, so it belongs to every unit of its module (fingerprint and dependencies).


Dependencies
------------
The dependencies of a unit come from walking its statements and its module's prelude:

* a loaded ``Name`` that is a top-level unit name of the same module -> that unit;
* a name bound by an import (at top level, inside the prelude, or anywhere inside the
  unit's own body, e.g. a function-level ``from analysis.hist import histograms``)
  that resolves into project code:

  - ``from M import x``: ``M.x`` a project module -> ``(M.x, "*")``; else ``x`` a unit
    of ``M`` -> ``(M, x)``; else ``x`` imported by ``M`` itself (a re-export, e.g. in a
    package ``__init__``) -> followed to the defining module, recursively, cycles
    guarded; else (``x`` defined in ``M``'s prelude, a star import, ``__getattr__``)
    -> ``(M, "*")``;
  - ``import M`` / ``import M as m`` -> ``(M, "*")``; ``import a.b.c`` binds ``a``;
  - relative imports are resolved against the importing module's package;
  - refinement: a name bound to a project module that is used as ``name.attr`` depends
    on what ``attr`` resolves to in that module (same rules as ``from M import attr``,
    so re-exports are followed, and a chain ``name.sub.attr`` through submodules is
    followed to the end); each bare use (passing the module object, ``getattr``)
    depends on ``(module, "*")`` instead;
* ``from M import *`` of a project module -> every unit of the importer depends on
  ``(M, "*")``;
* ``(M, "*")`` depends on every unit of ``M``, on its prelude's dependencies and on every
  project name ``M`` imports at top level (a module object exposes its re-exports).

Class units are the whole class statement (body, methods, bases, decorators).  Names are
not scoped: a local variable that shadows a top-level name counts as a use (a safe
over-approximation), and so do annotations.

Fingerprints and identity
-------------------------
The fingerprint of a unit is the sha256 of the normalised dumps (see
:mod:`~analysis.store.code_source`: docstrings, comments and formatting vanish, import
statements keep only their bound names) of its statements and its module's prelude, in
source order.  The module name and file path never enter a fingerprint, so a function
moved unchanged to another module keeps it.  The fingerprint of ``(M, "*")`` covers M's
whole body.

One addition to the statements: a *binding signature*, the sorted ``name=origin`` pairs
of every name the unit uses that is a same-module unit (``h=h``), a from-import
(``g=f`` for ``from M import f as g``, external ones included) or a module object
(``m=<module>``).  Without it, swapping ``from lib import f as a, g as b`` for
``from lib import g as a, f as b`` would leave every fingerprint (and the identity)
unchanged while the result changes.  The signature holds no module names, so moving code
between modules (and updating callers) still leaves fingerprints unchanged.

``identity(units)`` is the sha256 over a version tag and the *sorted, deduplicated*
fingerprints of every unit in ``closure(units)``: content only, never module names or
paths.  Moving ``f`` from module A to module B (callers changed from ``from A import f``
to ``from B import f``) therefore leaves the identity of every caller unchanged.

Limits
------
Imports static analysis cannot see (``importlib.import_module``, ``__import__``,
``exec``...) are listed by :meth:`CodeGraph.dynamic_imports`, not followed.  External
code (library versions) is not covered; record it separately.  Importing ``a.b`` also
runs ``a/__init__.py``; only ``a.b``'s own prelude counts.

Example
-------
>>> import tempfile
>>> root = Path(tempfile.mkdtemp()) / "lib"
>>> root.mkdir()
>>> _ = (root / "__init__.py").write_text("from .maths import double\\n")
>>> _ = (root / "maths.py").write_text(
...     "FACTOR = 2\\n"
...     "def double(x):\\n"
...     "    '''Twice x.'''\\n"
...     "    return FACTOR * x\\n"
...     "def unused():\\n"
...     "    return 0\\n")
>>> graph = CodeGraph({"lib": root})
>>> sorted(map(str, graph.closure([Unit("lib.maths", "double")])))
['lib.maths:FACTOR', 'lib.maths:double']
>>> before = graph.identity([Unit("lib.maths", "double")])
>>> _ = (root / "maths.py").write_text(
...     "FACTOR = 2  # a comment\\n"
...     "def double(x):\\n"
...     "    return FACTOR * x\\n"
...     "def unused():\\n"
...     "    return 1\\n")
>>> CodeGraph({"lib": root}).identity([Unit("lib.maths", "double")]) == before
True
"""

from __future__ import annotations

import functools
import hashlib
import threading
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Union

from analysis.store.code_source import Import, Source, load_source, project_modules

__all__ = ["WHOLE", "VERSION", "Unit", "CodeGraph", "graph_for"]

#: The unit name meaning "the whole module".
WHOLE = "*"
#: Mixed into every identity; bump it when the semantics above change.
VERSION = "heirloom-code-identity/1"
_MODULE_LABEL = "<module>"


@dataclass(frozen=True, order=True)
class Unit:
    """A unit of code: a top-level name of a project module, or ``"*"`` for all of it.

    >>> str(Unit("analysis.hist.histograms", "fill"))
    'analysis.hist.histograms:fill'
    """

    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}:{self.name}"


# ---------------------------------------------------------------------------------------
# Binding targets, as resolved in the context of one module.


@dataclass(frozen=True)
class _Mod:
    """A project module object (``extras``: submodules also loaded by ``import a.b.c``)."""
    module: str
    extras: tuple[str, ...] = ()


@dataclass(frozen=True)
class _From:
    """``from module import name`` into project code (resolved lazily)."""
    module: str
    name: str


@dataclass(frozen=True)
class _Ext:
    """An import of external code; ``label`` enters the binding signature only."""
    label: str


_Target = Union[_Mod, _From, _Ext]
_Resolved = Union[Unit, _Mod]


def _as_units(units: Unit | Iterable[Unit]) -> list[Unit]:
    if isinstance(units, Unit):
        return [units]
    out = list(units)
    for u in out:
        if not isinstance(u, Unit):
            raise TypeError(f"expected Unit, got {u!r}")
    return out


class CodeGraph:
    """The static dependency graph of the project code under ``roots``.

    Every ``.py`` file is parsed once when the graph is built (a syntax error raises
    ``ValueError`` naming file and line); dependencies and fingerprints are computed
    lazily and memoised.  The graph is a snapshot: build a new one (or call
    ``graph_for(..., refresh=True)``) to see later edits; parsed files are reused from a
    process-wide cache keyed by (path, mtime_ns, size).
    """

    def __init__(self, roots: Mapping[str, Path | str]):
        self.roots = {name: Path(path).resolve() for name, path in roots.items()}
        modules = project_modules(self.roots)
        self._paths = {module: path for module, path in modules.items() if path is not None}
        self._sources = {module: Source(None, "") if path is None else load_source(path)
                         for module, path in modules.items()}
        self._bindings: dict[str, tuple[dict[str, list[_Target]], list[str]]] = {}
        self._resolved: dict[tuple[str, str], frozenset[_Resolved]] = {}
        self._resolving: set[tuple[str, str]] = set()
        self._analysis: dict[Unit, tuple[frozenset[Unit], tuple[str, ...]]] = {}
        self._fingerprints: dict[Unit, str] = {}
        self._closures: dict[frozenset[Unit], frozenset[Unit]] = {}

    def __repr__(self) -> str:
        roots = ", ".join(f"{k}={v}" for k, v in self.roots.items())
        return f"CodeGraph({roots}; {len(self._paths)} files)"

    @property
    def modules(self) -> tuple[str, ...]:
        """The project modules that have a file, sorted."""
        return tuple(sorted(self._paths))

    def units_of_module(self, module: str) -> set[Unit]:
        """Every named unit of a module (not ``"*"``)."""
        return {Unit(module, n) for n in self._source(module).units}

    # -- lookups ----------------------------------------------------------------------

    def _source(self, module: str) -> Source:
        try:
            return self._sources[module]
        except KeyError:
            raise ValueError(f"{module!r} is not a module of this code graph") from None

    def _check(self, unit: Unit) -> Source:
        if not isinstance(unit, Unit):
            raise TypeError(f"expected Unit, got {unit!r}")
        src = self._source(unit.module)
        if unit.name != WHOLE and unit.name not in src.units:
            raise ValueError(f"{unit}: no top-level def, class or assignment named {unit.name!r}")
        return src

    def unit_of(self, obj: object) -> Unit:
        """The unit of a top-level class or function object (a module object: ``"*"``).

        Raises ``ValueError`` for nested objects (methods, closures, lambdas) and for
        objects not defined in project code.  A top-level name that exists at run time
        but is not a unit (defined in the prelude, e.g. inside ``try``) maps to ``"*"``.
        """
        if isinstance(obj, types.ModuleType):
            name = getattr(obj, "__name__", "")
            self._source(name)
            return Unit(name, WHOLE)
        module = getattr(obj, "__module__", None)
        name = getattr(obj, "__name__", None)
        qualname = getattr(obj, "__qualname__", None)
        if not isinstance(module, str) or not isinstance(name, str):
            raise ValueError(f"{obj!r} is not a class or function")
        if qualname != name:
            raise ValueError(f"{obj!r} is not defined at the top level of its module ({qualname})")
        if module not in self._paths:
            raise ValueError(f"{obj!r}: module {module!r} is not project code")
        if name not in self._sources[module].units:
            return Unit(module, WHOLE)
        return Unit(module, name)

    # -- import resolution ------------------------------------------------------------

    def _target(self, module: str, imp: Import) -> _Target | None:
        """What an import binds, as seen from ``module`` (None for a star import)."""
        if imp.kind == "import":
            assert imp.module is not None
            if imp.aliased:
                return _Mod(imp.module) if imp.module in self._sources else _Ext(f"ext:{imp.module}")
            if imp.bound not in self._sources:
                return _Ext(f"ext:{imp.bound}")
            dotted = imp.module.split(".")
            extras = tuple(p for p in (".".join(dotted[:k]) for k in range(2, len(dotted) + 1))
                           if p in self._sources)
            return _Mod(imp.bound, extras)
        assert imp.name is not None
        absolute = self._sources[module].absolute(module, imp.level, imp.module)
        if absolute is not None and absolute in self._sources:
            return _From(absolute, imp.name)
        return _Ext(f"ext:{absolute or imp.module}.{imp.name}")

    def _module_bindings(self, module: str) -> tuple[dict[str, list[_Target]], list[str]]:
        """Module-level import bindings (top-level and prelude imports) and star sources."""
        if module not in self._bindings:
            src = self._sources[module]
            bindings: dict[str, list[_Target]] = {}
            stars: list[str] = []
            for i in sorted(src.top_imports + src.prelude):
                for imp in src.scan(i).imports:
                    self._bind(module, imp, bindings, stars)
            self._bindings[module] = (bindings, stars)
        return self._bindings[module]

    def _bind(self, module: str, imp: Import, bindings: dict[str, list[_Target]],
              stars: list[str]) -> None:
        if imp.kind == "star":
            absolute = self._sources[module].absolute(module, imp.level, imp.module)
            if absolute is not None and absolute in self._sources and absolute not in stars:
                stars.append(absolute)
            return
        target = self._target(module, imp)
        if target is not None and target not in bindings.setdefault(imp.bound, []):
            bindings[imp.bound].append(target)

    def _resolve_name(self, module: str, name: str) -> frozenset[_Resolved]:
        """What ``from module import name`` denotes in project code."""
        key = (module, name)
        if key in self._resolved:
            return self._resolved[key]
        if key in self._resolving:                       # re-export cycle
            return frozenset({Unit(module, WHOLE)})
        self._resolving.add(key)
        try:
            submodule = f"{module}.{name}"
            out: set[_Resolved] = set()
            if submodule in self._sources:
                out.add(_Mod(submodule))
            elif module in self._sources:
                src = self._sources[module]
                bindings, _ = self._module_bindings(module)
                found = False
                if name in src.units:
                    out.add(Unit(module, name))
                    found = True
                for target in bindings.get(name, ()):
                    found = True
                    if isinstance(target, _Mod):
                        out.add(target)
                    elif isinstance(target, _From):
                        out |= self._resolve_name(target.module, target.name)
                if not found:                            # prelude, star import, __getattr__
                    out.add(Unit(module, WHOLE))
            result = frozenset(out)
        finally:
            self._resolving.discard(key)
        self._resolved[key] = result
        return result

    def _resolve_chain(self, module: str, chain: tuple[str, ...]) -> set[Unit]:
        """Units reached by ``<module object>.a.b...``: follow submodules, then one name."""
        if not chain:
            return {Unit(module, WHOLE)}
        out: set[Unit] = set()
        for target in self._resolve_name(module, chain[0]):
            if isinstance(target, Unit):
                out.add(target)
            else:
                out |= self._resolve_chain(target.module, chain[1:])
        return out

    def _follow(self, target: _Target, chains: Iterable[tuple[str, ...]]) -> tuple[str, set[Unit]]:
        """(signature label, units) of a name bound to ``target`` and used via ``chains``."""
        if isinstance(target, _Ext):
            return target.label, set()
        if isinstance(target, _Mod):
            mods = [target]
            label = _MODULE_LABEL
        else:
            resolved = self._resolve_name(target.module, target.name)
            mods = [r for r in resolved if isinstance(r, _Mod)]
            out = {r for r in resolved if isinstance(r, Unit)}
            label = _MODULE_LABEL if resolved and not out else target.name + "@" + ",".join(
                sorted(self._statements_hash(u)[:16] for u in out))
            if not mods:
                return label, out
        units = set() if isinstance(target, _Mod) else out
        for mod in mods:
            for chain in chains:
                if chain:
                    units |= self._resolve_chain(mod.module, chain)
                else:
                    units.add(Unit(mod.module, WHOLE))
                    units.update(Unit(extra, WHOLE) for extra in mod.extras)
        return label, units

    # -- units ------------------------------------------------------------------------

    def _own_statements(self, unit: Unit, src: Source) -> list[int]:
        if unit.name == WHOLE:
            return [i for i in src.statements if i not in src.top_imports and i not in src.prelude]
        return src.units[unit.name]

    def _analyse(self, unit: Unit) -> tuple[frozenset[Unit], tuple[str, ...]]:
        """(dependencies, binding signature) of a unit."""
        if unit in self._analysis:
            return self._analysis[unit]
        src = self._check(unit)
        own = self._own_statements(unit, src)
        uses: dict[str, set[tuple[str, ...]]] = {}
        for i in own + src.prelude:
            for name, chains in src.scan(i).uses.items():
                uses.setdefault(name, set()).update(chains)
        bindings, stars = self._module_bindings(unit.module)
        local: dict[str, list[_Target]] = {}
        for i in own:
            for imp in src.scan(i).imports:
                self._bind(unit.module, imp, local, [])
        deps: set[Unit] = {Unit(s, WHOLE) for s in stars}
        signature: set[str] = set()
        for name in sorted(uses):
            chains = uses[name]
            if name in src.units:
                deps.add(Unit(unit.module, name))
                signature.add(f"{name}={name}@{self._statements_hash(Unit(unit.module, name))[:16]}")
            for target in bindings.get(name, []) + local.get(name, []):
                label, units = self._follow(target, chains)
                deps |= units
                signature.add(f"{name}={label}")
        if unit.name == WHOLE:
            deps |= {Unit(unit.module, n) for n in src.units}
            for name, targets in bindings.items():
                for target in targets:
                    label, units = self._follow(target, [()])
                    deps |= units
                    signature.add(f"{name}={label}")
        deps.discard(unit)
        result = (frozenset(deps), tuple(sorted(signature)))
        self._analysis[unit] = result
        return result

    def dependencies(self, unit: Unit) -> set[Unit]:
        """The units this unit refers to directly (itself excluded)."""
        return set(self._analyse(unit)[0])

    def closure(self, units: Unit | Iterable[Unit]) -> set[Unit]:
        """The transitive dependencies of ``units``, the starting units included."""
        todo = _as_units(units)
        if (start := frozenset(todo)) in self._closures:
            return set(self._closures[start])
        for unit in todo:
            self._check(unit)
        seen = set(todo)
        while todo:
            unit = todo.pop()
            for dep in self._analyse(unit)[0]:
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        self._closures[start] = frozenset(seen)
        return seen

    def modules_in(self, units: Unit | Iterable[Unit]) -> set[str]:
        """The modules touched by the closure of ``units`` (for provenance and debugging)."""
        return {u.module for u in self.closure(units)}

    @functools.lru_cache(maxsize=None)  # noqa: B019  (one graph per state of the files)
    def _statements_hash(self, unit: Unit) -> str:
        """sha256 of the unit's normalised statements and its module's prelude (no bindings):
        what a name bound to ``unit`` refers to, by content (so two same-named units differ)."""
        src = self._check(unit)
        indices = src.statements if unit.name == WHOLE else sorted(set(src.units[unit.name]) | set(src.prelude))
        return hashlib.sha256("\n".join(src.dump(i) for i in indices).encode()).hexdigest()

    def fingerprint(self, unit: Unit) -> str:
        """sha256 of the unit's normalised statements, its prelude and its binding signature."""
        if unit in self._fingerprints:
            return self._fingerprints[unit]
        digest = hashlib.sha256(self._statements_hash(unit).encode())
        digest.update(b"\0bindings\n")
        digest.update("\n".join(self._analyse(unit)[1]).encode())
        result = digest.hexdigest()
        self._fingerprints[unit] = result
        return result

    def identity(self, units: Unit | Iterable[Unit]) -> str:
        """The code identity of ``units``: a hex digest over the sorted, deduplicated
        fingerprints of their closure (content only: no module names, no paths)."""
        start = _as_units(units)
        if not start:
            raise ValueError("identity of no units")
        fingerprints = sorted({self.fingerprint(u) for u in self.closure(start)})
        digest = hashlib.sha256(VERSION.encode() + b"\n")
        for fp in fingerprints:
            digest.update(fp.encode() + b"\n")
        return digest.hexdigest()

    def dynamic_imports(self) -> list[tuple[str, int, str]]:
        """(module, line, call text) of code loading that static analysis cannot follow:
        ``importlib.import_module``, ``__import__``, ``spec_from_file_location``,
        ``exec_module``, ``runpy.run_*``, ``importlib.reload``, ``exec`` and ``eval``."""
        return [(module, line, text)
                for module in self.modules
                for line, text in self._sources[module].dynamic()]


# ---------------------------------------------------------------------------------------

_GRAPHS: dict[tuple[tuple[str, str], ...], CodeGraph] = {}
_GRAPHS_LOCK = threading.Lock()


def graph_for(roots: Mapping[str, Path | str], *, refresh: bool = False) -> CodeGraph:
    """The process-wide graph of ``roots``, built on first use (a snapshot: the code as
    it was when the process first asked, which is normally the code it imported).
    ``refresh=True`` rebuilds it from the files now on disk (unchanged files are not
    parsed again)."""
    key = tuple(sorted((name, str(Path(path).resolve())) for name, path in roots.items()))
    with _GRAPHS_LOCK:
        graph = None if refresh else _GRAPHS.get(key)
        if graph is None:
            graph = _GRAPHS[key] = CodeGraph(dict(key))
        return graph
