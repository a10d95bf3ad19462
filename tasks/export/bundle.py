"""A config made self-contained for an exported workflow.

The config is written with its ``extends:`` chain merged (one file, ``analysis.yaml``);
plugin modules and correctionlib files are copied beside it (``plugins/``,
``corrections/``) and referenced relatively, with a ``trusted-plugins.sha256`` that
vouches for the plugins (the exporter trusted them; ``heirloom step`` honours it), so the export folder travels as a whole
(REANA uploads it). Input data is not copied: ``files:``, ``external_histograms.file``
and ``likelihood.archive`` become absolute paths (URLs stay as they are). The content
of the copies is what the task keys fingerprint, so the bundle computes the same keys
as the original config.

>>> write_bundle(load_config("configs/agc_ttbar.yaml"), Path("out"))   # doctest: +SKIP
'analysis.yaml'
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import yaml

from analysis.lang.trust import TRUST_FILE_NAME

CONFIG_NAME = "analysis.yaml"
HEADER = ("# Written by `heirloom export` from {source}: the config with its extends chain\n"
          "# merged, plugins and corrections copied beside it. Edit the source, then export again.\n")


def _is_url(value: str) -> bool:
    return "://" in value


def _absolute(cfg, value: str, *path) -> str:
    if _is_url(value):
        return value
    return str((cfg.file_of(*path).parent / value).resolve())


def bundled_config(cfg, outdir: Path) -> dict:
    """The config's data with file references rewritten for ``outdir`` (copies made there)."""
    data = copy.deepcopy(cfg.data)
    data.pop("extends", None)
    for key in [k for k in data if k.startswith("x-")]:
        del data[key]
    for alias, plugin in cfg.plugins.items():
        data["plugins"][alias] = _copy(Path(plugin.source_path), outdir / "plugins")
    for alias in data.get("corrections", {}):
        data["corrections"][alias] = _copy(Path(cfg.correction_files()[alias]), outdir / "corrections")
    for name, spec in data.get("datasets", {}).items():
        if "files" in spec:
            spec["files"] = [_absolute(cfg, f, "datasets", name, "files") for f in spec["files"]]
    for section, key in (("external_histograms", "file"), ("likelihood", "archive")):
        if key in data.get(section, {}):
            data[section][key] = _absolute(cfg, data[section][key], section, key)
    return data


def write_bundle(cfg, outdir: Path, source: str, name: str = CONFIG_NAME) -> str:
    """Write ``name`` (default ``analysis.yaml``, + copies) into ``outdir``; return ``name``."""
    outdir.mkdir(parents=True, exist_ok=True)
    data = bundled_config(cfg, outdir)
    text = HEADER.format(source=source) + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    (outdir / name).write_text(text)
    if cfg.plugins:        # the exporter vouches for the plugins it copied (docs/security.md)
        (outdir / TRUST_FILE_NAME).write_text("".join(
            f"{plugin.sha256}  plugins/{Path(plugin.source_path).name}\n" for plugin in cfg.plugins.values()))
    return name


def _copy(source: Path, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, folder / source.name)
    return f"{folder.name}/{source.name}"
