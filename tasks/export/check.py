"""``heirloom export check``: is an exported bundle (or a reana.yaml) complete and pinned?

    heirloom export check workflows/yadage/agc_ttbar workflows/recast/agc_zprime
    heirloom export check --reana reana.yaml

For each bundle FOLDER (a folder with ``analysis.yaml``, or whose subfolders have one,
such as a recast entry's ``specs/``):

- every file its configs name (dataset ``files:``, ``external_histograms.file``,
  ``likelihood.archive``, ``corrections``, ``plugins``) is relative, stays inside the
  folder (no ``..``, no symlink out) and exists; URLs are allowed;
- every file ``inputs.sha256`` lists exists and has that sha256, and it lists every input;
- the image of every ``docker-encapsulated`` step (yadage) and the ``image:`` of a
  Snakefile's ``config.yaml`` is pinned: ``NAME@sha256:<64 hex>`` or ``NAME:<version>-<12+ hex>``.

``--reana FILE``: its ``inputs.files``/``inputs.directories`` and ``workflow.file`` are
relative, inside the workspace (the folder of reana.yaml) and exist; its declared outputs
are real files, not ``store/by-name`` symlinks; input directories with an ``analysis.yaml``
are checked as bundles. Each problem is one line ``heirloom export check: <file>: <problem>``.

>>> check_image("heirloom/analysis:0.1.0")
'image heirloom/analysis:0.1.0 is not pinned (want NAME@sha256:<64 hex> or NAME:<version>-<12+ hex>)'
>>> check_image("heirloom/analysis:0.1.0-0123456789ab") is None
True
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from tasks.export.manifest import (MANIFEST_NAME, bundled_configs, is_url, named_paths, parse_manifest,
                                   read_yaml, references, sha256_file)

PREFIX = "heirloom export check"
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_TAG = re.compile(r"^v?[0-9][A-Za-z0-9_.]*-[0-9a-f]{12,}$")
_PINNED = "want NAME@sha256:<64 hex> or NAME:<version>-<12+ hex>"


# ---- one path ---------------------------------------------------------------------------
def path_problem(root: Path, value, what: str = "file") -> str | None:
    """Why ``value`` (a path relative to ``root``) is not a usable ``what`` inside ``root``, or None.

    >>> path_problem(Path("configs"), "/etc/passwd")
    'absolute path /etc/passwd (a bundle names its files relative to its folder)'
    >>> path_problem(Path("configs"), "../README.md")
    '../README.md leaves the folder'
    >>> path_problem(Path("configs"), "demo.yaml") is None
    True
    """
    problem = shape_problem(value)
    if problem:
        return problem
    target = root / value
    if not target.exists() and not target.is_symlink():
        return f"missing {what} {value}"
    try:
        resolved = target.resolve(strict=True)
    except (OSError, RuntimeError):
        return f"{value} is a broken symlink"
    if not resolved.is_relative_to(root.resolve()):
        return f"{value} is a symlink leading outside the folder (to {resolved})"
    if what != "directory" and not resolved.is_file():
        return f"{value} is not a regular file"
    if what == "directory" and not resolved.is_dir():
        return f"{value} is not a directory"
    return None


def shape_problem(value) -> str | None:
    """Why ``value`` cannot name a file inside a folder, seen from the text alone, or None.

    >>> shape_problem("inputs/../../x.root")
    'inputs/../../x.root leaves the folder'
    """
    if not isinstance(value, str) or not value:
        return f"{value!r} is not a file name"
    if os.path.isabs(value) or value.startswith("~"):
        return f"absolute path {value} (a bundle names its files relative to its folder)"
    if os.path.normpath(value).split(os.sep)[0] == "..":
        return f"{value} leaves the folder"
    return None


# ---- a bundle ---------------------------------------------------------------------------
def bundle_folders(folder: Path) -> list[Path]:
    """``folder`` if it holds ``analysis.yaml``, else its subfolders that do (recast: ``specs/``).

    >>> [p.name for p in bundle_folders(Path("workflows/recast/agc_zprime"))]
    ['specs']
    """
    if (folder / "analysis.yaml").exists():
        return [folder]
    return sorted(p for p in folder.iterdir() if p.is_dir() and (p / "analysis.yaml").exists())


def check_configs(folder: Path) -> list[tuple[Path, str]]:
    """``(file, problem)`` for every file a config in ``folder`` names that is not inside it."""
    problems = []
    for config in bundled_configs(folder):
        try:
            data = read_yaml(config)
        except ValueError as err:
            problems.append((config, str(err).split(": ", 1)[-1]))
            continue
        for key, value in references(data):
            if isinstance(value, str) and is_url(value):
                continue
            what = "input" if key.startswith(("datasets", "external", "likelihood")) else "file"
            problems += [(config, f"{key}: {problem}") for problem in _reference_problems(folder, value, what)]
    return problems


def _reference_problems(folder: Path, value, what: str) -> list[str]:
    """Problems of one named path; a glob (hand-written bundles) must match files, all inside.

    >>> _reference_problems(Path("configs"), "plugins/*.py", "file")
    []
    """
    if not (isinstance(value, str) and any(c in value for c in "*?[")):
        problem = path_problem(folder, value, what)
        return [problem] if problem else []
    if shape_problem(value):
        return [shape_problem(value)]
    matches = sorted(str(p.relative_to(folder)) for p in folder.glob(value))
    if not matches:
        return [f"no {what} matches {value}"]
    return [problem for match in matches if (problem := path_problem(folder, match, what))]


def check_manifest(folder: Path) -> list[tuple[Path, str]]:
    """``(file, problem)`` for ``inputs.sha256``: each listed file exists with its sha256,
    and every input the configs name is listed."""
    manifest = folder / MANIFEST_NAME
    if not manifest.exists():
        return []
    try:
        entries, bad = parse_manifest(manifest.read_text())
    except (OSError, UnicodeDecodeError) as err:
        return [(manifest, f"cannot read ({err})")]
    problems = [(manifest, f"line {number}: not '<sha256>  <path>'") for number in bad]
    for digest, rel in entries:
        problem = path_problem(folder, rel)
        if problem:
            problems.append((manifest, problem))
        elif sha256_file(folder / rel) != digest:
            problems.append((manifest, f"{rel}: sha256 differs from the manifest (changed since the export)"))
    listed = {rel for _, rel in entries}
    for rel in named_paths(bundled_configs(folder)):
        if rel.startswith("inputs/") and rel not in listed:
            problems.append((manifest, f"{rel}: a config names it but the manifest does not list it"))
    return problems


# ---- the image --------------------------------------------------------------------------
def check_image(reference: str) -> str | None:
    """Why an image reference is not pinned to one build, or None.

    >>> check_image("heirloom/analysis@sha256:" + "a" * 64) is None
    True
    """
    if _DIGEST.search(reference):
        return None
    name, _, tag = reference.rpartition(":")
    if name and "/" not in tag and _TAG.match(tag):       # a ':' in a registry's host:port is no tag
        return None
    return f"image {reference} is not pinned ({_PINNED})"


def _environments(node, where: str = ""):
    """``(stage name, environment)`` of every docker-encapsulated step in a yadage document."""
    if isinstance(node, dict):
        where = node.get("name", where) if isinstance(node.get("name"), str) else where
        if node.get("environment_type") == "docker-encapsulated":
            yield where, node
        for value in node.values():
            yield from _environments(value, where)
    elif isinstance(node, list):
        for value in node:
            yield from _environments(value, where)


def check_images(folder: Path) -> list[tuple[Path, str]]:
    """``(file, problem)`` for unpinned images in ``workflow*.yml`` files and a Snakefile's ``config.yaml``."""
    problems = []
    for path in sorted(folder.glob("*.yml")):
        try:
            document = read_yaml(path)
        except ValueError as err:
            problems.append((path, str(err).split(": ", 1)[-1]))
            continue
        seen = set()
        for stage, env in _environments(document):
            image = str(env.get("image", ""))
            reference = image if "@" in image else f"{image}:{env.get('imagetag', 'latest')}"
            problem = check_image(reference)
            if problem and reference not in seen:
                seen.add(reference)
                problems.append((path, f"stage {stage}: {problem}"))
    snake_config = folder / "config.yaml"
    if (folder / "Snakefile").exists() and snake_config.exists():
        try:
            image = (read_yaml(snake_config) or {}).get("image")
        except (ValueError, AttributeError):
            image = None
        problem = check_image(str(image)) if image is not None else None
        if problem:
            problems.append((snake_config, problem))
    return problems


