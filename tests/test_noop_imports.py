"""A no-op rerun imports no event-processing library (issue 15, goal 6).

The no-op of the full AGC DAG is as fast as importing law allows only while deciding that
every task is complete needs none of awkward, coffea, dask, pandas, pyarrow, uproot, numpy
or the statistics libraries: the store's records and the code's identities suffice. Python
lists every module it imports with ``PYTHONPROFILEIMPORTTIME=1``; a module of one of these
packages in that list fails the test and names who imported it.
"""

from __future__ import annotations

import os
import re

from conftest import ROOT, law_run, runs

HEAVY = ("awkward", "coffea", "dask", "distributed", "pandas", "pyarrow", "uproot", "numpy", "scipy",
         "hist", "boost_histogram", "correctionlib", "pyhf", "cabinetry", "matplotlib", "numba", "onnxruntime")


def imported_packages(stderr: str) -> list:
    """Top-level packages of the modules that ``-X importtime`` lists, in import order.

    >>> imported_packages("import time:       120 |        340 |   awkward._nplikes\\n")
    ['awkward']
    """
    found = re.findall(r"^import time:\s+\d+\s+\|\s+\d+\s+\|\s+(\S+)\s*$", stderr, re.MULTILINE)
    return [name.split(".")[0] for name in found]


def test_imported_packages_reads_pythons_list():
    text = "import time: self [us] | cumulative | imported package\nimport time:  5 |  9 |     numpy.core\n"
    assert imported_packages(text) == ["numpy"]


def chain_runs(store) -> list:
    """The AGC analysis's runs of the tasks up to Histograms (other tests may add other
    analyses' runs, or the AGC's fit, to the shared store meanwhile)."""
    chain = {"Generate", "Skim", "Select", "Histogram", "Histograms"}
    return [r for r in runs(store) if r["analysis"] == "agc_ttbar" and r["task"] in chain]


def test_noop_of_the_agc_dag_imports_no_event_processing_library(agc_store, tmp_path):
    config = tmp_path / "agc_ttbar.yaml"
    config.write_text(f"extends: {ROOT / 'configs' / 'agc_ttbar.yaml'}\n")
    before = chain_runs(agc_store)
    proc = law_run("Histograms", config, agc_store, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert chain_runs(agc_store) == before, "the rerun computed a task: not a no-op"
    assert "up to date" in proc.stdout, proc.stdout[-2000:]
    packages = imported_packages(proc.stderr)
    assert "law" in packages and "luigi" in packages, proc.stderr[-2000:]   # the list is read
    heavy = sorted(set(packages) & set(HEAVY))
    assert heavy == [], f"a no-op imported {heavy}; run with PYTHONPROFILEIMPORTTIME=1 to see who"
