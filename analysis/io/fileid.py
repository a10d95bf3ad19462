"""Sound identities of input files: their content, hashed with BLAKE3 at disk speed.

A raw event file enters a content address as ``{"blake3": digest of every byte, "size":
bytes}``; neither its path nor its name does, so the same file anywhere is the same
input and two different files never share a key. Hashing reads the whole file once
(BLAKE3, memory-mapped, all cores); the digest is then cached in
``<store>/manifests/files.json`` under the file's absolute path, together with what a
later ``stat`` must find unchanged for the cache to be trusted: size, modification time
(``mtime_ns``), inode change time (``ctime_ns``) and inode. A rewrite in place changes
mtime and ctime; a copy that restores the mtime (``cp -p``, ``rsync -a``) still gets a
new ctime, which no user command can set back. So a no-op rerun only ``stat``s its
inputs, and ``heirloom verify --inputs`` rehashes every cached file from scratch.
Files read whole by other tasks (histogram files, likelihood archives) use the same
digest (:func:`content_identity`).

A remote input (``root://``, ``s3://``, ``https://``) is not hashed: its key is its size
plus what its server says of its content (the XRootD checksum, the S3 ETag and checksum,
an HTTP ETag with the URL), or the URL plus the ``version:`` the config declares where
the server says nothing (``analysis/io/remote.py``). It is cached under its URL with the
stamp a cheap stat returns, so a no-op rerun does one stat per remote file and asks for
the checksum again only when the stamp changed; ``heirloom verify --inputs`` asks again.

Parquet files (one row per event): their columns are listed under NanoAOD-style flat names, whatever their layout: a
flat ``Jet_pt`` list column stays ``Jet_pt``; a nested ``Jet`` column (a list of
structs) becomes ``nJet`` + ``Jet_pt``, ``Jet_eta`` ...; a ``MET`` struct becomes
``MET_pt``, ``MET_phi`` (:func:`parquet_columns`). The skim reads them back under
those names (``analysis/io/skim.py``), so expressions and column pruning do not care.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from analysis.errors import InputFileError, StoreError
from analysis.io import remote
from analysis.store.user_cache import load_dict, save_dict

T = TypeVar("T")


@dataclass(frozen=True)
class FileIdentity:
    path: str           # absolute path, or the URL of a remote file (for provenance; not part of the key)
    name: str           # file name (for provenance; not part of the key)
    size: int
    blake3: str         # BLAKE3 digest of every byte of a local file ("" for a remote one)
    entries: int        # entries of the tree (rows of a parquet file)
    branches: tuple     # top-level branch names, NanoAOD-style (for checking config expressions)
    format: str = "root"  # "root" or "parquet" (not part of the key)
    trusted: tuple = ()   # remote: sorted (field, value) pairs the server vouches for, or the declared version
    clusters: tuple = ()  # entries where every branch starts a new basket (row groups), 0 and the end included

    def key(self) -> dict:
        """The part that goes into content addresses: the content, nothing else. For a
        remote file: what the server says of its content (its checksum), or the URL and
        the version the config declares (see ``analysis/io/remote.py``), and the size.

        >>> FileIdentity("/d/a.root", "a.root", 10, "af13", 5, ()).key()
        {'blake3': 'af13', 'size': 10}
        >>> FileIdentity("root://h//a.root", "a.root", 10, "", 5, (), "root", (("adler32", "062c0215"),)).key()
        {'adler32': '062c0215', 'size': 10}
        """
        if self.trusted:
            return dict(self.trusted) | {"size": self.size}
        return {"blake3": self.blake3, "size": self.size}


def key_summary(key: dict) -> str:
    """A short form of a file's content key for messages (``heirloom verify --inputs``).

    >>> key_summary({"blake3": "6437b3ac38465133" * 4, "size": 3}), key_summary({"adler32": "062c0215", "size": 3})
    ('blake3:6437b3ac38465133', 'adler32:062c0215')
    >>> key_summary({"declared_version": "v2", "url": "https://h/a.root", "size": 3})
    'declared_version:v2'
    """
    name = "blake3" if "blake3" in key else sorted(k for k in key if k not in ("size", "url"))[0]
    return f"{name}:{str(key[name])[:16]}"


def file_digest(path: str | os.PathLike) -> str:
    """BLAKE3 digest (hex) of every byte of ``path``, memory-mapped and multi-threaded.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     _ = f.write(b"abc"); f.flush(); file_digest(f.name)[:16]
    '6437b3ac38465133'
    """
    import blake3

    try:
        if os.path.getsize(path) == 0:
            return blake3.blake3(b"").hexdigest()
        return blake3.blake3(max_threads=blake3.blake3.AUTO).update_mmap(str(path)).hexdigest()
    except OSError as err:
        raise InputFileError(str(path), err.strerror or str(err)) from None


def _stamp(stat: os.stat_result) -> dict:
    """What a cached digest trusts: unchanged size, mtime, ctime and inode."""
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns, "inode": stat.st_ino}


def _read_root(path: str, tree: str) -> tuple[int, tuple, tuple]:
    import uproot

    def read() -> tuple[int, tuple, tuple]:
        with uproot.open(path) as handle:
            if tree not in handle:
                raise InputFileError(path, f"no tree '{tree}' in the file (has: {', '.join(handle.keys()[:8])})")
            events = handle[tree]
            clusters = tuple(int(x) for x in events.common_entry_offsets())
            return int(events.num_entries), tuple(events.keys(recursive=False)), clusters

    return reading(path, "reading the tree", read)


def reading(path: str, what: str, read: Callable[[], T]) -> T:
    """``read()`` of an input file, every failure one InputFileError naming ``path``; for a
    remote file, transient errors are retried (:func:`analysis.io.remote.with_retries`).

    >>> reading("/data/a.root", "reading", lambda: 1 / 0)
    Traceback (most recent call last):
    analysis.errors.InputFileError: cannot read input file /data/a.root: ZeroDivisionError: division by zero
    """
    if remote.is_remote(path):
        return remote.with_retries(path, what, read)
    try:
        return read()
    except InputFileError:
        raise
    except Exception as err:  # uproot and pyarrow raise many types for damaged files
        raise InputFileError(path, f"{type(err).__name__}: {err}".strip()) from None


PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")


def file_format(path: str | os.PathLike, declared: str | None = None) -> str:
    """``"root"`` or ``"parquet"``: the dataset's ``format:`` if given, else the file's
    extension, else its magic bytes (``PAR1``; only read for other extensions, so a
    no-op rerun still only ``stat``s ``.root`` and ``.parquet`` files).

    >>> file_format("events.parquet"), file_format("nano.root"), file_format("x.root", "parquet")
    ('parquet', 'root', 'parquet')
    """
    named = declared or _named_format(str(path))
    if named:
        return named
    if remote.is_remote(path):
        return "parquet" if remote.read_magic(str(path)) == b"PAR1" else "root"
    try:
        with open(path, "rb") as stream:
            return "parquet" if stream.read(4) == b"PAR1" else "root"
    except OSError:
        return "root"


def _named_format(path: str) -> str | None:
    """The format a file's name says (a URL's path, without its query), else None."""
    name = (remote.url_path(path) if remote.is_remote(path) else path).lower()
    return "parquet" if name.endswith(PARQUET_SUFFIXES) else "root" if name.endswith(".root") else None


def parquet_columns(schema: Any) -> dict:
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


def _read_parquet(path: str) -> tuple[int, tuple, tuple]:
    def read() -> tuple[int, tuple, tuple]:
        with open_parquet(path) as meta:
            sizes = [meta.metadata.row_group(i).num_rows for i in range(meta.num_row_groups)]
            edges = tuple(int(sum(sizes[:i])) for i in range(len(sizes) + 1))
            return int(meta.metadata.num_rows), tuple(parquet_columns(meta.schema_arrow)), edges

    return reading(path, "reading the parquet footer", read)


@contextlib.contextmanager
def open_parquet(path: str) -> Iterator[Any]:
    """A ``pyarrow.parquet.ParquetFile`` of a local path or a URL (read in ranges through fsspec).

    >>> with open_parquet(events_parquet) as handle:
    ...     handle.metadata.num_rows
    100
    """
    import pyarrow.parquet as pq

    if not remote.is_remote(path):
        with pq.ParquetFile(path) as handle:
            yield handle
        return
    with remote.open_file(path) as stream, pq.ParquetFile(stream) as handle:
        yield handle


#: the reason of the InputFileError for a remote file whose server gives no checksum
#: (``analysis/io/datasets.py`` turns it into a config error: declare ``version:``)
NO_CHECKSUM = "the server gives no checksum of this file"


def _read_entries(path: str, tree: str, fmt: str) -> tuple[int, tuple, tuple]:
    return _read_parquet(path) if fmt == "parquet" else _read_root(path, tree)


#: bumped when what is recorded of a format changes (cached entries of another version are redone)
_VERSION = {"root": 4, "parquet": 4}


class Manifest:
    """The cache of file identities in one store."""

    def __init__(self, store: Path, shared: Path | None = None):
        self.path = store / "manifests" / "files.json"
        self._entries: dict | None = None
        self._dirty = False
        self._shared_path = shared          # the user's cache of local files' identities, for every store
        self._shared: dict | None = None
        self._seen: dict[str, FileIdentity | InputFileError] = {}    # remote files stat'ed by this process

    def _load(self) -> dict:
        if self._entries is None:
            try:
                entries = json.loads(self.path.read_text())
            except FileNotFoundError:
                entries = {}
            except (OSError, ValueError) as err:
                raise StoreError(f"{self.path}: not a manifest ({type(err).__name__}); it is a cache of input "
                                 "file identities: delete it and it is rebuilt") from None
            if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
                raise StoreError(f"{self.path}: not a manifest (a {type(entries).__name__} of the wrong shape); it "
                                 "is a cache of input file identities: delete it and it is rebuilt")
            self._entries = entries
        return self._entries

    def identify(self, path: str | os.PathLike, tree: str = "Events", format: str | None = None,
                 *, version: str | None = None, rehash: bool = False) -> FileIdentity:
        """Identity of ``path``: cached while size, mtime, ctime and inode are unchanged,
        else (or with ``rehash``) hashed and read anew. A URL (``root://``, ``s3://``,
        ``https://``) is identified by its server's checksum instead (:meth:`_identify_remote`).

        ``format``: ``"root"`` or ``"parquet"``; None infers it (:func:`file_format`).
        ``tree`` is ignored for parquet files. ``version``: the dataset's declared
        ``version:``, the identity of a remote file whose server gives no checksum.

        >>> identity = Manifest(outdir / "store").identify(nano)     # 1000 generated events
        >>> identity.entries, identity.format, sorted(identity.key())
        (1000, 'root', ['blake3', 'size'])
        """
        if remote.is_remote(path):
            return self._identify_remote(str(path), tree, format, version, rehash)
        full = str(Path(path).absolute())
        try:
            stat = os.stat(full)
        except OSError as err:
            raise InputFileError(str(path), err.strerror or "not found") from None
        fmt = file_format(full, format)
        cache_key = f"{full}|{tree}"
        fresh = _fresh(self._load().get(cache_key), stat, fmt) or _fresh(self._shared_entries().get(cache_key),
                                                                          stat, fmt)
        if not rehash and fresh:
            if self._load().get(cache_key) != fresh:        # known from another store: this one keeps it too
                self._load()[cache_key], self._dirty = fresh, True
            fields = {k: v for k, v in fresh.items() if k not in ("stamp", "version")}
            return FileIdentity(**fields | {"branches": tuple(fresh["branches"]),
                                            "clusters": tuple(fresh.get("clusters", ()))})
        entries, branches, clusters = _read_entries(full, tree, fmt)
        ident = FileIdentity(full, Path(full).name, stat.st_size, file_digest(full), entries, branches, fmt,
                             clusters=clusters)
        entry = {k: v for k, v in asdict(ident).items() if k != "trusted"} | {
            "stamp": _stamp(stat), "branches": list(branches), "version": _VERSION[fmt]}
        self._load()[cache_key] = self._shared_entries()[cache_key] = entry
        self._dirty = True
        return ident

    def _shared_entries(self) -> dict:
        """The user's cache of local files' identities (``{}`` without one): a new store
        does not hash again a file that another store on this machine identified."""
        if self._shared is None:
            self._shared = load_dict(self._shared_path)
        return self._shared

    def _identify_remote(self, url: str, tree: str, format: str | None, version: str | None,
                         rehash: bool) -> FileIdentity:
        """A remote file: one stat per process (then reused), the cached identity while the
        stat's stamp is unchanged, else the server's checksum is asked and the file's
        entries and branches read anew. Without a checksum, the declared ``version``
        (with ``rehash`` and none given: the one cached) identifies it with the URL; with
        neither, an InputFileError whose reason is :data:`NO_CHECKSUM`."""
        cache_key = f"{url}|{tree}"
        seen = self._seen.get(cache_key)
        if isinstance(seen, InputFileError) and not rehash:
            raise seen                      # reported once per process, not retried again
        if isinstance(seen, FileIdentity) and not rehash:
            return seen
        try:
            ident = self._remote_identity(url, cache_key, tree, format, version, rehash)
        except InputFileError as err:
            self._seen[cache_key] = err
            raise
        self._seen[cache_key] = ident
        return ident

    def _remote_identity(self, url: str, cache_key: str, tree: str, format: str | None, version: str | None,
                         rehash: bool) -> FileIdentity:
        found = remote.stat(url)
        cached = self._load().get(cache_key)
        declared = (cached or {}).get("trusted", {}).get("declared_version")
        version = str(version) if version is not None else declared if rehash else None
        named = format or _named_format(url)
        if not rehash and cached and isinstance(cached.get("trusted"), dict) and cached["trusted"] \
                and cached.get("stamp") == found.stamp and named in (None, cached.get("format")) \
                and cached.get("version") == _VERSION.get(cached.get("format", "")) and declared in (None, version):
            fields = {k: v for k, v in cached.items() if k not in ("stamp", "version")}
            ident = FileIdentity(**fields | {"branches": tuple(cached["branches"]),
                                             "trusted": tuple(sorted(cached["trusted"].items())),
                                             "clusters": tuple(cached.get("clusters", ()))})
        else:
            trusted = remote.checksum(url, found) or (
                {"declared_version": version, "url": url} if version is not None else {})
            if not trusted:
                raise InputFileError(url, NO_CHECKSUM)
            fmt = named or file_format(url)
            entries, branches, clusters = _read_entries(url, tree, fmt)
            ident = FileIdentity(url, remote.file_name(url), found.size, "", entries, branches, fmt,
                                 tuple(sorted(trusted.items())), clusters)
            self._load()[cache_key] = asdict(ident) | {"trusted": trusted, "stamp": found.stamp,
                                                       "branches": list(branches), "version": _VERSION[fmt]}
            self._dirty = True
        return ident

    def cached_paths(self) -> list[tuple[str, str, str]]:
        """``(path, tree, format)`` of every file in the cache (for ``heirloom verify --inputs``)."""
        out = []
        for cache_key, entry in sorted(self._load().items()):
            path, _, tree = cache_key.rpartition("|")
            out.append((path, tree, entry.get("format", "root")))
        return out

    def cached_key(self, path: str, tree: str) -> dict | None:
        """The content key cached for ``path`` (a file's absolute path or URL; None if none).

        >>> Manifest(outdir / "store").cached_key("root://h//a.root", "Events") is None
        True
        """
        entry = self._load().get(f"{path}|{tree}")
        if entry and entry.get("trusted"):
            return dict(entry["trusted"]) | {"size": entry["size"]}
        return {"blake3": entry["blake3"], "size": entry["size"]} if entry and entry.get("blake3") else None

    def save(self) -> None:
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._entries, indent=1, sort_keys=True))
        os.replace(tmp, self.path)
        if self._shared_path is not None and self._shared:
            latest = load_dict(self._shared_path) | self._shared       # another process's entries kept
            save_dict(self._shared_path, _newest(latest, SHARED_FILES), indent=0)
        self._dirty = False


#: local files whose identity the user's cache keeps at most
SHARED_FILES = 2000


def _newest(entries: dict, keep: int) -> dict:
    """The ``keep`` entries of the most recently written files (their stamps' mtime).

    >>> old, new = {"stamp": {"mtime_ns": 1}}, {"stamp": {"mtime_ns": 2}}
    >>> list(_newest({"b": old, "a": new, "c": old}, 1))
    ['a']
    """
    ranked = sorted(entries.items(), key=lambda item: item[1].get("stamp", {}).get("mtime_ns", 0), reverse=True)
    return dict(ranked[:keep])


def _fresh(entry: dict | None, stat: os.stat_result, fmt: str) -> dict | None:
    """A cached identity if it is still the file's: the same size, mtime, ctime and inode,
    format and record version."""
    if entry and entry.get("stamp") == _stamp(stat) and entry.get("format") == fmt \
            and entry.get("version") == _VERSION[fmt]:
        return entry
    return None


@dataclass(frozen=True)
class ContentIdentity:
    """A file read whole, identified in a content address by its content (BLAKE3 digest
    and size), not its path: the same file elsewhere or under another name is the same input."""

    path: str           # absolute path (provenance only)
    size: int
    blake3: str

    def key(self) -> dict:
        return {"blake3": self.blake3, "size": self.size}


def content_identity(path: str | os.PathLike) -> ContentIdentity:
    """BLAKE3 digest and size of a file, cached in memory while its size, mtime, ctime and
    inode are unchanged.

    >>> identity = content_identity("configs/corrections/agc_btag.json")
    >>> identity.key() == {"blake3": file_digest(identity.path), "size": os.path.getsize(identity.path)}
    True
    """
    path = Path(path).resolve()
    try:
        stat = path.stat()
    except OSError as err:
        raise InputFileError(str(path), err.strerror or "cannot read") from None
    return ContentIdentity(str(path), stat.st_size,
                           _cached_digest(str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino))


@functools.lru_cache(maxsize=64)
def _cached_digest(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    return file_digest(path)
