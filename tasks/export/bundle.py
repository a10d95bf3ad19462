"""A config made self-contained for an exported workflow.

The config is written with its ``extends:`` chain merged (one file, ``analysis.yaml``).
Every local file it reads is copied into the bundle folder and named relatively: plugin
modules into ``plugins/`` (with a ``trusted-plugins.sha256`` that vouches for them: the
exporter trusted them, ``heirloom step`` honours it), correctionlib files into
``corrections/``, ONNX models into ``models/``, and the input data (each file a dataset's ``files:`` match, globs
expanded as the loader expands them, ``external_histograms.file``, ``likelihood.archive``)
into ``inputs/``. URLs stay as they are (remote inputs); generated datasets have nothing
to copy. ``inputs.sha256`` lists every copy in ``sha256sum`` format
(:mod:`tasks.export.manifest`), so the folder travels as a whole (REANA uploads it) and
``sha256sum -c inputs.sha256`` checks it. Copies keep their file name; a second, different
file of the same name goes to ``<folder>/<first 12 hex of its sha256>/<name>``. A copy
whose destination already holds the same bytes is not rewritten, so exporting again is
cheap and byte-for-byte the same. Raw inputs enter task keys by content, not path, so the
bundle computes the same keys as the original config.

>>> write_bundle(load_config("configs/agc_ttbar.yaml"), Path("out"), "configs/agc_ttbar.yaml")   # doctest: +SKIP
'analysis.yaml'
"""

from __future__ import annotations

import copy
import glob
import os
import shutil
from pathlib import Path

import yaml

from analysis.lang.trust import TRUST_FILE_NAME
from tasks.export.manifest import (INPUTS_DIR, MANIFEST_NAME, bundled_configs, is_url, manifest_text,
                                   named_paths, sha256_file)

CONFIG_NAME = "analysis.yaml"
HEADER = ("# Written by `heirloom export` from {source}: the config with its extends chain\n"
          "# merged, plugins, corrections and input files copied beside it. Edit the source, then export again.\n")


class Copies:
    """Files copied into a bundle folder: ``{relative path: sha256}``, one copy per content.

    >>> copies = Copies(Path(tempfile.mkdtemp()))                     # doctest: +SKIP
    >>> copies.place(Path("configs/corrections/agc_btag.json"), "corrections")   # doctest: +SKIP
    'corrections/agc_btag.json'
    """

    def __init__(self, outdir: Path, claimed: dict | None = None):
        self.outdir = outdir
        self.claimed = dict(claimed or {})      # relative path -> sha256 (also other configs' copies)
        self.digests: dict[str, str] = {}       # relative path -> sha256, this config's copies

    def place(self, source: Path, folder: str) -> str:
        """Copy ``source`` into ``folder`` (unless the bytes are there); its relative path."""
        digest = sha256_file(source)
        rel = f"{folder}/{source.name}"
        if self.claimed.get(rel, digest) != digest:
            rel = f"{folder}/{digest[:12]}/{source.name}"
        self.claimed[rel] = self.digests[rel] = digest
        copy_if_changed(source, self.outdir / rel, digest)
        return rel


def copy_if_changed(source: Path, target: Path, digest: str) -> bool:
    """Copy ``source`` to ``target`` (atomically) unless ``target`` is a regular file with
    the sha256 ``digest`` already; whether it copied.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "demo.yaml"
    >>> [copy_if_changed(Path("configs/demo.yaml"), target, sha256_file(Path("configs/demo.yaml")))
    ...  for _ in range(2)]
    [True, False]
    """
    if (target.is_file() and not target.is_symlink() and target.stat().st_size == source.stat().st_size
            and sha256_file(target) == digest):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        shutil.copyfile(source, partial)
        os.replace(partial, target)         # replaces a symlink itself, never writes through it
    finally:
        partial.unlink(missing_ok=True)
    return True


def dataset_files(cfg, name: str) -> list:
    """The entries of dataset ``name``'s ``files:``: a URL as it is, a local pattern as the
    loader expands it (:func:`analysis.io.datasets.input_files`): relative to the config
    file that declared it, globs sorted. A ConfigError when a pattern matches nothing.

    >>> dataset_files(load_config("configs/cms2015_files.yaml"), "ttbar")[0].name   # doctest: +SKIP
    'cms2015_ttbar_agc_200ev.root'
    """
    base = cfg.file_of("datasets", name, "files").parent
    out: list = []
    for index, pattern in enumerate(cfg.datasets[name]["files"]):
        if is_url(pattern):
            out.append(pattern)
            continue
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        matches = sorted(glob.glob(full)) if any(c in pattern for c in "*?[") else [full]
        if not matches:
            raise cfg.error(f"no file matches '{pattern}'", "datasets", name, "files", index)
        out += [Path(m).absolute() for m in matches]
    return out


