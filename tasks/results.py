"""Histograms (all datasets merged, or ExternalHistograms read from a file), Fit and Plot."""

from __future__ import annotations

import json
from pathlib import Path

from tasks.base import HeirloomTask
from tasks.select import Histogram, Select


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
    """Build the pyhf workspace with cabinetry, fit the parameter of interest, rank the
    nuisance parameters by impact (``fit.ranking``) and compute the discovery
    significance (``fit.significance``), all with the config's minimiser settings.

    Outputs: ``workspace.json``, ``fit_result.json``, ``ranking.json``, ``significance.json``
    (the last two unless switched off), ``cabinetry/`` (templates.root, cabinetry config).
    """

    def config_excerpt(self):
        from analysis.stats.modelspec import fit_model

        return {"model": fit_model(self.cfg), "fit": self.cfg.section("fit", default={})}

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


class Plot(HeirloomTask):
    """Pre- and post-fit plots per region, pulls, correlations, impact ranking, and the
    cutflow table (not for external histograms: no event selection ran)."""

    def config_excerpt(self):
        cfg = self.cfg
        return {"plots": cfg.section("plots", default={}),
                "labels": {name: spec.get("label", name) for name, spec in cfg.datasets.items()},
                "sample_labels": {sample: spec.get("label", sample)
                                  for sample, spec in cfg.section("model", "samples", default={}).items()}}

    def requires(self):
        reqs = {"fit": Fit.req(self)}
        if uses_external_histograms(self.cfg):
            return reqs
        reqs.update({f"select_{name}": Select.req(self, dataset=name)
                     for name, spec in self.cfg.datasets.items() if spec["kind"] != "pseudodata"})
        return reqs

    def produce(self, outdir: Path, inputs: dict) -> dict:
        from analysis.select.cutflow import write_cutflow_tables
        from analysis.stats.fitting import FitResult, Ranking
        from analysis.plot.plotting import plot_correlation, plot_prefit_postfit, plot_pulls, plot_ranking

        fit_dir = inputs["fit"]
        workspace = json.loads((fit_dir / "workspace.json").read_text())
        result = FitResult.from_json((fit_dir / "fit_result.json").read_text())
        cabinetry_config = json.loads((fit_dir / "cabinetry" / "cabinetry_config.json").read_text())
        excerpt = self.config_excerpt()
        style = excerpt["plots"]
        written = plot_prefit_postfit(workspace, result, outdir, config=cabinetry_config,
                                      labels=excerpt["sample_labels"], style=style)
        written += plot_pulls(result, outdir, style=style)
        written += plot_correlation(result, outdir, style=style)
        if (fit_dir / "ranking.json").exists():
            written += plot_ranking(Ranking.from_json((fit_dir / "ranking.json").read_text()), outdir, style=style)
        cutflows = [json.loads((inputs[f"select_{name}"] / "cutflow.json").read_text())
                    for name in self.cfg.datasets if f"select_{name}" in inputs]   # config order
        if cutflows:
            write_cutflow_tables(cutflows, self.config_excerpt()["labels"], outdir)
        print(f"Plot: {len(written)} plots" + (" and the cutflow table (Markdown, CSV)" if cutflows else ""),
              flush=True)
        return {}
