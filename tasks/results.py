"""Histograms (all datasets merged, or ExternalHistograms read from a file) and Fit."""

from __future__ import annotations

import json
from pathlib import Path

from tasks.base import HeirloomTask
from tasks.select import Histogram


class Histograms(HeirloomTask):
    """Every dataset's histograms in one uhi.io JSON file; pseudodata combined here."""

    def config_excerpt(self):
        cfg = self.cfg
        return {"pseudodata": {name: spec["combine"] for name, spec in cfg.datasets.items()
                               if spec["kind"] == "pseudodata"}}

    def requires(self):
        return {name: Histogram.req(self, dataset=name)
                for name, spec in self.cfg.datasets.items() if spec["kind"] != "pseudodata"}

    def produce(self, outdir: Path, inputs: dict) -> dict:
        from analysis.hist import histograms
        from analysis.names import dataset_histogram_key

        merged = {}
        for dataset, path in sorted(inputs.items()):
            for name, h in histograms.load(path / "histograms.json").items():
                merged[dataset_histogram_key(dataset, name)] = h
        for name, combine in self.config_excerpt()["pseudodata"].items():
            merged.update(histograms.pseudodata(merged, name, combine))
        histograms.dump(merged, outdir / "histograms.json")
        return {}


class ExternalHistograms(HeirloomTask):
    """Histograms made by another system (``external_histograms:``), in Histograms' layout.

    Its key holds the file's content (BLAKE3 digest), not its path: the same file elsewhere is
    the same result. Writes ``histograms.json`` and ``external.json`` (per-event weights
    found, the variations of each dataset, the file's histograms nothing maps).
    """

    def config_excerpt(self):
        from analysis.hist.external import excerpt

        return excerpt(self.cfg)

    def raw_inputs(self):
        from analysis.hist.external import identify

        return {"histograms_file": identify(self.cfg)}

    def requires(self):
        return {}

    def produce(self, outdir: Path, inputs: dict) -> dict:
        from analysis.hist import external
        from analysis.hist import histograms

        merged, summary = external.read(self.cfg)
        histograms.dump(merged, outdir / "histograms.json")
        (outdir / "external.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
        print(f"ExternalHistograms: {len(merged)} histograms from {summary['used']} of the file's "
              f"({len(summary['unused'])} unused)", flush=True)
        return {"external": {"weights": summary["weights"], "unused": len(summary["unused"])}}


def uses_external_histograms(cfg) -> bool:
    return bool(cfg.data.get("external_histograms"))


class Fit(HeirloomTask):
    """Build the pyhf workspace with cabinetry and fit the parameter of interest with the
    config's minimiser settings. The discovery significance and the impact ranking are
    tasks of their own (tasks/statistics.py), so that a plot never waits for them.

    Outputs: ``workspace.json``, ``fit_result.json``, ``cabinetry/`` (templates.root,
    cabinetry config).
    """

    #: what its run imports: imported before luigi or the run's pool forks (tasks/progress.py)
    warm_imports = ("pyhf", "cabinetry")

    def config_excerpt(self):
        from analysis.stats.modelspec import fit_model

        return {"model": fit_model(self.cfg), "fit": fit_settings(self.cfg)}

    def requires(self):
        if uses_external_histograms(self.cfg):
            return {"histograms": ExternalHistograms.req(self)}
        return {"histograms": Histograms.req(self)}

    def produce(self, outdir: Path, inputs: dict) -> dict:
        from analysis.hist import external, histograms
        from analysis.stats.modelspec import fit_histograms
        from analysis.stats.products import fit_products, write_workspace
        from analysis.stats.statmodel import build_workspace

        excerpt = self.config_excerpt()
        merged = histograms.load(inputs["histograms"] / "histograms.json")
        observables = external.fit_observables(self.cfg) if uses_external_histograms(self.cfg) else None
        workspace = build_workspace(fit_histograms(self.cfg, merged, observables), excerpt["model"], excerpt["fit"],
                                    outdir / "cabinetry")
        write_workspace(workspace, outdir)
        return fit_products(workspace, excerpt["fit"], excerpt["model"]["poi"], outdir)


#: keys of ``fit:`` that say which statistics tasks an analysis includes, not how to fit
PRODUCT_SWITCHES = ("ranking", "significance")


def fit_settings(cfg) -> dict:
    """The ``fit:`` section without the switches of the statistics tasks (which enter no
    fit's key: switching the ranking off must not refit)."""
    return {k: v for k, v in cfg.section("fit", default={}).items() if k not in PRODUCT_SWITCHES}
