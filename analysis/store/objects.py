"""The content-addressed store: keys, atomic commits, a human-readable view, a run log.

Layout under ``$HEIRLOOM_STORE`` (default ``./store``)::

    objects/<Family>/<key[:2]>/<key>/        one committed output: files + provenance.json
    by-name/<analysis>/<Family>/<label>      symlink to the newest output of that task
    tmp/                                     staging area; a crash leaves debris only here
    manifests/                               cached identities of raw input files
    runs.jsonl                               one line per task that ran (what, key, when)

An output is complete exactly when its directory exists under ``objects/``: it is staged
in ``tmp/`` and renamed into place in one atomic step, after its provenance is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

KEY_LENGTH = 40


def store_root() -> Path:
    """The store folder: ``$HEIRLOOM_STORE`` or ``./store``."""
    return Path(os.environ.get("HEIRLOOM_STORE") or "store").absolute()


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


@dataclass(frozen=True)
class Entry:
    """One output in the store, by task family and key."""
    family: str
    key: str
    root: Path

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
def staging(target: Entry) -> Iterator[Path]:
    """Yield a fresh staging folder; on success rename it to ``target.path`` atomically.

    On an exception the staging folder is removed and nothing appears at the target.
    If another process committed the same key meanwhile, ours is discarded (same content
    address, same result).
    """
    tmp_root = target.root / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    stage = tmp_root / f"{target.family}-{target.key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    stage.mkdir()
    try:
        yield stage
        target.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(stage, target.path)
        except OSError:
            if not target.exists():
                raise
            shutil.rmtree(stage, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def link_by_name(target: Entry, analysis: str, label: str) -> Path:
    """Point ``by-name/<analysis>/<family>/<label>`` at ``target`` (atomic replace)."""
    link = target.root / "by-name" / analysis / target.family / label
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}")
    os.symlink(os.path.relpath(target.path, link.parent), tmp)
    os.replace(tmp, link)
    return link


def by_name(root: Path, analysis: str, family: str, label: str) -> Path:
    return root / "by-name" / analysis / family / label


def log_run(root: Path, record: dict) -> None:
    """Append one line to ``runs.jsonl`` (O_APPEND writes of one line are atomic)."""
    root.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(root / "runs.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_runs(root: Path | None = None) -> list[dict]:
    """All records of ``runs.jsonl``, oldest first."""
    path = (root or store_root()) / "runs.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def clean_stale_staging(root: Path, max_age_s: float = 6 * 3600) -> int:
    """Remove staging folders of processes that are gone (after ``kill -9``, a power cut)."""
    tmp_root = root / "tmp"
    removed = 0
    if not tmp_root.is_dir():
        return 0
    for stage in tmp_root.iterdir():
        try:
            pid = int(stage.name.rsplit("-", 2)[-2])
        except (ValueError, IndexError):
            pid = -1
        alive = pid > 0 and _pid_alive(pid)
        too_old = time.time() - stage.stat().st_mtime > max_age_s
        if not alive or too_old:
            shutil.rmtree(stage, ignore_errors=True)
            removed += 1
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
