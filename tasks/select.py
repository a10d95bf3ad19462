"""Select and Histogram: from skimmed chunks to per-dataset tables and histograms."""

from __future__ import annotations

import json
import time
from pathlib import Path

import luigi

from analysis.config.model import region_observables
from analysis.io.budget import reset_peak
from analysis.io.columns import needed_branches
from tasks.base import HeirloomTask
from tasks.execution import execution, pool_size
from tasks.inputs import Skim, dataset_branches, dataset_chunks


def cuda_models(cfg) -> list:
    """Names of the ``models:`` entries that run their inference with ``device: cuda``."""
    models = cfg.section("models", default={}) or {}
    return sorted(name for name, spec in models.items() if isinstance(spec, dict) and spec.get("device") == "cuda")


def close_forked_clusters() -> None:
    """With ``--workers N > 1`` luigi runs each task in a forked process that ends with
    ``os._exit``, skipping the atexit handler that closes a local Dask cluster (its nannies
    then die noisily): close it at the end of the task instead."""
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        from analysis.select.dask_cluster import close_clusters

        close_clusters()


def dask_spec(cfg, family: str, gpu: bool):
    """The Dask cluster of ``--executor dask`` for a task family: the execution options and,
    for batch jobs (``--cluster slurm|htcondor``), the family's ``resources:``, with at least
    one GPU per job when the family has a device step (a GPU batch slot)."""
    import dataclasses

    from analysis.select.dask_cluster import ClusterSpec

    run = execution()
    resources = None
    if run.cluster != "local" and not run.scheduler:
        from analysis.batch.resources import family_resources

        resources = family_resources(cfg, family)
        if gpu and resources.gpus < 1:
            resources = dataclasses.replace(resources, gpus=1)
    return ClusterSpec(kind=run.cluster, workers=pool_size(), scheduler=run.scheduler or None,
                       jobs=run.jobs, gpu_workers=run.gpu_workers, resources=resources)


