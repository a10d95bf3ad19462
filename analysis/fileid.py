"""Cheap, sound identities of raw input files: name + size + ROOT file UUID.

Opening a ROOT file to read its UUID costs milliseconds; the result is cached in
``<store>/manifests/files.json`` keyed by absolute path, size and modification time,
so a no-op rerun only ``stat``s its inputs.

Parquet files (one row per event) are identified by a content hash instead of a UUID.
Their columns are listed under NanoAOD-style flat names, whatever their layout: a
flat ``Jet_pt`` list column stays ``Jet_pt``; a nested ``Jet`` column (a list of
structs) becomes ``nJet`` + ``Jet_pt``, ``Jet_eta`` ...; a ``MET`` struct becomes
``MET_pt``, ``MET_phi`` (:func:`parquet_columns`). The skim reads them back under
those names (``analysis/skim.py``), so expressions and column pruning do not care.
"""

from __future__ import annotations

import functools
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
    entries: int        # entries of the tree (rows of a parquet file)
    branches: tuple     # top-level branch names, NanoAOD-style (for checking config expressions)
    format: str = "root"  # "root" or "parquet" (not part of the key)

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


PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")


def file_format(path: str | os.PathLike, declared: str | None = None) -> str:
    """``"root"`` or ``"parquet"``: the dataset's ``format:`` if given, else the file's
    extension, else its magic bytes (``PAR1``; only read for other extensions, so a
    no-op rerun still only ``stat``s ``.root`` and ``.parquet`` files).

    >>> file_format("events.parquet"), file_format("nano.root"), file_format("x.root", "parquet")
    ('parquet', 'root', 'parquet')
    """
    if declared:
        return declared
    if str(path).lower().endswith(PARQUET_SUFFIXES):
        return "parquet"
    if str(path).lower().endswith(".root"):
        return "root"
    try:
        with open(path, "rb") as stream:
            return "parquet" if stream.read(4) == b"PAR1" else "root"
    except OSError:
        return "root"


def parquet_columns(schema) -> dict:
    """NanoAOD-style flat names of a parquet (arrow) schema -> where each comes from.

    The value is ``(column, field)`` (``field`` None for a top-level column, else the
    field of a struct / list-of-structs column) or ``(column, COUNT)`` for the object
    count ``nX`` of a list-of-structs column ``X`` (unless the file has ``nX`` itself).
    Columns of other types (strings, lists of lists, deeper nesting) are left out.

    >>> import pyarrow as pa
    >>> jet = pa.list_(pa.struct([("pt", pa.float32()), ("eta", pa.float32())]))
    >>> parquet_columns(pa.schema([("Jet", jet), ("MET", pa.struct([("pt", pa.float32())]))]))
    {'nJet': ('Jet', '#count'), 'Jet_pt': ('Jet', 'pt'), 'Jet_eta': ('Jet', 'eta'), 'MET_pt': ('MET', 'pt')}
    """
    import pyarrow as pa

    def is_list(t) -> bool:
        return pa.types.is_list(t) or pa.types.is_large_list(t)

    def number(t) -> bool:
        return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)

    top = set(schema.names)
    out: dict = {}
    for column in schema:
        t = column.type
        if is_list(t) and pa.types.is_struct(t.value_type):       # Jet: list of {pt, eta ...}
            if f"n{column.name}" not in top:
                out[f"n{column.name}"] = (column.name, COUNT)
            out.update({f"{column.name}_{f.name}": (column.name, f.name) for f in t.value_type if number(f.type)})
        elif pa.types.is_struct(t):                                # MET: {pt, phi ...}
            out.update({f"{column.name}_{f.name}": (column.name, f.name) for f in t
                        if number(f.type) or (is_list(f.type) and number(f.type.value_type))})
        elif number(t) or (is_list(t) and number(t.value_type)):  # flat: nJet, Jet_pt, MET_pt
            out[column.name] = (column.name, None)
    return out


COUNT = "#count"


def _read_parquet(path: str) -> tuple[str, int, tuple]:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path)
        digest = hashlib.sha256()
        with open(path, "rb") as stream:           # head (data) + tail (footer: schema, row groups)
            digest.update(stream.read(1 << 20))
            stream.seek(max(0, os.path.getsize(path) - (1 << 20)))
            digest.update(stream.read())
        return digest.hexdigest()[:32], int(meta.metadata.num_rows), tuple(parquet_columns(meta.schema_arrow))
    except Exception as err:
        raise InputFileError(path, f"{type(err).__name__}: {err}") from None


#: bumped when what is recorded of a format changes (cached entries of another version are redone)
_VERSION = {"root": None, "parquet": 2}


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

    def identify(self, path: str | os.PathLike, tree: str = "Events", format: str | None = None) -> FileIdentity:
        """Identity of ``path`` (cached when size and mtime are unchanged).

        ``format``: ``"root"`` or ``"parquet"``; None infers it (:func:`file_format`).
        ``tree`` is ignored for parquet files.

        >>> Manifest(Path("store")).identify("data.root").uuid      # doctest: +SKIP
        '3f9e...'
        """
        full = str(Path(path).absolute())
        try:
            stat = os.stat(full)
        except OSError as err:
            raise InputFileError(str(path), err.strerror or "not found") from None
        fmt = file_format(full, format)
        cache_key = f"{full}|{tree}"
        cached = self._load().get(cache_key)
        if cached and cached["size"] == stat.st_size and cached["mtime_ns"] == stat.st_mtime_ns \
                and cached.get("format", "root") == fmt and cached.get("version") == _VERSION[fmt]:
            fields = {k: v for k, v in cached.items() if k not in ("mtime_ns", "version")}
            return FileIdentity(**fields | {"branches": tuple(cached["branches"])})
        if fmt == "parquet":
            uuid, entries, branches = _read_parquet(full)
        else:
            uuid, entries, branches = _read_root(full, tree)
        ident = FileIdentity(full, Path(full).name, stat.st_size, uuid, entries, branches, fmt)
        self._entries[cache_key] = asdict(ident) | {"mtime_ns": stat.st_mtime_ns, "branches": list(branches),
                                                    "version": _VERSION[fmt]}
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


@dataclass(frozen=True)
class ContentIdentity:
    """A file read whole, identified in a content address by its content (sha256 and
    size), not its path: the same file elsewhere or under another name is the same input."""

    path: str           # absolute path (provenance only)
    size: int
    sha256: str

    def key(self) -> dict:
        return {"sha256": self.sha256, "size": self.size}


def content_identity(path: str | os.PathLike) -> ContentIdentity:
    """sha256 and size of a file, cached by path, size and modification time.

    >>> content_identity("configs/agc_ttbar.yaml").key()       # doctest: +SKIP
    {'sha256': '4f1c...', 'size': 7421}
    """
    path = Path(path).resolve()
    try:
        stat = path.stat()
    except OSError as err:
        raise InputFileError(str(path), err.strerror or "cannot read") from None
    return ContentIdentity(str(path), stat.st_size, _file_sha256(str(path), stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
