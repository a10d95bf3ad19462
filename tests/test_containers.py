"""containers/: what can be checked without docker or apptainer.

The Dockerfile installs exactly requirements.lock with the uv version setup.sh pins, then
the package with --no-deps, and builds the law index; it copies every top-level path
the package and law need; the apptainer definition runs the same steps on the same
files; .dockerignore keeps the store and the virtual environments out of the build
context; the entry point runs commands where law finds its index.
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


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of containers/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (CONTAINERS / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def sections(path: Path) -> dict[str, list[str]]:
    """Header (``Bootstrap``/``From`` lines) and ``%section`` bodies of an apptainer definition."""
    out, current = {"header": []}, "header"
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("%"):
            current = stripped[1:].split()[0]
            out[current] = []
        else:
            out[current].append(stripped)
    return out


def commands(lines, variables: dict) -> list[str]:
    """Shell commands of RUN/%post lines, split at ``&&``, variables expanded, paths made
    relative to the image's working folder: comparable between the two definitions."""
    out = []
    for line in lines:
        for command in line.split("&&"):
            command = command.strip()
            for name, value in variables.items():
                command = command.replace("${%s}" % name, value).replace("$" + name, value)
            command = command.replace(HOME + "/", "")
            if command and not command.startswith(("set ", "cd ", "find ", "chmod ", "UV_VERSION=")):
                out.append(" ".join(command.split()))
    return out


def docker_args() -> dict:
    return dict(arg.split("=", 1) for ins, arg in dockerfile() if ins == "ARG" and "=" in arg)


def docker_copies() -> dict[str, str]:
    """{source: destination relative to the working folder} of the COPY instructions."""
    workdir = next(arg for ins, arg in dockerfile() if ins == "WORKDIR")
    copies = {}
    for ins, arg in dockerfile():
        if ins == "COPY":
            *sources, dest = shlex.split(arg)
            for source in sources:
                target = dest + Path(source).name if dest.endswith("/") and not source.endswith("/") else dest
                target = str(Path(workdir, target)).removeprefix(HOME + "/")
                copies[source.rstrip("/")] = target.rstrip("/")
    return copies


def test_dockerfile_base_and_pinned_uv():
    (base,) = [arg for ins, arg in dockerfile() if ins == "FROM"]
    assert base == "python:3.11-slim"
    assert docker_args()["UV_VERSION"] == setup_uv_version()
    run = " ".join(arg for ins, arg in dockerfile() if ins == "RUN")
    assert 'pip install --no-cache-dir "uv==${UV_VERSION}"' in run


def test_dockerfile_installs_exactly_the_lock_then_the_package():
    steps = commands([arg for ins, arg in dockerfile() if ins == "RUN"], docker_args())
    installs = [s for s in steps if "pip install" in s]
    uv = "/opt/venv/bin/uv pip install --no-cache --python /opt/venv/bin/python"
    assert installs == [f'/opt/venv/bin/python -m pip install --no-cache-dir "uv=={setup_uv_version()}"',
                        f"{uv} -r requirements.lock",
                        f"{uv} --no-deps -e ."]
    assert steps[-1] == "/opt/venv/bin/law index -q"          # the index, after the package
    # the lock is copied before it is installed (its own layer), the code only after
    order = [arg for ins, arg in dockerfile() if ins in ("COPY", "RUN")]
    lock_copy = next(i for i, a in enumerate(order) if a.startswith("requirements.lock"))
    lock_install = next(i for i, a in enumerate(order) if "-r requirements.lock" in a)
    code_copy = next(i for i, a in enumerate(order) if a.startswith("analysis/"))
    assert lock_copy < lock_install < code_copy


def test_dockerfile_copies_what_the_package_and_law_need():
    copies = docker_copies()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    needed = {"requirements.lock", "pyproject.toml", "law.cfg", project["project"]["readme"], "configs",
              "containers/entrypoint.sh"} | packages
    assert needed <= set(copies), needed - set(copies)
    for source, dest in copies.items():
        assert (ROOT / source).exists(), source
        assert dest == source, (source, dest)                  # the checkout's layout
    modules = (ROOT / "law.cfg").read_text().split("[modules]")[1].split("[")[0].split()
    assert set(modules) <= set(copies)                        # law's task modules are in the image


def test_dockerfile_workdir_store_and_entrypoint():
    instructions = dockerfile()
    assert [arg for ins, arg in instructions if ins == "WORKDIR"] == [HOME]
    env = " ".join(arg for ins, arg in instructions if ins == "ENV")
    assert re.search(r"\bHEIRLOOM_STORE=/\S+", env)
    assert "PATH=/opt/venv/bin:$PATH" in env
    (entrypoint,) = [arg for ins, arg in instructions if ins == "ENTRYPOINT"]
    assert entrypoint == f'["{HOME}/containers/entrypoint.sh"]'


def test_apptainer_definition_mirrors_the_dockerfile():
    spec = sections(CONTAINERS / "heirloom.def")
    header = dict(line.split(":", 1) for line in spec["header"])
    docker_base = next(arg for ins, arg in dockerfile() if ins == "FROM")
    assert header["Bootstrap"].strip() == "docker" and header["From"].strip() == docker_base
    files = dict(line.split() for line in spec["files"])
    assert {src: dest.removeprefix(HOME + "/") for src, dest in files.items()} == docker_copies()
    uv = re.findall(r"^UV_VERSION=(\S+)$", "\n".join(spec["post"]), re.M)
    assert uv == [setup_uv_version()]
    assert commands(spec["post"], {"UV_VERSION": uv[0]}) == commands(
        [arg for ins, arg in dockerfile() if ins == "RUN"], docker_args())
    environment = "\n".join(spec["environment"])
    for ins, arg in dockerfile():
        if ins == "ENV":
            for name, value in re.findall(r"(\w+)=(\S+)", arg):
                if name != "HEIRLOOM_STORE":               # apptainer: the caller's ./store (entrypoint)
                    assert f"export {name}={value}" in environment, name
    assert spec["runscript"] == [f'exec {HOME}/containers/entrypoint.sh "$@"']


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
    for source in docker_copies():
        assert not dockerignored(source, patterns), source
        if (ROOT / source).is_dir():
            for file in (ROOT / source).rglob("*.py"):
                if "__pycache__" not in file.parts:
                    assert not dockerignored(str(file.relative_to(ROOT)), patterns), file


def test_entrypoint_runs_in_the_image_folder_with_an_absolute_store(tmp_path):
    script = CONTAINERS / "entrypoint.sh"
    assert os.access(script, os.X_OK)
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
    show = ["sh", "-c", 'echo "$PWD|$HEIRLOOM_STORE"']
    env = dict(os.environ, HEIRLOOM_HOME=str(ROOT))
    env.pop("HEIRLOOM_STORE", None)
    out = subprocess.run([str(script), *show], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"{ROOT}|{tmp_path}/store"        # apptainer: the caller's ./store
    env["HEIRLOOM_STORE"] = "/store"
    out = subprocess.run([str(script), *show], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"{ROOT}|/store"                  # docker: ENV HEIRLOOM_STORE=/store
