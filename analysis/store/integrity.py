"""A store that checks itself: when an object counts as complete, and when as intact.

* **Complete** (cheap, on every ``law run``): the object folder holds a provenance
  record that parses, names this key, and lists output files that all exist with the
  recorded sizes. An emptied folder, a deleted ``provenance.json`` or a truncated PNG
  is not complete, so the task runs again.
* **Intact** (a rehash, when a task reads the object, and in ``heirloom verify``):
  every listed file has the recorded sha256. A damaged object is moved to
  ``<store>/quarantine/`` with a note of what was wrong, so the key is free to be
  recomputed and the evidence is kept.

Within one process an intact object is not rehashed again while its files keep their
size, mtime, ctime and inode.

>>> from analysis.store.objects import entry, staging
>>> from analysis.store.provenance import build_record
>>> import json
>>> obj = entry("Histograms", "ab" * 20, outdir)
>>> with staging(obj) as stage:
...     _ = (stage / "h.json").write_text("{}")
...     record = build_record(key=obj.key, components={}, inputs={}, started="", outputs=stage)
...     _ = (stage / PROVENANCE).write_text(json.dumps(record))
>>> incomplete(obj), damage(obj)
(None, [])
>>> _ = (obj.path / "h.json").write_text("[]")            # same size, other bytes
>>> damage(obj)
['h.json: content differs from its recorded sha256']
>>> quarantine(obj, damage(obj)).parent.name, incomplete(obj)
('Histograms', 'no object folder')
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from analysis.errors import StoreError
from analysis.store.objects import Entry, check_layout

PROVENANCE = "provenance.json"
_INTACT: dict[str, tuple] = {}


def _record(entry: Entry) -> tuple[dict | None, str | None]:
    """(provenance record, None) or (None, what is wrong with it)."""
    path = entry.path / PROVENANCE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None, f"{PROVENANCE} missing"
    except (OSError, ValueError) as err:
        return None, f"{PROVENANCE} unreadable ({type(err).__name__})"
    if not isinstance(record, dict) or not isinstance(record.get("outputs"), dict):
        return None, f"{PROVENANCE} is not a provenance record"
    if record.get("key") != entry.key:
        return None, f"{PROVENANCE} belongs to key {str(record.get('key'))[:12]}, not this one"
    return record, None


def _listed(entry: Entry, record: dict) -> list[tuple[str, Path, str, int | None]]:
    """(name, path, sha256 hex, size or None) of every output the record lists."""
    sizes = record.get("output_sizes") or {}
    out = []
    for name, digest in sorted(record["outputs"].items()):
        path = (entry.path / name)
        out.append((name, path, str(digest).removeprefix("sha256:"), sizes.get(name)))
    return out


def incomplete(entry: Entry) -> str | None:
    """Why ``entry`` does not count as complete, or None when it does (no hashing).

    >>> from analysis.store.objects import entry
    >>> incomplete(entry("Fit", "cd" * 20, outdir))
    'no object folder'
    """
    if not entry.path.is_dir():
        return "no object folder"
    record, problem = _record(entry)
    if record is None:
        return problem
    listed = _listed(entry, record)
    present = {str(p.relative_to(entry.path)) for p in entry.path.rglob("*") if not p.is_dir()}
    unlisted = sorted(present - {name for name, *_ in listed} - {PROVENANCE})
    if unlisted:
        return f"{unlisted[0]}: a file the provenance record does not list"
    for name, path, _, size in listed:
        if not _inside(entry.path, path):
            return f"{name}: listed outside the object"
        if path.is_symlink():
            return f"{name} is a symbolic link"
        try:
            actual = path.stat().st_size
        except OSError:
            return f"{name} missing"
        if size is not None and actual != size:
            return f"{name} is {actual} bytes, recorded {size}"
    return None


def damage(entry: Entry, *, recheck: bool = False) -> list[str]:
    """Everything wrong with ``entry``: incompleteness, or files whose sha256 differs from
    the record (empty: intact). Memoised per process unless ``recheck``; the module's
    example shows it at work.

    >>> from analysis.store.objects import entry
    >>> damage(entry("Fit", "cd" * 20, outdir))
    ['no object folder']
    """
    problem = incomplete(entry)
    if problem is not None:
        return [problem]
    record, _ = _record(entry)
    assert record is not None
    listed = _listed(entry, record)
    stamp = tuple(_stamp(path) for _, path, _, _ in listed)
    if not recheck and _INTACT.get(str(entry.path)) == stamp:
        return []
    problems = [f"{name}: content differs from its recorded sha256" for name, path, digest, _ in listed
                if file_sha256(path) != digest]
    if problems:
        _INTACT.pop(str(entry.path), None)
    else:
        _INTACT[str(entry.path)] = stamp
    return problems


def quarantine(entry: Entry, problems: list[str]) -> Path:
    """Move a damaged object out of ``objects/`` (kept, with a note, under ``quarantine/``);
    return where it went (the module's example shows it)."""
    check_layout(entry.root)
    folder = entry.root / "quarantine" / entry.family
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{entry.key}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}"
    os.rename(entry.path, target)
    (target.parent / f"{target.name}.why").write_text("\n".join(problems) + "\n")
    _INTACT.pop(str(entry.path), None)
    return target


def file_sha256(path: Path) -> str | None:
    """sha256 (hex) of a file, None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _stamp(path: Path) -> tuple:
    try:
        st = path.stat()
    except OSError:
        return ()
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _inside(folder: Path, path: Path) -> bool:
    return os.path.normpath(path).startswith(os.path.normpath(folder) + os.sep)


def check_name(folder: Path, name: str) -> Path:
    """``folder / name`` when a record's output name stays inside the object, else a
    StoreError (a record read from a shared store must not lead a download elsewhere).

    >>> check_name(Path("/s/o"), "plots/fit.png").as_posix()
    '/s/o/plots/fit.png'
    >>> check_name(Path("/s/o"), "../../etc/passwd")
    Traceback (most recent call last):
    analysis.errors.StoreError: output name '../../etc/passwd' leads outside its object
    """
    path = folder / name
    if not isinstance(name, str) or Path(name).is_absolute() or not _inside(folder, path):
        raise StoreError(f"output name {name!r} leads outside its object")
    return path
