"""Provenance records: what made an output, and why a task would run again."""

from __future__ import annotations

import functools
import os
import hashlib
import importlib.metadata
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from analysis.errors import StoreError

PACKAGES = ("heirloom", "law", "luigi", "coffea", "awkward", "uproot", "hist", "uhi",
            "pyhf", "cabinetry", "numpy", "dask", "distributed")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def job_context() -> dict | None:
    """Where this process runs as a batch job (for provenance): system, job id, host;
    None outside a batch job.

    >>> job_context() is None or job_context()["system"] in ("slurm", "htcondor")
    True
    """
    host = socket.gethostname()
    if os.environ.get("SLURM_JOB_ID"):
        return {"system": "slurm", "job_id": os.environ["SLURM_JOB_ID"], "host": host,
                "partition": os.environ.get("SLURM_JOB_PARTITION")}
    if os.environ.get("_CONDOR_JOB_AD"):
        return {"system": "htcondor", "job_id": _condor_job_id(), "host": host}
    return None


def _condor_job_id() -> str | None:
    try:
        ad = Path(os.environ["_CONDOR_JOB_AD"]).read_text()
    except (KeyError, OSError):
        return None
    fields = dict(line.split(" = ", 1) for line in ad.splitlines() if " = " in line)
    return f"{fields.get('ClusterId', '?')}.{fields.get('ProcId', '?')}"


@functools.lru_cache(maxsize=1)
def package_versions() -> dict:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(repo: str = ".") -> dict:
    """Commit and dirty flag of the working tree (None outside a git checkout), asked of
    git once per process and checkout: every task of a run records it.

    >>> git_state() is git_state(".")
    True
    """
    return _git_state(os.path.abspath(repo))


@functools.lru_cache(maxsize=8)
def _git_state(repo: str) -> dict:
    def git(*args):
        return subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True, timeout=10)
    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        status = git("status", "--porcelain", "--untracked-files=no")
        return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def git_state_of(used: Iterable[str | os.PathLike], repo: str = ".") -> dict:
    """:func:`git_state`, plus the files a run used (its config chain, plugins, correction
    files) that git does not hold as committed: modified, untracked, or outside the
    checkout (``uncommitted``). ``dirty`` is true when the checkout or any of them is.

    >>> state = git_state_of(["configs/demo.yaml", "/tmp/my_fork.yaml"])
    >>> state["uncommitted"][-1], state["dirty"]
    ('/tmp/my_fork.yaml', True)
    """
    state = dict(git_state(repo))
    changed = _uncommitted(tuple(sorted({str(Path(p).resolve()) for p in used})), str(Path(repo).resolve()))
    state["uncommitted"] = list(changed)
    state["dirty"] = bool(state["dirty"]) or bool(changed)
    return state


@functools.lru_cache(maxsize=32)
def _uncommitted(paths: tuple, repo: str) -> tuple:
    """Those of ``paths`` outside the checkout of ``repo``, or in it but not committed."""
    try:
        top = subprocess.run(["git", "-C", repo, "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return paths
    if top.returncode != 0:
        return paths
    root = top.stdout.strip()
    inside = [p for p in paths if p.startswith(root + os.sep)]
    named: set[str] = set()
    if inside:
        try:
            status = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=all", "--",
                                     *inside], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return paths
        named = {os.path.join(root, line[3:].strip()) for line in status.stdout.splitlines()}
    return tuple(os.path.relpath(p, root) if p in inside else p for p in paths if p in named or p not in inside)


def file_checksums(folder: Path) -> dict:
    """sha256 of every file under ``folder`` (relative path -> hex digest)."""
    sums = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            raise StoreError(f"{path}: an output must be a regular file, not a symbolic link")
        if path.is_file() and path != folder / "provenance.json":
            digest = hashlib.sha256()
            with open(path, "rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
            sums[str(path.relative_to(folder))] = "sha256:" + digest.hexdigest()
    return sums


def build_record(*, key: str, components: dict, inputs: dict, started: str, outputs: Path,
                 events: int | None = None, extra: dict | None = None) -> dict:
    """The provenance record written beside an output.

    ``components`` is the exact record hashed into ``key``; ``inputs`` maps an input
    name to ``{"key": ..., "family": ...}``.
    """
    sums = file_checksums(outputs)
    record = {
        "key": key,
        "task": components.get("task"),
        "components": components,
        "inputs": inputs,
        "config_excerpt": components.get("config"),
        "code": components.get("code"),
        "git": git_state(),
        "versions": package_versions(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "argv": sys.argv,
        "started": started,
        "finished": now(),
        "events_processed": events,
        "outputs": sums,
        "output_sizes": {name: (outputs / name).stat().st_size for name in sums},
    }
    if extra:
        record.update(extra)
    return record


def diff_components(old: Any, new: Any, path: str = "") -> list[str]:
    """Human-readable differences between two key-component records.

    >>> diff_components({"config": {"cut": "pt > 30"}}, {"config": {"cut": "pt > 35"}})
    ["config.cut: 'pt > 30' -> 'pt > 35'"]
    """
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in old:
                lines.append(f"{sub}: added {_short(new[key])}")
            elif key not in new:
                lines.append(f"{sub}: removed (was {_short(old[key])})")
            else:
                lines.extend(diff_components(old[key], new[key], sub))
        return lines
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [line for index, (a, b) in enumerate(zip(old, new))
                for line in diff_components(a, b, f"{path}[{index}]")]
    if old != new:
        return [f"{path}: {_short(old)} -> {_short(new)}"]
    return []


def _short(value: Any, limit: int = 240) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
