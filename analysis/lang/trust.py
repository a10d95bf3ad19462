"""Who may run code: the trust decision for plugin files named in a config.

A config is data; a plugin is code. A plugin file runs only when it is trusted, by one
of (``docs/security.md``):

1. **the repository**: a file whose sha256 is listed in ``configs/trusted-plugins.sha256``,
   committed with Heirloom's own configs (``configs/plugins/agc.py`` and ``adl.py``);
2. **you**: a file whose sha256 you approved with ``heirloom trust FILE``, recorded in
   your trust file (``$HEIRLOOM_TRUST_FILE``, default
   ``~/.config/heirloom/trusted-plugins.sha256``);
3. **a trust file you name**: ``$HEIRLOOM_TRUSTED_PLUGINS`` lists files (separated by
   ``:``) in ``sha256sum`` format, e.g. one committed with an analysis for its CI.

Trust is by content: editing an approved file withdraws the approval until it is
trusted again. Trust files use the ``sha256sum`` format (``<hex>  <path>``), so
``sha256sum plugins/*.py > trusted-plugins.sha256`` writes one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from analysis.errors import PluginError

#: the repository that holds Heirloom (analysis/ is its library folder)
REPOSITORY = Path(__file__).resolve().parents[2]
TRUST_FILE_NAME = "trusted-plugins.sha256"


def user_trust_file() -> Path:
    """Where ``heirloom trust`` records approvals.

    >>> user_trust_file().suffix
    '.sha256'
    """
    explicit = os.environ.get("HEIRLOOM_TRUST_FILE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "heirloom" / TRUST_FILE_NAME


def sha256_hex(data: bytes) -> str:
    """The sha256 of ``data`` in hex, as ``sha256sum`` writes it.

    >>> sha256_hex(b"")[:16]
    'e3b0c44298fc1c14'
    """
    return hashlib.sha256(data).hexdigest()


def read_trust_file(path: Path) -> set[str]:
    """The sha256 digests listed in a ``sha256sum``-format file (missing file: none).

    >>> read_trust_file(Path("/nonexistent"))
    set()
    """
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return set()
    digests = set()
    for line in text.splitlines():
        word = line.strip().split(maxsplit=1)[0] if line.strip() else ""
        if len(word) == 64 and all(c in "0123456789abcdef" for c in word.lower()):
            digests.add(word.lower())
    return digests


def trust_sources() -> list[Path]:
    """Every trust file consulted: yours, then those in ``$HEIRLOOM_TRUSTED_PLUGINS``."""
    extra = [Path(p) for p in os.environ.get("HEIRLOOM_TRUSTED_PLUGINS", "").split(os.pathsep) if p]
    return [user_trust_file(), *extra]


def repository_trust_file() -> Path:
    """The trust file committed with Heirloom's own configs (its plugins' sha256).

    >>> repository_trust_file().relative_to(REPOSITORY).as_posix()
    'configs/trusted-plugins.sha256'
    """
    return REPOSITORY / "configs" / TRUST_FILE_NAME


def trusted_by(path: Path, digest: str) -> str | None:
    """Why the file at ``path`` with content ``digest`` may run, or None.

    >>> trusted_by(Path("/tmp/evil.py"), "0" * 64) is None
    True
    """
    for source in [repository_trust_file(), *trust_sources()]:
        if digest in read_trust_file(source):
            return f"approved in {source}"
    return None


def trust(path: str | os.PathLike) -> tuple[str, Path]:
    """Approve the file's current content: append its sha256 to your trust file.

    Returns (digest, trust file). Approving twice records it once.

    >>> plugin = outdir / "mine.py"
    >>> _ = plugin.write_text("def double(x):\\n    return 2 * x\\n")
    >>> digest, where = trust(plugin)
    >>> trusted_by(plugin, digest) == f"approved in {where}"
    True
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise PluginError(f"cannot trust {path}: not a file")
    digest = sha256_hex(path.read_bytes())
    target = user_trust_file()
    if digest not in read_trust_file(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a") as stream:
            stream.write(f"{digest}  {path}\n")
    return digest, target


def untrusted_message(alias: str, path: Path, digest: str) -> str:
    """The one line that says a plugin will not run, and how to allow it."""
    return (f"plugin '{alias}' is not trusted, so it will not run: {path} (sha256 {digest[:16]}...) is code, "
            f"not data. Read it; if you trust it, run: heirloom trust {path}")
