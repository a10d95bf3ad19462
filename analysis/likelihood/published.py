"""A published pyhf likelihood (HEPData): the archive, its members, and the PatchSet.

HEPData publishes a likelihood as a ``tar.gz`` with, per region, a background-only
workspace (``BkgOnly.json``) and the signal points either as one plain JSON patch per
point (``patch.sbottom_1300_205_60.json``) or as a ready ``pyhf.PatchSet`` file. A config's
``likelihood:`` section names the archive and the members::

    likelihood:
      archive: ../../shared/data/likelihoods/pyhf-ins1748602-probability-models.tar.gz
      region: RegionA                     # folder in the archive ('' = top level)
      background_only: BkgOnly.json       # default
      patches: patch.*.json               # default (glob, within the region folder)
      labels: [m_sbottom, m_neutralino2, m_neutralino1]   # the numbers ending a patch name

The archive is read in place (no extraction). Plain patches become one
``pyhf.PatchSet`` (metadata: the labels, the HEPData record, the sha256 digest of the
background-only workspace), which pyhf validates and verifies against the workspace.

>>> likelihood = read_likelihood(lh_cfg)     # a toy archive: RegionA/BkgOnly.json + 9 patch files
>>> len(likelihood.patchset["patches"]), likelihood.patchset["metadata"]["labels"]
(9, ['m_sbottom', 'm_neutralino2'])
>>> likelihood.patchset["patches"][0]["metadata"]
{'name': 'sbottom_600_100', 'values': [600, 100]}
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import posixpath
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from analysis.config.files import MAX_ARCHIVE_BYTES, regular_file
from analysis.config.model import AnalysisConfig
from analysis.errors import InputError
from analysis.io.fileid import ContentIdentity, content_identity

DEFAULTS = {"region": "", "background_only": "BkgOnly.json", "patches": "patch.*.json",
            "test_statistic": "qtilde", "poi_value": 1.0, "calculator": "asymptotics"}
_HEPDATA = re.compile(r"ins[0-9]{7}")
RESERVED_LABELS = {"name", "cls_obs", "cls_exp", "excluded", "excluded_expected"}   # columns of cls.json
_POINT_NAME = re.compile(r"^[A-Za-z0-9_]+$")          # what pyhf's patchset schema accepts


class LikelihoodError(InputError):
    """The archive does not hold what the config's ``likelihood:`` section names."""


ArchiveIdentity = ContentIdentity   # the archive's identity in a content address: its content, not its path


@dataclass(frozen=True)
class Likelihood:
    """A background-only workspace and the PatchSet of its signal points (pyhf JSON)."""

    background_only: dict
    patchset: dict


# ---- the config section -----------------------------------------------------------------
def section(cfg: AnalysisConfig) -> dict:
    """The ``likelihood:`` section with defaults filled in.

    >>> section(load_config("configs/sbottom_regionA.yaml"))["patches"]
    'patch.*.json'
    """
    return {**DEFAULTS, **cfg.section("likelihood", default={})}


def archive_path(cfg: AnalysisConfig) -> Path:
    """The archive, resolved against the folder of the config file that names it."""
    return cfg.file_of("likelihood", "archive").parent / section(cfg)["archive"]


def hepdata_record(cfg: AnalysisConfig) -> str | None:
    """``likelihood.hepdata``, else the ``insNNNNNNN`` in the archive's name, else None.

    >>> _HEPDATA.search("pyhf-ins1748602-probability-models.tar.gz").group()
    'ins1748602'
    """
    spec = section(cfg)
    found = _HEPDATA.search(Path(spec["archive"]).name)
    return spec.get("hepdata") or (found.group() if found else None)


def point_patterns(cfg: AnalysisConfig) -> list:
    """``likelihood.points`` as a list of globs (empty: every point)."""
    points = section(cfg).get("points") or []
    return [points] if isinstance(points, str) else list(points)


