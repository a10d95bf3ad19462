"""Keys are derived from the code (key format 2): the whole tree, mutated module by module.

Two independent views of "the code a task depends on" are compared:

- static: the task class's closure in :mod:`analysis.store.code_identity` (what the key
  hashes);
- dynamic: every project function that actually runs while the task produces its
  output and computes its key (a profiler in a real ``law`` run of the tiny analysis).

Every function that runs must be in the key (no stale results); then every module of
``analysis/`` and ``tasks/`` is edited in a temporary copy: a semantic edit changes the keys
of exactly the tasks whose closure reaches it and everything downstream, a comment,
docstring or formatting edit changes none, and moving a function changes none.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT, SHARED, small_demo, write_config

TRACE = r'''
import json, sys, luigi
import tasks
from tasks.base import HeirloomTask, PROJECT

running = []
seen = {}
original_run = HeirloomTask.run
original_components = HeirloomTask.components

def run(self):
    running.append(self.task_family)
    try:
        return original_run(self)
    finally:
        running.pop()

def components(self):
    running.append(self.task_family)
    try:
        return original_components(self)
    finally:
        running.pop()

HeirloomTask.run = run
HeirloomTask.components = components
prefix = str(PROJECT) + "/"

def profile(frame, event, arg):
    if event != "call" or not running:
        return
    code = frame.f_code
    if not code.co_filename.startswith(prefix) or "/tests/" in code.co_filename:
        return
    rel = code.co_filename[len(prefix):]
    if not rel.startswith(("analysis/", "tasks/")):
        return
    module = rel[:-3].replace("/", ".").removesuffix(".__init__")
    top = code.co_qualname.split(".", 1)[0]
    if top in ("<module>", "run", "components") and module == "tests":
        return
    seen.setdefault(running[-1], set()).add((module, top))

config = sys.argv[1]
threading_profile = sys.setprofile
sys.setprofile(profile)
ok = luigi.build([tasks.Plot(config=config), tasks.AGCHistograms(config=config)], local_scheduler=True,
                 workers=1, log_level="ERROR")
sys.setprofile(None)
json.dump({"ok": ok, "seen": {k: sorted(v) for k, v in seen.items()}}, open(sys.argv[2], "w"))
'''


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("soundness")
    return {"config": small_demo(folder, name="soundness"), "folder": folder}


def test_every_function_that_runs_for_a_task_is_covered_by_its_key(tiny):
    """The dynamic view is inside the static one, for every task of the analysis."""
    from analysis.store.code_identity import Unit, graph_for
    from tasks.base import CODE_ROOTS

    import tasks

    out = tiny["folder"] / "trace.json"
    env = dict(os.environ, HEIRLOOM_STORE=str(tiny["folder"] / "store"))
    proc = subprocess.run([sys.executable, "-c", TRACE, str(tiny["config"]), str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trace = json.loads(out.read_text())
    assert trace["ok"]
    graph = graph_for(CODE_ROOTS)
    families = {"Generate", "Skim", "Select", "Histogram", "Histograms", "Fit", "Plot", "AGCHistograms"}
    assert families <= set(trace["seen"])
    for family, seen in trace["seen"].items():
        closure = graph.closure(graph.unit_of(getattr(tasks, family)))
        modules = {u.module for u in closure}
        missing = []
        for module, name in seen:
            unit = Unit(module, name)
            if unit in closure or (Unit(module, "*") in closure):
                continue
            if name == "<module>" and any(m == module or m.startswith(module + ".") for m in modules):
                continue        # import-time code of a reached module or of its parent package
            if name.startswith("<") and module in modules:      # module-level lambdas, comprehensions
                continue
            missing.append(f"{module}:{name}")
        assert not missing, f"{family} ran code its key does not cover: {missing}"


def test_package_inits_run_nothing_at_import():
    """Importing ``a.b`` runs ``a/__init__.py`` too, and keys do not cover a parent package
    of what they reach: so no package ``__init__`` may hold import-time statements (only a
    docstring, imports, definitions and plain assignments such as ``__all__``)."""
    for path in list((ROOT / "analysis").rglob("__init__.py")) + list((ROOT / "tasks").rglob("__init__.py")):
        for stmt in ast.parse(path.read_text()).body:
            plain = isinstance(stmt, (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.FunctionDef,
                                      ast.ClassDef)) or (
                isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))
            assert plain, f"{path.relative_to(ROOT)}:{stmt.lineno}: import-time code in a package __init__"


# ---- the whole tree, mutated in a temporary copy ------------------------------------------
class _Mutate(ast.NodeTransformer):
    """A semantic edit of every definition of a module: a statement at the top of every
    function and class body, every top-level value wrapped as ``(value, 0)[0]``."""

    def _body(self, node):
        self.generic_visit(node)
        first = 1 if (node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)
                      and isinstance(node.body[0].value.value, str)) else 0
        node.body.insert(first, ast.parse("_heirloom_mutation = 1").body[0])
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _body

    def visit_Module(self, node):
        self.generic_visit(node)
        for stmt in node.body:
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
                stmt.value = ast.Subscript(ast.Tuple([stmt.value, ast.Constant(0)], ast.Load()), ast.Constant(0),
                                           ast.Load())
        return node


def mutated(source: str) -> str:
    return ast.unparse(ast.fix_missing_locations(_Mutate().visit(ast.parse(source))))


def cosmetic(source: str) -> str:
    """Comments gone, formatting changed, every docstring edited: nothing a key may see."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            body[0].value.value += "\n\n(edited)"
    return "# a comment\n" + ast.unparse(tree) + "\n# the end\n"


