"""Key format 2 in the record, and what `heirloom why` says about older or changed outputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from conftest import ROOT, VENV_BIN, law_run, small_demo


def why(config, store, *args) -> str:
    env = dict(os.environ, HEIRLOOM_STORE=str(store))
    proc = subprocess.run([str(VENV_BIN / "heirloom"), "why", *args, "--config", str(config)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_records_hold_key_format_2_code_identity_and_environment(tmp_path, store):
    config = small_demo(tmp_path)
    law_run("Generate", config, store, "--dataset", "ttbar")
    record = json.loads((store / "by-name" / "tiny" / "Generate" / "ttbar" / "provenance.json").read_text())
    components = record["components"]
    assert components["key_format"] == 2
    assert set(components["code"]) == {"identity", "plugins"} and len(components["code"]["identity"]) == 64
    assert components["environment"]["numpy"] and components["environment"]["coffea"]
    assert "tasks.inputs:Generate" in record["code_units"]
    assert str(ROOT) not in json.dumps(components) and str(tmp_path) not in json.dumps(components)   # no paths


def _as_if_the_last_run_had(config, store, change) -> None:
    """Run Generate[ttbar], then move its output to another key with ``change`` applied to its
    provenance record, as an earlier Heirloom or older code would have left it."""
    law_run("Generate", config, store, "--dataset", "ttbar")
    link = store / "by-name" / "tiny" / "Generate" / "ttbar"
    current = link.resolve()
    record = json.loads((current / "provenance.json").read_text())
    change(record)
    old = current.parent / ("0" * 40)
    shutil.move(current, old)
    (old / "provenance.json").write_text(json.dumps(record))
    link.unlink()
    link.symlink_to(os.path.relpath(old, link.parent))


def test_why_says_key_format_changed_for_an_output_of_format_1(tmp_path, store):
    def format_1(record):
        components = {k: v for k, v in record["components"].items() if k not in ("key_format", "environment")}
        components["code"] = {"heirloom": "0.1.0", "modules": {"generate": "1a5543b1f79acf10"}}
        record["components"] = components

    config = small_demo(tmp_path)
    _as_if_the_last_run_had(config, store, format_1)
    text = why(config, store, "Generate", "--dataset", "ttbar")
    assert "WOULD RUN" in text and "key format changed (1 -> 2)" in text


def test_why_names_the_code_that_changed(tmp_path, store):
    """A changed unit is named by module and definition (from the last run's provenance)."""
    def older_code(record):
        record["components"]["code"]["identity"] = "f" * 64
        record["code_units"]["analysis.io.generate:generate_events"] = "0" * 16

    config = small_demo(tmp_path)
    _as_if_the_last_run_had(config, store, older_code)
    text = why(config, store, "Generate", "--dataset", "ttbar")
    assert "code changed: analysis.io.generate:generate_events" in text
