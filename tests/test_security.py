"""A stranger's config cannot hurt you (docs/security.md lists these attacks and outcomes).

Configs never run code: plugins are files, run only when trusted; the expression sandbox
lets only event data flow; names cannot write outside the store. Each test asserts the
safe outcome: a canary file proves no command ran, files outside the store survive.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import awkward as ak
import pytest

from analysis.errors import ConfigError, ExpressionError, StoreError
from analysis.lang.expr import evaluate
from analysis.load import load_config
from conftest import ROOT, VENV_BIN, law_run, small_demo, trust_plugin


def heirloom(*args, store: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, HEIRLOOM_STORE=str(store))
    return subprocess.run([str(VENV_BIN / "heirloom"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def evil_plugin(folder: Path, canary: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "evil.py"
    path.write_text(f"import os\nfrom os import system\nopen({str(canary)!r}, 'w').write('ran')\n"
                    "def double(x):\n    return 2 * x\n")
    return path


# --- a config runs no code ----------------------------------------------------------------

def test_module_name_plugin_is_refused(tmp_path):
    canary = tmp_path / "canary"
    config = small_demo(tmp_path, extra="plugins:\n  sp: subprocess\nobjects:\n  jets:\n    from: Jet\n"
                        f"    where: \"Jet.pt > min(30, sp.call('id > {canary}', shell=True) + 30)\"\n")
    with pytest.raises(ConfigError) as err:
        load_config(config)
    assert "files only" in str(err.value) and err.value.key == "plugins.sp" and err.value.line is not None
    assert not canary.exists()


def test_untrusted_plugin_never_runs_not_even_for_show(tmp_path, store):
    canary = tmp_path / "canary"
    evil_plugin(tmp_path / "elsewhere", canary)
    config = small_demo(tmp_path / "cfg", extra="plugins:\n  ev: ../elsewhere/evil.py\n") \
        if (tmp_path / "cfg").mkdir() is None else None
    proc = heirloom("show", "--config", str(config), store=store)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "not trusted" in lines[0] and "heirloom trust" in lines[0] and "evil.py" in lines[0]
    proc = law_run("Select", config, store, "--dataset", "ttbar", "--print-output", "0", check=False)
    assert proc.returncode != 0
    assert not canary.exists() and not (store / "objects").exists()


def test_trusted_plugin_runs_its_own_functions_only_and_an_edit_withdraws_trust(tmp_path):
    canary = tmp_path / "canary"
    plugin = evil_plugin(tmp_path / "plugins", canary)
    trust_plugin(plugin)
    config = small_demo(tmp_path, extra="plugins:\n  ev: plugins/evil.py\n")
    cfg = load_config(config)
    assert not canary.exists()                       # loading reads the file; it does not run it
    functions = cfg.plugin_functions()
    assert "ev.double" in functions and "ev.system" not in functions   # imported names are not exports
    with pytest.raises(ExpressionError, match="not allowed"):
        evaluate("ev.system('id')", {}, plugins=functions)
    assert evaluate("ev.double(x)", {"x": 21}, plugins=functions) == 42 and canary.exists()
    plugin.write_text(plugin.read_text() + "\n# edited\n")
    with pytest.raises(ConfigError, match="not trusted"):
        load_config(config)


def test_plugin_edited_after_the_check_does_not_run(tmp_path):
    canary = tmp_path / "canary"
    plugin = tmp_path / "plugins" / "late.py"
    plugin.parent.mkdir()
    plugin.write_text("def double(x):\n    return 2 * x\n")
    trust_plugin(plugin)
    functions = load_config(small_demo(tmp_path, extra="plugins:\n  late: plugins/late.py\n")).plugin_functions()
    plugin.write_text(f"open({str(canary)!r}, 'w').write('ran')\ndef double(x):\n    return 2 * x\n")
    with pytest.raises(ExpressionError, match="changed since it was trusted"):
        evaluate("late.double(x)", {"x": 1}, plugins=functions)
    assert not canary.exists()


# --- the sandbox holds by construction ----------------------------------------------------

@pytest.fixture(scope="module")
def jets():
    from coffea.nanoevents.methods import vector

    return ak.zip({"pt": [[40.0, 50.0, 60.0, 70.0], [60.0]], "eta": [[0.1, 0.2, 0.3, 0.4], [0.3]],
                   "phi": [[0.0, 1.0, 2.0, 3.0], [2.0]], "mass": [[1.0] * 4, [1.0]]},
                  with_name="PtEtaPhiMLorentzVector", behavior=vector.behavior)


@pytest.mark.parametrize("text", [
    "Jet.azimuthal.lib.f2py.os.environ['HOME']",
    "Jet.azimuthal.lib.f2py.sys.modules['law.config'].mod['__builtins__']['eval']",
    "(ak.num(jets) >= 4) & ((jets[:, :1]).azimuthal.lib.f2py.os.environ['HOME'] == '/root')",
    "Jet.layout", "Jet.behavior", "Jet.attrs", "Jet.pt.layout",
    "ak.num(Jet, highlevel=False)",
])
def test_no_module_function_or_dict_is_ever_a_value(jets, text):
    with pytest.raises(ExpressionError) as err:
        evaluate(text, {"Jet": jets, "jets": jets})
    assert any(words in str(err.value) for words in ("may not use", "only", "not allowed"))


def test_a_cut_reading_the_environment_fails_the_task_in_one_line(tmp_path, store):
    cut = "(ak.num(jets) >= 4) & ((jets[:, :1]).azimuthal.lib.f2py.os.environ['HOME'] == '/root')"
    config = tmp_path / "leak.yaml"
    config.write_text(f"extends: {small_demo(tmp_path)}\nselection:\n"
                      "  - {name: one_lepton, cut: '(ak.num(electrons) + ak.num(muons)) == 1'}\n"
                      f"  - {{name: four_jets, cut: \"{cut}\"}}\n")
    load_config(config)                  # it passes the config check: only evaluation can catch it
    proc = law_run("Select", config, store, "--dataset", "ttbar", check=False)
    said = [line for line in proc.stderr.splitlines() if line.startswith("heirloom:")]
    assert proc.returncode != 0 and len(said) == 1 and "may not use" in said[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not list((store / "objects").glob("Select/*/*"))


def test_subscripts_take_fields_integers_slices_and_masks_only(jets):
    assert evaluate("ak.num(Jet.pt[Jet.pt > 45])", {"Jet": jets}).tolist() == [3, 1]
    assert evaluate("Jet[:, :1].pt", {"Jet": jets}).tolist() == [[40.0], [60.0]]
    for text in ("Jet.pt[1.5]", "ak.sum(Jet.pt[:, None] * Jet.pt[None, :])"):    # None: an N x N broadcast
        with pytest.raises(ExpressionError, match="subscript"):
            evaluate(text, {"Jet": jets})


@pytest.mark.parametrize("text", ["np.power(Jet.pt, 3, dtype='O')", "np.clip(x, 0, 1, out=x)",
                                  "(1 << 90000) * (1 << 90000)"])
def test_keywords_that_write_or_retype_and_huge_integers_are_refused(jets, text):
    import numpy as np

    x = np.arange(3.0)
    with pytest.raises(ExpressionError, match="not allowed|too large"):
        evaluate(text, {"Jet": jets, "x": x})
    assert x.tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("text", ["ak.combinations(Jet, 3)", "ak.cartesian([Jet, Jet, Jet, Jet])",
                                  "ak.pad_none(Jet.pt, 1000000000)", "Jet.metric_table(Jet)",
                                  "Jet.nearest(Jet, axis=0)", "ak.pad_none(ak.combinations(Jet, 1), 100, 2)",
                                  "ak.cartesian([ak.mask(Jet, Jet.pt > 0), Jet, Jet])", "ak.combinations(Jet, 99)",
                                  "ak.pad_none(Jet.pt, 1000, axis=-1)"])
def test_combinatorics_are_bounded_before_they_run(jets, text, monkeypatch):
    from analysis.lang import sandbox

    many = ak.concatenate([jets[:1, :1]] * 20, axis=1)[[0] * 1000]    # 1000 events of 20 jets
    monkeypatch.setattr(sandbox, "MAX_ENTRIES", 300_000)
    with pytest.raises(ExpressionError, match="the limit is|takes n from"):
        evaluate(text, {"Jet": many})
    assert ak.sum(ak.num(evaluate("ak.combinations(Jet, 2)", {"Jet": many}))) == 190_000   # allowed


def test_heirloom_modules_are_not_plugins(tmp_path):
    config = small_demo(tmp_path, extra=f"plugins:\n  c: {ROOT / 'tasks' / 'cli.py'}\n")
    with pytest.raises(ConfigError, match="not trusted"):
        load_config(config)


def test_the_repository_trust_file_lists_exactly_its_plugins():
    from analysis.lang.trust import read_trust_file, repository_trust_file, sha256_hex

    plugins = sorted((ROOT / "configs" / "plugins").glob("*.py"))
    assert plugins and read_trust_file(repository_trust_file()) == {sha256_hex(p.read_bytes()) for p in plugins}, \
        "update it: (cd configs && sha256sum plugins/*.py > trusted-plugins.sha256)"


# --- names cannot write outside the store -------------------------------------------------

def test_a_dataset_name_cannot_escape_the_store(tmp_path):
    victim = tmp_path / "some" / "file"
    victim.parent.mkdir()
    victim.write_text("precious")
    base = small_demo(tmp_path)
    config = tmp_path / "fork.yaml"
    config.write_text(f"extends: {base}\ndatasets:\n  ../../../../../some/file:\n"
                      "    kind: mc\n    xsec: 1.0\n    generator: {process: ttbar, events: 100}\n")
    with pytest.raises(ConfigError) as err:
        load_config(config)
    assert "../../../../../some/file" in str(err.value)
    assert victim.read_text() == "precious"


def test_store_refuses_paths_that_leave_it(tmp_path):
    from analysis.store import objects

    root = tmp_path / "store"
    target = objects.entry("Select", "ab" * 20, root)
    for label in ("../../../../x", "..", "a/b", ""):
        with pytest.raises(StoreError, match="plain name"):
            objects.link_by_name(target, "demo", label)
    with pytest.raises(StoreError):
        objects.entry("../Select", "ab" * 20, root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "by-name").mkdir(parents=True)
    (root / "by-name" / "demo").symlink_to(outside)          # a planted link
    with pytest.raises(StoreError, match="outside the store"):
        objects.link_by_name(target, "demo", "x")
    assert list(outside.iterdir()) == []


def test_an_empty_file_list_is_a_located_config_error(tmp_path):
    config = tmp_path / "fork.yaml"
    config.write_text(f"extends: {small_demo(tmp_path)}\ndatasets:\n  ttbar:\n    files: []\n")
    with pytest.raises(ConfigError) as err:
        load_config(config)
    assert err.value.key == "datasets.ttbar.files" and err.value.line == 4 and "non-empty" in str(err.value)


def test_names_with_a_trailing_newline_and_kernel_files_are_refused(tmp_path):
    base = small_demo(tmp_path)
    newline = tmp_path / "newline.yaml"
    newline.write_text(f'extends: {base}\nname: "tiny\\n"\n')
    proc = tmp_path / "proc.yaml"
    proc.write_text("extends: /proc/self/environ\nname: x\n")
    for config, key in ((newline, "name"), (proc, "extends")):
        with pytest.raises(ConfigError) as err:
            load_config(config)
        assert err.value.key == key, str(err.value)


def test_a_planted_link_in_the_store_stops_the_run(tmp_path):
    victim = tmp_path / "victim"
    (victim / "important").mkdir(parents=True)
    old = 1_000_000_000
    os.utime(victim / "important", (old, old))
    store = tmp_path / "store"
    store.mkdir()
    (store / "tmp").symlink_to(victim)
    proc = law_run("Generate", small_demo(tmp_path), store, "--dataset", "ttbar", check=False)
    assert proc.returncode != 0 and "symbolic link" in proc.stdout + proc.stderr
    assert (victim / "important").is_dir()
    verify = heirloom("verify", "--all", store=store)
    assert verify.returncode == 1 and "symbolic link" in verify.stderr


def test_histograms_too_big_for_memory_are_refused_at_load(tmp_path):
    regions = "".join(f"  r{i}: {{cut: 'ak.num(jets) >= 4', observable: big}}\n" for i in range(40))
    config = tmp_path / "big.yaml"
    config.write_text(f"extends: {small_demo(tmp_path)}\nobservables:\n"
                      "  big: {expr: 'MET.pt', bins: 100000, range: [0, 500]}\n"
                      f"regions:\n{regions}")
    with pytest.raises(ConfigError) as err:
        load_config(config)
    assert "cells" in str(err.value) and err.value.key.startswith("regions.r")


def test_heirloom_trust_approves_a_file_by_content(tmp_path, store):
    plugin = tmp_path / "plugins" / "mine.py"
    plugin.parent.mkdir()
    plugin.write_text("def double(x):\n    return 2 * x\n")
    config = small_demo(tmp_path, extra="plugins:\n  mine: plugins/mine.py\n")
    env = dict(os.environ, HEIRLOOM_TRUST_FILE=str(tmp_path / "trusted.sha256"))
    run = lambda *args: subprocess.run([str(VENV_BIN / "heirloom"), *args], cwd=ROOT, env=env,  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    assert run("show", "--config", str(config)).returncode == 2
    done = run("trust", str(plugin))
    assert done.returncode == 0 and "trusted" in done.stdout
    assert run("show", "--config", str(config)).returncode == 0
    missing = run("trust", str(tmp_path / "nowhere.py"))
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1


def test_odd_plugin_paths_and_correction_files_are_located_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    for extra, key in (('plugins:\n  p: "a\\0.py"\n', "plugins.p"), (f"corrections:\n  c: {bad}\n", "corrections.c")):
        folder = tmp_path / key
        folder.mkdir()
        with pytest.raises(ConfigError) as err:
            load_config(small_demo(folder, extra=extra))
        assert err.value.key == key, str(err.value)


def test_gc_refuses_a_config_whose_keys_it_cannot_compute(tmp_path):
    from analysis.errors import HeirloomError
    from tasks.maintenance import reachable

    config = tmp_path / "missing.yaml"
    config.write_text(f"extends: {ROOT / 'configs' / 'cms2015_files.yaml'}\nname: gone\n"
                      f"datasets:\n  ttbar_2015:\n    files: ['{tmp_path / 'nowhere.root'}']\n")
    with pytest.raises(HeirloomError, match="cannot compute the key"):
        reachable([str(config)])
