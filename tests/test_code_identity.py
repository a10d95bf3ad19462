"""Tests for analysis/store/code_identity.py: code identity by static analysis.

Every test builds small synthetic packages (``lib`` and ``jobs``) in a temporary folder,
computes identities, edits the source and builds a fresh graph.
"""

from __future__ import annotations

import ast
import copy
import doctest
import os
import re
import sys
from pathlib import Path

import pytest

from analysis.store import code_identity, code_source
from analysis.store.code_identity import CodeGraph, Unit, graph_for

BASE = {
    "lib/__init__.py": '''\
"""Lib: re-exports."""
from .hist import fill
from .maths import scale as rescale
''',
    "lib/hist.py": '''\
"""Histogramming."""
import math

BINS = 10


def fill(values):
    """Fill a histogram."""
    return [math.floor(v) % BINS for v in values]


def unused_hist():
    return 42


class Base:
    def weight(self):
        return 1.0
''',
    "lib/maths.py": '''\
OFFSET = 3


def scale(x):
    return 2 * x + OFFSET


def lonely():
    return "nobody calls me"
''',
    "lib/effects.py": '''\
REGISTRY = {}


def other():
    return 0


REGISTRY.update(a=1)


def lookup(name):
    return REGISTRY.get(name)
''',
    "jobs/__init__.py": "",
    "jobs/helpers.py": '''\
def clean(values):
    return [v for v in values if v is not None]
''',
    "jobs/select.py": '''\
"""Selection job."""
from lib import fill
from lib import hist
from lib.hist import Base

from .helpers import clean


def run(values):
    from lib.maths import scale
    return fill(clean(values)), hist.BINS, scale(1)


def run_bare(values):
    return getattr(hist, "fill")(values)


class Weighted(Base):
    def weight(self):
        return 2.0 * super().weight()


def idle():
    return 0
''',
}

RUN = Unit("jobs.select", "run")
RUN_BARE = Unit("jobs.select", "run_bare")
WEIGHTED = Unit("jobs.select", "Weighted")


def write(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return {name: root / name for name in sorted({rel.split("/")[0] for rel in files})}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, path)
    path.write_text(text.replace(old, new))


@pytest.fixture
def project(tmp_path):
    roots = write(tmp_path, BASE)
    return tmp_path, roots


def ids(roots, *units):
    g = CodeGraph(roots)
    return tuple(g.identity(u) for u in units)


# 1. comments, docstrings and formatting ---------------------------------------------


def test_comments_docstrings_and_formatting_do_not_change_identity(project):
    root, roots = project
    before = ids(roots, RUN, RUN_BARE, WEIGHTED)
    fp_before = CodeGraph(roots).fingerprint(Unit("lib.hist", "fill"))

    edit(root / "lib/hist.py", "    return [math", "    # a comment\n    return [math")
    edit(root / "lib/hist.py", "BINS = 10", "BINS = 10  # trailing comment")
    assert ids(roots, RUN, RUN_BARE, WEIGHTED) == before

    edit(root / "lib/hist.py", '"""Fill a histogram."""', '"""Fill a histogram, better described."""')
    edit(root / "lib/hist.py", '"""Histogramming."""', '"""Module docstring, edited."""')
    edit(root / "jobs/helpers.py", "def clean(values):\n", "def clean(values):\n    '''Docstring added.'''\n")
    assert ids(roots, RUN, RUN_BARE, WEIGHTED) == before

    edit(root / "lib/hist.py", "return [math.floor(v) % BINS for v in values]",
         "return [\n        math.floor(v)   %   (BINS)\n        for v in values\n    ]")
    edit(root / "lib/maths.py", "2 * x + OFFSET", "(2*x) + OFFSET")
    edit(root / "lib/maths.py", '"nobody calls me"', "'nobody ' 'calls me'")
    edit(root / "jobs/select.py", "from lib import fill\n", "from lib import (\n    fill,\n)\n\n\n")
    assert ids(roots, RUN, RUN_BARE, WEIGHTED) == before
    assert CodeGraph(roots).fingerprint(Unit("lib.hist", "fill")) == fp_before


