"""Limit: a CLs upper limit on a new signal's strength, from a fork of an analysis.

    law run Limit --config configs/reinterpret_example.yaml

Needs the merged histograms (the analysis's datasets plus the signal's), so after the
analysis has run, a fork that adds a signal runs only the signal's Generate/Skim/Select/
Histogram, the merge and this task; every background output keeps its key.
"""

from __future__ import annotations

import json
from pathlib import Path

from tasks.base import HeirloomTask
from tasks.execution import fit_pool_size
from tasks.results import Histograms


class Limit(HeirloomTask):
    """Observed and expected CLs upper limits on ``limit.poi`` (``limit.json``, ``limit.png``,
    the workspace with the signal: ``workspace.json``)."""

    def config_excerpt(self):
        from analysis.plot.style import plot_style
        from analysis.stats.limits import limit_model, section

        limit = section(self.cfg)
        return {"model": limit_model(self.cfg), "limit": {k: v for k, v in limit.items() if k != "signal"},
                "fit": {k: v for k, v in self.cfg.section("fit", default={}).items()
                        if k in ("strategy", "tolerance", "maxiter")},
                "plots": plot_style(self.cfg), "signal": signal_label(self.cfg, limit["signal"])}

    def requires(self):
        return {"histograms": Histograms.req(self)}

    def produce(self, outdir: Path, inputs: dict) -> dict:
        from analysis.hist import histograms
        from analysis.progress import to_stdout
        from analysis.stats.limits import upper_limit
        from analysis.stats.modelspec import fit_histograms
        from analysis.plot.plotting import plot_limit
        from analysis.stats.products import write_workspace
        from analysis.stats.statmodel import build_workspace

        excerpt = self.config_excerpt()
        merged = histograms.load(inputs["histograms"] / "histograms.json")
        workspace = build_workspace(fit_histograms(self.cfg, merged), excerpt["model"], excerpt["fit"],
                                    outdir / "cabinetry")
        write_workspace(workspace, outdir)
        result = upper_limit(workspace, excerpt["limit"], excerpt["fit"], workers=fit_pool_size(),
                             progress=to_stdout)                     # Limit: k/6 limits
        (outdir / "limit.json").write_text(result.to_json())
        plot_limit(result, outdir, signal=excerpt["signal"], style=excerpt["plots"])
        cl = round(100 * result.cl)
        expected = ", ".join(f"{x:.3f}" for x in result.expected)
        print(f"Limit: {result.poi} < {result.observed:.3f} observed at {cl}% CL; expected {result.expected[2]:.3f} "
              f"(-2..+2 sigma: {expected}); the nominal signal (mu = 1) is "
              f"{'excluded' if result.excludes(1.0) else 'not excluded'} ({result.seconds:.1f} s)", flush=True)
        return {"limit": {"poi": result.poi, "cl": result.cl, "observed": result.observed,
                          "expected": result.expected}, "seconds": {"limit": result.seconds}}


def signal_label(cfg, signal: dict) -> str:
    """The signal's name in plots: ``limit.signal.label``, else its datasets' labels."""
    return signal.get("label") or " + ".join(cfg.datasets[name].get("label", name) for name in signal["datasets"])