def check_config(cfg: AnalysisConfig) -> None:
    """Cross-references of ``likelihood:`` (called by the config loader; the archive itself
    is checked by :func:`check_archive` when ``law run`` starts)."""
    spec = section(cfg)
    if archive_path(cfg).exists():               # a missing archive is reported when `law run` starts
        try:
            regular_file(archive_path(cfg), limit=MAX_ARCHIVE_BYTES, what="likelihood archive")
        except ValueError as err:
            raise cfg.error(str(err), "likelihood", "archive") from None
    labels = spec["labels"]
    if len(set(labels)) != len(labels):
        raise cfg.error("labels must be distinct", "likelihood", "labels")
    taken = sorted(set(labels) & RESERVED_LABELS)
    if taken:
        raise cfg.error(f"'{taken[0]}' names a column of the CLs table: choose another label", "likelihood", "labels")
    if hepdata_record(cfg) is None:
        raise cfg.error("name the HEPData record, e.g. 'hepdata: ins1748602' (the archive's name holds none)",
                        "likelihood", "archive")
    plot = spec.get("plot", {})
    for axis in ("x", "y"):
        if axis in plot and plot[axis] not in labels:
            raise cfg.error(f"unknown label '{plot[axis]}' (labels: {', '.join(labels)})", "likelihood", "plot", axis)
    for label in plot.get("fix", {}):
        if label not in labels:
            raise cfg.error(f"unknown label '{label}' (labels: {', '.join(labels)})", "likelihood", "plot", "fix", label)
    x, y = plot_axes(spec)
    if x == y:
        raise cfg.error(f"plot.x and plot.y are both '{x}'", "likelihood", "plot")


def plot_axes(spec: dict) -> tuple:
    """(x, y) labels of the exclusion plot: ``plot.x``/``plot.y``, else the first two labels
    (y is None for a one-label grid: CLs is then drawn against x).

    >>> plot_axes({"labels": ["m_sbottom", "m_neutralino2", "m_neutralino1"], "plot": {"y": "m_neutralino1"}})
    ('m_sbottom', 'm_neutralino1')
    """
    plot, labels = spec.get("plot", {}), spec["labels"]
    x = plot.get("x", labels[0])
    y = plot.get("y", next((label for label in labels if label != x), None))
    return x, y


# ---- the archive ------------------------------------------------------------------------
def identify(cfg: AnalysisConfig) -> ArchiveIdentity:
    """BLAKE3 digest and size of the archive (cached while size, mtime, ctime and inode hold)."""
    path = archive_path(cfg).resolve()
    _stat(path)                                  # a missing archive: a LikelihoodError naming it
    return content_identity(path)