def test_docstring_only_body_normalises_to_pass(project):
    root, roots = project
    edit(root / "lib/maths.py", "def lonely():\n    return \"nobody calls me\"",
         "def lonely():\n    \"\"\"Only a docstring.\"\"\"")
    a = CodeGraph(roots).fingerprint(Unit("lib.maths", "lonely"))
    edit(root / "lib/maths.py", "    \"\"\"Only a docstring.\"\"\"", "    pass")
    assert CodeGraph(roots).fingerprint(Unit("lib.maths", "lonely")) == a


# 2. reached vs unreached changes ----------------------------------------------------


def test_changing_reached_code_changes_identity(project):
    root, roots = project
    (before,) = ids(roots, RUN)
    hist = root / "lib/hist.py"
    size = hist.stat().st_size
    edit(hist, "BINS = 10", "BINS = 11")          # same size, same second: racy cache entry
    assert hist.stat().st_size == size
    (after,) = ids(roots, RUN)
    assert after != before

    edit(hist, "BINS = 11", "BINS = 10")
    assert ids(roots, RUN) == (before,)
    edit(root / "lib/maths.py", "OFFSET = 3", "OFFSET = 4")     # via a function-level import
    assert ids(roots, RUN) != (before,)
    edit(root / "lib/maths.py", "OFFSET = 4", "OFFSET = 3")
    edit(root / "jobs/helpers.py", "is not None", "is not False")  # via a relative import
    assert ids(roots, RUN) != (before,)


