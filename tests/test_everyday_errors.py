"""Everyday mistakes, as a new user makes them, through real ``law run`` subprocesses.

Before any task runs, each of these is at most five lines with the config's file:line and
key: the operator-precedence slip, an expression that fails on the input files' types, a
misspelt branch, and a wrong explicit file path. A run that fails in a task says so in one
line, ends with a summary that names the run's log, and retries nothing deterministic.
A run prints task k of N as tasks finish; a no-op prints one line.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import ROOT, SHARED, law_run, small_demo, write_config

SHIPPED = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if p.name != "base.yaml")    # adl/base.yaml: a parent


def lines_of(proc) -> list:
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]


def line_number(config: Path, text: str) -> int:
    return next(i for i, line in enumerate(config.read_text().splitlines(), 1) if text in line)


def refused_before_any_task(proc, store: Path) -> list:
    lines = lines_of(proc)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert 1 <= len(lines) <= 5, "\n".join(lines)
    assert not (store / "objects").exists()
    return lines


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_every_shipped_config_passes_the_checks_before_the_loop(path, tmp_path):
    """No false alarm: every config in configs/ passes the name and type checks (those
    that read ../shared/data where it exists)."""
    from analysis.errors import InputFileError
    from analysis.io.fileid import Manifest
    from analysis.load import check_inputs, load_config

    cfg = load_config(path)
    try:
        check_inputs(cfg, Manifest(tmp_path), tmp_path / "checks.json")
    except InputFileError as err:
        if "shared/data" in err.path and not SHARED.exists():
            pytest.skip(f"needs {SHARED}")
        raise


def test_generated_files_have_the_generators_branch_types(tmp_path):
    from analysis.io.demo_streams import BRANCH_TYPES
    from analysis.io.generate import generate_file
    from analysis.io.schema import file_types

    generate_file(tmp_path / "events.root", "ttbar", 200, 1)
    assert file_types(str(tmp_path / "events.root")) == BRANCH_TYPES


def test_a_passed_check_is_remembered_and_a_change_checks_again(tmp_path):
    from analysis.io.demo_streams import BRANCH_TYPES
    from analysis.load import load_config
    from analysis.select.typecheck import check_types_once

    cache = tmp_path / "checks.json"
    cfg = load_config(small_demo(tmp_path, name="cached"))
    assert check_types_once(cfg, {"ttbar": BRANCH_TYPES}, cache)
    assert not check_types_once(cfg, {"ttbar": BRANCH_TYPES}, cache)
    assert check_types_once(cfg, {"ttbar": dict(BRANCH_TYPES, MET_pt="float64")}, cache)


def test_precedence_slip_is_one_located_line_with_the_fix(tmp_path, store):
    config = small_demo(tmp_path, name="slip", extra='objects:\n  jets:\n    where: "Jet.pt > 30 & abs(Jet.eta) < 2.4"\n')
    proc = law_run("Plot", config, store, check=False, timeout=120)
    refused_before_any_task(proc, store)
    assert f"{config}:{line_number(config, 'where:')}: key 'objects.jets.where':" in proc.stderr
    assert "reads as 'Jet.pt > (30 & abs(Jet.eta)) < 2.4'" in proc.stderr
    assert "(hint: wrap each comparison in parentheses: (Jet.pt > 30) & (abs(Jet.eta) < 2.4))" in proc.stderr


def test_precedence_slip_in_a_region_cut(tmp_path, store):
    config = small_demo(tmp_path, name="slip_region",
                        extra='regions:\n  4j1b: {cut: "ak.num(bjets) == 1 & ak.num(jets) >= 4"}\n')
    proc = law_run("Plot", config, store, check=False, timeout=120)
    refused_before_any_task(proc, store)
    assert f"{config}:{line_number(config, '4j1b:')}: key 'regions.4j1b.cut':" in proc.stderr
    assert "(ak.num(bjets) == 1) & (ak.num(jets) >= 4)" in proc.stderr


def test_type_errors_are_found_on_type_only_arrays(tmp_path, store):
    """What only types reveal: a bitwise & of a float, and a cut with one value per jet."""
    config = small_demo(tmp_path, name="types", extra='objects:\n  muons:\n    where: "Muon.tightId & Muon.pt > 30"\n')
    proc = law_run("Plot", config, store, check=False, timeout=300)
    refused_before_any_task(proc, store)
    assert f"{config}:{line_number(config, 'where:')}: key 'objects.muons.where':" in proc.stderr
    assert "fails on the input files' types" in proc.stderr
    assert "(hint: wrap each comparison in parentheses: Muon.tightId & (Muon.pt > 30))" in proc.stderr
    config = small_demo(tmp_path, name="jagged", extra='regions:\n  4j1b: {cut: "bjets.pt > 30"}\n')
    proc = law_run("Plot", config, store, check=False, timeout=300)
    refused_before_any_task(proc, store)
    assert f"{config}:{line_number(config, '4j1b:')}: key 'regions.4j1b.cut':" in proc.stderr
    assert "gives one value per object, not one per event" in proc.stderr


def test_a_misspelt_branch_names_the_closest(tmp_path, store):
    config = small_demo(tmp_path, name="typo", extra='objects:\n  jets:\n    where: "Jet.ptt > 30"\n')
    proc = law_run("Plot", config, store, check=False, timeout=120)
    refused_before_any_task(proc, store)
    assert f"{config}:{line_number(config, 'where:')}: key 'objects.jets.where':" in proc.stderr
    assert "no branch 'Jet_ptt' (hint: did you mean 'pt'?)" in proc.stderr


def test_a_wrong_file_path_names_the_config_line(tmp_path, store):
    small_demo(tmp_path, name="tiny")
    config = write_config(tmp_path, "badpath.yaml", "extends: tiny.yaml\nname: badpath\ndatasets:\n"
                          "  wjets:\n    generator: null\n    files: [nonexistent.root]\n")
    proc = law_run("Plot", config, store, check=False, timeout=120)
    lines = refused_before_any_task(proc, store)
    assert f"cannot read input file {tmp_path / 'nonexistent.root'}: No such file or directory" in lines[-1]
    assert f"(listed at {config}:6 key 'datasets.wjets.files.0')" in lines[-1]


def test_progress_then_one_line_for_a_no_op(tmp_path, store):
    config = small_demo(tmp_path, name="progress")
    args = ("--dataset", "single_top_s_chan", "--workers", "2")
    first = law_run("Select", config, store, *args, timeout=300)
    steps = re.findall(r"^\[(\d+)/(\d+) [\d.]+ s\] (\w+\[[\w-]+\]) done in [\d.]+ s$", first.stdout, re.MULTILINE)
    assert [(int(k), int(n)) for k, n, _ in steps] == [(k, 3) for k in (1, 2, 3)], first.stdout
    assert [task for *_, task in steps] == ["Generate[single_top_s_chan]", "Skim[single_top_s_chan__0]",
                                            "Select[single_top_s_chan]"]
    again = law_run("Select", config, store, *args, timeout=120)
    assert lines_of(again) == ["3 tasks up to date"]


def test_a_failing_task_is_one_line_a_summary_and_a_log(tmp_path, store):
    """An observable that indexes a fifth jet fails in the event loop (events with four
    jets): deterministic, so not retried; the terminal gets no traceback, the log does."""
    config = small_demo(tmp_path, name="failing",
                        extra='observables:\n  ht: {expr: "jets.pt[:, 4]"}\n')
    proc = law_run("Select", config, store, "--dataset", "single_top_s_chan", check=False, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Traceback" not in out and "Performed attempt" not in out
    assert re.search(r"^\[3/3 [\d.]+ s\] Select\[single_top_s_chan\] FAILED: .*IndexError", proc.stderr, re.MULTILINE)
    summary = proc.stderr[proc.stderr.index("heirloom: 1 task failed"):].splitlines()
    assert len(summary) == 3 and summary[1].startswith("  Select[single_top_s_chan]: ")
    log = Path(summary[2].rsplit(": ", 1)[1])
    log = log if log.is_absolute() else Path(__file__).resolve().parent.parent / log
    assert log.parent == store / "logs" and "Traceback" in log.read_text()
    debug = law_run("Select", config, store, "--dataset", "single_top_s_chan", "--debug", check=False, timeout=300)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


@pytest.mark.parametrize("text, refused", [
    ("Jet.pt > 30 & abs(Jet.eta) < 2.4", True), ("nJet >= 4 & nMuon == 1", True), ("Jet.pt > 30 & Jet.isTight", True),
    ("Jet.pt > 30 | Jet.pt < 10 & Jet.eta > 0", True), ("(Jet.pt > 30) & (abs(Jet.eta) < 2.4)", False),
    ("Jet.jetId & 4 > 0", False), ("(Jet.jetId & 4) > 0", False), ("30 < Jet.pt < 50", False),
    ("Jet.pt > (30 & Jet.mask) < 2", False), ("ak.num(jets[jets.pt > 30 & jets.eta < 2]) > 0", True),
])
def test_the_precedence_slip_is_refused_when_reading_the_config(text, refused):
    from analysis.errors import ExpressionError
    from analysis.lang.expr import compile_expression

    if not refused:
        compile_expression(text)
        return
    with pytest.raises(ExpressionError, match="binds tighter than comparisons") as err:
        compile_expression(text)
    assert err.value.reason == "operator precedence" and "(hint: wrap each comparison in parentheses: (" in str(err.value)
