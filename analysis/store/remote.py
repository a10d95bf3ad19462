"""A remote store (S3 or XRootD) shared by laptops, CI and batch jobs, read through a local cache.

With ``HEIRLOOM_STORE=s3://bucket/prefix`` (or ``root://host//path``) the objects live
remotely (:mod:`analysis.store.backends` commits them atomically) and the store's local
folder (:func:`analysis.store.objects.cache_root`) holds:

* a **read-through cache** of the objects a task read: an object is immutable by its key,
  so a cached copy is never stale. It is bounded (``$HEIRLOOM_CACHE_SIZE``, default
  20 GB): the least recently used objects are evicted first;
* what stays local: ``by-name`` links, ``runs.jsonl``, staging, locks, input manifests,
  batch job files.

A task is complete when its object is in the cache or committed remotely. Remote
completeness comes from one listing per task family, kept for the run (:meth:`RemoteStore.complete`);
a key not in a listing older than a few seconds is asked for once more (another writer may
have committed it since). A task's output is committed remotely first, then renamed into
the cache; if another writer committed the key first, that object is used
(:meth:`RemoteStore.publish`, :meth:`RemoteStore.fetch`). Every fetched object is checked
against its record's sha256 before it is used.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

from analysis.errors import StoreError
from analysis.store import integrity
from analysis.store.backends import Listed, S3Backend, XRootDBackend
from analysis.store.objects import Entry, entry, place, store_root, store_url

#: seconds during which a family listing is trusted to say that a key is absent
FRESH_LISTING_S = 5.0
DEFAULT_CACHE_SIZE = "20GB"
_STORES: dict[str, "RemoteStore"] = {}


def remote_store() -> "RemoteStore | None":
    """The remote store ``$HEIRLOOM_STORE`` names (one per process), or None for a local store."""
    url = store_url()
    if url is None:
        return None
    if url not in _STORES:
        _STORES[url] = RemoteStore(url, open_backend(url), store_root())
    return _STORES[url]


def open_backend(url: str):
    """The backend of a store URL (fsspec: s3fs for ``s3://``, fsspec-xrootd for ``root://``)."""
    import fsspec

    try:
        fs, base = fsspec.url_to_fs(url)
    except (ImportError, ValueError) as err:
        raise StoreError(f"HEIRLOOM_STORE={url}: {err}") from None
    if url.startswith("s3://"):
        return S3Backend(fs, base, url)
    return XRootDBackend(fs, base, url)


def parse_size(text: str) -> int:
    """Bytes of ``20GB``, ``500 MB``, ``1.5TB`` or a plain number.

    >>> parse_size("20GB"), parse_size("500 MB"), parse_size("1024")
    (20000000000, 500000000, 1024)
    """
    units = {"TB": 10**12, "GB": 10**9, "MB": 10**6, "KB": 10**3, "B": 1}
    value = text.strip().upper()
    for unit, factor in units.items():
        if value.endswith(unit):
            try:
                return int(float(value[: -len(unit)]) * factor)
            except ValueError:
                break
    try:
        return int(value)
    except ValueError:
        raise StoreError(f"HEIRLOOM_CACHE_SIZE={text!r} is not a size (e.g. 20GB, 500MB)") from None


@contextlib.contextmanager
def reaching(url: str, what: str):
    """Turn a protocol error (s3fs, XRootD and aiohttp raise OSError kinds) into one
    StoreError line that names the store and what was being done.

    >>> with reaching("s3://bucket/store", "listing Fit"):
    ...     raise ConnectionRefusedError("Connection refused")
    Traceback (most recent call last):
    analysis.errors.StoreError: s3://bucket/store: listing Fit failed: ConnectionRefusedError: Connection refused
    """
    try:
        yield
    except StoreError:
        raise
    except (OSError, TimeoutError) as err:
        raise StoreError(f"{url}: {what} failed: {type(err).__name__}: {err}") from None


class RemoteStore:
    """One remote store and its local cache (see the module's text)."""

    def __init__(self, url: str, backend, cache: Path):
        self.url, self.backend, self.cache = url, backend, cache
        self.limit = parse_size(os.environ.get("HEIRLOOM_CACHE_SIZE") or DEFAULT_CACHE_SIZE)
        self._listings: dict[str, tuple[float, dict[str, Listed]]] = {}
        self._used: set[str] = set()
        self._cached_bytes: int | None = None      # the cache's size as last measured, plus what came since

    # ---- completeness ------------------------------------------------------------------
    def listing(self, family: str, *, refresh: bool = False) -> dict[str, Listed]:
        """Committed objects of a task family: one listing, kept for this process."""
        if refresh or family not in self._listings:
            with reaching(self.url, f"listing {family}"):
                self._listings[family] = (time.time(), self.backend.list_family(family))
        return self._listings[family][1]

    def complete(self, family: str, key: str) -> bool:
        """Whether the remote store holds a committed object of ``key``."""
        listed = self.listing(family)
        if key in listed:
            return True
        if time.time() - self._listings[family][0] < FRESH_LISTING_S:
            return False
        with reaching(self.url, f"looking for {family} object {key[:12]}"):
            found = self.backend.has_record(family, key)
        if found:
            listed[key] = Listed(key, 0, time.time())
            return True
        return False

    # ---- reading -----------------------------------------------------------------------
    def fetch(self, target: Entry) -> Entry:
        """``target`` in the cache: downloaded (and checked) unless it is there already."""
        if integrity.incomplete(target) is None:
            self._touch(target)
            return target
        with reaching(self.url, f"downloading {target.family} object {target.key[:12]}"):
            problems = self._download(target)
        if problems:
            where = integrity.quarantine(target, problems)
            raise StoreError(f"{target.family} object {target.key[:12]} in {self.url} is damaged "
                             f"({'; '.join(problems)[:200]}; the copy is in {where}); `heirloom verify --all` "
                             "takes it out of the store so that it is recomputed")
        self._touch(target)
        self._grew(target)
        return target

    def _download(self, target: Entry) -> list[str]:
        """Download a committed object into ``target``'s folder; return what is wrong with it."""
        record = self.backend.read_record(target.family, target.key)
        if record is None:
            raise StoreError(f"{target.family} object {target.key[:12]} is neither in the cache {self.cache} "
                             f"nor in the store {self.url}")
        stage = self._stage(target, "fetch")
        try:
            names = sorted(record.get("outputs") or {})
            for name in names:
                integrity.check_name(stage, name)
                (stage / name).parent.mkdir(parents=True, exist_ok=True)
            self.backend.download([(self.backend.file_path(target.family, target.key, record, name), stage / name)
                                   for name in names])
            (stage / integrity.PROVENANCE).write_text(json.dumps(record, indent=1, sort_keys=True))
            place(stage, target)          # (a concurrent fetch may have placed it first)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        return integrity.damage(target, recheck=True)

    # ---- writing -----------------------------------------------------------------------
    def publish(self, target: Entry, stage: Path) -> bool:
        """Commit a staged object remotely; False when another writer's object won (then
        that one is fetched into the cache instead of ours)."""
        record = json.loads((stage / integrity.PROVENANCE).read_text())
        with reaching(self.url, f"committing {target.family} object {target.key[:12]}"):
            won = self.backend.commit(target.family, target.key, stage, record)
        self.listing(target.family)[target.key] = Listed(target.key, 0, time.time())
        self._used.add(str(target.path))
        if not won:
            print(f"heirloom: {target.family} object {target.key[:12]} was committed to {self.url} by another "
                  "run first; using that one", flush=True)
        return won

    def after_commit(self, target: Entry) -> None:
        """Once an object is committed: the winner's copy in the cache, the cache in bounds."""
        if integrity.incomplete(target) is not None:
            self.fetch(target)
        else:
            self._grew(target)

    # ---- the cache ---------------------------------------------------------------------
    def _grew(self, target: Entry) -> None:
        """Count an object that entered the cache; walk the cache (:meth:`evict`) only when
        the count says it may be over its size, not on every fetch."""
        if self._cached_bytes is not None:
            self._cached_bytes += _folder_bytes(target.path)
        if self._cached_bytes is None or self._cached_bytes > self.limit:
            self.evict()

    def evict(self) -> list[Path]:
        """Remove the least recently used cached objects until the cache fits its size
        (objects this process used are kept); return what was removed."""
        folders = [p for p in (self.cache / "objects").glob("*/??/*") if p.is_dir()]
        sizes = {p: _folder_bytes(p) for p in folders}
        total = sum(sizes.values())
        removed = []
        for folder in sorted(folders, key=lambda p: p.stat().st_mtime):
            if total <= self.limit:
                break
            if str(folder) in self._used:
                continue
            shutil.rmtree(folder, ignore_errors=True)
            total -= sizes[folder]
            removed.append(folder)
        self._cached_bytes = total
        return removed

    def _touch(self, target: Entry) -> None:
        """Mark an object as just used (its folder's time orders the eviction)."""
        self._used.add(str(target.path))
        try:
            os.utime(target.path)
        except OSError:
            pass

    def _stage(self, target: Entry, what: str) -> Path:
        stage = self.cache / "tmp" / f"{what}-{target.family}-{target.key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        stage.mkdir(parents=True)
        return stage

    # ---- upkeep (heirloom verify, gc) ----------------------------------------------------
    def all_objects(self) -> list[tuple[str, Listed]]:
        """(family, listed) of every committed object, by family and key."""
        return [(family, listed) for family in self.backend.families()
                for _, listed in sorted(self.listing(family, refresh=True).items())]

    def damage(self, family: str, key: str) -> list[str]:
        """What is wrong with a committed object: downloaded afresh (not from the cache) and
        checked against its record."""
        scratch = entry(family, key, self.cache / "tmp" / f"verify-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            return self._download(scratch)
        finally:
            shutil.rmtree(scratch.root, ignore_errors=True)

    def quarantine(self, family: str, key: str, problems: list[str]) -> str:
        """Take a damaged object out of the store: its record is kept under ``quarantine/``
        with a note, then the object is removed (so that its key is recomputed)."""
        record = self.backend.read_record(family, key) or {}
        note = f"{self.backend.base}/quarantine/{family}/{key}.{time.strftime('%Y%m%dT%H%M%S')}"
        with self.backend.fs.open(f"{note}.json", "wb") as stream:
            stream.write(json.dumps({"record": record, "problems": problems}, indent=1).encode())
        self.backend.remove(family, key)
        return f"{self.url.split('://')[0]}://{note}.json"

    def remove(self, family: str, key: str) -> None:
        self.backend.remove(family, key)
        self._listings.pop(family, None)


def _folder_bytes(folder: Path) -> int:
    """The bytes of the files under ``folder`` (0 when it is gone)."""
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())
