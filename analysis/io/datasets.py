"""Datasets of a config: where their events come from and how they split into chunks."""

from __future__ import annotations

import functools
import glob
from dataclasses import dataclass
from pathlib import Path

from analysis.config.model import AnalysisConfig
from analysis.errors import InputFileError
from analysis.io import remote
from analysis.io.fileid import NO_CHECKSUM, FileIdentity, Manifest

DEFAULT_CHUNK = 100_000


@dataclass(frozen=True)
class Chunk:
    """Entries [start, stop) of one input file of a dataset."""
    index: int
    file_index: int
    start: int
    stop: int


def is_generated(cfg: AnalysisConfig, dataset: str) -> bool:
    return "generator" in cfg.datasets[dataset]


def input_files(cfg: AnalysisConfig, dataset: str) -> list:
    """Absolute paths (local files) and URLs (remote files) of a file-based dataset, globs
    expanded and sorted; local paths are relative to the config file that lists them.

    >>> input_files(load_config("configs/nanoaod_v12.yaml"), "ttbar_v12")[0].endswith("/nanoaod/nano_tt_v12.root")
    True
    """
    return [path for path, _ in file_origins(cfg, dataset)]


def file_origins(cfg: AnalysisConfig, dataset: str) -> list[tuple[str, int]]:
    """``(path or URL, index in files:)`` of every input file of a dataset. A glob over
    root:// or s3:// is listed once per process (:func:`analysis.io.remote.glob`); a
    pattern that matches nothing, or a glob over https://, is a located config error.

    >>> file_origins(load_config("configs/cms2015_files.yaml"), "ttbar_2015")[0][0].endswith("200ev.root")
    True
    """
    spec = cfg.datasets[dataset]
    base = cfg.file_of("datasets", dataset, "files").parent
    out: list[tuple[str, int]] = []
    for index, pattern in enumerate(spec.get("files", [])):
        where = ("datasets", dataset, "files", index)
        if remote.is_remote(pattern):
            matches = _remote_matches(cfg, pattern, where)
        else:
            full = pattern if Path(pattern).is_absolute() else str(base / pattern)
            matches = sorted(glob.glob(full)) if any(c in pattern for c in "*?[") else [full]
            matches = [str(Path(m).absolute()) for m in matches]
        if not matches:
            raise cfg.error(f"no file matches '{pattern}'", *where)
        out.extend((match, index) for match in matches)
    return out


def _remote_matches(cfg: AnalysisConfig, pattern: str, where: tuple) -> list[str]:
    if not remote.has_glob(pattern):
        return [pattern]
    if remote.scheme(pattern) not in remote.LISTABLE:
        raise cfg.error(f"'{pattern}': a {remote.scheme(pattern)}:// server cannot list files, so a glob "
                        "cannot be expanded: list the files one by one", *where)
    try:
        return list(_listing(pattern))
    except InputFileError as err:
        raise InputFileError(err.path, f"{err.reason} ({_location(cfg, where)})") from None


@functools.lru_cache(maxsize=256)
def _listing(pattern: str) -> tuple[str, ...]:
    return tuple(remote.glob(pattern))


def _location(cfg: AnalysisConfig, where: tuple) -> str:
    """``file:line key`` of a config key, for messages that are not config errors."""
    located = cfg.error("", *where)
    return f"listed at {located.file}:{located.line} key '{located.key}'" if located.line is not None \
        else f"listed at {located.file} key '{located.key}'"


def mixture_expectation(cfg: AnalysisConfig) -> dict:
    """Expected events per MC dataset in generated pseudo-collision data:
    ``xsec * lumi * inject`` for every dataset of the fit model's samples."""
    inject = cfg.section("demo", "inject", default={}) or {}
    model = cfg.data.get("model", {})
    names = [d for sample in model.get("samples", {}).values() for d in sample["datasets"]]
    expected: dict[str, float] = {}
    for name in names:
        spec = cfg.datasets[name]
        expected[name] = float(spec["xsec"]) * cfg.lumi * float(inject.get(name, 1.0))
    return expected


def generator_spec(cfg: AnalysisConfig, dataset: str) -> dict:
    """The resolved generator settings of a generated dataset (what its key depends on)."""
    demo = cfg.data.get("demo", {})
    gen = dict(cfg.datasets[dataset]["generator"])
    spec = {"seed": gen.get("seed", demo.get("seed", 1)), "params": gen.get("params", {}),
            "chunk_size": demo.get("chunk_size", 200_000)}
    if gen.get("mixture"):
        spec["mixture"] = {name: {"process": cfg.datasets[name]["generator"]["process"]
                                  if "generator" in cfg.datasets[name] else name, "expected": value}
                           for name, value in mixture_expectation(cfg).items()}
    else:
        spec["process"] = gen.get("process", dataset)
        spec["events"] = gen.get("events", demo.get("events", 100_000))
    return spec


def generated_entries(spec: dict) -> int:
    """Entries of the file a generator spec produces (known before generating it)."""
    if "mixture" in spec:
        expected = {v["process"]: v["expected"] for v in spec["mixture"].values()}
        return pseudo_data_entries(expected, spec["seed"])
    return int(spec["events"])


