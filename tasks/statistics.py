"""The statistics beyond the fit, each a task of its own so that ``law run Plot`` needs
only what it draws: the discovery significance and the impact ranking; and ``All``, what
an analysis produces in full (what ``./setup.sh demo`` runs)."""

from __future__ import annotations

import json
from pathlib import Path

import law

from tasks.base import ConfigParameter, HeirloomTask
from tasks.execution import fit_pool_size
from tasks.plots import Plot
from tasks.results import Fit, fit_settings


class Significance(HeirloomTask):
    """The observed and expected discovery significance of the POI (a number even where
    the p-value underflows: analysis/stats/discovery.py). Output: ``significance.json``, or
    ``failed.json`` with MINUIT's reason when the background-only fit finds no minimum (the
    run goes on: the fit itself stands)."""

    def config_excerpt(self):
        return {"fit": fit_settings(self.cfg)}

    def requires(self):
        return {"fit": Fit.req(self)}

    def produce(self, outdir: Path, inputs: dict) -> dict:
        from analysis.errors import FitError
        from analysis.stats.products import significance_products

        workspace = json.loads((inputs["fit"] / "workspace.json").read_text())
        try:
            return significance_products(workspace, self.config_excerpt()["fit"], outdir)
        except FitError as err:            # a background-only fit that cannot converge is a result too
            (outdir / "failed.json").write_text(json.dumps({"significance": str(err)}, indent=1))
            print(f"Significance: WARNING: not defined: {err}", flush=True)
            return {"failed": {"significance": str(err)}}


class Ranking(HeirloomTask):
    """The impact of every parameter on the POI, the parameters spread over ``--workers``
    processes, and its plot. Outputs: ``ranking.json``, ``ranking.png``."""

    def config_excerpt(self):
        from analysis.plot.style import plot_style

        return {"fit": fit_settings(self.cfg), "plots": plot_style(self.cfg)}

    def requires(self):
        return {"fit": Fit.req(self)}

    def produce(self, outdir: Path, inputs: dict) -> dict:
        from analysis.plot.plotting import plot_ranking
        from analysis.stats.fitting import FitResult, Ranking as RankingResult
        from analysis.stats.products import ranking_products

        workspace = json.loads((inputs["fit"] / "workspace.json").read_text())
        result = FitResult.from_json((inputs["fit"] / "fit_result.json").read_text())
        excerpt = self.config_excerpt()
        figures = ranking_products(workspace, result, excerpt["fit"], outdir, workers=fit_pool_size())
        plot_ranking(RankingResult.from_json((outdir / "ranking.json").read_text()), outdir, style=excerpt["plots"])
        return figures


class All(law.WrapperTask):
    """Everything an analysis produces: its plots, and with a fit model the ranking and the
    significance (unless ``fit: {ranking: false}`` / ``{significance: false}``), its limit
    (``limit:``) and the AGC's histogram layout. ``law run All --config C``."""

    config = ConfigParameter(description="analysis config (YAML)")

    def requires(self):
        from tasks.maintenance import final_tasks

        return final_tasks(self.config)