def check_folder(folder: Path) -> list[tuple[Path, str]]:
    """Every problem of the bundles in ``folder``."""
    if not folder.is_dir():
        return [(folder, "not a folder")]
    bundles = bundle_folders(folder)
    if not bundles:
        return [(folder, "no analysis.yaml here nor in a subfolder (not an exported bundle)")]
    problems = []
    for bundle in bundles:
        problems += check_configs(bundle) + check_manifest(bundle) + check_images(bundle)
    return problems


# ---- reana.yaml -------------------------------------------------------------------------
def check_reana(path: Path) -> list[tuple[Path, str]]:
    """Every problem of a reana.yaml and of the bundles among its input directories."""
    try:
        spec = read_yaml(path)
    except ValueError as err:
        return [(path, str(err).split(": ", 1)[-1])]
    if not isinstance(spec, dict):
        return [(path, "not a REANA specification (no mapping at the top)")]
    workspace = path.parent
    problems = []
    inputs = spec.get("inputs") or {}
    for key, what in (("directories", "directory"), ("files", "file")):
        for value in inputs.get(key) or []:
            problem = path_problem(workspace, value, what)
            if problem:
                problems.append((path, f"inputs.{key}: {problem}"))
            elif what == "directory" and (workspace / value / "analysis.yaml").exists():
                problems += check_folder(workspace / value)
    problem = path_problem(workspace, (spec.get("workflow") or {}).get("file"))
    if problem:
        problems.append((path, f"workflow.file: {problem}"))
    outputs = spec.get("outputs") or {}
    for key in ("files", "directories"):
        for value in outputs.get(key) or []:
            problem = _output_problem(workspace, value)
            if problem:
                problems.append((path, f"outputs.{key}: {problem}"))
    return problems