def pseudo_data_entries(expected: dict, seed: int) -> int:
    """Events of generated pseudo-data: the sum of its seeded Poisson draws (numpy). The
    answer is kept in the user's cache (``pseudo_data.json``) under everything it depends
    on, the expectations, the seed, the drawing code and numpy's version, so that a no-op
    run, which plans the Skims of the pseudo-data, imports no numpy.

    >>> pseudo_data_entries({"ttbar": 1000.0}, 1) == pseudo_data_entries({"ttbar": 1000.0}, 1)
    True
    """
    import hashlib
    import json

    from analysis.store.user_cache import cache_file, load_dict, save_dict

    key = hashlib.sha256(json.dumps([expected, seed, _drawing_code()], sort_keys=True).encode()).hexdigest()[:32]
    path = cache_file("pseudo_data.json")
    known = load_dict(path)
    if isinstance(known.get(key), int):
        return known[key]
    from analysis.io.demo_streams import mixture_counts

    entries = int(sum(mixture_counts(expected, seed).values()))
    if path is not None:
        save_dict(path, {**known, key: entries})
    return entries


@functools.lru_cache(maxsize=1)
def _drawing_code() -> str:
    """A digest of what the Poisson draws depend on: demo_streams.py and numpy's version file."""
    import hashlib
    import importlib.util

    numpy = importlib.util.find_spec("numpy")
    files = [Path(__file__).with_name("demo_streams.py"),
             Path(numpy.origin).with_name("version.py") if numpy and numpy.origin else None]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.read_bytes() if file is not None and file.is_file() else b"-")
    return digest.hexdigest()


def chunks(entries_per_file: list, chunk_size: int | list, clusters_per_file: list | None = None) -> list:
    """Split files into chunks of at most ``chunk_size`` entries (one number, or one per file).

    >>> [(c.file_index, c.start, c.stop) for c in chunks([250, 100], 100)]
    [(0, 0, 100), (0, 100, 200), (0, 200, 250), (1, 0, 100)]
    >>> [(c.file_index, c.start, c.stop) for c in chunks([250, 100], [250, 50])]
    [(0, 0, 250), (1, 0, 50), (1, 50, 100)]

    With a file's cluster boundaries (the entries where every branch starts a new basket,
    ``FileIdentity.clusters``) each chunk ends on one, so that no basket is read and
    decompressed by two chunks: the last boundary within ``chunk_size`` of the chunk's
    start, else the next one (a cluster longer than the chunk size is one chunk, up to
    4 x ``chunk_size``; a longer one is cut into chunks of ``chunk_size`` until what is
    left of it fits):

    >>> [(c.start, c.stop) for c in chunks([1000], 100, [[0, 200, 400, 470, 530, 1000]])]
    [(0, 200), (200, 400), (400, 470), (470, 530), (530, 630), (630, 1000)]
    """
    out: list[Chunk] = []
    for file_index, entries in enumerate(entries_per_file):
        clusters = clusters_per_file[file_index] if clusters_per_file else ()
        size = chunk_size[file_index] if isinstance(chunk_size, list) else chunk_size
        for start, stop in _aligned(entries, size, clusters):
            out.append(Chunk(len(out), file_index, start, stop))
    return out


def _aligned(entries: int, size: int, clusters) -> list[tuple[int, int]]:
    """[start, stop) ranges of one file's chunks (see :func:`chunks`)."""
    import bisect

    if not clusters:
        return [(start, min(start + size, entries)) for start in range(0, max(entries, 1), size)]
    bounds = sorted({int(b) for b in clusters if 0 < b < entries} | {entries})
    ranges, start = [], 0
    while start < entries:
        last = bisect.bisect_right(bounds, start + size) - 1           # the last boundary within reach
        if last >= 0 and bounds[last] > start:
            stop = bounds[last]
        else:
            following = bounds[bisect.bisect_right(bounds, start)]
            stop = following if following - start <= 4 * size else start + size
        ranges.append((start, stop))
        start = stop
    return ranges or [(0, 0)]


def identify(cfg: AnalysisConfig, dataset: str, path: str, manifest: Manifest) -> FileIdentity:
    """The FileIdentity of one input file of a file-based dataset (ROOT or Parquet), local
    or remote. A file that cannot be read is an InputFileError naming the file and the
    config line that lists it; a remote file whose server gives no checksum, in a dataset
    without ``version:``, is a config error on that line.

    >>> from analysis.io.fileid import Manifest
    >>> cfg = load_config("configs/cms2015_files.yaml")
    >>> identify(cfg, "ttbar_2015", "/nowhere/a.root", Manifest(outdir))     # doctest: +ELLIPSIS
    Traceback (most recent call last):
    analysis.errors.InputFileError: cannot read input file /nowhere/a.root: No such file or directory (listed at ...)
    """
    spec = cfg.datasets[dataset]
    try:
        return manifest.identify(path, spec.get("tree", cfg.tree), spec.get("format"), version=spec.get("version"))
    except InputFileError as err:
        origins = dict(file_origins(cfg, dataset)) if "files" in spec else {}
        where = ("datasets", dataset, "files", origins.get(path, 0))
        if err.reason == NO_CHECKSUM:
            raise cfg.error(f"{path}: the server gives no checksum of this file, so its content cannot be "
                            f"identified: declare 'version: \"1\"' in datasets.{dataset} and change it "
                            "whenever the files change (docs/remote-data.md)", *where) from None
        raise InputFileError(err.path, f"{err.reason} ({_location(cfg, where)})") from None


def dataset_branches(cfg: AnalysisConfig, dataset: str, manifest: Manifest) -> tuple:
    """Branch names of a dataset's input: the generator's list, or its first file's."""
    if is_generated(cfg, dataset):
        from analysis.io.demo_streams import BRANCHES

        return tuple(BRANCHES)
    return identify(cfg, dataset, input_files(cfg, dataset)[0], manifest).branches
