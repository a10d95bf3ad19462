"""Heirloom's merged histograms in the layout of the AGC's own coffea processor.

The AGC (iris-hep/analysis-grand-challenge, ``analyses/cms-open-data-ttbar``) keeps one
histogram per region with three axes: ``observable`` (Regular), ``process`` and
``variation`` (string categories), Weight storage. Its ``utils.file_output.save_histograms``
writes them to ``histograms.root`` as one TH1D per process and variation,
``<region>_<process>`` for the nominal and ``<region>_<process>_<variation>`` otherwise,
skipping empty ones, plus ``<region>_pseudodata`` = (ttbar ME_var + ttbar PS_var) / 2 +
W+jets. The AGC's ``cabinetry_config.yml`` (``InputPath:
histograms.root:{RegionPath}_{SamplePath}{VariationPath}``) and ``validate_histograms.py``
read that file, and so does Heirloom's ``external_histograms`` (``format: root``).

Heirloom names map onto the AGC's like this:

- a dataset ``<process>__<variation>`` (``ttbar__ME_var``) is variation ``ME_var`` of
  process ``ttbar``; any other dataset is a process of its own (data too);
- a systematic's variations keep their names (``btag_var_0_up``) unless it has an
  ``agc_name`` (``jes: {agc_name: pt_scale}`` gives ``pt_scale_up``);
- pseudo-data datasets are left out: the AGC builds its pseudo-data when it writes the file;
- each region's axis is its first observable, renamed ``observable``.

>>> layout = to_agc_layout(merged, layout_spec(cfg))
>>> layout["4j1b"].axes.name
('observable', 'process', 'variation')
>>> named = agc_histograms(layout)
>>> write_root(named, outdir / "histograms.root"); list(named)[:3]
['4j1b_ttbar', '4j1b_ttbar_pt_scale_up', '4j1b_ttbar_btag_var_0_up']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from analysis.config.model import AnalysisConfig
from analysis.errors import LayoutError
from analysis.lazy import np
from analysis.io.root_file import recreate
from analysis.names import NOMINAL, histogram_key, sample_variation

_LEFT_OUT_KINDS = ("pseudodata",)            # the AGC makes its pseudo-data itself


class AGCLayoutError(LayoutError):
    """The merged histograms do not fit the AGC's one-variation-axis layout."""


def layout_spec(cfg: AnalysisConfig) -> dict:
    """What the layout depends on: variation renames (from the systematics' ``agc_name``),
    each region's observable and label, and the datasets that enter it (pseudo-data left out).

    >>> layout_spec(load_config("configs/agc_ttbar.yaml"))["variations"]["jes_up"]
    'pt_scale_up'
    """
    from analysis.config.model import region_observables

    renames = {f"{name}_{side}": f"{syst['agc_name']}_{side}"
               for name, syst in cfg.systematics.items() if syst.get("agc_name") for side in ("up", "down")}
    regions = {}
    for region, spec in cfg.regions.items():
        observables = region_observables(spec)
        if observables:
            label = cfg.observables.get(observables[0], {}).get("label", observables[0])
            regions[region] = {"observable": observables[0], "label": label}
    return {"variations": renames, "regions": regions,
            "datasets": [name for name, ds in cfg.datasets.items() if ds["kind"] not in _LEFT_OUT_KINDS]}


def check_config(cfg: AnalysisConfig) -> None:
    """``agc_name`` of a systematic is for event-level variations and names no other variation."""
    names = {name: syst["agc_name"] for name, syst in cfg.systematics.items() if syst.get("agc_name")}
    sample_variations = {sample_variation(ds)[1] for ds in cfg.datasets}
    for name, new in names.items():
        syst = cfg.systematics[name]
        if syst["type"] not in ("weight", "shape") or "up_dataset" in syst or "down_dataset" in syst:
            raise cfg.error("agc_name renames event-level variations (weight or shape systematics "
                            "with 'up'/'down'); a sample variation takes its dataset's name", "systematics", name,
                            "agc_name")
        others = ({f"{s}_{side}" for s in set(cfg.systematics) - set(names) for side in ("up", "down")}
                  | {f"{n}_{side}" for s, n in names.items() if s != name for side in ("up", "down")}
                  | sample_variations)
        clash = sorted({f"{new}_up", f"{new}_down"} & others)
        if clash:
            raise cfg.error(f"'{clash[0]}' is already the name of another variation", "systematics", name,
                            "agc_name")


