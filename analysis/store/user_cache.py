"""The user's cache folder: what any store on this machine may reuse.

Some things Heirloom remembers are facts about code, configs and files, not results: the
code identities of the project's files (:mod:`analysis.store.code_cache`), the type checks
that a config's expressions passed (:func:`analysis.select.typecheck.check_types_once`)
and the input files' schemas (:mod:`analysis.io.schema`, under each file's content key).
Each is keyed by everything it depends on, so it holds for any store. Kept only in the
store, a new store (a colleague's, a CI job's, a benchmark's) pays for them again: about
1.5 s of a cold `law run`, and an opening of every input file. They are therefore also
kept here, beside the store's copy.

The folder is ``HEIRLOOM_CACHE_DIR``, else ``$XDG_CACHE_HOME/heirloom``, else
``~/.cache/heirloom``; ``HEIRLOOM_CACHE_DIR=off`` turns it off. Losing it costs only
time.

>>> cache_folder({"HEIRLOOM_CACHE_DIR": "/scratch/me/heirloom"})
PosixPath('/scratch/me/heirloom')
>>> cache_folder({"HEIRLOOM_CACHE_DIR": "off"}) is None
True
>>> cache_folder({"XDG_CACHE_HOME": "/var/cache/me", "HOME": "/home/me"})
PosixPath('/var/cache/me/heirloom')
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

OFF = ("off", "none", "0")


def cache_folder(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The user's cache folder (None when turned off or when there is no home)."""
    chosen = environ.get("HEIRLOOM_CACHE_DIR", "").strip()
    if chosen.lower() in OFF:
        return None
    if chosen:
        return Path(chosen)
    if environ.get("XDG_CACHE_HOME"):
        return Path(environ["XDG_CACHE_HOME"]) / "heirloom"
    if environ.get("HOME"):
        return Path(environ["HOME"]) / ".cache" / "heirloom"
    return None


def cache_file(name: str, environ: Mapping[str, str] = os.environ) -> Path | None:
    """``name`` in the user's cache folder (None when there is none).

    >>> cache_file("checks.json", {"HEIRLOOM_CACHE_DIR": "/tmp/c"})
    PosixPath('/tmp/c/checks.json')
    """
    folder = cache_folder(environ)
    return None if folder is None else folder / name


def load_dict(path: Path | None) -> dict:
    """The JSON object a cache file holds; {} when there is none or it is damaged (losing
    a cache costs only time).

    >>> load_dict(None), load_dict(Path("/nowhere/cache.json"))
    ({}, {})
    """
    import json

    try:
        data = json.loads(path.read_text()) if path is not None else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_dict(path: Path, data: dict, indent: int | None = None) -> None:
    """Write a cache file atomically (a temporary file, then a rename); one that cannot be
    written (a read-only home or store) is left as it was.

    >>> save_dict(outdir / "c.json", {"a": 1}); load_dict(outdir / "c.json")
    {'a': 1}
    """
    import json

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=indent, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass
