"""What a bundle folder holds: the files its configs name, and ``inputs.sha256``.

A bundle is a folder with one or more Heirloom configs (``analysis.yaml``, for a recast
fork also ``newsignal.yaml``) whose file references are relative to the folder; the
manifest lists the copied files in ``sha256sum`` format, so ``sha256sum -c inputs.sha256``
checks them from the bundle folder. Written by :mod:`tasks.export.bundle`, read by
:mod:`tasks.export.check`.

>>> references({"datasets": {"d": {"files": ["inputs/a.root", "root://eos/b.root"]}}})
[('datasets.d.files[0]', 'inputs/a.root'), ('datasets.d.files[1]', 'root://eos/b.root')]
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import yaml

from analysis.config.files import MAX_CONFIG_BYTES

MANIFEST_NAME = "inputs.sha256"
INPUTS_DIR = "inputs"
#: top-level keys of which a Heirloom config has at least one (a workflow file has none)
CONFIG_KEYS = ("datasets", "likelihood", "external_histograms")
_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


def is_url(value: str) -> bool:
    """A remote input (``root://``, ``https://``, ...), which stays as it is.

    >>> is_url("root://eospublic.cern.ch//x.root"), is_url("inputs/x.root")
    (True, False)
    """
    return "://" in value


def references(data: dict) -> list[tuple[str, object]]:
    """``(key, value)`` of every file a config's data names, in the config's order:
    ``extends``, ``plugins.<alias>``, ``corrections.<alias>``, ``models.<name>.file``,
    ``datasets.<name>.files[i]``, ``external_histograms.file``, ``likelihood.archive``.

    >>> references({"plugins": {"agc": "plugins/agc.py"}, "likelihood": {"archive": "inputs/l.tar.gz"}})
    [('plugins.agc', 'plugins/agc.py'), ('likelihood.archive', 'inputs/l.tar.gz')]
    """
    out: list[tuple[str, object]] = []
    if data.get("extends") is not None:
        out.append(("extends", data["extends"]))
    for section in ("plugins", "corrections"):
        out += [(f"{section}.{alias}", value) for alias, value in (data.get(section) or {}).items()]
    out += [(f"models.{name}.file", spec["file"]) for name, spec in (data.get("models") or {}).items()
            if isinstance(spec, dict) and "file" in spec]
    for name, spec in (data.get("datasets") or {}).items():
        if isinstance(spec, dict) and isinstance(spec.get("files"), list):
            out += [(f"datasets.{name}.files[{i}]", value) for i, value in enumerate(spec["files"])]
    for section, key in (("external_histograms", "file"), ("likelihood", "archive")):
        spec = data.get(section)
        if isinstance(spec, dict) and key in spec:
            out.append((f"{section}.{key}", spec[key]))
    return out


def is_config(data) -> bool:
    """Whether parsed YAML is a Heirloom config (not a workflow or parameter file).

    >>> is_config({"name": "x", "datasets": {}}), is_config({"stages": []})
    (True, False)
    """
    return isinstance(data, dict) and "name" in data and any(key in data for key in CONFIG_KEYS)


def read_yaml(path: Path):
    """The parsed YAML of ``path`` (at most a config's size); a ValueError names the file.

    >>> read_yaml(Path("configs/demo.yaml"))["name"]
    'agc_demo'
    """
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ValueError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
        return yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot read ({str(err).splitlines()[0]})") from None


def bundled_configs(folder: Path) -> list[Path]:
    """The Heirloom configs in a bundle folder (``*.yaml`` files that are configs), sorted.

    >>> [p.name for p in bundled_configs(Path("workflows/recast/agc_zprime/specs"))]
    ['analysis.yaml', 'newsignal.yaml']
    """
    found = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            if path.is_file() and is_config(read_yaml(path)):
                found.append(path)
        except ValueError:
            if path.name in ("analysis.yaml", "newsignal.yaml"):
                found.append(path)          # unreadable: the check names it
    return found


def named_paths(configs: list) -> list[str]:
    """The relative local paths (no URLs) that the given config files name, sorted, unique;
    an unreadable config names none (the check reports it).

    >>> named_paths(bundled_configs(Path("workflows/yadage/agc_ttbar")))
    ['corrections/agc_btag.json', 'plugins/agc.py']
    """
    paths = set()
    for config in configs:
        try:
            data = read_yaml(config)
        except ValueError:
            continue
        paths |= {value for _, value in references(data) if isinstance(value, str) and not is_url(value)}
    return sorted(paths)


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes in hex, as ``sha256sum`` writes it (read in 1 MiB blocks).

    >>> sha256_file(Path("/dev/null"))[:16]
    'e3b0c44298fc1c14'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_text(digests: dict) -> str:
    """``sha256sum`` lines for ``{relative path: hex}``, sorted by path.

    >>> manifest_text({"inputs/b.root": "b" * 64, "inputs/a.root": "a" * 64}).splitlines()[0][-15:]
    '  inputs/a.root'
    """
    return "".join(f"{digests[path]}  {path}\n" for path in sorted(digests))


def parse_manifest(text: str) -> tuple[list[tuple[str, str]], list[int]]:
    """``([(hex, path), ...], [numbers of malformed lines])`` of a ``sha256sum`` file.

    >>> parse_manifest("a" * 64 + "  inputs/x.root\\nnonsense\\n")
    ([('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'inputs/x.root')], [2])
    """
    entries, bad = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match:
            entries.append((match.group(1), match.group(2)))
        else:
            bad.append(number)
    return entries, bad
