"""Histograms (all datasets merged), Fit and Plot."""

from __future__ import annotations

import json
from pathlib import Path

from tasks.base import HeirloomTask
from tasks.select import Histogram, Select


class Histograms(HeirloomTask):
    """Every dataset's histograms in one uhi.io JSON file; pseudodata combined here."""

    code_modules = ("histograms",)

    def config_excerpt(self):
        cfg = self.cfg
        return {"pseudodata": {name: spec["combine"] for name, spec in cfg.datasets.items()
                               if spec["kind"] == "pseudodata"}}

    def requires(self):
        return {name: Histogram.req(self, dataset=name)
                for name, spec in self.cfg.datasets.items() if spec["kind"] != "pseudodata"}

    def produce(self, outdir: Path, inputs: dict) -> dict:
        from analysis import histograms

        merged = {}
        for dataset, path in sorted(inputs.items()):
            for name, h in histograms.load(path / "histograms.json").items():
                merged[f"{dataset}/{name}"] = h
        for name, combine in self.config_excerpt()["pseudodata"].items():
            merged.update(histograms.pseudodata(merged, name, combine))
        histograms.dump(merged, outdir / "histograms.json")
        return {}


class Fit(HeirloomTask):
    """Build the pyhf workspace with cabinetry and fit the parameter of interest."""

    code_modules = ("statmodel", "fitting", "modelspec")

    def config_excerpt(self):
        from analysis.modelspec import fit_model

        return {"model": fit_model(self.cfg), "fit": self.cfg.section("fit", default={})}

    def requires(self):
        return {"histograms": Histograms.req(self)}

    def produce(self, outdir: Path, inputs: dict) -> dict:
        from analysis import histograms
        from analysis.fitting import fit_workspace
        from analysis.modelspec import fit_histograms
        from analysis.statmodel import build_workspace

        excerpt = self.config_excerpt()
        merged = histograms.load(inputs["histograms"] / "histograms.json")
        workspace = build_workspace(fit_histograms(self.cfg, merged), excerpt["model"], excerpt["fit"],
                                    outdir / "cabinetry")
        (outdir / "workspace.json").write_text(json.dumps(workspace, indent=1, sort_keys=True))
        result = fit_workspace(workspace, excerpt["fit"])
        (outdir / "fit_result.json").write_text(result.to_json())
        poi = excerpt["model"]["poi"]
        print(f"Fit: {poi} = {result.bestfit:.4f} +- {result.uncertainty:.4f}", flush=True)
        return {"poi": {"name": poi, "value": result.bestfit, "uncertainty": result.uncertainty}}


class Plot(HeirloomTask):
    """Pre- and post-fit plots per region, pulls, correlations, and the cutflow table."""

    code_modules = ("plotting", "cutflow")

    def config_excerpt(self):
        cfg = self.cfg
        return {"plots": cfg.section("plots", default={}),
                "labels": {name: spec.get("label", name) for name, spec in cfg.datasets.items()},
                "sample_labels": {sample: spec.get("label", sample)
                                  for sample, spec in cfg.section("model", "samples", default={}).items()}}

    def requires(self):
        reqs = {"fit": Fit.req(self)}
        reqs.update({f"select_{name}": Select.req(self, dataset=name)
                     for name, spec in self.cfg.datasets.items() if spec["kind"] != "pseudodata"})
        return reqs

    def produce(self, outdir: Path, inputs: dict) -> dict:
        from analysis.cutflow import write_cutflow_tables
        from analysis.fitting import FitResult
        from analysis.plotting import plot_correlation, plot_prefit_postfit, plot_pulls

        fit_dir = inputs["fit"]
        workspace = json.loads((fit_dir / "workspace.json").read_text())
        result = FitResult.from_json((fit_dir / "fit_result.json").read_text())
        cabinetry_config = json.loads((fit_dir / "cabinetry" / "cabinetry_config.json").read_text())
        labels = self.config_excerpt()["sample_labels"]
        written = plot_prefit_postfit(workspace, result, outdir, config=cabinetry_config, labels=labels)
        written += plot_pulls(result, outdir)
        written += plot_correlation(result, outdir)
        cutflows = [json.loads((inputs[f"select_{name}"] / "cutflow.json").read_text())
                    for name in self.cfg.datasets if f"select_{name}" in inputs]   # config order
        write_cutflow_tables(cutflows, self.config_excerpt()["labels"], outdir)
        print(f"Plot: {len(written)} plots and the cutflow table (Markdown, CSV)", flush=True)
        return {}
