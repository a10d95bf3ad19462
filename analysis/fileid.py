"""Cheap, sound identities of raw input files: name + size + ROOT file UUID.

Opening a ROOT file to read its UUID costs milliseconds; the result is cached in
``<store>/manifests/files.json`` keyed by absolute path, size and modification time,
so a no-op rerun only ``stat``s its inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


class InputFileError(OSError):
    """A raw input file that is missing, truncated or not readable; names the file."""

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"cannot read input file {path}: {reason}")


@dataclass(frozen=True)
class FileIdentity:
    path: str           # absolute path (for provenance; not part of the key)
    name: str           # file name (part of the key)
    size: int
    uuid: str           # ROOT file UUID, or a content hash for non-ROOT files
    entries: int        # entries of the tree
    branches: tuple     # top-level branch names (for checking config expressions)

    def key(self) -> dict:
        """The part that goes into content addresses (portable across machines)."""
        return {"name": self.name, "size": self.size, "uuid": self.uuid}


def _read_root(path: str, tree: str) -> tuple[str, int, tuple]:
    import uproot

    try:
        with uproot.open(path) as handle:
            uuid = str(handle.file.uuid)
            if tree not in handle:
                raise InputFileError(path, f"no tree '{tree}' in the file (has: {', '.join(handle.keys()[:8])})")
            events = handle[tree]
            return uuid, int(events.num_entries), tuple(events.keys(recursive=False))
    except InputFileError:
        raise
    except Exception as err:  # uproot raises many types for damaged files
        raise InputFileError(path, f"{type(err).__name__}: {err}".strip()) from None


def _read_parquet(path: str) -> tuple[str, int, tuple]:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path)
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            digest.update(stream.read(1 << 20))
            stream.seek(max(0, os.path.getsize(path) - (1 << 20)))
            digest.update(stream.read())
        return digest.hexdigest()[:32], int(meta.metadata.num_rows), tuple(meta.schema_arrow.names)
    except Exception as err:
        raise InputFileError(path, f"{type(err).__name__}: {err}") from None


class Manifest:
    """The cache of file identities in one store."""

    def __init__(self, store: Path):
        self.path = store / "manifests" / "files.json"
        self._entries: dict | None = None
        self._dirty = False

    def _load(self) -> dict:
        if self._entries is None:
            try:
                self._entries = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self._entries = {}
        return self._entries

    def identify(self, path: str | os.PathLike, tree: str = "Events") -> FileIdentity:
        """Identity of ``path`` (cached when size and mtime are unchanged).

        >>> Manifest(Path("store")).identify("data.root").uuid      # doctest: +SKIP
        '3f9e...'
        """
        full = str(Path(path).absolute())
        try:
            stat = os.stat(full)
        except OSError as err:
            raise InputFileError(str(path), err.strerror or "not found") from None
        cache_key = f"{full}|{tree}"
        cached = self._load().get(cache_key)
        if cached and cached["size"] == stat.st_size and cached["mtime_ns"] == stat.st_mtime_ns:
            return FileIdentity(**{k: v for k, v in cached.items() if k != "mtime_ns"} | {"branches": tuple(cached["branches"])})
        if full.endswith(".parquet"):
            uuid, entries, branches = _read_parquet(full)
        else:
            uuid, entries, branches = _read_root(full, tree)
        ident = FileIdentity(full, Path(full).name, stat.st_size, uuid, entries, branches)
        self._entries[cache_key] = asdict(ident) | {"mtime_ns": stat.st_mtime_ns, "branches": list(branches)}
        self._dirty = True
        return ident

    def save(self) -> None:
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._entries, indent=1, sort_keys=True))
        os.replace(tmp, self.path)
        self._dirty = False


def raw_roots(branches) -> set:
    """Top-level names an expression may use for a file's branches.

    ``Jet_pt`` gives ``Jet``; ``nJet``, ``genWeight`` and ``MET_pt`` give themselves and
    ``MET``.

    >>> sorted(raw_roots(["nJet", "Jet_pt", "MET_pt", "event"]))
    ['Jet', 'Jet_pt', 'MET', 'MET_pt', 'event', 'nJet']
    """
    roots = set(branches)
    roots.update(name.split("_", 1)[0] for name in branches if "_" in name)
    return roots
