"""containers/: what can be checked without building (the build itself and runs on the
image: tests/test_container_workflows.py).

The Dockerfile installs exactly requirements.lock (with its hashes) with the uv version
setup.sh pins, byte-code compiled, then the package with --no-deps and the law index;
it copies exactly the files whose hash names the image (tasks/export/image.py), so a
changed file names another image; the runner image pins the same uv; the apptainer
definition converts the image itself; .dockerignore keeps the store and the virtual
environments out of the build context; the entry point runs commands in the folder it
starts in.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

from conftest import ROOT

CONTAINERS = ROOT / "containers"
HOME = "/opt/heirloom"


def setup_uv_version() -> str:
    found = re.findall(r"^UV_VERSION=(\S+)$", (ROOT / "setup.sh").read_text(), re.M)
    assert len(found) == 1, found
    return found[0]


def dockerfile(name: str = "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile in containers/, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (CONTAINERS / name).read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def args(name: str = "Dockerfile") -> dict:
    return dict(arg.split("=", 1) for ins, arg in dockerfile(name) if ins == "ARG" and "=" in arg)


def copies() -> dict[str, str]:
    """{source: destination relative to the working folder} of the COPY instructions."""
    workdir = next(arg for ins, arg in dockerfile() if ins == "WORKDIR")
    out = {}
    for ins, arg in dockerfile():
        if ins == "COPY":
            *sources, dest = shlex.split(arg)
            for source in sources:
                target = dest + Path(source).name if dest.endswith("/") and not source.endswith("/") else dest
                out[source.rstrip("/")] = str(Path(workdir, target)).removeprefix(HOME + "/").rstrip("/")
    return out


def test_base_is_an_argument_with_the_local_debian_base_by_default():
    for name in ("Dockerfile", "runner.Dockerfile"):
        assert [arg for ins, arg in dockerfile(name) if ins == "FROM"] == ["${BASE}"]
        assert args(name)["BASE"] == "localhost/heirloom-base:bookworm"        # containers/base.sh
        assert args(name)["UV_VERSION"] == setup_uv_version()
    assert "bookworm" in (CONTAINERS / "base.sh").read_text()


def test_the_lock_is_hashed_and_installed_exactly_then_the_package():
    lock = (ROOT / "requirements.lock").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==\S+", lock, re.M)
    assert len(pins) > 50 and lock.count("--hash=sha256:") >= len(pins)   # every pin carries its hashes
    assert (ROOT / "requirements-preserve.lock").read_text().count("--hash=sha256:") > 50
    run = " ".join(arg for ins, arg in dockerfile() if ins == "RUN")
    assert f'pip install --no-cache-dir -q "uv==${{UV_VERSION}}"' in run
    assert "uv pip install -q --python /opt/venv/bin/python --compile-bytecode -r requirements.lock" in run
    assert "--no-deps -e ." in run and "compileall" in run and run.rstrip().endswith("rm -rf /tmp/*")
    order = [arg for ins, arg in dockerfile() if ins in ("COPY", "RUN")]
    lock_copy = next(i for i, a in enumerate(order) if a.startswith("requirements.lock"))
    lock_install = next(i for i, a in enumerate(order) if "-r requirements.lock" in a)
    code_copy = next(i for i, a in enumerate(order) if a.startswith("analysis/"))
    assert lock_copy < lock_install < code_copy                      # the lock's layer is reused


def test_the_image_copies_exactly_what_names_it():
    from tasks.export.image import IMAGE_INPUTS

    found = copies()
    assert set(found) == set(IMAGE_INPUTS) - {"containers/Dockerfile"}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages | {project["project"]["readme"], "law.cfg", "configs"} <= set(found)
    for source, dest in found.items():
        assert (ROOT / source).exists() and dest == source, (source, dest)    # the checkout's layout


def test_any_user_any_folder():
    instructions = dockerfile()
    assert [arg for ins, arg in instructions if ins == "WORKDIR"] == [HOME]
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(arg for ins, arg in instructions if ins == "ENV")))
    assert env["HEIRLOOM_STORE"] == "/store" and env["PATH"].startswith("/opt/venv/bin:")
    assert all(env[k].startswith("/tmp") for k in ("HOME", "MPLCONFIGDIR", "NUMBA_CACHE_DIR"))
    assert [arg for ins, arg in instructions if ins == "ENTRYPOINT"] == [f'["{HOME}/containers/entrypoint.sh"]']
    assert "a+rX" in " ".join(arg for ins, arg in instructions if ins == "RUN")


def test_apptainer_converts_the_image():
    text = (CONTAINERS / "heirloom.def").read_text()
    assert re.search(r"^Bootstrap: docker-archive$", text, re.M)
    assert f'exec {HOME}/containers/entrypoint.sh "$@"' in text


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: a path is left out when it or a parent folder matches a
    pattern (``**`` any folders, ``!`` re-includes; the last matching pattern wins)."""
    parts = path.split("/")
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if fnmatch.fnmatchcase(prefix, pattern) or (
                    pattern.startswith("**/") and fnmatch.fnmatchcase(parts[i - 1], pattern[3:])):
                excluded = not negate
                break
    return excluded


def test_dockerignore_keeps_store_and_environments_out():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for path in ("store/objects/Fit/ab/abc/fit_result.json", "store/runs.jsonl", ".venv/bin/python",
                 ".git/HEAD", "analysis/__pycache__/store.cpython-311.pyc", ".law/index", "heirloom.egg-info/PKG-INFO"):
        assert dockerignored(path, patterns), path
    for source in copies():
        assert not dockerignored(source, patterns), source
        if (ROOT / source).is_dir():
            for file in (ROOT / source).rglob("*.py"):
                if "__pycache__" not in file.parts:
                    assert not dockerignored(str(file.relative_to(ROOT)), patterns), file


def test_entrypoint_runs_where_it_starts_with_an_absolute_store(tmp_path):
    script = CONTAINERS / "entrypoint.sh"
    assert os.access(script, os.X_OK)
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
    show = ["sh", "-c", 'echo "$PWD|$HEIRLOOM_STORE"']
    env = dict(os.environ)
    env.pop("HEIRLOOM_STORE", None)
    out = subprocess.run([str(script), *show], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"{tmp_path}|{tmp_path}/store"     # apptainer: the caller's ./store
    env["HEIRLOOM_STORE"] = "/store"
    out = subprocess.run([str(script), *show], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"{tmp_path}|/store"               # docker: ENV HEIRLOOM_STORE=/store


def test_the_runner_pins_are_those_of_the_preservation_environment():
    def pins(name: str) -> dict:
        return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / name).read_text(), re.M))

    runner, preserve = pins("requirements-runner.lock"), pins("requirements-preserve.lock")
    assert {"yadage", "packtivity", "recast-atlas"} <= set(runner)
    assert {name: preserve.get(name) for name in runner} == runner
    assert "requirements-runner.lock" in " ".join(arg for ins, arg in dockerfile("runner.Dockerfile") if ins == "COPY")