def dag(root_tasks) -> dict:
    """task_id -> task for every task the roots need."""
    out, todo = {}, list(root_tasks)
    while todo:
        task = todo.pop()
        if task.task_id in out:
            continue
        out[task.task_id] = task
        todo.extend(task.input_tasks().values())
    return out


def roots_for(configs) -> list:
    import tasks

    out = []
    for config in configs:
        text = config.read_text()
        if "limit" in text:
            out.append(tasks.Limit(config=str(config)))
        elif "likelihood" in text:
            out.append(tasks.ExclusionPlot(config=str(config)))
        elif "external_histograms" in text:
            out.append(tasks.Plot(config=str(config)))
        else:
            out += [tasks.Plot(config=str(config)), tasks.AGCHistograms(config=str(config))]
    return out


@pytest.fixture(scope="module")
def tree(tiny, tmp_path_factory):
    """A copy of analysis/ and tasks/, the configs whose DAGs are checked, and a key function."""
    import tasks.base as base
    from analysis.store.code_identity import graph_for

    copy = tmp_path_factory.mktemp("tree")
    for package in ("analysis", "tasks"):
        shutil.copytree(ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    fork = write_config(tiny["folder"], "limit.yaml",
                        f"extends: {ROOT / 'configs' / 'reinterpret_example.yaml'}\nname: soundness_limit\n")
    configs = [tiny["config"], fork]
    if (SHARED / "likelihoods").exists() and (SHARED / "agc").exists():     # their inputs are shared data
        configs += [ROOT / "configs" / "sbottom_regionA.yaml", ROOT / "configs" / "agc_reference_1file.yaml"]
    roots = {"analysis": copy / "analysis", "tasks": copy / "tasks"}
    saved = dict(base.CODE_ROOTS)

    def keys() -> dict:
        graph_for(roots, refresh=True)
        base.CODE_ROOTS.clear()
        base.CODE_ROOTS.update(roots)
        base._CODE.clear()
        base._CODE_CACHES.clear()
        try:
            tasks_now = dag(roots_for(configs))
            for task in tasks_now.values():           # luigi reuses task instances: forget their keys
                task.__dict__.pop("_key", None)
                task.__dict__.pop("_components", None)
            return {tid: (task.task_family, task.key()) for tid, task in tasks_now.items()}
        finally:
            base.CODE_ROOTS.clear()
            base.CODE_ROOTS.update(saved)
            base._CODE.clear()
            base._CODE_CACHES.clear()

    env = dict(os.environ)
    os.environ["HEIRLOOM_STORE"] = str(tiny["folder"] / "keys-store")
    try:
        yield {"copy": copy, "keys": keys, "configs": configs, "baseline": keys(), "roots": roots}
    finally:
        os.environ.clear()
        os.environ.update(env)


def expected_changes(graph, dag_tasks: dict, module: str) -> set:
    """task ids whose closure reaches ``module``, and everything downstream of them."""
    touched = {tid for tid, task in dag_tasks.items()
               if any(u.module == module for u in graph.closure(graph.unit_of(type(task))))}
    grew = True
    while grew:
        grew = False
        for tid, task in dag_tasks.items():
            if tid not in touched and any(t.task_id in touched for t in task.input_tasks().values()):
                touched.add(tid)
                grew = True
    return touched


def test_every_module_edit_changes_exactly_the_keys_that_reach_it(tree):
    from analysis.store.code_identity import graph_for
    from tasks.base import CODE_ROOTS

    graph = graph_for(CODE_ROOTS)
    dag_tasks = dag(roots_for(tree["configs"]))
    baseline = tree["baseline"]
    modules = sorted(p for p in tree["copy"].rglob("*.py"))
    reached = 0
    for path in modules:
        module = ".".join(path.relative_to(tree["copy"]).with_suffix("").parts).removesuffix(".__init__")
        original = path.read_text()
        if not ast.parse(original).body:
            continue                                       # an empty __init__: nothing to edit
        path.write_text(mutated(original))
        try:
            after = tree["keys"]()
        finally:
            path.write_text(original)
        changed = {tid for tid in baseline if after[tid] != baseline[tid]}
        expected = expected_changes(graph, dag_tasks, module)
        assert changed == expected, (f"{module}: changed {sorted(baseline[t][0] for t in changed - expected)} "
                                     f"unexpectedly, kept {sorted(baseline[t][0] for t in expected - changed)}")
        reached += bool(expected)
    assert reached >= 40                  # most of the tree decides some result of these analyses
    families = {task.task_family for task in dag_tasks.values()}
    assert {"Generate", "Skim", "Select", "Histogram", "Histograms", "Fit", "Plot", "AGCHistograms",
            "Limit"} <= families


def test_comment_docstring_and_formatting_edits_change_no_key(tree):
    paths = sorted(tree["copy"].rglob("*.py"))
    originals = {p: p.read_text() for p in paths}
    try:
        for path, text in originals.items():
            path.write_text(cosmetic(text))
        after = tree["keys"]()
    finally:
        for path, text in originals.items():
            path.write_text(text)
    assert after == tree["baseline"]


def test_moving_an_unchanged_function_to_another_module_changes_no_key(tree):
    """``write_workspace`` moves from analysis/stats/products.py into a new module; its caller
    imports it from there. (A module's import-time statements belong to each of its units,
    so the new module has none: as most modules.)"""
    products = tree["copy"] / "analysis" / "stats" / "products.py"
    moved = tree["copy"] / "analysis" / "stats" / "workspace_files.py"
    callers = [tree["copy"] / "tasks" / "results.py", tree["copy"] / "tasks" / "reinterpret.py"]
    originals = {p: p.read_text() for p in [products, *callers]}
    source = originals[products]
    start = source.index("def write_workspace(")
    end = source.index("\ndef ", start + 1)
    try:
        products.write_text(source[:start] + source[end:])
        moved.write_text('"""Workspace files."""\n\nimport json\nfrom pathlib import Path\nfrom typing import Mapping\n\n\n'
                         + source[start:end])
        rewritten = 0
        for caller in callers:
            text = originals[caller]
            for old, new in (("from analysis.stats.products import fit_products, write_workspace",
                              "from analysis.stats.products import fit_products\n"
                              "        from analysis.stats.workspace_files import write_workspace"),
                             ("from analysis.stats.products import write_workspace",
                              "from analysis.stats.workspace_files import write_workspace")):
                rewritten += old in text
                text = text.replace(old, new)
            caller.write_text(text)
        assert rewritten == 2
        after = tree["keys"]()
    finally:
        for path, text in originals.items():
            path.write_text(text)
        moved.unlink(missing_ok=True)
    assert after == tree["baseline"]


def test_replacing_the_generators_random_streams_changes_every_generate_key(tree):
    streams = tree["copy"] / "analysis" / "io" / "demo_streams.py"
    original = streams.read_text()
    assert "np.random.PCG64(" in original
    try:
        streams.write_text(original.replace("np.random.PCG64(", "np.random.Philox("))
        after = tree["keys"]()
    finally:
        streams.write_text(original)
    baseline = tree["baseline"]
    generate = {tid for tid, (family, _) in baseline.items() if family == "Generate"}
    assert generate and all(after[tid] != baseline[tid] for tid in generate)
    downstream = {tid for tid, (family, _) in baseline.items()
                  if family in ("Skim", "Select", "Histogram", "Histograms", "Fit", "Plot", "Limit")}
    assert all(after[tid] != baseline[tid] for tid in downstream)


def test_imports_that_static_analysis_cannot_see_are_declared():
    from analysis.store.code_identity import graph_for
    from tasks.base import CODE_ROOTS, DYNAMIC_IMPORTS

    found = {module for module, _, _ in graph_for(CODE_ROOTS).dynamic_imports()}
    assert found == set(DYNAMIC_IMPORTS), f"undeclared dynamic imports: {sorted(found - set(DYNAMIC_IMPORTS))}"
