"""The content-addressed store: keys, atomic commits, a human-readable view, a run log.

Layout under ``$HEIRLOOM_STORE`` (default ``./store``)::

    objects/<Family>/<key[:2]>/<key>/        one committed output: files + provenance.json
    by-name/<analysis>/<Family>/<label>      symlink to the newest output of that task
    tmp/                                     staging area; a crash leaves debris only here
    locks/                                   one lock file (host, pid, lease) per key being computed
    quarantine/                              damaged objects moved aside, each with a .why note
    manifests/                               cached identities of raw input files
    batch/                                   batch submissions: key manifests, code snapshots, job files, logs
    runs.jsonl                               one line per task that ran (what, key, when)

Stores named by ``$HEIRLOOM_STORE_UPSTREAM`` are read, never written: a complete object
found there is used where it is (:func:`upstream_roots`).

An output is staged in ``tmp/`` and renamed into place in one atomic step, after its
provenance is written; it counts as complete when that record lists files that exist
with their sizes (:mod:`analysis.store.integrity`). While a task computes a key it holds
that key's lock (:mod:`analysis.store.locks`). Every path written or linked resolves
inside the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from analysis.errors import StoreError

KEY_LENGTH = 40


#: URL schemes of remote stores (:mod:`analysis.store.remote`)
REMOTE_SCHEMES = ("s3://", "root://")


def store_url() -> str | None:
    """``$HEIRLOOM_STORE`` when it names a remote store (``s3://bucket/prefix``,
    ``root://host//path``), else None.

    >>> import os; os.environ["HEIRLOOM_STORE"] = "s3://group-bucket/heirloom/"
    >>> store_url()
    's3://group-bucket/heirloom'
    >>> del os.environ["HEIRLOOM_STORE"]; store_url() is None
    True
    """
    value = os.environ.get("HEIRLOOM_STORE") or ""
    if value.startswith(REMOTE_SCHEMES):
        return value.rstrip("/")
    if "://" in value:
        raise StoreError(f"HEIRLOOM_STORE={value}: a remote store is s3://bucket/prefix or root://host//path")
    return None


def cache_root(url: str) -> Path:
    """The local folder of a remote store: its read-through cache of objects, and what stays
    local (``by-name`` links, ``runs.jsonl``, staging, locks, input manifests, batch files).
    ``$HEIRLOOM_CACHE`` or ``${XDG_CACHE_HOME:-~/.cache}/heirloom/<store>``.

    >>> cache_root("s3://group-bucket/heirloom").name
    's3-group-bucket-heirloom-4a102032'
    """
    if os.environ.get("HEIRLOOM_CACHE"):
        return Path(os.environ["HEIRLOOM_CACHE"]).absolute()
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    readable = "".join(c if c.isalnum() else "-" for c in url.replace("://", "-"))[:80].strip("-")
    return (home / "heirloom" / f"{readable}-{hashlib.sha256(url.encode()).hexdigest()[:8]}").absolute()


def store_root() -> Path:
    """The store folder: ``$HEIRLOOM_STORE`` or ``./store``; for a remote store, its local
    cache folder (:func:`cache_root`)."""
    url = store_url()
    if url is not None:
        return cache_root(url)
    return Path(os.environ.get("HEIRLOOM_STORE") or "store").absolute()


def upstream_roots() -> list[Path]:
    """Read-only stores consulted after the store itself: ``$HEIRLOOM_STORE_UPSTREAM``, a
    ``:``-separated list of store folders (a group's store, the stores of the workflow
    steps a step depends on). A complete object found there is used where it is, never
    copied or changed; what is missing is computed into the store itself.

    >>> import os; os.environ["HEIRLOOM_STORE_UPSTREAM"] = "/group/store:/ci/store"
    >>> [str(p) for p in upstream_roots()]
    ['/group/store', '/ci/store']
    >>> del os.environ["HEIRLOOM_STORE_UPSTREAM"]
    """
    value = os.environ.get("HEIRLOOM_STORE_UPSTREAM", "")
    parts = [part for part in value.split(os.pathsep) if part.strip()]
    if "://" in value:
        raise StoreError(f"HEIRLOOM_STORE_UPSTREAM={value}: read-only upstream stores are local folders; a remote "
                         "store is shared by naming it in HEIRLOOM_STORE (docs/remote-store.md)")
    return [Path(part).absolute() for part in parts]


def canonical_json(value: Any) -> str:
    """Stable JSON text: sorted keys, no whitespace, tuples as lists.

    >>> canonical_json({"b": 1, "a": (1.5, "x")})
    '{"a":[1.5,"x"],"b":1}'
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)


def compute_key(components: dict) -> str:
    """The content address of a record of key components.

    >>> len(compute_key({"task": "Skim"}))
    40
    """
    return hashlib.sha256(canonical_json(components).encode()).hexdigest()[:KEY_LENGTH]