def _stat(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except OSError as err:
        raise LikelihoodError(f"cannot read the likelihood archive {path}: {err.strerror}") from None


def members(path: str | Path) -> tuple:
    """Names of the files in the archive (``./`` stripped), cached by size and mtime.

    >>> members(archive)[:3]
    ('README.md', 'RegionA/BkgOnly.json', 'RegionA/patch.sbottom_600_100.json')
    """
    path = Path(path).resolve()
    stat = _stat(path)
    return _members(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _members(path: str, size: int, mtime_ns: int) -> tuple:
    try:
        with tarfile.open(path, "r:*") as archive:
            return tuple(_clean(m.name) for m in archive.getmembers() if m.isfile())
    except (tarfile.TarError, OSError, EOFError) as err:
        raise LikelihoodError(f"cannot read the likelihood archive {path}: {err}") from None


def _clean(name: str) -> str:
    return posixpath.normpath(name).lstrip("/") if name not in ("", ".") else name


def member_name(spec: dict, name: str) -> str:
    """The archive member of ``name`` in the section's region folder.

    >>> member_name({"region": "RegionA"}, "BkgOnly.json"), member_name({"region": ""}, "BkgOnly.json")
    ('RegionA/BkgOnly.json', 'BkgOnly.json')
    """
    return posixpath.join(spec["region"], name) if spec["region"] else name


def patch_members(spec: dict, names: Iterable[str]) -> list:
    """The members in the region folder (not below it) whose name matches ``patches``."""
    folder = spec["region"].strip("/")
    return sorted(n for n in names if posixpath.dirname(n) == folder
                  and fnmatch.fnmatchcase(posixpath.basename(n), spec["patches"]))


def point_name(member: str) -> str:
    """The point's name: the member's file name without ``patch.`` and ``.json``.

    >>> point_name("RegionA/patch.sbottom_1300_205_60.json")
    'sbottom_1300_205_60'
    """
    name = posixpath.basename(member)
    name = name[:-len(".json")] if name.endswith(".json") else name
    return name[len("patch."):] if name.startswith("patch.") else name


def point_values(name: str, labels: Sequence[str]) -> list:
    """The numbers that end a point's name, one per label (ints where whole).

    >>> point_values("sbottom_1300_205_60", ["m_sbottom", "m_neutralino2", "m_neutralino1"])
    [1300, 205, 60]
    """
    parts = name.split("_")
    if len(parts) < len(labels):
        raise LikelihoodError(f"point '{name}' has fewer than {len(labels)} numbers for the labels {list(labels)}")
    values = []
    for text in parts[len(parts) - len(labels):]:
        try:
            number = float(text.replace("p", ".") if re.fullmatch(r"\d+p\d+", text) else text)
        except ValueError:
            raise LikelihoodError(f"point '{name}': '{text}' is not a number (the last {len(labels)} "
                                  f"'_'-separated parts of a patch name are the labels {list(labels)})") from None
        values.append(int(number) if number.is_integer() else number)
    return values


def select_points(names: Iterable[str], patterns: Sequence[str]) -> list:
    """The names that match any of the globs (all names for no globs); a glob that matches
    nothing is an error (a typo must not shrink a scan silently).

    >>> select_points(["sb_1_2", "sb_1_3", "sb_2_3"], ["sb_1_*"])
    ['sb_1_2', 'sb_1_3']
    """
    names = list(names)
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise LikelihoodError(f"'{pattern}' matches no point (points: {shown})")
    return [n for n in names if not patterns or any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def check_archive(cfg: AnalysisConfig) -> None:
    """The archive exists and holds the background-only workspace and at least one patch;
    ``points`` match point names (when the names come from file names). Raises a located
    ConfigError, so ``law run`` stops at once with exit status 2."""
    spec = section(cfg)
    path = archive_path(cfg)
    try:
        names = members(path)
    except LikelihoodError as err:
        raise cfg.error(str(err), "likelihood", "archive") from None
    background = member_name(spec, spec["background_only"])
    if background not in names:
        raise cfg.error(f"no member '{background}' in {path}", "likelihood", "background_only")
    patches = patch_members(spec, names)
    if not patches:
        raise cfg.error(f"no member matches '{member_name(spec, spec['patches'])}' in {path}", "likelihood", "patches")
    try:                                        # names from file names (not for a PatchSet file)
        points = [point_name(p) for p in patches if point_values(point_name(p), spec["labels"])]
    except LikelihoodError:
        return                                  # checked when the points are read (CLsScan)
    try:
        select_points(points, point_patterns(cfg))
    except LikelihoodError as err:
        raise cfg.error(str(err), "likelihood", "points") from None


# ---- reading ------------------------------------------------------------------------------
def read_likelihood(cfg: AnalysisConfig) -> Likelihood:
    """The background-only workspace and the PatchSet of every signal point, validated and
    verified by pyhf (the workspace against pyhf's schema, the patches against the digest)."""
    spec = section(cfg)
    path = archive_path(cfg)
    background = member_name(spec, spec["background_only"])
    wanted = [background] + patch_members(spec, members(path))
    texts = _read_members(path, wanted)
    background_only = _json(texts[background], path, background)
    patches = []
    for member in wanted[1:]:
        patches += _patches_of(_json(texts[member], path, member), member, spec["labels"])
    hepdata = hepdata_record(cfg)
    if hepdata is None:                         # check_config reports this at load time
        raise LikelihoodError("no HEPData record: name it with 'hepdata:' in the likelihood section")
    return Likelihood(background_only, build_patchset(background_only, patches, spec["labels"], hepdata,
                                                      f"{Path(path).name}: {spec['region'] or 'top level'}"))


def build_patchset(background_only: dict, patches: list, labels: Sequence[str], hepdata: str,
                   description: str) -> dict:
    """A pyhf PatchSet spec of ``patches`` (``[{"metadata": {"name", "values"}, "patch": [...]}]``),
    checked by pyhf: the schema, one value per label, distinct names, the workspace's digest.

    >>> spec = build_patchset(bkg, patches, ["m1", "m2"], "ins1234567", "my grid")
    >>> [p["metadata"]["name"] for p in spec["patches"]][:2], spec["metadata"]["references"]
    (['sbottom_600_100', 'sbottom_600_200'], {'hepdata': 'ins1234567'})
    >>> build_patchset(bkg, patches[:1] * 2, ["m1", "m2"], "ins1234567", "twice")   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    analysis.likelihood.published.LikelihoodError: the signal patches do not form a valid pyhf PatchSet: ...
    """
    import pyhf

    try:
        pyhf.Workspace(background_only)
    except Exception as err:                    # pyhf raises its InvalidSpecification and others
        raise LikelihoodError(f"the background-only workspace is not a valid pyhf workspace: {err}") from None
    spec = {"metadata": {"description": description, "labels": list(labels), "references": {"hepdata": hepdata},
                         "digests": {"sha256": pyhf.utils.digest(background_only, algorithm="sha256")}},
            "patches": sorted(patches, key=lambda p: (p["metadata"]["values"], p["metadata"]["name"])),
            "version": "1.0.0"}
    try:
        pyhf.PatchSet(spec).verify(background_only)
    except Exception as err:
        raise LikelihoodError(f"the signal patches do not form a valid pyhf PatchSet: {err}") from None
    return spec


def _read_members(path: Path, wanted: list) -> dict:
    """``{member: bytes}``, read in one pass over the (compressed) archive."""
    wanted_set, texts = set(wanted), {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for info in archive:
                name = _clean(info.name)
                stream = archive.extractfile(info) if info.isfile() and name in wanted_set else None
                if stream is not None:
                    texts[name] = stream.read()
    except (tarfile.TarError, OSError, EOFError) as err:
        raise LikelihoodError(f"cannot read the likelihood archive {path}: {err}") from None
    missing = [name for name in wanted if name not in texts]
    if missing:
        raise LikelihoodError(f"no member '{missing[0]}' in {path}")
    return texts


def _json(text: bytes, path: Path, member: str):
    try:
        return json.loads(text)
    except ValueError as err:
        raise LikelihoodError(f"{path}: member '{member}' is not JSON: {err}") from None


def _patches_of(content, member: str, labels) -> list:
    """The PatchSet entries of one member: a plain JSON patch (one point, named after the
    file) or a whole pyhf PatchSet (its labels must be the config's)."""
    if isinstance(content, list):
        name = point_name(member)
        if not _POINT_NAME.match(name):
            raise LikelihoodError(f"member '{member}': point name '{name}' may only hold letters, digits and '_'")
        try:
            values = point_values(name, labels)
        except LikelihoodError as err:
            raise LikelihoodError(f"member '{member}': {err}") from None
        return [{"metadata": {"name": name, "values": values}, "patch": content}]
    if isinstance(content, dict) and "patches" in content:
        found = content.get("metadata", {}).get("labels")
        if list(found or []) != list(labels):
            raise LikelihoodError(f"member '{member}' is a PatchSet with labels {found}; the config says {list(labels)}")
        return [{"metadata": {"name": p["metadata"]["name"], "values": p["metadata"]["values"]}, "patch": p["patch"]}
                for p in content["patches"]]
    raise LikelihoodError(f"member '{member}' is neither a JSON patch (a list) nor a pyhf PatchSet")
