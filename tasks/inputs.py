"""Generate and Skim: from a generator spec or raw files to small skimmed TTrees."""

from __future__ import annotations

import time
from pathlib import Path

import luigi

from analysis.io import datasets as ds
from analysis.io.columns import needed_branches
from analysis.io.remote import is_remote
from analysis.config.model import check_names
from tasks import skim_pool
from tasks.base import HeirloomTask, manifest
from tasks.execution import execution, pool_size

GENERATED_FILE = "events.root"


class Generate(HeirloomTask):
    """Make a demo dataset's NanoAOD-like file from its generator spec (deterministic)."""

    dataset = luigi.Parameter(description="dataset name in the config")

    def key_params(self):
        return {"dataset": self.dataset}

    def config_excerpt(self):
        return {"generator": ds.generator_spec(self.cfg, self.dataset), "tree": self.cfg.tree}

    def requires(self):
        return {}

    def produce(self, outdir: Path, inputs: dict) -> dict:
        from analysis.io import generate

        spec = ds.generator_spec(self.cfg, self.dataset)
        path = outdir / GENERATED_FILE
        t0 = time.time()
        if "mixture" in spec:
            expected = {v["process"]: v["expected"] for v in spec["mixture"].values()}
            counts = generate.generate_mixture(path, expected, spec["seed"], chunk_size=spec["chunk_size"],
                                               params=spec["params"])
            events = int(sum(counts.values()))
            extra = {"drawn_per_process": counts}
        else:
            events = generate.generate_file(path, spec["process"], spec["events"], spec["seed"],
                                            chunk_size=spec["chunk_size"], params=spec["params"])
            extra = {}
        print(f"Generate[{self.dataset}]: {events} events in {time.time() - t0:.1f} s", flush=True)
        return {"events": events, **extra}


def source_files(task: HeirloomTask, dataset: str) -> list:
    """Paths of a dataset's input files, generated (in the store) or listed in the config."""
    cfg = task.cfg
    if ds.is_generated(cfg, dataset):
        generate = Generate.req(task, dataset=dataset)
        return [str(generate.read_entry().path / GENERATED_FILE)]
    return ds.input_files(cfg, dataset)


def identify(cfg, dataset: str, path: str):
    """The FileIdentity of one input file of a file-based dataset (ROOT or parquet)."""
    return ds.identify(cfg, dataset, path, manifest())


def dataset_chunks(task: HeirloomTask, dataset: str) -> list:
    """A dataset's Skim chunks: ``skim.chunk_size`` entries, or fewer per file where
    ``skim.memory_mb`` asks (:mod:`analysis.io.budget`), ending on basket boundaries."""
    cfg = task.cfg
    size = int(cfg.section("skim", "chunk_size", default=ds.DEFAULT_CHUNK))
    if ds.is_generated(cfg, dataset):
        return ds.chunks([ds.generated_entries(ds.generator_spec(cfg, dataset))],
                         [skim_chunk_size(task, dataset, size, None)])
    files = [identify(cfg, dataset, path) for path in ds.input_files(cfg, dataset)]
    sizes = [skim_chunk_size(task, dataset, size, f) for f in files]
    return ds.chunks([f.entries for f in files], sizes, [f.clusters for f in files])   # basket-aligned


def skim_chunk_size(task: HeirloomTask, dataset: str, largest: int, identity) -> int:
    """Events per Skim chunk of one input file (``identity``; None: the generated file):
    ``largest``, or fewer when ``skim.memory_mb`` cannot hold that many of the branches the
    Skim reads. A budget too small for any chunk is a located config error."""
    cfg = task.cfg
    budget = cfg.section("skim", "memory_mb", default=None)
    if budget is None:
        return largest
    from analysis.errors import MemoryBudgetError
    from analysis.io.budget import input_bytes_per_event, spec_bytes_per_event
    from analysis.io.budget import skim_chunk_size as for_budget

    branches = tuple(needed_branches(cfg, dataset_branches(task, dataset)))
    tree = cfg.datasets[dataset].get("tree", cfg.tree)
    per_event = spec_bytes_per_event(ds.generator_spec(cfg, dataset), branches) if identity is None \
        else input_bytes_per_event(identity, tree, branches)
    try:
        return for_budget(budget, per_event, largest)
    except MemoryBudgetError as err:
        raise cfg.error(f"{err}: raise it", "skim", "memory_mb") from None


def dataset_branches(task: HeirloomTask, dataset: str) -> tuple:
    """Branch names of a dataset's input (from the first file, or the generator's list)."""
    return ds.dataset_branches(task.cfg, dataset, manifest())