def safe_component(name: str, what: str) -> str:
    """``name`` if it is one plain path component (no ``/``, not ``.`` or ``..``), else a
    StoreError: nothing a config names can make the store write outside itself.

    >>> safe_component("ttbar__0", "label")
    'ttbar__0'
    >>> safe_component("../../etc", "label")
    Traceback (most recent call last):
    analysis.errors.StoreError: label '../../etc' is not a plain name: the store writes only inside itself
    """
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name \
            or any(ord(c) < 32 for c in name) or os.sep in name or len(name.encode()) > 255:
        raise StoreError(f"{what} {name!r} is not a plain name: the store writes only inside itself")
    return name


def inside(root: Path, path: Path) -> Path:
    """``path`` if it resolves inside ``root`` (links followed), else a StoreError."""
    real_root, real = os.path.realpath(root), os.path.realpath(path)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise StoreError(f"{path} resolves to {real}, outside the store {real_root}")
    return path


#: the store's own folders and files: never symbolic links (a planted link would lead out)
LAYOUT = ("objects", "by-name", "tmp", "locks", "quarantine", "manifests", "batch", "runs.jsonl")


def check_layout(root: Path) -> Path:
    """``root`` if none of its own folders is a symbolic link, else a StoreError.

    >>> check_layout(outdir / "fresh-store").name
    'fresh-store'
    """
    for name in LAYOUT:
        if (root / name).is_symlink():
            raise StoreError(f"{root / name} is a symbolic link; the store's own folders must be real folders "
                             "inside it (remove the link)")
    return root


@dataclass(frozen=True)
class Entry:
    """One output in the store, by task family and key."""
    family: str
    key: str
    root: Path

    def __post_init__(self) -> None:
        safe_component(self.family, "task family")
        if not (self.key and all(c in "0123456789abcdef" for c in self.key)):
            raise StoreError(f"{self.key!r} is not a key (hexadecimal)")

    @property
    def path(self) -> Path:
        return self.root / "objects" / self.family / self.key[:2] / self.key

    def exists(self) -> bool:
        return self.path.is_dir()

    def provenance(self) -> dict:
        return json.loads((self.path / "provenance.json").read_text())


def entry(family: str, key: str, root: Path | None = None) -> Entry:
    return Entry(family, key, root or store_root())


@contextlib.contextmanager
def staging(target: Entry, publish: Callable[[Entry, Path], bool] | None = None) -> Iterator[Path]:
    """Yield a fresh staging folder; on success rename it to ``target.path`` atomically.

    On an exception the staging folder is removed and nothing appears at the target.
    If another process committed the same key meanwhile, ours is discarded (same content
    address, same result). ``publish`` (a remote store's commit) runs before the rename;
    when it answers False (another writer's object won) ours is discarded.
    """
    tmp_root = target.root / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    stage = tmp_root / f"{target.family}-{target.key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    stage.mkdir()
    try:
        yield stage
        inside(target.root / "objects", target.path)
        if publish is not None and not publish(target, stage):
            shutil.rmtree(stage, ignore_errors=True)
            return
        if not place(stage, target):
            shutil.rmtree(stage, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def place(stage: Path, target: Entry) -> bool:
    """Rename a finished folder to ``target.path`` in one step; False (``stage`` left as it
    is) when another process put the same key there first."""
    target.path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(stage, target.path)
    except OSError:
        if not target.exists():
            raise
        return False
    return True


def link_by_name(target: Entry, analysis: str, label: str) -> Path:
    """Point ``by-name/<analysis>/<family>/<label>`` at ``target`` (atomic replace)."""
    link = by_name(target.root, analysis, target.family, label)
    inside(target.root / "by-name", link.parent)         # no planted link leads out
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}")
    os.symlink(os.path.relpath(target.path, link.parent), tmp)
    os.replace(tmp, link)
    return link


def by_name(root: Path, analysis: str, family: str, label: str) -> Path:
    """Where the readable link of a task's newest output is (plain names only)."""
    return root / "by-name" / safe_component(analysis, "analysis name") / safe_component(family, "task family") \
        / safe_component(label, "label")


def log_run(root: Path, record: dict) -> None:
    """Append one line to ``runs.jsonl`` (O_APPEND writes of one line are atomic)."""
    root.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(root / "runs.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_runs(root: Path | None = None) -> list[dict]:
    """All records of ``runs.jsonl``, oldest first."""
    path = (root or store_root()) / "runs.jsonl"
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or not {"task", "label", "key", "finished"} <= set(record):
            raise StoreError(f"{path}:{number}: not a run record ({line[:60]!r}); remove or fix that line")
        records.append(record)
    return records
