"""The analysis image's name: pinned to the content that goes into it.

An exported workflow names its image as ``heirloom/analysis:<version>-<hash>``, where the
hash covers every file that ``containers/Dockerfile`` copies into the image (the lock,
the package, its configs, the Dockerfile and entry point). The same checkout always
names the same image, a changed line of code or a changed pin names another, and a
workflow never runs on an image other than the one it was exported for.
``containers/build.sh`` builds the image under this name.

    python -m tasks.export.image              # prints the reference, e.g. heirloom/analysis:0.1.0-3f9c0e1a2b4d
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGE_NAME = "heirloom/analysis"
# what containers/Dockerfile copies (tests/test_containers.py keeps the two equal)
IMAGE_INPUTS = ("requirements.lock", "pyproject.toml", "README.md", "law.cfg", "analysis", "tasks", "configs",
                "containers/Dockerfile", "containers/entrypoint.sh")
HASH_LENGTH = 12


def _files(root: Path) -> list[Path]:
    out = []
    for name in IMAGE_INPUTS:
        path = root / name
        if path.is_file():
            out.append(path)
            continue
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            out += [Path(folder) / f for f in files if not f.endswith(".pyc")]
    return sorted(out)


def content_hash(root: Path = ROOT) -> str:
    """A hash of the image's build inputs (paths and bytes; byte-code caches left out).

    >>> len(content_hash())
    12
    """
    digest = hashlib.sha256()
    for path in _files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:HASH_LENGTH]


def content_tag(root: Path = ROOT) -> str:
    """``<version>-<content hash>``, the tag of the image a checkout builds.

    >>> content_tag().startswith(__import__("analysis").__version__ + "-")
    True
    """
    from analysis import __version__

    return f"{__version__}-{content_hash(root)}"


def split_image(image: str) -> tuple[str, str]:
    """``"heirloom/analysis:0.1.0"`` -> ``("heirloom/analysis", "0.1.0")``; no tag: ``""``
    (a ``:`` in a registry's host:port is not a tag).

    >>> split_image("registry.example:5000/heirloom")
    ('registry.example:5000/heirloom', '')
    """
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return image, ""
    return name, tag


def default_image(image: str | None = None) -> str:
    """The image the exports name: ``image`` (``--image``), else ``$HEIRLOOM_IMAGE``, else
    ``heirloom/analysis``; without a tag (or a digest), the content tag of this checkout.

    >>> default_image("registry.example/heirloom").startswith("registry.example/heirloom:")
    True
    >>> default_image("me/heirloom:v2")
    'me/heirloom:v2'
    """
    image = image or os.environ.get("HEIRLOOM_IMAGE") or IMAGE_NAME
    if "@sha256:" in image:
        return image
    name, tag = split_image(image)
    return f"{name}:{tag or content_tag()}"


if __name__ == "__main__":
    print(default_image(sys.argv[1] if len(sys.argv) > 1 else None))
