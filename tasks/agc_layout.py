"""AGCHistograms: the merged histograms written the way the AGC's own processor writes them."""

from __future__ import annotations

from pathlib import Path

from tasks.base import HeirloomTask
from tasks.results import Histograms


class AGCHistograms(HeirloomTask):
    """The AGC's histogram layout (``analysis/hist/agc_layout.py``), for the AGC's own tools.

    Outputs: ``histograms.root`` (the AGC's ``save_histograms`` names, TH1D with Sumw2,
    pseudo-data included), ``hist_dict.json`` (one Hist per region with observable, process
    and variation axes, uhi.io JSON) and ``histos.json`` (the AGC's reference-file format).
    Variation names: the systematics' ``agc_name`` (``jes`` -> ``pt_scale_up``).

        law run AGCHistograms --config configs/agc_ttbar.yaml
    """

    def config_excerpt(self):
        from analysis.hist.agc_layout import layout_spec

        return layout_spec(self.cfg)

    def requires(self):
        return {"histograms": Histograms.req(self)}

    def produce(self, outdir: Path, inputs: dict) -> dict:
        from analysis.hist import agc_layout, histograms

        merged = histograms.load(inputs["histograms"] / "histograms.json")
        layout = agc_layout.to_agc_layout(merged, self.config_excerpt())
        named = agc_layout.agc_histograms(layout)
        agc_layout.write_root(named, outdir / "histograms.root")
        histograms.dump(layout, outdir / "hist_dict.json")
        agc_layout.write_reference_json(named, outdir / "histos.json")
        print(f"AGCHistograms: {len(named)} histograms in the AGC's layout "
              f"({', '.join(f'{r}: {len(h.axes[1])} processes x {len(h.axes[2])} variations' for r, h in layout.items())})",
              flush=True)
        return {"agc_layout": {"histograms": len(named)}}
