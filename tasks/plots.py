"""Plot: what an analysis shows. Every region x observable (stacked MC, data, ratio), the
weighted yield tables, the cutflow, and with a fit model the pre- and post-fit plots per
channel, pulls and correlations (the impact ranking is the Ranking task's)."""

from __future__ import annotations

import json
from pathlib import Path

from tasks.base import HeirloomTask
from tasks.results import ExternalHistograms, Fit, Histograms, uses_external_histograms
from tasks.select import Select


class Plot(HeirloomTask):
    """Outputs: ``<region>_<observable>.png`` for every region and observable,
    ``yields.{md,csv,tex}`` (pre-fit, from the histograms), ``cutflow.{md,csv}`` (not for
    external histograms: no event selection ran); with ``model:`` also
    ``<channel>_prefit.png``, ``<channel>_postfit.png``, ``pulls.png``,
    ``correlation_matrix.png`` and ``yields_postfit.{md,csv,tex}``."""

    #: what its run imports: imported before luigi or the run's pool forks (tasks/progress.py)
    warm_imports = ("matplotlib", "mplhep")

    def config_excerpt(self):
        from analysis.plot.layout import plot_layout

        cfg = self.cfg
        return {"layout": plot_layout(cfg),
                "labels": {name: spec.get("label", name) for name, spec in cfg.datasets.items()}}

    def requires(self):
        external = uses_external_histograms(self.cfg)
        reqs = {"histograms": (ExternalHistograms if external else Histograms).req(self)}
        if self.cfg.data.get("model"):
            reqs["fit"] = Fit.req(self)
        if not external:
            reqs.update({f"select_{name}": Select.req(self, dataset=name)
                         for name, spec in self.cfg.datasets.items() if spec["kind"] != "pseudodata"})
        return reqs

    def produce(self, outdir: Path, inputs: dict) -> dict:
        from analysis.hist import histograms
        from analysis.plot.exploration import plot_distributions
        from analysis.plot.yields import prefit_yields, write_prefit_tables
        from analysis.select.cutflow import write_cutflow_tables

        excerpt = self.config_excerpt()
        layout = excerpt["layout"]
        merged = histograms.load(inputs["histograms"] / "histograms.json")
        written = plot_distributions(merged, layout, outdir)
        tables = write_prefit_tables(prefit_yields(merged, layout), outdir,
                                     {name: spec["label"] for name, spec in layout["regions"].items()})
        if "fit" in inputs:
            fit_written, fit_tables = fit_plots(inputs["fit"], layout, outdir)
            written, tables = written + fit_written, tables + fit_tables
        cutflows = [json.loads((inputs[f"select_{name}"] / "cutflow.json").read_text())
                    for name in self.cfg.datasets if f"select_{name}" in inputs]   # config order
        if cutflows:
            tables += write_cutflow_tables(cutflows, excerpt["labels"], outdir)
        stems = ", ".join(dict.fromkeys(path.stem for path in tables))
        print(f"Plot: {len(written)} plots and the tables {stems} (Markdown, CSV; yields also LaTeX)", flush=True)
        return {}


def fit_plots(fit_dir: Path, layout: dict, outdir: Path) -> tuple[list, list]:
    """The fit's plots (pre-/post-fit per channel, pulls, correlations) and its yield tables."""
    from analysis.plot.plotting import plot_correlation, plot_prefit_postfit, plot_pulls
    from analysis.plot.yields import fit_yields, write_postfit_tables
    from analysis.stats.fitting import FitResult

    workspace = json.loads((fit_dir / "workspace.json").read_text())
    result = FitResult.from_json((fit_dir / "fit_result.json").read_text())
    cabinetry_config = json.loads((fit_dir / "cabinetry" / "cabinetry_config.json").read_text())
    style = layout["style"]
    labels = {p["name"]: p["label"] for p in layout["processes"]}
    colors = {p["name"]: p["color"] for p in layout["processes"]}
    data_label = "Asimov data" if result.asimov else (layout.get("data") or {}).get("label", "Data")
    written = plot_prefit_postfit(workspace, result, outdir, config=cabinetry_config, labels=labels,
                                  colors=colors, data_label=data_label, style=style)
    written += plot_pulls(result, outdir, style=style)
    written += plot_correlation(result, outdir, style=style)
    tables = write_postfit_tables(fit_yields(workspace, result, labels, data_label), outdir)
    return written, tables
