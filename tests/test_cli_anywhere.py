"""``law run`` and ``heirloom`` from any folder of the checkout (tasks/checkout.py), and a
mistyped task name answered with the closest one."""

from __future__ import annotations

import os
import subprocess

from conftest import ROOT, VENV_BIN, small_demo


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAW_") and k != "HEIRLOOM_STORE"}
    return dict(env, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}", **extra)


def _run(args, cwd, **env) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / args[0]), *args[1:]], cwd=cwd, env=_env(**env), capture_output=True,
                          text=True, timeout=300)


def test_law_run_from_a_subfolder_uses_the_checkouts_index_and_store():
    proc = _run(["law", "run", "Plot", "--config", "../configs/demo.yaml", "--print-output", "0"], ROOT / "docs")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert str(ROOT / "store" / "objects" / "Plot") in proc.stdout        # the checkout's store, not docs/store
    assert not (ROOT / "docs" / "store").exists()


def test_a_mistyped_task_gets_the_closest_name_and_the_list():
    proc = _run(["law", "run", "Plott", "--config", "../configs/demo.yaml"], ROOT / "docs")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == "law run: no task 'Plott'; did you mean 'Plot'?"
    assert len(lines) == 2 and all(name in lines[1] for name in ("Select", "Fit", "Ranking", "All"))
    assert "BatchBranches" not in lines[1] and "HeirloomTask" not in lines[1]
    lowercase = _run(["law", "run", "select", "--config", "configs/demo.yaml"], ROOT)
    assert "did you mean 'Select'?" in lowercase.stderr


def test_heirloom_and_law_outside_the_checkout_use_the_installed_one(tmp_path):
    small_demo(tmp_path, name="tiny")
    store = tmp_path / "store"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ran = _run(["law", "run", "Select", "--config", "../tiny.yaml", "--dataset", "ttbar"], elsewhere,
               HEIRLOOM_STORE=str(store))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (store / "by-name" / "tiny" / "Select" / "ttbar" / "provenance.json").is_file()
    why = _run(["heirloom", "why", "Select", "--config", "../tiny.yaml", "--dataset", "ttbar"], elsewhere,
               HEIRLOOM_STORE=str(store))
    assert why.returncode == 0 and "up to date" in why.stdout, why.stdout + why.stderr
