"""Files a config names, checked before they are read: a regular file, of bounded size.

A config may come from a stranger. ``extends: /dev/zero``, ``corrections: {z: /dev/fd/0}``
or a 50 GB "correction file" must fail at once with a clear message, never read without
end, block on a pipe or fill the memory. docs/config-reference.md ("Limits") lists them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

MAX_CONFIG_BYTES = 1 * MiB              # a YAML config (and every config it extends)
MAX_PLUGIN_BYTES = 1 * MiB              # a plugin's Python source
MAX_CORRECTION_BYTES = 256 * MiB        # a correctionlib JSON(.gz) file (and its decompressed JSON)
MAX_JSON_BYTES = 256 * MiB              # an external histogram file in the agc_json format
MAX_ARCHIVE_BYTES = 2 * GiB             # a published-likelihood archive, an external ROOT histogram file

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


def regular_file(path: str | os.PathLike, *, limit: int, what: str) -> Path:
    """The resolved ``path``, after checking that it exists, is a regular file and holds at
    most ``limit`` bytes; else a ValueError with a one-line message (the caller locates it).

    >>> regular_file("configs/demo.yaml", limit=MAX_CONFIG_BYTES, what="config").name
    'demo.yaml'
    >>> regular_file("/dev/zero", limit=MAX_CONFIG_BYTES, what="config")
    Traceback (most recent call last):
    ValueError: config must be a regular file (/dev/zero is a character device)
    """
    path = Path(path).expanduser()
    try:
        resolved = path.resolve()
        info = resolved.stat()
    except FileNotFoundError:
        raise ValueError(f"{what} not found: {path}") from None
    except (OSError, RuntimeError, ValueError) as err:   # RuntimeError: a symlink loop; ValueError: NUL
        raise ValueError(f"cannot read {what} {path}: {getattr(err, 'strerror', None) or err}") from None
    if not stat.S_ISREG(info.st_mode):
        shown = str(path) if resolved == path.absolute() else f"{path} -> {resolved}"
        raise ValueError(f"{what} must be a regular file ({shown} is {file_kind(info.st_mode)})")
    if resolved.parts[1:2] in (("proc",), ("sys",), ("dev",)):   # kernel files: their size says nothing
        raise ValueError(f"{what} must be a regular file ({path} is a kernel file in /{resolved.parts[1]})")
    if info.st_size > limit:
        raise ValueError(f"{what} is {size_text(info.st_size, limit)}; the limit is {size_text(limit)}")
    return resolved


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words.

    >>> file_kind(os.stat("/dev/null").st_mode)
    'a character device'
    """
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def size_text(size: int, limit: int | None = None) -> str:
    """``size`` in bytes, KiB, MiB or GiB (exact bytes where rounding would hide that it exceeds ``limit``).

    >>> size_text(3 * MiB + 200 * KiB), size_text(MiB + 1, MiB), size_text(2 * GiB), size_text(1000 * KiB)
    ('3.2 MiB', '1048577 bytes', '2 GiB', '1000 KiB')
    """
    unit, name = next(((u, n) for u, n in ((GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")) if size >= u), (1, "bytes"))
    text = f"{size / unit:.1f}".rstrip("0").rstrip(".") + f" {name}" if unit > 1 else f"{size} bytes"
    if limit is not None and text == size_text(limit):
        return f"{size} bytes"
    return text
