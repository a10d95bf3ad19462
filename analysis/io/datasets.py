"""Datasets of a config: where their events come from and how they split into chunks."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from analysis.config.model import AnalysisConfig
from analysis.io.fileid import FileIdentity, Manifest

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
    """Absolute paths of a file-based dataset (globs expanded, sorted), relative to the
    config file that lists them."""
    spec = cfg.datasets[dataset]
    base = cfg.file_of("datasets", dataset, "files").parent
    paths: list[str] = []
    for index, pattern in enumerate(spec.get("files", [])):
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        matches = sorted(glob.glob(full)) if any(c in pattern for c in "*?[") else [full]
        if not matches:
            raise cfg.error(f"no file matches '{pattern}'", "datasets", dataset, "files", index)
        paths.extend(str(Path(m).absolute()) for m in matches)
    return paths


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
        from analysis.io.demo_streams import mixture_counts

        expected = {v["process"]: v["expected"] for v in spec["mixture"].values()}
        return int(sum(mixture_counts(expected, spec["seed"]).values()))
    return int(spec["events"])


def chunks(entries_per_file: list, chunk_size: int) -> list:
    """Split files into chunks of at most ``chunk_size`` entries.

    >>> [(c.file_index, c.start, c.stop) for c in chunks([250, 100], 100)]
    [(0, 0, 100), (0, 100, 200), (0, 200, 250), (1, 0, 100)]
    """
    out: list[Chunk] = []
    for file_index, entries in enumerate(entries_per_file):
        for start in range(0, max(entries, 1), chunk_size):
            out.append(Chunk(len(out), file_index, start, min(start + chunk_size, entries)))
    return out


def identify(cfg: AnalysisConfig, dataset: str, path: str, manifest: Manifest) -> FileIdentity:
    """The FileIdentity of one input file of a file-based dataset (ROOT or Parquet)."""
    spec = cfg.datasets[dataset]
    return manifest.identify(path, spec.get("tree", cfg.tree), spec.get("format"))


def dataset_branches(cfg: AnalysisConfig, dataset: str, manifest: Manifest) -> tuple:
    """Branch names of a dataset's input: the generator's list, or its first file's."""
    if is_generated(cfg, dataset):
        from analysis.io.demo_streams import BRANCHES

        return tuple(BRANCHES)
    return identify(cfg, dataset, input_files(cfg, dataset)[0], manifest).branches
