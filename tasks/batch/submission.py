"""What a batch submission fixes before its first job starts: the keys, the code, the environment.

``prepare(top)`` writes, under ``<store>/batch/``:

    code/<fingerprint>/               the project's code and configs as submitted (a snapshot,
                                      named by the hash of its files; shared by submissions)
    submissions/<digest>.json         every task's key under ``top``, the snapshot, the
                                      environment, the store: the job's instructions

A job reads its submission, runs from the snapshot in the same environment, recomputes
its task's key and refuses to write if that key differs from the submitted one
(:func:`check_key`): a checkout changed between submission and job start, or a job
pointed at other code, must never write under the old key.

>>> digest = prepare(Histograms(config="configs/demo.yaml"))         # doctest: +SKIP
>>> load(digest)["keys"]["Skim"]["ttbar__0"][:8]                      # doctest: +SKIP
'3f9c0a1e'
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from analysis.errors import StoreError
from analysis.store.objects import store_root, store_url, upstream_roots

PROJECT = Path(__file__).resolve().parent.parent.parent
#: what a job needs of the project: the code, the configs, law's config and task index
SNAPSHOT = ("analysis", "tasks", "configs", "law.cfg", ".law/index", "requirements.lock", "pyproject.toml")
FORMAT = 1


def batch_root(root: Path | None = None) -> Path:
    """``<store>/batch``; in a job, the submitter's (``$HEIRLOOM_BATCH_ROOT``, which the
    bootstrap sets: with a remote store the job's own store folder is a node-local cache)."""
    if root is None and os.environ.get("HEIRLOOM_BATCH_ROOT"):
        return Path(os.environ["HEIRLOOM_BATCH_ROOT"])
    return (root or store_root()) / "batch"


def _project_files() -> list[Path]:
    files: list[Path] = []
    for name in SNAPSHOT:
        path = PROJECT / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += [p for p in sorted(path.rglob("*"))
                      if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return files


def snapshot_code() -> Path:
    """Copy the project's code and configs into ``<store>/batch/code/<fingerprint>`` (once
    per fingerprint, atomically) and return that folder.

    >>> snapshot_code().parent.name                                   # doctest: +SKIP
    'code'
    """
    files = _project_files()
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(PROJECT)).encode() + b"\0" + path.read_bytes() + b"\0")
    target = batch_root() / "code" / digest.hexdigest()[:20]
    if target.is_dir():
        return target
    staging = batch_root() / "code" / f".{target.name}.{uuid.uuid4().hex[:8]}"
    for path in files:
        dest = staging / path.relative_to(PROJECT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    try:
        staging.rename(target)
    except OSError:                     # another submission made the same snapshot first
        shutil.rmtree(staging, ignore_errors=True)
    return target


def config_in(code: Path, config: str) -> str:
    """The config path a job uses: inside the snapshot when the config is part of the project."""
    path = Path(config).absolute()
    try:
        return str(code / path.relative_to(PROJECT))
    except ValueError:
        return str(path)


def prepare(top) -> str:
    """Fix a submission of ``top``'s dependency tree; return its digest (the jobs' parameter)."""
    from tasks.branches import tree

    keys: dict = {}
    for task in tree(top):
        keys.setdefault(task.task_family, {})[task.label()] = task.key()
    code = snapshot_code()
    record = {"format": FORMAT, "top": top.task_family, "keys": keys, "code": str(code),
              "config": config_in(code, top.config), "python": sys.executable,
              "venv": sys.prefix, "store": store_url() or str(store_root()), "batch_root": str(batch_root()),
              "upstream": [str(p) for p in upstream_roots()], "submitter": socket.gethostname(),
              "commit": git_describe()}
    text = json.dumps(record, indent=1, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:20]
    path = batch_root() / "submissions" / f"{digest}.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{digest}.{uuid.uuid4().hex[:8]}")
        tmp.write_text(text)
        os.replace(tmp, path)
    return digest


def load(digest: str, root: Path | None = None) -> dict:
    """The submission record ``digest`` (a StoreError naming the file when it is missing)."""
    path = batch_root(root) / "submissions" / f"{digest}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise StoreError(f"batch submission {digest} not found ({path}): the job does not see the "
                         "submitter's store (is the store on a shared filesystem?)") from None


def check_key(task, submission: dict) -> None:
    """Refuse (a StoreError) when ``task``'s key here differs from the submitted one."""
    submitted = submission["keys"].get(task.task_family, {}).get(task.label())
    here = task.key()
    if submitted != here:
        raise StoreError(f"{task.task_family}[{task.label()}]: this job computes key {here[:12]} but "
                         f"{str(submitted)[:12]} was submitted; the code, config, inputs or environment "
                         f"changed since submission (code: {PROJECT}), so the job refuses to write")


def bootstrap_file(digest: str) -> Path:
    """The shell file a job sources first: the submission's environment, store and code."""
    record = load(digest)
    path = batch_root() / "submissions" / f"{digest}.bootstrap.sh"
    if path.exists():
        return path
    template = (Path(__file__).parent / "bootstrap.sh").read_text()
    values = {"CODE": record["code"], "VENV": record["venv"], "STORE": record["store"],
              "BATCH_ROOT": record.get("batch_root", str(batch_root())),
              "UPSTREAM": ":".join(record["upstream"])}
    text = template
    for name, value in values.items():
        text = text.replace(f"@{name}@", _shell_quote(value))
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def git_describe() -> str | None:
    """The submitting checkout's commit (for the record; the snapshot is what jobs run)."""
    try:
        out = subprocess.run(["git", "-C", str(PROJECT), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
