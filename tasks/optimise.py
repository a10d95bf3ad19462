"""LooseSelect and Optimise: gradient-based optimisation of the cuts (docs/optimise.md).

``law run Optimise --config configs/optimise_demo.yaml`` selects each dataset once
before the optimised cuts (LooseSelect), takes the model's layout from the ordinary Fit
at the start values, and searches the relaxed objective. It writes the fork
(``<name>_optimised.yaml``, which ``extends:`` the config), the trajectory, a scan
around the optimum and its figures in ``optimise.json``; the fork is then judged by an
ordinary run: ``law run Fit --config <fork>``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from analysis.store.environment import versions
from tasks.base import HeirloomTask
from tasks.results import Fit, fit_settings
from tasks.select import Select

#: the libraries whose versions decide an optimisation's result (they enter its key)
OPTIMISER_PACKAGES = ("jax", "jaxlib", "optimistix", "equinox", "lineax", "optax")


class LooseSelect(Select):
    """Select before the optimised cuts: the same event loop and table, with the
    parametrised steps dropped, the parametrised regions open, and the leaves of the
    relaxed cuts as columns (:mod:`analysis.optimise.loose`)."""

    def plan(self):
        from analysis.optimise.loose import loose_plan

        return loose_plan(self.cfg, self.dataset)


def optimised_datasets(cfg) -> list[str]:
    """The MC datasets the model's templates are made of (its samples' and the
    alternative datasets of its systematics)."""
    from analysis.stats.modelspec import fit_model

    model = fit_model(cfg)
    names = {d for spec in model["samples"].values() for d in spec["datasets"]}
    names |= {spec[k] for spec in model["systematics"].values() for k in ("up_dataset", "down_dataset") if k in spec}
    return sorted(n for n in names if cfg.datasets.get(n, {}).get("kind") == "mc")


class Optimise(HeirloomTask):
    """The cut parameters of ``optimise:`` that optimise its objective (see the module)."""

    #: nothing is imported before luigi forks: jax is multithreaded, and a process forked
    #: after importing it may deadlock; the task imports jax itself
    warm_imports: tuple = ()

    def config_excerpt(self):
        from analysis.config.optimise import method

        cfg = self.cfg
        return {"optimise": {**cfg.data["optimise"], "method": method(cfg)},
                "parametrised": {".".join(map(str, path)): text for path, text in sorted(cfg.parametrised.items(),
                                                                                          key=lambda i: str(i[0]))},
                "datasets": {name: {"xsec": cfg.datasets[name].get("xsec")} for name in optimised_datasets(cfg)},
                "lumi": cfg.lumi, "weighted_normalisation": bool(cfg.data.get("event_weight")),
                "fit": fit_settings(cfg), "fork_of": Path(self.config).name,
                "versions": versions(OPTIMISER_PACKAGES)}

    def requires(self):
        reqs = {f"loose__{name}": LooseSelect.req(self, dataset=name) for name in optimised_datasets(self.cfg)}
        reqs["fit"] = Fit.req(self)
        return reqs

    def produce(self, outdir: Path, inputs: dict) -> dict:
        from analysis.optimise.run import optimise

        t0 = time.time()
        loose = {name.removeprefix("loose__"): path for name, path in inputs.items() if name.startswith("loose__")}
        summary = optimise(self.cfg, loose, inputs["fit"] / "workspace.json", outdir, Path(self.config).name)
        fork = self.store_entry().path / summary["fork"]
        print(f"Optimise: {summary['objective']} (exact cuts) {summary['hard']['start']:.4g} at the start, "
              f"{summary['hard']['optimum']:.4g} at {summary['optimum']} after {summary['evaluations']} evaluations "
              f"({time.time() - t0:.1f} s).\nOptimise: judge the fork with the exact cuts: cp {fork} "
              f"{Path(self.config).parent}/ && law run Fit --config {Path(self.config).parent / summary['fork']}",
              flush=True)
        return {"optimisation": {"seconds": round(time.time() - t0, 3), "evaluations": summary["evaluations"],
                                 **summary["timing"]}}
