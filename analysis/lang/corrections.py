"""correctionlib corrections named in a config, callable from expressions.

A config lists correction files under ``corrections:`` (alias -> JSON or JSON.gz file).
Every correction in a file becomes a function ``<alias>.<correction name>`` in the
expression language, e.g. ``btag.btag_var("up", jets.pt[:, 0])``. Arguments may be
scalars (strings included), per-event arrays or jagged per-object arrays (broadcast,
evaluated flat, and given back their structure). The file's content hash enters the
content address of every task that calls it.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import os
import stat
import zlib
from pathlib import Path
from typing import Any

# At most this many bytes are read from a correction file, and at most this many are
# decompressed from a .gz one (the config layer's MAX_CORRECTION_BYTES: lang does not import it).
MAX_BYTES = 256 << 20


def _read(path: Path, limit: int = MAX_BYTES) -> bytes:
    """The JSON text of a correction file, decompressed; a ValueError past ``limit`` bytes.

    >>> _read(Path("/dev/zero"))
    Traceback (most recent call last):
    ValueError: /dev/zero is not a regular file
    """
    data = _read_raw(path, limit)
    if path.suffix != ".gz":
        return data
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            text = stream.read(limit + 1)
    except (EOFError, zlib.error) as err:        # truncated or damaged (BadGzipFile is an OSError)
        raise ValueError(f"{path}: not valid gzip ({err})") from None
    if len(text) > limit:
        raise ValueError(f"{path} decompresses to over {limit} bytes (the limit)")
    return text


def _read_raw(path: Path, limit: int = MAX_BYTES) -> bytes:
    """At most ``limit`` bytes of a regular file (opened without blocking, in case of a FIFO)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path} is not a regular file")
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path} is over {limit} bytes (the limit)")
    return data


def correction_names(path: str | Path) -> list:
    """Names of the corrections (and compound corrections) in a correctionlib JSON file.

    >>> correction_names("configs/corrections/agc_btag.json")
    ['btag_var']
    """
    document = json.loads(_read(Path(path)))
    entries = (document.get("corrections", []) + document.get("compound_corrections", [])
               if isinstance(document, dict) else None)
    if not isinstance(entries, list) or not all(isinstance(c, dict) and isinstance(c.get("name"), str)
                                                for c in entries):
        raise ValueError("not a correctionlib file (no list of named corrections)")
    return [c["name"] for c in entries]


def fingerprint(path: str | Path) -> str:
    return hashlib.sha256(_read_raw(Path(path))).hexdigest()[:20]


@functools.lru_cache(maxsize=None)
def _correction_set(path: str):
    import correctionlib

    return correctionlib.CorrectionSet.from_file(path)


def evaluate(path: str, name: str, *args: Any) -> Any:
    """Evaluate correction ``name`` of the file at ``path`` on (possibly jagged) arrays."""
    import awkward as ak
    import numpy as np

    correction = _correction_set(str(path))[name]
    arrays = [i for i, a in enumerate(args) if isinstance(a, ak.Array)]
    if not arrays:
        return correction.evaluate(*[np.asarray(a) if not isinstance(a, str) else a for a in args])
    broadcast = ak.broadcast_arrays(*[args[i] for i in arrays])
    jagged = broadcast[0].ndim > 1
    counts = ak.num(broadcast[0], axis=1) if jagged else None
    flat = {i: ak.to_numpy(ak.flatten(b) if jagged else b) for i, b in zip(arrays, broadcast)}
    values = correction.evaluate(*[flat.get(i, a) for i, a in enumerate(args)])
    return ak.unflatten(values, counts) if jagged else values


def functions(alias: str, path: str | Path) -> dict:
    """``{"<alias>.<name>": callable}`` for every correction in the file (loaded lazily)."""
    path = str(Path(path).resolve())
    return {f"{alias}.{name}": functools.partial(evaluate, path, name) for name in correction_names(path)}
