"""Shared fixtures: a tiny demo config, stores in temporary folders, law subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
VENV_BIN = Path(sys.executable).parent
# plugin approvals made by tests go to a file of their own (never the user's ~/.config)
os.environ["HEIRLOOM_TRUST_FILE"] = str(Path(tempfile.mkdtemp(prefix="heirloom-trust-")) / "trusted.sha256")
os.environ.pop("HEIRLOOM_TRUSTED_PLUGINS", None)


#: the longest test modules, longest first (seconds of work in a fresh-clone CI run with two
#: workers on 2026-12-03: 224, 166, 156, 109, 94, 86, 79, 72, 67, 58, 51, 42, 34, 28, 25, 23,
#: 22). pytest-xdist hands whole modules to the workers in collection order (``--dist
#: loadfile --no-loadscope-reorder`` in setup.sh), so these start first and the two workers
#: end together; the rest follow in their usual order.
LONGEST_FIRST = ("test_docs_readme.py", "test_container_workflows.py", "test_optimise_task.py", "test_external.py",
                 "test_docs_tutorial.py", "test_jax_model.py", "test_pipeline.py", "test_store_integrity.py",
                 "test_key_soundness.py", "test_slurm.py", "test_remote_store.py", "test_export.py",
                 "test_ci_cache.py", "test_upstream_store.py", "test_real_files.py", "test_robustness.py",
                 "test_remote_inputs.py")


def pytest_collection_modifyitems(config, items) -> None:
    here = Path(__file__).parent
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)) if item.path.parent == here else len(rank))


def trust_plugin(path: Path) -> None:
    """Approve a plugin file a test wrote (as `heirloom trust FILE` would)."""
    from analysis.lang.trust import trust

    trust(path)


def requires_shared(*parts):
    """Skip (with a message) when ../shared/data is absent, as on a user's machine."""
    path = SHARED.joinpath(*parts)
    return pytest.mark.skipif(not path.exists(), reason=f"needs {path} (../shared/data is absent here)")


def write_config(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


SMALL_DEMO = """
extends: {demo}
name: {name}
demo:
  seed: {seed}
  events: 6000
  inject: {{ttbar: {inject}}}
lumi: {lumi}
datasets:
  ttbar: {{generator: {{process: ttbar, events: 12000}}}}
  single_top_s_chan: {{generator: {{process: single_top_s_chan, events: 3000}}}}
  single_top_t_chan: {{generator: {{process: single_top_t_chan, events: 3000}}}}
  single_top_tW: {{generator: {{process: single_top_tW, events: 3000}}}}
  wjets: {{generator: {{process: wjets, events: 60000}}}}   # W+jets: 15487 pb, many events per selected one
skim:
  chunk_size: {chunk_size}
fit:                      # the impact ranking costs ~4 fits per parameter: tested in test_external
  ranking: false
  significance: false
"""


def small_demo(folder: Path, name="tiny", seed=7, inject=1.0, lumi=3.0, extra="", chunk_size=15_000) -> Path:
    """A fork of configs/demo.yaml small enough for a test (seconds, not minutes). Its
    Skim chunks (``chunk_size``): several for data and W+jets, one for the others (a
    smaller size gives ttbar several, at a few seconds more per chain)."""
    text = SMALL_DEMO.format(demo=ROOT / "configs" / "demo.yaml", name=name, seed=seed, inject=inject, lumi=lumi,
                             chunk_size=chunk_size)
    return write_config(folder, f"{name}.yaml", text + extra)


def law_run(task: str, config: Path, store: Path, *args, check=True, timeout=600,
            env=None) -> subprocess.CompletedProcess:
    """``law run <task> --config <config>`` in a subprocess with its own store (``env``:
    more environment variables for it, e.g. the AWS_* of an S3 server)."""
    env = dict(os.environ, **(env or {}), HEIRLOOM_STORE=str(store), PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    proc = subprocess.run([str(VENV_BIN / "law"), "run", task, "--config", str(config), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"law run {task} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def runs(store: Path) -> list:
    path = store / "runs.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def linked_copy(store: Path, dest: Path) -> Path:
    """A private store with the committed objects of ``store`` (hard links: objects are
    never written after their commit) and its ``by-name`` view, but none of its mutable
    files (run log, locks, staging): a test may remove and recompute outputs there
    without touching the shared store."""
    dest.mkdir(parents=True)
    for part, flags in (("objects", "-al"), ("by-name", "-a")):      # by-name: relative links, kept as links
        if (store / part).exists():
            subprocess.run(["cp", flags, str(store / part), str(dest / part)], check=True)
    return dest


def compiled(objective, layout, yields) -> float:
    """``objective(layout, yields)`` of :mod:`analysis.stats.jax_objectives` through
    ``jax.jit``, as the Optimise task calls it (about a second for the AGC's POI
    uncertainty; op by op, as an eager call runs it, over ten)."""
    import jax

    return float(jax.jit(lambda y: objective(layout, y))(yields))


@pytest.fixture
def store(tmp_path) -> Path:
    return tmp_path / "store"


ROUND_TRIP = """\
extends: tiny.yaml
name: roundtrip
datasets: {single_top_s_chan: null, single_top_t_chan: null, single_top_tW: null}
model: {samples: {single_top: null}}
skim: {chunk_size: 50000}
"""


@pytest.fixture(scope="session")
def roundtrip(tmp_path_factory):
    """A small analysis run with ``law run Fit``: its config and store (the reference that
    the exported workflows must reproduce)."""
    folder = tmp_path_factory.mktemp("roundtrip")
    small_demo(folder, name="tiny")
    config = write_config(folder, "roundtrip.yaml", ROUND_TRIP)
    law_run("Fit", config, folder / "law-store")
    return config, folder / "law-store"


@pytest.fixture(scope="session")
def agc_store(tmp_path_factory) -> Path:
    """A store holding the full AGC analysis on generated data up to its histograms (what
    `./setup.sh demo` computes before the fit), shared by the tests that build on it.
    Under pytest-xdist the workers share one store: the store's per-key locks let each
    task be computed once, and a worker that finds a task being computed waits for it."""
    base = tmp_path_factory.getbasetemp()
    store = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "agc-store"
    config = tmp_path_factory.mktemp("agc") / "agc_ttbar.yaml"
    config.write_text(f"extends: {ROOT / 'configs' / 'agc_ttbar.yaml'}\n")
    law_run("Histograms", config, store, "--executor", "futures", "--workers", "2")
    return store


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (each test module's servers get
    their own, so pytest-xdist workers never share one)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _service(name: str, state: Path):
    """Start ``tests/services/<name>.sh`` on a free port; yield the environment its clients
    need; stop it afterwards."""
    script = ROOT / "tests" / "services" / f"{name}.sh"
    started = subprocess.run(["bash", str(script), "start", str(state), str(free_port())],
                             capture_output=True, text=True, timeout=120)
    if started.returncode != 0:
        pytest.fail(f"{script.name} could not start the server (./setup.sh test installs it):\n{started.stderr}")
    try:
        env = subprocess.run(["bash", str(script), "env", str(state)], capture_output=True, text=True,
                             check=True).stdout
        yield dict(line.split("=", 1) for line in env.splitlines() if "=" in line)
    finally:
        subprocess.run(["bash", str(script), "stop", str(state)], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def xrootd_server():
    """A real XRootD server on 127.0.0.1 (Debian xrootd-server): ``{"HEIRLOOM_XROOTD_URL":
    "root://127.0.0.1:PORT/", "HEIRLOOM_XROOTD_DATA": the folder it serves}``. Its folder
    is outside pytest's (private to root): the server runs as user daemon."""
    import shutil

    state = Path(tempfile.mkdtemp(prefix="heirloom-xrootd-"))
    state.chmod(0o755)
    try:
        yield from _service("xrootd", state)
    finally:
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """A real S3 server on 127.0.0.1 (moto's standalone server): the AWS_* variables that
    point clients at it (AWS_ENDPOINT_URL, keys, region)."""
    yield from _service("s3", tmp_path_factory.mktemp("s3"))