class Select(HeirloomTask):
    """Objects, event selection, regions, observables and all variations for one dataset.

    Runs the event loop over the dataset's skimmed chunks with the chosen executor
    (``--executor iterative|futures|dask``, ``--workers N``, ``--scheduler ADDRESS``,
    ``--cluster local|slurm|htcondor``, ``--jobs N``, ``--gpu-workers N``). When a ``models:``
    entry infers on ``device: cuda``, the chunks go to Dask workers that advertise ``GPU=1``
    and provenance lists the worker of each chunk (``device_steps``).
    """

    #: what its run imports: imported before luigi or the run's pool forks (tasks/progress.py)
    warm_imports = ("coffea.nanoevents", "coffea.processor", "analysis.select.processor", "pyarrow.parquet")

    dataset = luigi.Parameter(description="dataset name in the config")
    format_version = 1

    def key_params(self):
        return {"dataset": self.dataset}

    def plan(self):
        """The SelectionPlan this task runs."""
        from analysis.select.selection import plan_from_config

        return plan_from_config(self.cfg, self.dataset)

    def config_excerpt(self):
        return self.plan().excerpt()

    def plugin_paths(self):
        return [p for p in self.cfg.expression_paths() if p[0] not in ("skim",)]

    def requires(self):
        return {f"chunk{c.index:05d}": Skim.req(self, dataset=self.dataset, chunk=c.index)
                for c in dataset_chunks(self, self.dataset)}

    def produce(self, outdir: Path, inputs: dict) -> dict:
        from analysis.select.processor import run_selection
        from analysis.select.tables import write_selected

        cfg = self.cfg
        stats = [json.loads((path / "stats.json").read_text()) for _, path in sorted(inputs.items())]
        files = self._sources(inputs, stats)
        plan = self.plan()
        t0 = time.time()
        n_pre = sum(st["events_out"] for st in stats)
        where: dict = {}
        chunk_size = self._chunk_size(files)
        if files:
            executor = self._executor()
            reset_peak()                    # the provenance's peak: from what this process holds now
            try:
                output = run_selection(files, plan, executor, chunksize=chunk_size)
                where = self._where(executor)
            finally:
                close_forked_clusters()
        else:
            output = {"chunks": {}, "cutflow_events": {}, "cutflow_weights": {}, "events": 0}
        seconds = time.time() - t0
        memory = self._memory(output.get("peak_mb", {}), chunk_size)
        rows = write_selected(output["chunks"], plan, outdir / "selected.parquet")
        cutflow = {
            "dataset": self.dataset,
            "steps": ["all", "preselected"] + [s for s, _ in plan.steps] + [r for r, _, _ in plan.regions],
            "events": {"all": sum(st["events_in"] for st in stats), **output["cutflow_events"]},
            "weighted": {"all": sum(st["sumw_in"] for st in stats), **output["cutflow_weights"]},
        }
        cutflow["events"].setdefault("preselected", n_pre)
        (outdir / "cutflow.json").write_text(json.dumps(cutflow, indent=1))
        print(f"{self.task_family}[{self.dataset}]: {n_pre} events in {seconds:.1f} s "
              f"({n_pre / max(seconds, 1e-6) / 1e3:.1f} kHz, executor={execution().executor}, "
              f"workers={pool_size()}), {rows} rows written", flush=True)
        return {"events": n_pre, "events_generated": cutflow["events"]["all"], **memory, **where}

    def _sources(self, inputs: dict, stats: list) -> list:
        """What the event loop reads, chunk by chunk (those that kept events): the skim's
        ``skim.root`` (its entries from the Skim's stats: coffea need not open it to plan
        the chunks), or for a chunk the Skim recorded as a view (``view.json``: every
        event passed) its entries of the input file. That file is found through the
        config, which names the file whose content identity the Skim's key holds."""
        from analysis.io.skim import SKIM_TREE, VIEW_FILE
        from analysis.select.processor import Source
        from tasks.skim_pool import SKIM_FILE

        skims = self.requires()
        out = []
        for (name, path), st in zip(sorted(inputs.items()), stats):
            if st["events_out"] == 0:
                continue
            if (path / VIEW_FILE).exists():
                view = json.loads((path / VIEW_FILE).read_text())
                out.append(Source(skims[name].source(), view["tree"], *view["entries"]))
            else:
                out.append(Source(str(path / SKIM_FILE), SKIM_TREE, entries=st["events_out"]))
        return out

    def _chunk_size(self, files: list) -> int:
        """Events per chunk: ``select.chunk_size``, or fewer when ``select.memory_mb`` asks
        (:mod:`analysis.select.memory`)."""
        from analysis.select import memory

        cfg = self.cfg
        largest = int(cfg.section("select", "chunk_size", default=200_000))
        budget = cfg.section("select", "memory_mb", default=None)
        if not budget or not files:
            return largest
        try:
            branches = needed_branches(cfg, dataset_branches(self, self.dataset))   # what every chunk reads
            per_event = memory.bytes_per_event([(f.path, f.tree) for f in files], branches=branches)
            size = memory.chunk_for_budget(budget, memory.held_mb(), per_event, largest)
        except memory.MemoryBudgetError as err:
            raise cfg.error(f"{err}: raise it", "select", "memory_mb") from None
        if size < largest:
            print(f"Select[{self.dataset}]: chunks of {size} events to stay within select.memory_mb = {budget}",
                  flush=True)
        return size

    def _memory(self, chunk_peaks: dict, chunk_size: int) -> dict:
        """Provenance of memory: the largest resident memory of any process that ran the
        loop, and the chunk size; a line when that passed ``select.memory_mb``."""
        from analysis.select.memory import peak_mb

        peak = max([peak_mb(), *chunk_peaks.values()])
        budget = self.cfg.section("select", "memory_mb", default=None)
        if budget and peak > budget:
            print(f"Select[{self.dataset}]: peak memory {peak:.0f} MB passed select.memory_mb = {budget} "
                  f"(chunks of {chunk_size} events; a process's peak includes what it held before the loop): "
                  "set a smaller select.chunk_size, or a larger budget where the workers have the memory",
                  flush=True)
        return {"peak_memory_mb": round(peak), "chunk_size": chunk_size}

    def _executor(self):
        """The coffea executor; on Dask with a ``device: cuda`` model, one that routes the chunks."""
        from analysis.select.executors import make_executor

        name = execution().executor
        if name != "dask":
            return make_executor(name, pool_size())
        from analysis.select.dask_cluster import dask_client, device_resources

        models = cuda_models(self.cfg)
        spec = dask_spec(self.cfg, "Select", gpu=bool(models))
        client = dask_client(spec=spec)
        if not models:
            return make_executor(name, cluster=spec)
        resources = device_resources(client, f"Select[{self.dataset}] (models {', '.join(models)})")
        return make_executor(name, cluster=spec, resources=resources or {})

    def _where(self, executor) -> dict:
        """Provenance of where the event loop ran: the Dask cluster, and per chunk of a
        ``device: cuda`` model the worker that ran it."""
        out: dict = {}
        client = getattr(executor, "client", None)
        if client is not None:
            from analysis.select.dask_cluster import cluster_record

            out["executor"] = {"dask": cluster_record(client)}
        models = cuda_models(self.cfg)
        if models:
            records = getattr(executor, "records", None)
            out["device_steps"] = ([{**r, "device": "cuda", "models": models} for r in records] if records is not None
                                   else [{"step": "select_event_loop", "device": "cuda", "models": models,
                                          "worker": None}])
        return out


