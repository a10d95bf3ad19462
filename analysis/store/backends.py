"""The two kinds of remote store, each as the few operations a store needs of it.

A backend knows where an object lives (``objects/<Family>/<kk>/<key>/`` under the store's
URL, as in a local store) and how to commit one atomically on its protocol:

* **S3** (:class:`S3Backend`): no rename exists, so the data files of one attempt go under
  ``<key>/g/<generation>/`` first, and ``<key>/provenance.json`` (naming that generation) last,
  with a conditional put (``If-None-Match: *``). The first writer wins; a loser's put is
  refused and it removes its own generation. A crash before the record leaves files that no
  record names: they never count, and ``heirloom gc`` removes them.
* **XRootD** (:class:`XRootDBackend`): the object is written to ``tmp/<generation>/`` and
  renamed to ``<key>/`` by the server in one step, which fails when the key exists.

Both list a task family with one call (:meth:`list_family`): every committed record and its
time, so a no-op run of a whole DAG costs one listing per family.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from analysis.errors import StoreError

PROVENANCE = "provenance.json"


@dataclass(frozen=True)
class Listed:
    """A committed object seen in a listing: its key, bytes (0: not known from the listing)
    and the time it was committed (epoch seconds)."""
    key: str
    size: int
    modified: float


def object_prefix(base: str, family: str, key: str) -> str:
    """``<base>/objects/<Family>/<kk>/<key>``.

    >>> object_prefix("bucket/store", "Fit", "ab12")
    'bucket/store/objects/Fit/ab/ab12'
    """
    return f"{base}/objects/{family}/{key[:2]}/{key}"


def absent(err: OSError) -> bool:
    """Whether a protocol error says "no such file" (fsspec-xrootd raises a plain OSError
    with XRootD's code 3011 for it).

    >>> absent(FileNotFoundError("x")), absent(OSError("[ERROR] [3011] Unable to locate /s")), absent(OSError("timeout"))
    (True, True, False)
    """
    return isinstance(err, FileNotFoundError) or "[3011]" in str(err) or "no such file" in str(err).lower()


def new_generation() -> str:
    """A fresh name for one commit attempt."""
    return uuid.uuid4().hex[:16]


class _Backend:
    """What both protocols share: an fsspec filesystem and the store's base path in it."""

    def __init__(self, fs, base: str, url: str):
        self.fs, self.base, self.url = fs, base.rstrip("/"), url

    def prefix(self, family: str, key: str) -> str:
        return object_prefix(self.base, family, key)

    def read_record(self, family: str, key: str) -> dict | None:
        """The committed provenance record of an object (None when there is none)."""
        try:
            return json.loads(self._cat(f"{self.prefix(family, key)}/{PROVENANCE}"))
        except OSError as err:
            if absent(err):
                return None
            raise

    def has_record(self, family: str, key: str) -> bool:
        return bool(self.fs.exists(f"{self.prefix(family, key)}/{PROVENANCE}"))

    def families(self) -> list[str]:
        """Task families with objects in the store."""
        try:
            return sorted(d["name"].rstrip("/").rsplit("/", 1)[-1] for d in self.fs.ls(f"{self.base}/objects", detail=True))
        except OSError as err:
            if absent(err):
                return []
            raise

    def download(self, pairs: list[tuple[str, Path]]) -> None:
        """Fetch remote files (paths relative to the base) to local paths."""
        if pairs:
            self.fs.get([f"{self.base}/{remote}" for remote, _ in pairs], [str(local) for _, local in pairs])

    def file_path(self, family: str, key: str, record: dict, name: str) -> str:
        """Where an object's output file ``name`` is, relative to the base."""
        where = f"objects/{family}/{key[:2]}/{key}"
        generation = record.get("remote_generation")
        return f"{where}/g/{generation}/{name}" if generation else f"{where}/{name}"

    def _cat(self, path: str) -> bytes:
        with self.fs.open(path, "rb") as stream:
            return stream.read()


class S3Backend(_Backend):
    """An S3 bucket (or prefix): data first, the record last with a conditional put."""

    def list_family(self, family: str) -> dict[str, Listed]:
        found: dict[str, Listed] = {}
        prefix = f"{self.base}/objects/{family}/"
        try:
            listing = self.fs.find(prefix, detail=True, maxdepth=None)
        except OSError as err:
            if absent(err):
                return found
            raise
        finally:
            self.fs.invalidate_cache(prefix)
        sizes: dict[str, int] = {}
        for path, info in listing.items():
            parts = path[len(prefix):].split("/")
            if len(parts) >= 3:
                sizes[parts[1]] = sizes.get(parts[1], 0) + int(info.get("size") or 0)
            if len(parts) == 3 and parts[2] == PROVENANCE:
                modified = info.get("LastModified")
                found[parts[1]] = Listed(parts[1], 0, modified.timestamp() if modified is not None else 0.0)
        return {key: Listed(key, sizes.get(key, 0), listed.modified) for key, listed in found.items()}

    def commit(self, family: str, key: str, stage: Path, record: dict) -> bool:
        """Upload ``stage``'s files, then the record; False when another writer won."""
        generation = new_generation()
        record = dict(record, remote_generation=generation)
        where = self.prefix(family, key)
        files = [p for p in sorted(stage.rglob("*")) if p.is_file() and p.relative_to(stage).as_posix() != PROVENANCE]
        uploads = [(str(p), f"{where}/g/{generation}/{p.relative_to(stage).as_posix()}") for p in files]
        try:
            if uploads:
                self.fs.put([u[0] for u in uploads], [u[1] for u in uploads])
            self.fs.pipe_file(f"{where}/{PROVENANCE}", json.dumps(record, indent=1, sort_keys=True).encode(),
                              mode="create")
            return True
        except FileExistsError:
            self.remove_paths([u[1] for u in uploads])
            return False

    def remove(self, family: str, key: str) -> None:
        """Delete an object: the record first (so it stops counting at once), then its files."""
        where = self.prefix(family, key)
        self.fs.rm_file(f"{where}/{PROVENANCE}")
        self.remove_paths(self.fs.find(where))

    def orphans(self, family: str, committed: dict[str, Listed]) -> list[tuple[str, float]]:
        """Files of attempts that no record names (crashed or lost commits): (path, time)."""
        prefix = f"{self.base}/objects/{family}/"
        out = []
        records: dict[str, str | None] = {}
        for path, info in self.fs.find(prefix, detail=True).items():
            parts = path[len(prefix):].split("/")
            if len(parts) < 5 or parts[2] != "g":
                continue
            key = parts[1]
            if key not in records:
                record = self.read_record(family, key) if key in committed else None
                records[key] = (record or {}).get("remote_generation")
            if parts[3] != records[key]:
                modified = info.get("LastModified")
                out.append((path, modified.timestamp() if modified is not None else 0.0))
        self.fs.invalidate_cache(prefix)
        return out

    def remove_paths(self, paths: list[str]) -> None:
        if paths:
            self.fs.rm(list(paths))


class XRootDBackend(_Backend):
    """An XRootD endpoint (EOS, dCache, a plain xrootd): staging plus a server-side rename."""

    def __init__(self, fs, base: str, url: str):
        super().__init__(fs, base, url)
        from XRootD import client

        self.client = client.FileSystem(url.split("//", 2)[0] + "//" + url.split("//", 2)[1])

    def list_family(self, family: str) -> dict[str, Listed]:
        found: dict[str, Listed] = {}
        prefix = f"{self.base}/objects/{family}/"
        try:
            shards = [f"{prefix}{d['name'].rstrip('/').rsplit('/', 1)[-1]}" for d in self.fs.ls(prefix, detail=True)]
        except OSError as err:
            if absent(err):
                return found
            raise
        for shard in shards:
            for folder in self.fs.ls(shard + "/", detail=True):
                key = folder["name"].rstrip("/").rsplit("/", 1)[-1]
                if folder.get("type") == "directory":
                    found[key] = Listed(key, 0, float(folder.get("mtime") or 0))
        self.fs.invalidate_cache()
        return found

    def commit(self, family: str, key: str, stage: Path, record: dict) -> bool:
        """Upload ``stage`` to ``tmp/<generation>/``, then rename it to the key's folder."""
        from XRootD.client.flags import MkDirFlags

        staged = f"{self.base}/tmp/{new_generation()}"
        self._mkdir(staged)
        for path in sorted(stage.rglob("*")):
            target = f"{staged}/{path.relative_to(stage).as_posix()}"
            if path.is_dir():
                self._mkdir(target)
            elif path.relative_to(stage).as_posix() != PROVENANCE:
                self._upload(path, target)
        with self.fs.open(f"{staged}/{PROVENANCE}", "wb") as stream:
            stream.write(json.dumps(record, indent=1, sort_keys=True).encode())
        where = self.prefix(family, key)
        status, _ = self.client.mkdir(where.rsplit("/", 1)[0], MkDirFlags.MAKEPATH)
        status, _ = self.client.mv(staged, where)
        if status.ok:
            return True
        self.fs.rm(staged, recursive=True)
        if self.has_record(family, key):
            return False
        raise StoreError(f"could not commit {family} object {key[:12]} to {self.url}: {status.message}")

    def remove(self, family: str, key: str) -> None:
        """Delete an object: the record first (so it stops counting at once), then its folder."""
        where = self.prefix(family, key)
        self.fs.rm_file(f"{where}/{PROVENANCE}")
        self.fs.rm(where, recursive=True)

    def orphans(self, family: str, committed: dict[str, Listed]) -> list[tuple[str, float]]:
        """Staging folders left by crashed commits (the rename never happened): (path, time)."""
        try:
            return [(d["name"], float(d.get("mtime") or 0)) for d in self.fs.ls(f"{self.base}/tmp", detail=True)]
        except OSError as err:
            if absent(err):
                return []
            raise

    def remove_paths(self, paths: list[str]) -> None:
        for path in paths:
            self.fs.rm(path, recursive=True)

    def _mkdir(self, path: str) -> None:
        from XRootD.client.flags import MkDirFlags

        status, _ = self.client.mkdir(path, MkDirFlags.MAKEPATH)
        if not status.ok:
            raise StoreError(f"cannot make {path} on {self.url}: {status.message}")

    def _upload(self, local: Path, remote: str) -> None:
        with open(local, "rb") as source, self.fs.open(remote, "wb") as target:
            while block := source.read(8 << 20):
                target.write(block)
