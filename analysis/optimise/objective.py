"""The objective of an optimisation: the relaxed figure of merit as a function of the
cut parameters, from the loose tables to the differentiable model.

:func:`build` puts together what does not change while the cuts move: the relaxed cuts
(:mod:`.loose`), the template index (:mod:`.templates`), the bridge to the model's yields
(:mod:`.yields`) and the leaves' columns. :meth:`Problem.loss` then gives the value to
*minimise* at parameter values ``theta`` (-Z for ``discovery_significance``, the POI's
uncertainty for ``poi_uncertainty``); ``hard=True`` uses the exact cuts instead, which
at any ``theta`` is what the ordinary chain (Select, Histogram, Fit) would give.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from analysis.errors import FitError
from analysis.hist.histograms import _codes
from analysis.optimise.loose import Relaxation, row_weight
from analysis.optimise.templates import TemplateIndex, soft
from analysis.optimise.yields import Bridge, model_yields

@dataclass(frozen=True)
class Problem:
    """What an optimisation evaluates: parameter ``names``, their ``bounds`` (P x 2) and
    ``slopes``, the
    relaxed cuts, the templates and the bridge to the model, ``leaves`` (leaf text ->
    values of every row) and each row's region (``row_region`` codes into ``regions``)."""

    names: tuple[str, ...]
    bounds: np.ndarray
    slopes: Mapping[str, float]
    objective: str
    relax: Relaxation
    ix: TemplateIndex
    bridge: Bridge
    leaves: Mapping[str, np.ndarray]
    regions: tuple[str, ...]
    row_region: np.ndarray
    _jitted: dict = field(default_factory=dict, repr=False, compare=False)

    def theta(self, x: Any) -> dict:
        return {name: x[i] for i, name in enumerate(self.names)}

    def loss(self, x: Any, hard: bool = False) -> Any:
        """The value to minimise at parameter values ``x`` (a vector in ``names`` order)."""
        import jax.numpy as jnp

        from analysis.stats.jax_objectives import discovery_significance, poi_uncertainty

        weights = self.row_weights(x, jnp, hard)
        values, variances = soft(self.ix, weights, jnp)
        yields = model_yields(self.bridge, values, variances, jnp)
        if self.objective == "discovery_significance":
            return -discovery_significance(self.bridge.layout, yields)
        return poi_uncertainty(self.bridge.layout, yields)

    def row_weights(self, x: Any, xp: Any, hard: bool = False) -> Any:
        """Every row's relaxed weight (exact cuts with ``hard``)."""
        theta = self.theta(x)
        columns = {leaf: xp.asarray(values) for leaf, values in self.leaves.items()}
        out = xp.ones(len(self.row_region))
        for code, region in enumerate(self.regions):
            weight = row_weight(self.relax, region, columns, theta, xp, hard) * xp.ones(len(self.row_region))
            out = xp.where(self.row_region == code, weight, out)
        return out

    def value_and_grad(self) -> Callable:
        """The jitted ``x -> (loss, gradient)`` of the relaxed objective."""
        import jax

        if "grad" not in self._jitted:
            self._jitted["grad"] = jax.jit(jax.value_and_grad(self.loss))
        return self._jitted["grad"]

    def hard_loss(self) -> Callable:
        """The jitted ``x -> loss`` with exact cuts (no gradient)."""
        import jax

        if "hard" not in self._jitted:
            self._jitted["hard"] = jax.jit(lambda x: self.loss(x, hard=True))
        return self._jitted["hard"]

    def figure(self, loss: float) -> float:
        """The figure of merit from a loss (Z is maximised as -Z)."""
        return -float(loss) if self.objective == "discovery_significance" else float(loss)


def build(cfg: Any, relax_: Relaxation, ix: TemplateIndex, bridge: Bridge, tables: Mapping[str, Any]) -> Problem:
    """The :class:`Problem` of ``cfg``'s optimise section over loose ``tables`` (those
    of ``ix.datasets``). A leaf that is undefined (None) for some event is a FitError
    naming it: its relaxed cut would have no value there."""
    from analysis.config.optimise import parameters

    spec = parameters(cfg)
    names = tuple(spec)
    objective = cfg.data["optimise"].get("objective", "discovery_significance")
    leaves = {}
    for leaf in relax_.leaves:
        column = relax_.column(leaf)
        values = np.concatenate([tables[d].column(column).to_numpy() for d in ix.datasets])
        if np.isnan(values).any():
            raise FitError(f"the optimised cuts read '{leaf}', which is undefined (None) for "
                           f"{int(np.isnan(values).sum())} selected rows: give it a value for every event "
                           "(e.g. with ak.fill_none) or cut those events in a step without a parameter")
        leaves[leaf] = values
    regions: list = []
    codes = []
    for d in ix.datasets:
        local, labels = _codes(tables[d], "region")
        regions += [label for label in labels if label not in regions]
        lookup = np.asarray([regions.index(label) for label in labels] + [-1], dtype=np.int64)
        codes.append(lookup[local])
    bounds = np.asarray([spec[name]["bounds"] for name in names], dtype=float)
    slopes = {name: float(spec[name]["slope"]) for name in names}
    return Problem(names, bounds, slopes, objective, relax_, ix, bridge, leaves, tuple(regions), np.concatenate(codes))
