"""Plot: what an analysis shows (pre- and post-fit plots, pulls, correlations, the cutflow)."""

from __future__ import annotations

import json
from pathlib import Path

from tasks.base import HeirloomTask
from tasks.results import Fit, uses_external_histograms
from tasks.select import Select


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
