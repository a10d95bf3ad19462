"""ROOT files with the same bytes for the same content.

uproot writes the wall clock (``TDatime`` in the file header, directories and keys) and
a fresh UUID into every file it creates, so two runs of one task would give two sets
of bytes under one key. :func:`recreate` pins both: the time to a fixed epoch and the
UUID to one derived from an ``identity`` the caller gives (what the file holds: its
content's digest, or the generator's parameters), so different files keep different
UUIDs (coffea tells partitions apart by them). When a file was made is recorded in the
provenance record instead.

>>> with recreate(outdir / "a.root", identity=digest) as f:       # doctest: +SKIP
...     f["h"] = histogram
"""

from __future__ import annotations

import contextlib
import datetime as _datetime
import hashlib
import os
import shutil
import threading
import types
import uuid
from pathlib import Path
from typing import Any, Iterator

#: the time written into ROOT files (ROOT's TDatime starts in 1995)
EPOCH = _datetime.datetime(2000, 1, 1)
_LOCK = threading.Lock()


class _FixedClock(_datetime.datetime):
    @classmethod
    def now(cls, tz: Any = None) -> "_FixedClock":
        return cls(2000, 1, 1, tzinfo=tz)


_CLOCK = types.SimpleNamespace(datetime=_FixedClock)


@contextlib.contextmanager
def recreate(path: str | Path, identity: str, **options: Any) -> Iterator[Any]:
    """``uproot.recreate`` with a fixed clock and UUID (one writer at a time per process),
    written beside ``path`` under its own name (ROOT records it) and moved into place
    when complete: a crash leaves no file at ``path``."""
    import uproot
    from uproot.writing import _cascade, _cascadentuple, _cascadetree, writable

    path = Path(path)
    file_uuid = uuid.UUID(bytes=hashlib.sha256(identity.encode()).digest()[:16])
    folder = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    folder.mkdir()
    modules = (_cascade, _cascadentuple, _cascadetree, writable)
    try:
        with _LOCK:
            saved = [module.datetime for module in modules]
            for module in modules:
                module.datetime = _CLOCK
            try:
                with uproot.recreate(folder / path.name, uuid_function=lambda: file_uuid, **options) as handle:
                    yield handle
            finally:
                for module, original in zip(modules, saved):
                    module.datetime = original
        os.replace(folder / path.name, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