class Histogram(HeirloomTask):
    """Histograms of one dataset, scaled to xsec * lumi / N for MC (hist, uhi.io JSON)."""

    #: what its run imports: imported before luigi or the run's pool forks (tasks/progress.py)
    warm_imports = ("pyarrow.dataset", "pandas", "hist", "analysis.hist.histograms")

    dataset = luigi.Parameter(description="dataset name in the config")

    def key_params(self):
        return {"dataset": self.dataset}

    def config_excerpt(self):
        cfg = self.cfg
        spec = cfg.datasets[self.dataset]
        used = {o for r in cfg.regions.values() for o in region_observables(r)}
        return {"kind": spec["kind"], "xsec": spec.get("xsec"), "lumi": cfg.lumi if spec["kind"] == "mc" else None,
                "weighted_normalisation": bool(cfg.data.get("event_weight")),
                "regions": {name: region_observables(r) for name, r in cfg.regions.items()},
                "binning": {name: {k: obs.get(k) for k in ("bins", "range", "label")}
                            for name, obs in cfg.observables.items() if name in used}}

    def requires(self):
        return {"selected": Select.req(self, dataset=self.dataset)}

    def produce(self, outdir: Path, inputs: dict) -> dict:
        from analysis.hist import histograms
        from analysis.hist.device_fill import configured_device

        excerpt = self.config_excerpt()
        cutflow = json.loads((inputs["selected"] / "cutflow.json").read_text())
        scale = histograms.mc_scale(excerpt["kind"], excerpt["xsec"], excerpt["lumi"] or 1.0, cutflow,
                                    excerpt["weighted_normalisation"])
        path = inputs["selected"] / "selected.parquet"
        device = configured_device(self.cfg)
        if device == "cpu":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            hists = histograms.fill_from_table(table, excerpt["regions"], excerpt["binning"], scale)
            rows, extra = table.num_rows, {}
        else:
            hists, rows, extra = self._fill_on_device(str(path), excerpt, scale, device)
        histograms.dump(hists, outdir / "histograms.json")
        return {"scale": scale, "events": rows, **extra}

    def _fill_on_device(self, path: str, excerpt: dict, scale: float, device: str) -> tuple:
        """Fill with ``histogram.device`` (:mod:`analysis.hist.device_fill`): here, or with
        ``--executor dask`` on a worker that advertises ``GPU=1``; provenance names the worker."""
        from analysis.hist.device_fill import fill_parquet

        args = (path, excerpt["regions"], excerpt["binning"], scale, device)
        if execution().executor != "dask":
            hists, info = fill_parquet(*args)
            rows = info.pop("rows")
            return hists, rows, {"device_steps": [{"step": "histogram_fill", **info, "worker": None}]}
        from analysis.select.dask_cluster import cluster_record, dask_client, run_on_device

        client = dask_client(spec=dask_spec(self.cfg, "Histogram", gpu=True))
        try:
            (hists, info), records = run_on_device(client, fill_parquet, *args, step="histogram_fill",
                                                   what=f"Histogram[{self.dataset}]")
            cluster = cluster_record(client)
        finally:
            close_forked_clusters()
        rows = info.pop("rows")
        steps = [{**record, **info} for record in records]
        for step in steps:
            if step["fallback"]:
                print(f"Histogram[{self.dataset}]: device cuda on worker {step.get('worker')}: "
                      f"{step['fallback']}; filled with numpy (same histograms)", flush=True)
        return hists, rows, {"device_steps": steps, "executor": {"dask": cluster}}
