"""Select and Histogram: from skimmed chunks to per-dataset tables and histograms."""

from __future__ import annotations

import json
import time
from pathlib import Path

import luigi

from analysis.config.model import region_observables
from tasks.base import HeirloomTask, current_workers, execution
from tasks.inputs import Skim, dataset_chunks


class Select(HeirloomTask):
    """Objects, event selection, regions, observables and all variations for one dataset.

    Runs the event loop over the dataset's skimmed chunks with the chosen executor
    (``--executor iterative|futures|dask``, ``--workers N``, ``--scheduler ADDRESS``).
    """

    dataset = luigi.Parameter(description="dataset name in the config")
    format_version = 1

    def key_params(self):
        return {"dataset": self.dataset}

    def config_excerpt(self):
        from analysis.select.selection import plan_from_config

        return plan_from_config(self.cfg, self.dataset).excerpt()

    def plugin_paths(self):
        return [p for p in self.cfg.expression_paths() if p[0] not in ("skim",)]

    def requires(self):
        return {f"chunk{c.index:05d}": Skim.req(self, dataset=self.dataset, chunk=c.index)
                for c in dataset_chunks(self, self.dataset)}

    def produce(self, outdir: Path, inputs: dict) -> dict:
        from analysis.select.executors import make_executor
        from analysis.select.processor import run_selection
        from analysis.select.selection import plan_from_config
        from analysis.io.skim import SKIM_TREE
        from analysis.select.tables import write_selected

        cfg = self.cfg
        stats = [json.loads((path / "stats.json").read_text()) for _, path in sorted(inputs.items())]
        files = [str(path / "skim.root") for (_, path), st in zip(sorted(inputs.items()), stats)
                 if st["events_out"] > 0]
        plan = plan_from_config(cfg, self.dataset)
        t0 = time.time()
        n_pre = sum(st["events_out"] for st in stats)
        if files:
            executor = make_executor(execution().executor, current_workers(), execution().scheduler or None)
            output = run_selection(files, plan, executor, tree=SKIM_TREE,
                                   chunksize=int(cfg.section("select", "chunk_size", default=200_000)))
        else:
            output = {"chunks": {}, "cutflow_events": {}, "cutflow_weights": {}, "events": 0}
        seconds = time.time() - t0
        rows = write_selected(output["chunks"], plan, outdir / "selected.parquet")
        cutflow = {
            "dataset": self.dataset,
            "steps": ["all", "preselected"] + [s for s, _ in plan.steps] + [r for r, _, _ in plan.regions],
            "events": {"all": sum(st["events_in"] for st in stats), **output["cutflow_events"]},
            "weighted": {"all": sum(st["sumw_in"] for st in stats), **output["cutflow_weights"]},
        }
        cutflow["events"].setdefault("preselected", n_pre)
        (outdir / "cutflow.json").write_text(json.dumps(cutflow, indent=1))
        print(f"Select[{self.dataset}]: {n_pre} events in {seconds:.1f} s "
              f"({n_pre / max(seconds, 1e-6) / 1e3:.1f} kHz, executor={execution().executor}, "
              f"workers={current_workers()}), {rows} rows written", flush=True)
        return {"events": n_pre, "events_generated": cutflow["events"]["all"]}


class Histogram(HeirloomTask):
    """Histograms of one dataset, scaled to xsec * lumi / N for MC (hist, uhi.io JSON)."""

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
        import pyarrow.parquet as pq

        from analysis.hist import histograms

        excerpt = self.config_excerpt()
        cutflow = json.loads((inputs["selected"] / "cutflow.json").read_text())
        scale = histograms.mc_scale(excerpt["kind"], excerpt["xsec"], excerpt["lumi"] or 1.0, cutflow,
                                    excerpt["weighted_normalisation"])
        table = pq.read_table(inputs["selected"] / "selected.parquet")
        hists = histograms.fill_from_table(table, excerpt["regions"], excerpt["binning"], scale)
        histograms.dump(hists, outdir / "histograms.json")
        return {"scale": scale, "events": table.num_rows}