def _local(cfg, path: Path, *key: str | int) -> Path:
    """``path`` if it is a file, else a ConfigError at ``key`` (a bundle cannot leave it out)."""
    if not path.is_file():
        raise cfg.error(f"input file not found: {path} (the bundle copies every local input)", *key)
    return path


def bundled_config(cfg, outdir: Path, copies: Copies | None = None) -> dict:
    """The config's data with every local file it reads copied into ``outdir`` and named
    relatively (URLs and generated datasets as they are)."""
    from analysis.hist.external import source_path
    from analysis.likelihood.published import archive_path
    from analysis.ml.models import model_specs

    copies = copies or Copies(outdir)
    data = copy.deepcopy(cfg.data)
    data.pop("extends", None)
    for key in [k for k in data if k.startswith("x-")]:
        del data[key]
    for alias, plugin in cfg.plugins.items():
        data["plugins"][alias] = copies.place(Path(plugin.source_path), "plugins")
    for alias in data.get("corrections", {}):
        data["corrections"][alias] = copies.place(Path(cfg.correction_files()[alias]), "corrections")
    for spec in model_specs(cfg):
        data["models"][spec.name]["file"] = copies.place(Path(spec.path), "models")
    for name, spec in data.get("datasets", {}).items():
        if "files" in spec:
            spec["files"] = [entry if isinstance(entry, str) else
                             copies.place(_local(cfg, entry, "datasets", name, "files"), INPUTS_DIR)
                             for entry in dataset_files(cfg, name)]
    for section, key, where in (("external_histograms", "file", source_path), ("likelihood", "archive", archive_path)):
        value = data.get(section, {}).get(key)
        if isinstance(value, str) and not is_url(value):
            data[section][key] = copies.place(_local(cfg, where(cfg), section, key), INPUTS_DIR)
    return data


def write_bundle(cfg, outdir: Path, source: str, name: str = CONFIG_NAME) -> str:
    """Write ``name`` (default ``analysis.yaml``), its copies and ``inputs.sha256`` into
    ``outdir``; return ``name``. Other configs already bundled there (a recast fork's
    ``newsignal.yaml``) keep their copies; a copy in ``inputs/`` that no config names is removed."""
    outdir.mkdir(parents=True, exist_ok=True)
    others = [p for p in bundled_configs(outdir) if p.name != name]
    copies = Copies(outdir, _digests(outdir, named_paths(others)))
    data = bundled_config(cfg, outdir, copies)
    text = HEADER.format(source=source) + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    (outdir / name).write_text(text)
    if cfg.plugins:        # the exporter vouches for the plugins it copied (docs/security.md)
        (outdir / TRUST_FILE_NAME).write_text("".join(
            f"{plugin.sha256}  {data['plugins'][alias]}\n" for alias, plugin in cfg.plugins.items()))
    named = named_paths(bundled_configs(outdir))
    _prune(outdir, named)
    digests = {**_digests(outdir, [p for p in named if p not in copies.digests]), **copies.digests}
    (outdir / MANIFEST_NAME).write_text(manifest_text({p: digests[p] for p in named if p in digests}))
    return name


def _digests(outdir: Path, paths: list[str]) -> dict:
    """``{path: sha256}`` of the copies under ``plugins/``, ``corrections/``, ``models/``, ``inputs/`` that exist."""
    copied = ("plugins/", "corrections/", "models/", f"{INPUTS_DIR}/")
    return {p: sha256_file(outdir / p) for p in paths
            if p.startswith(copied) and (outdir / p).is_file() and not (outdir / p).is_symlink()}


def _prune(outdir: Path, named: list[str]) -> None:
    """Remove files under ``inputs/`` that no bundled config names (left by an earlier export)."""
    folder = outdir / INPUTS_DIR
    if not folder.is_dir():
        return
    keep = set(named)
    for path in sorted(folder.rglob("*"), reverse=True):
        rel = path.relative_to(outdir).as_posix()
        if (path.is_file() or path.is_symlink()) and rel not in keep:
            path.unlink()
        elif path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
            path.rmdir()
