"""A persistent cache of code identities, so a no-op rerun does not re-parse the project.

Deriving a task's code identity parses and normalises every project file (about 0.6 s
for ``analysis/`` + ``tasks/``). The result only changes when a file does, so it is kept
in ``<store>/manifests/code.json`` under a *stamp*: a hash of the Python version, the
identity algorithm's version and, for every ``.py`` file under the roots, its relative
path, size, modification time, inode change time and inode number. Any edit changes the
stamp (an editor's write moves mtime and ctime), and then everything is derived again.
What a hit trusts is the same as for input files (docs/explanation.md). A ``fallback``
file (the user's cache, :mod:`analysis.store.user_cache`) serves a store that has none
for this stamp yet, and is written too.

>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> (folder / "pkg").mkdir(); _ = (folder / "pkg" / "a.py").write_text("x = 1\\n")
>>> cache = CodeCache(folder / "code.json", {"pkg": folder / "pkg"})
>>> cache.get("pkg.a:x") is None
True
>>> cache.put("pkg.a:x", {"identity": "abc", "units": {}}); cache.save()
>>> CodeCache(folder / "code.json", {"pkg": folder / "pkg"}).get("pkg.a:x")
{'identity': 'abc', 'units': {}}
>>> _ = (folder / "pkg" / "a.py").write_text("x = 22\\n")
>>> CodeCache(folder / "code.json", {"pkg": folder / "pkg"}).get("pkg.a:x") is None
True
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping

from analysis.store.code_identity import VERSION


def project_stamp(roots: Mapping[str, Path]) -> str:
    """sha256 over what must not change for cached identities to hold."""
    digest = hashlib.sha256(f"{sys.version_info[:2]}|{VERSION}".encode())
    for name, root in sorted(roots.items()):
        for path in sorted(Path(root).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            stat = path.stat()
            digest.update(f"{name}/{path.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}|"
                          f"{stat.st_ctime_ns}|{stat.st_ino}\n".encode())
    return digest.hexdigest()


class CodeCache:
    """Cached ``{task class: identity record}`` for one state of the project's files."""

    def __init__(self, path: Path, roots: Mapping[str, Path], fallback: Path | None = None):
        self.path, self.fallback = path, fallback
        self.stamp = project_stamp(roots)
        self._entries: dict[str, Any] = {}
        self._dirty = False
        for source in (path, fallback):
            self._entries = self._load(source) if source is not None else {}
            if self._entries:
                self._dirty = source != path            # copied into the store's file at save
                break

    def _load(self, source: Path) -> dict[str, Any]:
        """The entries of a cache file for this stamp ({} when it has none, or is damaged)."""
        try:
            stored = json.loads(source.read_text())
            classes = stored["classes"] if stored.get("stamp") == self.stamp else {}
            if all(isinstance(r, dict) and isinstance(r.get("identity"), str) and isinstance(r.get("units"), dict)
                   for r in classes.values()):        # a damaged cache is ignored, then rewritten
                return dict(classes)
        except (OSError, ValueError, KeyError, AttributeError):
            pass
        return {}

    def get(self, name: str) -> Any:
        """The record cached for ``name`` (e.g. ``tasks.select:Select``), or None."""
        return self._entries.get(name)

    def put(self, name: str, record: Any) -> None:
        self._entries[name] = record
        self._dirty = True

    def save(self) -> None:
        """Write the cache atomically (a lost race only costs a recomputation)."""
        if not self._dirty:
            return
        for target in (self.path, self.fallback):
            if target is None:
                continue
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
                tmp.write_text(json.dumps({"stamp": self.stamp, "classes": self._entries}, sort_keys=True))
                os.replace(tmp, target)
            except OSError:
                pass                            # a read-only store or home: derive again next time
        self._dirty = False
