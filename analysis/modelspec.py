"""The statistical model of a config, in the form the fit code takes.

Systematics are declared once, at the top level of the config (how to vary the
events); this module derives how the fit uses them: each weight or shape systematic
becomes up/down templates named ``<systematic>_up``/``_down``; a normalization
systematic becomes a relative normalisation uncertainty.
"""

from __future__ import annotations


def fit_model(cfg) -> dict:
    """The ``model`` section with ``systematics`` filled in from the top-level ones.

    >>> fit_model(load_config("configs/demo.yaml"))["systematics"]["jes"]   # doctest: +SKIP
    {'type': 'shape', 'up': 'jes_up', 'symmetrize': True}
    """
    model = cfg.section("model")
    if not model:
        raise cfg.error("this config has no 'model' section, so it cannot be fitted", "model")
    samples = model["samples"]
    model.setdefault("regions", {name: {"name": name} for name in cfg.regions})
    systematics = {}
    for name, syst in cfg.systematics.items():
        entry = {"type": "normalization" if syst["type"] == "normalization" else "shape"}
        if syst["type"] == "normalization":
            entry["up"] = float(syst["up"])
            entry["down"] = float(syst.get("down", -float(syst["up"])))
        else:
            if "up_dataset" in syst:
                entry["up_dataset"] = syst["up_dataset"]
            elif syst.get("up") is not None:
                entry["up"] = f"{name}_up"
            if "down_dataset" in syst:
                entry["down_dataset"] = syst["down_dataset"]
            elif syst.get("down") is not None:
                entry["down"] = f"{name}_down"
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


def fit_histograms(cfg, merged: dict) -> dict:
    """``{dataset: {region: Hist}}`` for the fit: each region's first observable."""
    from analysis.config.model import region_observables

    out: dict = {}
    for name, h in merged.items():
        dataset, region, observable = name.split("/")
        observables = region_observables(cfg.regions[region])
        if observables and observable == observables[0]:
            out.setdefault(dataset, {})[region] = h
    return out
