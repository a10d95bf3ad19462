"""The statistical model of a config, in the form the fit code takes.

Systematics are declared once, at the top level of the config (how to vary the
events); this module derives how the fit uses them: each weight or shape systematic
becomes up/down templates named ``<systematic>_up``/``_down``; a template systematic
(histograms made elsewhere) names its templates itself (``up: pt_scale_up``); a
normalization systematic becomes a relative normalisation uncertainty.
"""

from __future__ import annotations

from typing import Any

from analysis.config.model import AnalysisConfig
from analysis.names import split_histogram_key


def fit_model(cfg: AnalysisConfig, extra_samples: dict | None = None) -> dict:
    """The ``model`` section with ``systematics`` filled in from the top-level ones;
    ``extra_samples`` (e.g. a new signal for a limit) join the samples first, so that the
    systematics of their datasets act on them too.

    >>> fit_model(load_config("configs/demo.yaml"))["systematics"]["jes"]
    {'type': 'shape', 'up': 'jes_up', 'symmetrize': True}
    """
    model = cfg.section("model")
    if not model:
        raise cfg.error("this config has no 'model' section, so it cannot be fitted", "model")
    samples = model["samples"] = {**model["samples"], **(extra_samples or {})}
    model.setdefault("regions", {name: {"name": name} for name in cfg.regions})
    systematics = {}
    for name, syst in cfg.systematics.items():
        entry: dict[str, Any] = {"type": "normalization" if syst["type"] == "normalization" else "shape"}
        if syst["type"] == "normalization":
            entry["up"] = float(syst["up"])
            entry["down"] = float(syst.get("down", -float(syst["up"])))
        else:
            for side in ("up", "down"):
                if f"{side}_dataset" in syst:
                    entry[f"{side}_dataset"] = syst[f"{side}_dataset"]
                elif syst["type"] == "template" and isinstance(syst.get(side), str):
                    entry[side] = syst[side]
                elif syst.get(side) is not None:
                    entry[side] = f"{name}_{side}"
        if syst.get("symmetrize") or ("down" not in entry and "down_dataset" not in entry
                                      and entry["type"] == "shape"):
            entry["symmetrize"] = True
        if "samples" in syst:
            entry["samples"] = list(syst["samples"])
        elif "datasets" in syst:
            entry["samples"] = [s for s, spec in samples.items() if set(spec["datasets"]) & set(syst["datasets"])]
        systematics[name] = entry
    model["systematics"] = systematics
    return model


def fit_histograms(cfg: AnalysisConfig, merged: dict, observables: dict | None = None) -> dict:
    """``{dataset: {region: Hist}}`` for the fit: each region's first observable, or the
    one ``observables`` names per region (histograms from elsewhere).

    >>> h, h2 = merged["ttbar/4j1b/ht"], merged["ttbar/4j2b/m_bjj"]
    >>> fit_histograms(cfg, {"ttbar/4j1b/ht": h, "ttbar/4j1b/njets": h2}) == {"ttbar": {"4j1b": h}}
    True
    """
    from analysis.config.model import region_observables

    if observables is None:
        observables = {region: (region_observables(spec) or [None])[0] for region, spec in cfg.regions.items()}
    out: dict = {}
    for name, h in merged.items():
        dataset, region, observable = split_histogram_key(name)
        if observables.get(region) == observable:
            out.setdefault(dataset, {})[region] = h
    return out
