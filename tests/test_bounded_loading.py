"""Bounded loading: a config from a stranger never exhausts memory, never reads a device.

Every refusal is a ConfigError naming the file, the line and the key. The cases that would
hang or fill the memory if a check were missing (a YAML bomb, /dev/zero, a FIFO) run in a
subprocess with a memory cap and a timeout, so a regression fails instead of taking the
machine down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from analysis.config import ConfigError
from analysis.config.files import MAX_CONFIG_BYTES
from analysis.load import load_config
from conftest import ROOT

TINY = """name: tiny
datasets:
  d: {kind: data, files: [d.root]}
regions:
  r: {cut: "True"}
"""

# Run by a subprocess: load each config, report (file, line, key, message) or the outcome,
# with the address space capped (1 GiB over what the imports took) and the time measured.
_PROBE = textwrap.dedent("""
    import json, resource, sys, time, tracemalloc
    from analysis.config import ConfigError
    from analysis.load import load_config

    try:
        pages = int(open("/proc/self/statm").read().split()[0])
        vm = pages * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), resource.getrlimit(resource.RLIMIT_AS)[1]))
    except (OSError, ValueError):
        pass
    out = {}
    for path in sys.argv[1:]:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()
        start = time.perf_counter()
        try:
            load_config(path)
            result = {"loaded": True}
        except ConfigError as err:
            result = {"file": err.file, "line": err.line, "key": err.key, "message": err.message}
        result["seconds"] = time.perf_counter() - start
        result["peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        result["rss_growth_bytes"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) * 1024
        out[path] = result
    print(json.dumps(out))
""")


def _probe(*paths) -> dict:
    proc = subprocess.run([sys.executable, "-c", _PROBE, *map(str, paths)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def _refused(path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


def _nine(name: str) -> str:
    return "[" + ",".join([name] * 9) + "]"


def test_yaml_bomb_is_refused_small(tmp_path):
    """9 levels of 9 aliases: 9**9 "lol"s once expanded; refused at the first anchor too big."""
    lines = [f"extends: {ROOT / 'configs' / 'demo.yaml'}", "name: bomb", f'x-a: &a {_nine(chr(34) + "lol" + chr(34))}']
    lines += [f"x-{c}: &{c} {_nine('*' + p)}" for p, c in zip("abcdefgh", "bcdefghi")]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    assert bomb.stat().st_size < 600
    result = _probe(bomb)[str(bomb)]
    assert "loaded" not in result, result
    assert (result["file"], result["line"], result["key"]) == (str(bomb), 8, "x-f")   # &f: 9**6 values
    assert "anchor &f" in result["message"] and "the limit is 200000" in result["message"]
    assert result["peak_bytes"] < 200e6 and result["rss_growth_bytes"] < 200e6, result


def test_devices_and_fifos_are_refused_unread(tmp_path):
    """/dev/zero and FIFOs named by a config, or given as one: refused from a stat, never opened."""
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    cases = {   # file name -> (text, line, key, words of the message)
        "extends_zero.yaml": ("name: x\nextends: /dev/zero\n", 2, "extends", "(/dev/zero is a character device)"),
        "extends_fifo.yaml": (f"extends: {fifo}\nname: x\n", 1, "extends", "is a FIFO"),
        "corrections_zero.yaml": (TINY + "corrections:\n  z: /dev/zero\n", 7, "corrections.z",
                                  "correction file must be a regular file (/dev/zero is a character device)"),
    }
    for name, (text, *_) in cases.items():
        (tmp_path / name).write_text(text)
    results = _probe(*(tmp_path / name for name in cases), fifo, "/dev/zero")
    for name, (_, line, key, words) in cases.items():
        result = results[str(tmp_path / name)]
        assert (result.get("file"), result.get("line"), result.get("key")) == (str(tmp_path / name), line, key), result
        assert words in result["message"] and result["peak_bytes"] < 50e6, result
    for path, words in ((str(fifo), "config must be a regular file"), ("/dev/zero", "is a character device")):
        result = results[path]
        assert (result.get("file"), result.get("line"), result.get("key")) == (path, None, None), result
        assert words in result["message"], result


def test_extends_of_a_directory_names_the_extends_line(tmp_path):
    (tmp_path / "parent").mkdir()
    child = tmp_path / "child.yaml"
    child.write_text("name: x\n\nextends: parent\n")
    err = _refused(child)
    assert (err.file, err.line, err.key) == (str(child), 3, "extends")
    assert "extended config must be a regular file" in err.message and "is a directory" in err.message


def test_extends_chain_is_capped(tmp_path):
    for i in range(25):
        (tmp_path / f"c{i}.yaml").write_text(f"extends: c{i + 1}.yaml\n" if i < 24 else TINY)
    err = _refused(tmp_path / "c0.yaml")
    assert (err.file, err.line, err.key) == (str(tmp_path / "c19.yaml"), 1, "extends")
    assert "longer than 20 configs" in err.message
    assert load_config(tmp_path / "c5.yaml").name == "tiny"            # 20 configs: allowed


def test_a_config_over_the_size_limit_is_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text(TINY + "# padding\n" * (2 * MAX_CONFIG_BYTES // 10))
    err = _refused(big)
    assert (err.file, err.line, err.key) == (str(big), None, None)
    assert err.message == "config is 2 MiB; the limit is 1 MiB"
    child = tmp_path / "child.yaml"
    child.write_text("name: x\nextends: big.yaml\n")
    err = _refused(child)                                        # located on the child's extends line
    assert (err.file, err.line, err.key) == (str(child), 2, "extends")
    assert err.message == "extended config is 2 MiB; the limit is 1 MiB"


NESTED = {   # case -> (text after TINY, line, key, words of the message)
    "deep": ("x-deep: " + "[" * 150 + "]" * 150 + "\n", 6, "x-deep.0.0.0.0.0.0.0....", "nested deeper than 100 levels"),
    "deep_through_aliases": ("x-a: &a " + "[" * 60 + "]" * 60 + "\nx-b: " + "[" * 60 + "*a" + "]" * 60 + "\n",
                             7, "x-b.0.0.0.0.0.0.0....", "nested deeper than 100 levels once its YAML aliases"),
    "recursive_alias": ("x-r: &r [1, *r]\n", 6, "x-r.1", "recursive alias *r"),
    "long_text_through_aliases": ("x-s: &s " + "a" * 500_000 + "\nx-t: [" + ",".join(["*s"] * 40) + "]\n",
                                  7, "x-t", "of text once its YAML aliases are expanded; the limit is 16 MiB"),
    "many_values": ("x-a: &a [" + ",".join(["1"] * 1000) + "]\nx-b: [" + ",".join(["*a"] * 200) + "]\n",
                    7, "x-b", "holds 200201 values once its YAML aliases are expanded; the limit is 200000"),
    "huge_integer": ("x-int: " + "9" * 5000 + "\n", 6, None, "cannot read this value"),
}


@pytest.mark.parametrize("case", sorted(NESTED))
def test_yaml_too_deep_or_too_big_is_refused(tmp_path, case):
    text, line, key, words = NESTED[case]
    path = tmp_path / "nested.yaml"
    path.write_text(TINY + text)
    err = _refused(path)
    assert (err.file, err.line, err.key) == (str(path), line, key)
    assert words in err.message


SIZES = {   # case -> (text after TINY, line, key, message)
    "bins": ("observables:\n  ht: {expr: '1', bins: 100000000, range: [0, 1]}\n", 7, "observables.ht.bins",
             "100000000 is greater than the maximum of 100000"),
    "generator_events": ("  ttbar:\n    kind: mc\n    generator: {process: ttbar, events: 1000000000}\n", 5,
                         "datasets.ttbar.generator.events", "1000000000 is greater than the maximum of 50000000"),
    "demo_events": ("demo: {events: 50000001}\n", 6, "demo.events", "50000001 is greater than the maximum of 50000000"),
    "skim_chunk_size": ("skim:\n  chunk_size: 10000001\n", 7, "skim.chunk_size",
                        "10000001 is greater than the maximum of 10000000"),
    "select_chunk_size": ("select: {chunk_size: 20000000}\n", 6, "select.chunk_size",
                          "20000000 is greater than the maximum of 10000000"),
}


@pytest.mark.parametrize("case", sorted(SIZES))
def test_sizes_a_config_may_ask_for_are_capped(tmp_path, case):
    text, line, key, message = SIZES[case]
    path = tmp_path / "sizes.yaml"
    body = TINY.replace("datasets:\n", "datasets:\n" + text) if case == "generator_events" else TINY + text
    path.write_text(body)
    err = _refused(path)
    assert (err.file, err.line, err.key) == (str(path), line, key)
    assert err.message == message
    assert str(err) == f"{path}:{line}: key '{key}': {message}"


def test_sizes_at_the_limits_load(tmp_path):
    path = tmp_path / "limits.yaml"
    path.write_text(TINY + "observables:\n  ht: {expr: '1', bins: 100000, range: [0, 1]}\n"
                    "demo: {events: 50000000, chunk_size: 10000000}\n")
    cfg = load_config(path)
    assert cfg.observables["ht"]["bins"] == 100_000 and cfg.data["demo"]["events"] == 50_000_000


NAMED_FILES = {   # case -> (parent config, key, text of the fork, words of the message)
    "likelihood_archive": ("sbottom_regionA.yaml", "likelihood.archive",
                           "likelihood:\n  archive: {target}\n", "likelihood archive must be a regular file"),
    "external_histograms": ("agc_reference_5files.yaml", "external_histograms.file",
                            "external_histograms:\n  file: {target}\n", "external histogram file must be a regular file"),
}


@pytest.mark.parametrize("case", sorted(NAMED_FILES))
def test_other_files_a_config_names_must_be_regular(tmp_path, case):
    """A published-likelihood archive or an external histogram file: checked at load time."""
    parent, key, text, words = NAMED_FILES[case]
    (tmp_path / "folder.tar.gz").mkdir()
    fork = tmp_path / "fork.yaml"
    fork.write_text(f"extends: {ROOT / 'configs' / parent}\n" + text.format(target="folder.tar.gz"))
    err = _refused(fork)
    assert (err.file, err.line, err.key) == (str(fork), 3, key)
    assert words in err.message and "is a directory" in err.message
