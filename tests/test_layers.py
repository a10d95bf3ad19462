"""The library's shape, enforced: layers (import-linter), types (mypy), sizes."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

from conftest import ROOT, VENV_BIN

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def _sources():
    for package in ("analysis", "tasks"):
        yield from sorted((ROOT / package).rglob("*.py"))


def test_import_linter_contracts_hold():
    """pyproject.toml's contracts: each layer imports only those below it, the library never
    imports the tasks, no import cycles between sibling modules."""
    proc = subprocess.run([str(VENV_BIN / "lint-imports")], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "3 kept, 0 broken" in proc.stdout


def test_a_layer_violation_is_caught(tmp_path):
    """The contract is not vacuous: a lower layer importing a higher one breaks it."""
    import shutil

    for package in ("analysis", "tasks"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    names = tmp_path / "analysis" / "lang" / "expr.py"
    names.write_text(names.read_text() + "\nfrom analysis.stats import fitting  # noqa\n")
    proc = subprocess.run([str(VENV_BIN / "lint-imports")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert proc.returncode != 0 and "analysis.lang.expr -> analysis.stats.fitting" in proc.stdout


def test_mypy_passes_on_the_library():
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]


@pytest.mark.parametrize("path", list(_sources()), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_stay_small(path):
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES, f"{path.name}: over {MAX_MODULE_LINES} lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{path.name}:{node.lineno}: {node.name} has {length} lines"


def test_every_heirloom_error_shares_one_base():
    import analysis.errors as errors
    from analysis.hist.agc_layout import AGCLayoutError
    from analysis.hist.external import ExternalHistogramError
    from analysis.likelihood.cls_scan import PointError
    from analysis.likelihood.published import LikelihoodError
    from tasks.export.step import StepError

    for cls in (errors.ConfigError, errors.ExpressionError, errors.InputError, errors.InputFileError,
                errors.StoreError, errors.FitError, errors.PluginError, errors.MemoryBudgetError, AGCLayoutError,
                ExternalHistogramError, PointError,
                LikelihoodError, StepError):
        assert issubclass(cls, errors.HeirloomError), cls
    defined = [node.name for path in _sources() for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.ClassDef) and node.name.endswith("Error")]
    known = {"ConfigError", "ExpressionError", "InputError", "InputFileError", "StoreError", "FitError", "PluginError",
             "LayoutError", "MemoryBudgetError", "HeirloomError", "AGCLayoutError", "ExternalHistogramError",
             "PointError", "LikelihoodError", "StepError"}
    assert set(defined) <= known, f"an exception outside the hierarchy: {sorted(set(defined) - known)}"