def _output_problem(workspace: Path, value) -> str | None:
    """Why a declared output is not a real file or folder of the workspace, or None."""
    if not isinstance(value, str) or not value:
        return f"{value!r} is not a path"
    if os.path.isabs(value) or os.path.normpath(value).split(os.sep)[0] == "..":
        return f"{value} is outside the workspace"
    if "by-name" in Path(os.path.normpath(value)).parts:
        return f"{value} is in store/by-name, whose entries are symlinks (declare real files)"
    target = workspace / value
    if target.is_symlink():
        return f"{value} is a symlink (declare real files)"
    if target.is_dir():
        for base, dirs, files in os.walk(target):
            for name in sorted(dirs + files):
                if (Path(base) / name).is_symlink():
                    return f"{value} holds a symlink ({(Path(base) / name).relative_to(workspace)})"
    return None


# ---- the command ------------------------------------------------------------------------
def main(folders: list[str], reana: str | None = None) -> int:
    """Check the bundle ``folders`` and the ``reana`` file; print one line per problem (stderr)
    or an OK summary; 1 when something is wrong, 2 when nothing was named."""
    if not folders and not reana:
        print(f"{PREFIX}: name a bundle FOLDER or --reana FILE", file=sys.stderr)
        return 2
    problems = []
    for folder in folders:
        problems += check_folder(Path(folder))
    if reana:
        problems += check_reana(Path(reana))
    for file, problem in problems:
        print(f"{PREFIX}: {file}: {problem}", file=sys.stderr)
    if problems:
        return 1
    named = ", ".join([*folders, *([reana] if reana else [])])
    print(f"{PREFIX}: OK ({named}: inputs inside, present and matching, images pinned)")
    return 0
