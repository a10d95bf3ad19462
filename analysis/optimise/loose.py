"""The loose selection: the events before the optimised cuts, with the columns that
those cuts read.

The Optimise task cannot rerun Select at every step. Instead Select runs once with a
*loose* plan (:func:`loose_plan`): the selection steps whose cut names a parameter are
dropped, the regions whose cut names one keep every selected event (``True``), and every
*leaf* of the relaxed cuts (:mod:`analysis.lang.relax`: the parts that name no
parameter, e.g. ``ak.sum(jets.pt, axis=1)``) becomes an observable ``opt_leaf<i>``, so the
table holds it as a flat per-event column ``obs_opt_leaf<i>``. Shape variations rebuild
the leaves from their varied inputs, as they rebuild any observable. The relaxed cuts
(:func:`relaxation`) then turn each row's leaves into a weight between 0 and 1.

Parameters may appear in the cuts of selection steps and regions only: an object's
``where`` acts on objects (a jagged mask has no per-event sigmoid), and an observable's or
weight's parameter would change no cut.

>>> cfg = load_config("configs/optimise_demo.yaml")
>>> relax = relaxation(cfg)
>>> relax.leaves, dict(relax.regions)["4j2b"].parameters
(('ak.num(bjets) >= 2', 'ak.sum(jets.pt, axis=1)'), frozenset({'ht_min'}))
>>> plan = loose_plan(cfg, "ttbar")
>>> dict((name, cut) for name, cut, _ in plan.regions)["4j2b"], plan.observables[-1]
('True', ('opt_leaf1', 'ak.sum(jets.pt, axis=1)'))
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from analysis.config.optimise import parameters
from analysis.lang.relax import Relaxed, relax
from analysis.select.selection import SelectionPlan, plan_from_config

#: name of the observable that holds leaf ``i`` (its table column is ``obs_`` + this)
LEAF = "opt_leaf{}"


@dataclass(frozen=True)
class Relaxation:
    """The relaxed cuts of a config: ``steps`` (selection steps whose cut names a
    parameter, as ``(index, Relaxed)``), ``regions`` (``(region, Relaxed)``), the leaves
    of all of them in order, and the ``hard`` twins (infinite slopes: exact cuts)."""

    steps: tuple[tuple[int, Relaxed], ...]
    regions: tuple[tuple[str, Relaxed], ...]
    leaves: tuple[str, ...]
    hard: tuple[tuple[str, Relaxed], ...]      # ("step<i>" | region, Relaxed with exact comparisons)

    def column(self, leaf: str) -> str:
        """The table column of a leaf."""
        return "obs_" + LEAF.format(self.leaves.index(leaf))


def relaxation(cfg: Any) -> Relaxation:
    """The relaxed cuts of ``cfg`` (see the module's text); a parameter anywhere but in a
    selection step's or a region's cut is a located error."""
    slopes = {name: float(spec["slope"]) for name, spec in parameters(cfg).items()}
    if not slopes:
        raise cfg.error("this config has no 'optimise' section, so there is nothing to optimise", "optimise")
    steps, regions, leaves, hard = [], [], [], []
    for path, text in sorted(cfg.parametrised.items(), key=lambda item: str(item[0])):
        if path[0] == "selection" and path[2:] == ("cut",):
            steps.append((int(path[1]), relax(text, slopes)))
            hard.append((f"step{path[1]}", relax(text, {name: math.inf for name in slopes})))
        elif path[0] == "regions" and path[2:] == ("cut",):
            regions.append((str(path[1]), relax(text, slopes)))
            hard.append((str(path[1]), relax(text, {name: math.inf for name in slopes})))
        else:
            raise cfg.error("an optimisation parameter may be named in the cut of a selection step or of a "
                            "region only (the Optimise task relaxes those)", *path)
    for _, relaxed in steps + regions:
        leaves += [leaf for leaf in relaxed.leaves if leaf not in leaves]
    return Relaxation(tuple(sorted(steps)), tuple(regions), tuple(leaves), tuple(hard))


def loose_plan(cfg: Any, dataset: str) -> SelectionPlan:
    """The SelectionPlan of ``dataset`` before the optimised cuts, with the leaves as
    observables of every region (see the module's text)."""
    relax_ = relaxation(cfg)
    plan = plan_from_config(cfg, dataset)
    relaxed_steps = {index for index, _ in relax_.steps}
    relaxed_regions = {name for name, _ in relax_.regions}
    leaf_names = tuple(LEAF.format(i) for i in range(len(relax_.leaves)))
    return dataclasses.replace(
        plan,
        steps=tuple(step for index, step in enumerate(plan.steps) if index not in relaxed_steps),
        regions=tuple((name, "True" if name in relaxed_regions else cut, tuple(observables) + leaf_names)
                      for name, cut, observables in plan.regions),
        observables=plan.observables + tuple(zip(leaf_names, relax_.leaves)),
    )


def row_weight(relax_: Relaxation, region: str, columns: dict, theta: dict, xp: Any, hard: bool = False) -> Any:
    """The relaxed weight of every row of ``region`` in a loose table: the product of the
    relaxed parametrised steps and of the region's own relaxed cut (1 where the region's
    cut names no parameter: the loose table applied it exactly). ``columns``: leaf text ->
    values; ``hard``: exact cuts instead (the judge's selection, at any ``theta``)."""
    exact = dict(relax_.hard)
    out = 1.0
    for index, relaxed in relax_.steps:
        out = out * (exact[f"step{index}"] if hard else relaxed).evaluate(columns, theta, xp)
    for name, relaxed in relax_.regions:
        if name == region:
            out = out * (exact[name] if hard else relaxed).evaluate(columns, theta, xp)
    return out