class Skim(HeirloomTask):
    """One chunk of one dataset: loose preselection, only the branches the config reads."""

    #: what its run imports: imported before luigi or the run's pool forks (tasks/progress.py)
    warm_imports = ("awkward", "uproot", "analysis.io.skim")

    dataset = luigi.Parameter(description="dataset name in the config")
    chunk = luigi.IntParameter(description="chunk index within the dataset")

    def key_params(self):
        return {"dataset": self.dataset, "chunk": self.chunk}

    def _chunk(self) -> ds.Chunk:
        return dataset_chunks(self, self.dataset)[self.chunk]

    def _branches(self) -> list:
        available = dataset_branches(self, self.dataset)
        check_names(self.cfg, available)
        return needed_branches(self.cfg, available)

    def config_excerpt(self):
        cfg = self.cfg
        chunk = self._chunk()
        return {"tree": cfg.datasets[self.dataset].get("tree", cfg.tree),
                "preselection": cfg.section("skim", "preselection"),
                "branches": self._branches(),
                "event_weight": self._event_weight().text if self._event_weight() is not None else None,
                "entries": [chunk.start, chunk.stop], "copy": cfg.section("skim", "copy", default="auto")}

    def _event_weight(self):
        """The MC event weight expression (None: weight 1), summed before the preselection."""
        cfg = self.cfg
        if cfg.datasets[self.dataset]["kind"] != "mc" or "event_weight" not in cfg.data:
            return None
        return cfg.expression("event_weight")

    def plugin_paths(self):
        paths = [("skim", "preselection")] if "preselection" in self.cfg.section("skim", default={}) else []
        return paths + ([("event_weight",)] if self._event_weight() is not None else [])

    def requires(self):
        if ds.is_generated(self.cfg, self.dataset):
            return {"generated": Generate.req(self, dataset=self.dataset)}
        return {}

    def raw_inputs(self):
        if ds.is_generated(self.cfg, self.dataset):
            return {}
        chunk = self._chunk()
        path = ds.input_files(self.cfg, self.dataset)[chunk.file_index]
        return {"file": identify(self.cfg, self.dataset, path)}

    def label(self):
        return f"{self.dataset}__{self.chunk}"

    def source(self) -> str:
        """The file this chunk's entries are in (a generated one in the store, or a listed one)."""
        return source_files(self, self.dataset)[self._chunk().file_index]

    def job(self) -> "skim_pool.SkimJob":
        """This chunk's skim as plain values (what a pool worker gets)."""
        cfg = self.cfg
        chunk = self._chunk()
        source = self.source()
        fmt = "root" if ds.is_generated(cfg, self.dataset) else identify(cfg, self.dataset, source).format
        has_preselection = "preselection" in cfg.section("skim", default={})
        return skim_pool.SkimJob(str(self.config), source, self.config_excerpt()["tree"], tuple(self._branches()),
                                 chunk.start, chunk.stop, fmt, ("skim", "preselection") if has_preselection else None,
                                 ("event_weight",) if self._event_weight() is not None else None,
                                 may_refer=self._may_refer(fmt, source))

    def _may_refer(self, fmt: str, source: str) -> bool:
        """Whether this chunk may be a view of its input rather than a copy (``skim.copy``,
        default auto): a local ROOT file listed in the config. A generated file is always
        copied: a CI cache keeps the skims and drops what Generate made."""
        cfg = self.cfg
        return (cfg.section("skim", "copy", default="auto") == "auto" and fmt == "root"
                and not ds.is_generated(cfg, self.dataset) and not is_remote(source))

    def produce(self, outdir: Path, inputs: dict) -> dict:
        if skim_pool.usable(execution().executor, pool_size()) and not skim_pool.handed(self.key()):
            self._hand_siblings_to_pool()
        stats = skim_pool.take(self.key(), outdir) or skim_pool.run_job(self.cfg, self.job(), outdir)
        rate = stats["events_in"] / max(stats["seconds"], 1e-6)
        print(f"Skim[{self.dataset} #{self.chunk}]: {stats['events_in']} -> {stats['events_out']} events "
              f"({rate / 1e3:.1f} kHz)", flush=True)
        budget = self.cfg.section("skim", "memory_mb", default=None)
        if budget and stats["peak_mb"] > budget:
            print(f"Skim[{self.dataset} #{self.chunk}]: peak memory {stats['peak_mb']:.0f} MB passed skim.memory_mb = "
                  f"{budget} (chunks of {stats['events_in']} events; the peak includes what the process held "
                  "before): set a larger budget where the workers have the memory", flush=True)
        return {"events": stats["events_in"], "peak_memory_mb": round(stats["peak_mb"])}

    def _hand_siblings_to_pool(self) -> None:
        """The Skims this run scheduled, or the chunks of this dataset, to the run's pool
        (:mod:`tasks.skim_pool`) when the first of them runs: this one and every other
        that is not complete."""
        others = skim_pool.expected() or [Skim.req(self, dataset=self.dataset, chunk=c.index)
                                          for c in dataset_chunks(self, self.dataset)]
        todo = [self] + [task for task in others if task.key() != self.key() and not task.complete()]
        skim_pool.start([(task.store_entry(), task.job()) for task in todo], pool_size(),
                        {str(task.config): task.cfg for task in todo})