def test_same_size_edit_with_the_same_mtime_is_seen(project):
    """A coarse-timestamp file system: the edit keeps size and mtime (the racy case)."""
    root, roots = project
    hist = root / "lib/hist.py"
    (before,) = ids(roots, RUN)
    stat = hist.stat()
    edit(hist, "BINS = 10", "BINS = 13")
    os.utime(hist, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert hist.stat().st_mtime_ns == stat.st_mtime_ns and hist.stat().st_size == stat.st_size
    assert ids(roots, RUN) != (before,)


def test_changing_unreached_code_keeps_identity(project):
    root, roots = project
    (before,) = ids(roots, RUN)
    edit(root / "lib/maths.py", '"nobody calls me"', '"somebody?"')
    edit(root / "lib/hist.py", "return 42", "return 43")
    edit(root / "jobs/select.py", "def idle():\n    return 0", "def idle():\n    return 1")
    edit(root / "lib/effects.py", "return REGISTRY.get(name)", "return None")
    (root / "lib/extra.py").write_text("def new():\n    return 1\n")
    assert ids(roots, RUN) == (before,)
    assert Unit("lib.maths", "lonely") not in CodeGraph(roots).closure(RUN)


# 3. moves and module names ----------------------------------------------------------


def test_moving_a_function_keeps_identity(project):
    root, roots = project
    g = CodeGraph(roots)
    before, fp = g.identity(RUN), g.fingerprint(Unit("jobs.helpers", "clean"))
    text = (root / "jobs/helpers.py").read_text()
    (root / "jobs/helpers.py").write_text("")
    (root / "lib/cleaning.py").write_text("import math\n\n\n" + text)
    edit(root / "jobs/select.py", "from .helpers import clean", "from lib.cleaning import clean")
    g = CodeGraph(roots)
    assert g.fingerprint(Unit("lib.cleaning", "clean")) == fp
    assert g.identity(RUN) == before
    assert "lib.cleaning" in g.modules_in(RUN) and "jobs.helpers" not in g.modules_in(RUN)


def test_moving_a_function_away_from_its_helper_keeps_identity(project):
    root, roots = project
    (before,) = ids(roots, RUN)
    edit(root / "lib/maths.py", "def scale(x):\n    return 2 * x + OFFSET\n", "")
    (root / "lib/scaling.py").write_text(
        "from .maths import OFFSET\n\n\ndef scale(x):\n    return 2 * x + OFFSET\n")
    edit(root / "lib/__init__.py", "from .maths import scale", "from .scaling import scale")
    edit(root / "jobs/select.py", "from lib.maths import scale", "from lib.scaling import scale")
    g = CodeGraph(roots)
    assert {Unit("lib.scaling", "scale"), Unit("lib.maths", "OFFSET")} <= g.closure(RUN)
    assert g.identity(RUN) == before


def test_module_names_do_not_enter_identity(tmp_path):
    renamed = {re.sub(r"^lib/", "library/", rel).replace("jobs/", "work/"):
               re.sub(r"\blib\b", "library", text)
               for rel, text in BASE.items()}
    a = CodeGraph(write(tmp_path / "a", BASE))
    b = CodeGraph(write(tmp_path / "b", renamed))
    assert a.identity(RUN) == b.identity(Unit("work.select", "run"))
    assert a.identity(WEIGHTED) == b.identity(Unit("work.select", "Weighted"))
    assert a.fingerprint(RUN) == b.fingerprint(Unit("work.select", "run"))


def test_swapping_imported_names_changes_identity(tmp_path):
    files = {
        "lib/__init__.py": "",
        "lib/ops.py": "def plus(a, b):\n    return a + b\n\n\ndef minus(a, b):\n    return a - b\n",
        "jobs/__init__.py": "",
        "jobs/task.py": "from lib.ops import plus as f, minus as g\n\n\n"
                        "def run():\n    return f(3, 1) * g(3, 1)\n",
    }
    roots = write(tmp_path, files)
    (before,) = ids(roots, Unit("jobs.task", "run"))
    edit(tmp_path / "jobs/task.py", "plus as f, minus as g", "minus as f, plus as g")
    assert ids(roots, Unit("jobs.task", "run")) != (before,)


# 4. the prelude ---------------------------------------------------------------------


def test_prelude_belongs_to_every_unit(project):
    root, roots = project
    other = Unit("lib.effects", "other")
    g = CodeGraph(roots)
    assert Unit("lib.effects", "REGISTRY") in g.dependencies(other)   # the prelude uses it
    before = g.identity(other), g.fingerprint(other), g.fingerprint(Unit("lib.effects", "lookup"))
    edit(root / "lib/effects.py", "REGISTRY.update(a=1)", "REGISTRY.update(a=2)")
    g = CodeGraph(roots)
    after = g.identity(other), g.fingerprint(other), g.fingerprint(Unit("lib.effects", "lookup"))
    assert all(x != y for x, y in zip(before, after))


def test_prelude_blocks_and_their_imports(tmp_path):
    files = {
        "lib/__init__.py": "",
        "lib/config.py": "LEVEL = 1\n",
        "lib/mod.py": "try:\n    from .config import LEVEL\nexcept ImportError:\n    LEVEL = 0\n"
                      "assert LEVEL >= 0\n\n"
                      "def f():\n    return 1\n",
    }
    roots = write(tmp_path, files)
    g = CodeGraph(roots)
    f = Unit("lib.mod", "f")
    assert g.dependencies(f) == {Unit("lib.config", "LEVEL")}
    before = g.identity(f)
    edit(tmp_path / "lib/config.py", "LEVEL = 1", "LEVEL = 2")
    assert CodeGraph(roots).identity(f) != before


# 5. resolution: re-exports, relative imports, attributes, bare modules ---------------


def test_resolution_of_imports(project):
    root, roots = project
    g = CodeGraph(roots)
    deps = g.dependencies(RUN)
    assert Unit("lib.hist", "fill") in deps            # re-export through lib/__init__
    assert Unit("jobs.helpers", "clean") in deps       # relative import
    assert Unit("lib.maths", "scale") in deps          # function-level import
    assert Unit("lib.hist", "BINS") in deps            # hist.BINS refined to the attribute
    assert Unit("lib.hist", "*") not in g.closure(RUN)
    assert Unit("lib", "*") not in g.closure(RUN)
    assert Unit("lib.hist", "unused_hist") not in g.closure(RUN)
    assert Unit("lib.maths", "OFFSET") in g.closure(RUN)

    bare = g.dependencies(RUN_BARE)                    # getattr(hist, ...): the whole module
    assert Unit("lib.hist", "*") in bare
    assert Unit("lib.hist", "unused_hist") in g.closure(RUN_BARE)
    before = g.identity(RUN), g.identity(RUN_BARE)
    edit(root / "lib/hist.py", "return 42", "return 43")
    g = CodeGraph(roots)
    assert g.identity(RUN) == before[0]
    assert g.identity(RUN_BARE) != before[1]


def test_aliased_reexport_chains_and_cycles(tmp_path):
    files = dict(BASE)
    files["jobs/chain.py"] = (
        "import lib.hist\nimport lib.maths as m\nfrom lib import rescale\nfrom lib.loop import x\n\n\n"
        "def a():\n    return lib.hist.fill([1.0])\n\n\n"
        "def b():\n    return m.scale(2) + rescale(3)\n\n\n"
        "def c():\n    return x\n\n\n"
        "def d():\n    return lib\n")
    files["lib/loop.py"] = "from .loop2 import x\n"
    files["lib/loop2.py"] = "from .loop import x\n"
    g = CodeGraph(write(tmp_path, files))
    assert g.dependencies(Unit("jobs.chain", "a")) == {Unit("lib.hist", "fill")}
    assert g.dependencies(Unit("jobs.chain", "b")) == {Unit("lib.maths", "scale")}
    assert g.dependencies(Unit("jobs.chain", "c")) <= {Unit("lib.loop", "*"), Unit("lib.loop2", "*")}
    # bare ``lib`` after ``import lib.hist``: the package and the submodule it loaded
    assert g.dependencies(Unit("jobs.chain", "d")) == {Unit("lib", "*"), Unit("lib.hist", "*")}
    # (lib, "*") covers what the package re-exports
    assert {Unit("lib.hist", "fill"), Unit("lib.maths", "scale")} <= g.dependencies(Unit("lib", "*"))


def test_star_import_and_whole_module(tmp_path):
    files = {
        "lib/__init__.py": "",
        "lib/consts.py": "A = 1\nB = 2\n",
        "lib/user.py": "from .consts import *\n\n\ndef f():\n    return A\n",
    }
    g = CodeGraph(write(tmp_path, files))
    assert Unit("lib.consts", "*") in g.dependencies(Unit("lib.user", "f"))
    assert Unit("lib.consts", "B") in g.closure(Unit("lib.user", "f"))
    assert g.dependencies(Unit("lib.consts", "*")) == {Unit("lib.consts", "A"), Unit("lib.consts", "B")}


# 6. classes -------------------------------------------------------------------------


def test_class_unit_covers_methods_and_bases(project):
    root, roots = project
    g = CodeGraph(roots)
    assert Unit("lib.hist", "Base") in g.dependencies(WEIGHTED)
    (before,) = ids(roots, WEIGHTED)
    edit(root / "jobs/select.py", "2.0 * super()", "3.0 * super()")
    (method_edit,) = ids(roots, WEIGHTED)
    assert method_edit != before
    edit(root / "lib/hist.py", "return 1.0", "return 1.5")
    assert ids(roots, WEIGHTED) != (method_edit,)


def test_unit_of_objects(project, monkeypatch):
    root, roots = project
    monkeypatch.syspath_prepend(str(root))
    for name in [m for m in sys.modules if m.split(".")[0] in ("lib", "jobs")]:
        monkeypatch.delitem(sys.modules, name)
    import jobs.select

    g = CodeGraph(roots)
    try:
        assert g.unit_of(jobs.select.Weighted) == WEIGHTED
        assert g.unit_of(jobs.select.run) == RUN
        assert g.unit_of(jobs.select.fill) == Unit("lib.hist", "fill")
        assert g.unit_of(jobs.select) == Unit("jobs.select", "*")
        for bad in (jobs.select.Weighted.weight, lambda: 0, ast.parse, 3):
            with pytest.raises(ValueError):
                g.unit_of(bad)
    finally:
        for name in [m for m in sys.modules if m.split(".")[0] in ("lib", "jobs")]:
            del sys.modules[name]


# 7. dynamic imports -----------------------------------------------------------------


def test_dynamic_imports_are_listed(tmp_path):
    files = dict(BASE)
    files["lib/plugins.py"] = (
        "import importlib\n\n\n"
        "def load(name):\n"
        "    mod = importlib.import_module(\"x\")\n"
        "    other = __import__(\"y\")\n"
        "    exec(\"z = 1\")\n"
        "    return mod, other, name.upper()\n")
    g = CodeGraph(write(tmp_path, files))
    assert g.dynamic_imports() == [
        ("lib.plugins", 5, 'importlib.import_module("x")'),
        ("lib.plugins", 6, '__import__("y")'),
        ("lib.plugins", 7, 'exec("z = 1")'),
    ]


# 8. errors --------------------------------------------------------------------------


def test_syntax_error_names_the_file(tmp_path):
    files = dict(BASE)
    files["lib/bad.py"] = "x = 1\ndef broken(:\n    pass\n"
    with pytest.raises(ValueError, match=r"bad\.py:2"):
        CodeGraph(write(tmp_path, files))


def test_unknown_units_are_errors(project):
    _, roots = project
    g = CodeGraph(roots)
    with pytest.raises(ValueError):
        g.identity(Unit("jobs.select", "nope"))
    with pytest.raises(ValueError):
        g.fingerprint(Unit("nowhere", "*"))
    with pytest.raises(ValueError):
        g.identity([])


# Properties of the implementation ---------------------------------------------------


def test_identity_is_order_free_and_covers_the_closure(project):
    _, roots = project
    g = CodeGraph(roots)
    assert g.identity([RUN, WEIGHTED]) == g.identity([WEIGHTED, RUN]) == g.identity({RUN, WEIGHTED})
    assert g.identity(RUN) == g.identity(sorted(g.closure(RUN)))


def test_normalise_matches_a_deep_copy_transform():
    """The copy-on-write normaliser dumps exactly like a transformed deep copy."""

    class Reference(ast.NodeTransformer):
        def generic_visit(self, node):
            filled = [f for f in ("body", "orelse", "finalbody") if getattr(node, f, None)]
            super().generic_visit(node)
            for field in filled:
                if not getattr(node, field):
                    setattr(node, field, [ast.Pass()])
            return node

        def _doc(self, node):
            if node.body and code_source._is_docstring(node.body[0]):
                node.body = node.body[1:] or [ast.Pass()]
            return self.generic_visit(node)

        visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _doc

        def visit_Import(self, node):
            return None                                  # imports count through the binding signature

        visit_ImportFrom = visit_Import

        def visit_Constant(self, node):
            return ast.Constant(value=node.value)

    for module in (code_identity, code_source):
        source = Path(module.__file__).read_text() + "\nu = u'x'\n"
        tree = ast.parse(source)
        for stmt in tree.body:
            reference = Reference().visit(copy.deepcopy(stmt)) or ast.Pass()
            expected = ast.dump(reference, annotate_fields=False, include_attributes=False)
            assert code_source._dump(stmt) == expected
        assert ast.dump(tree) == ast.dump(ast.parse(source))    # the tree is not mutated


def test_graph_for_is_cached_and_refreshable(project):
    root, roots = project
    g = graph_for(roots)
    assert graph_for({k: str(v) for k, v in roots.items()}) is g
    before = g.identity(RUN)
    edit(root / "lib/hist.py", "BINS = 10", "BINS = 12")
    assert graph_for(roots).identity(RUN) == before              # a snapshot
    fresh = graph_for(roots, refresh=True)
    assert fresh is not g and fresh.identity(RUN) != before
    assert graph_for(roots) is fresh


def test_sixty_files_are_each_parsed_once_and_reused_unchanged(tmp_path, monkeypatch):
    """Building the graph parses every file once; a rebuild over unchanged files parses none
    (the process-wide cache), and editing one file reparses that file only. (Counted, not
    timed: a timing assertion failed CI on a loaded machine.)"""
    body = "".join(f"\n\ndef f{i}(x):\n    '''Doc.'''\n    y = [v * {i} for v in x]\n"
                   f"    return sum(y) + OFFSET\n" for i in range(40))
    files = {"big/__init__.py": ""}
    for n in range(60):
        files[f"big/m{n:02d}.py"] = f"from .m{(n + 1) % 60:02d} import f1 as g\n\nOFFSET = {n}\n{body}"
    roots = write(tmp_path, files)
    parsed = []
    real = code_source._parse_text
    monkeypatch.setattr(code_source, "_parse_text", lambda text, name: parsed.append(name) or real(text, name))
    g = CodeGraph(roots)
    assert len(g.modules) == 61
    assert sorted(parsed) == sorted({str(tmp_path / name) for name in files}), len(parsed)
    first = {n: g.identity(Unit(f"big.m{n:02d}", "f3")) for n in (0, 1)}
    parsed.clear()
    again = CodeGraph(roots)
    assert {n: again.identity(Unit(f"big.m{n:02d}", "f3")) for n in (0, 1)} == first and parsed == []
    edited = tmp_path / "big" / "m01.py"
    edited.write_text(edited.read_text().replace("OFFSET = 1\n", "OFFSET = 101\n"))
    after = CodeGraph(roots)
    assert after.identity(Unit("big.m01", "f3")) != first[1]
    assert after.identity(Unit("big.m00", "f3")) == first[0]      # m00.f3 reads its own OFFSET only
    assert parsed == [str(edited)]


def test_module_doctests():
    result = doctest.testmod(code_identity)
    assert result.attempted >= 5 and result.failed == 0
    result = doctest.testmod(code_source)
    assert result.attempted >= 5 and result.failed == 0


def test_where_an_external_name_comes_from_enters_identity(tmp_path):
    """The same code calling ``minimize`` from another library, or ``np`` bound to another
    module, is other code."""
    def identity(task_source):
        roots = write(tmp_path / str(abs(hash(task_source))), {"jobs/__init__.py": "", "jobs/task.py": task_source})
        return CodeGraph(roots).identity(Unit("jobs.task", "run"))

    body = "\n\ndef run(x):\n    return minimize(np.sin, x)\n"
    scipy = identity("import numpy as np\nfrom scipy.optimize import minimize" + body)
    assert scipy != identity("import numpy as np\nfrom iminuit import minimize" + body)
    assert scipy != identity("import cupy as np\nfrom scipy.optimize import minimize" + body)


def test_swapping_same_named_imports_from_two_modules_changes_identity(tmp_path):
    files = {
        "lib/__init__.py": "",
        "lib/a.py": "def X(v):\n    return v + 1\n",
        "lib/b.py": "def X(v):\n    return v - 1\n",
        "jobs/__init__.py": "",
        "jobs/task.py": "from lib.a import X\nfrom lib.b import X as Y\n\n\ndef run():\n    return X(3) - Y(3)\n",
    }
    roots = write(tmp_path, files)
    (before,) = ids(roots, Unit("jobs.task", "run"))
    edit(tmp_path / "jobs/task.py", "from lib.a import X\nfrom lib.b import X as Y",
         "from lib.b import X\nfrom lib.a import X as Y")
    assert ids(roots, Unit("jobs.task", "run")) != (before,)