def to_agc_layout(merged: Mapping, spec: Mapping) -> dict:
    """``{region: Hist(observable, process, variation)}`` from ``{dataset/region/observable: Hist}``."""
    import hist

    renames = spec["variations"]
    out = {}
    for region, rspec in spec["regions"].items():
        cells: dict = {}                           # (process, variation) -> 1D view with flow
        axis = None
        for dataset in spec["datasets"]:
            name = histogram_key(dataset, region, rspec["observable"])
            if name not in merged:
                continue
            h = merged[name]
            axis = axis or h.axes[1]
            process, of_sample = sample_variation(dataset)
            for i, variation in enumerate(h.axes[0]):
                if of_sample != NOMINAL and variation != NOMINAL:
                    raise AGCLayoutError(
                        f"dataset '{dataset}' is variation '{of_sample}' of '{process}' and cannot also "
                        f"carry variation '{variation}' in the AGC's one variation axis "
                        f"(give it 'systematics: false')")
                target = of_sample if variation == NOMINAL else renames.get(variation, variation)
                if (process, target) in cells:
                    raise AGCLayoutError(f"two histograms are process '{process}', variation '{target}' "
                                         f"in region '{region}'")
                cells[(process, target)] = h.view(flow=True)[i]
        if axis is None:
            continue
        processes = list(dict.fromkeys(p for p, _ in cells))
        variations = list(dict.fromkeys([NOMINAL] + [v for _, v in cells]))
        out_h = hist.Hist(
            hist.axis.Regular(axis.size, axis.edges[0], axis.edges[-1], name="observable", label=rspec["label"]),
            hist.axis.StrCategory(processes, name="process", label="Process", growth=True),
            hist.axis.StrCategory(variations, name="variation", label="Systematic variation", growth=True),
            storage=hist.storage.Weight())
        view = out_h.view(flow=True)
        for (process, variation), cell in cells.items():
            view[:, processes.index(process), variations.index(variation)] = cell
        out[region] = out_h
    return out


def agc_histograms(layout: Mapping) -> dict:
    """``{name: 1D Hist}`` exactly as the AGC's ``save_histograms`` names and keeps them.

    >>> sorted(agc_histograms(to_agc_layout(merged, layout_spec(cfg))))[:3]
    ['4j1b_data', '4j1b_single_top_s_chan', '4j1b_single_top_s_chan_btag_var_0_down']
    """
    out = {}
    for region, h in layout.items():
        for process in h.axes["process"]:
            for variation in h.axes["variation"]:
                one = h[:, process, variation]
                if np.sum(one.values()) > 0:             # the AGC keeps histograms with events only
                    suffix = "" if variation == NOMINAL else f"_{variation}"
                    out[f"{region}_{process}{suffix}"] = one
        needed = [("ttbar", "ME_var"), ("ttbar", "PS_var"), ("wjets", NOMINAL)]
        if all(p in h.axes["process"] and v in h.axes["variation"] and np.sum(h[:, p, v].values()) > 0
               for p, v in needed):
            out[f"{region}_pseudodata"] = (h[:, "ttbar", "ME_var"] + h[:, "ttbar", "PS_var"]) / 2 \
                + h[:, "wjets", NOMINAL]
    return out


def write_root(histograms: Mapping, path: str | Path) -> None:
    """Write :func:`agc_histograms` as the AGC's ``histograms.root`` (TH1D with Sumw2)."""
    identity = "|".join(f"{name}:{np.asarray(h.values()).tobytes().hex()}" for name, h in histograms.items())
    with recreate(path, identity) as file:
        for name, h in histograms.items():
            file[name] = h


def write_reference_json(histograms: Mapping, path: str | Path) -> None:
    """:func:`agc_histograms` in the AGC's reference-file format (``validate_histograms.py
    --dump-json``): ``{name: {"edges": [...], "contents": [underflow, bins, overflow]}}``."""
    raw = {name: {"edges": h.axes[0].edges.tolist(), "contents": h.values(flow=True).tolist()}
           for name, h in sorted(histograms.items())}
    Path(path).write_text(json.dumps(raw, indent=1))
