"""Figures of merit of a model's expected data, differentiable with respect to its yields.

Both objectives judge the analysis on its Asimov data with the POI at 1 and every
nuisance parameter at its nominal value, not on the observed data: an optimisation of
the cuts must not look at the data it will be judged on (the same expected data that
``fit: {asimov: true}`` gives Fit).

- :func:`discovery_significance`: the median expected discovery significance, Z =
  sqrt(q0), q0 = -2 ln L(POI = 0, profiled) / L(Asimov best fit). On Asimov data the best
  fit is the nominal point, so one fit is made: the one with POI = 0, bounded as pyhf's
  are and differentiated implicitly (:mod:`analysis.stats.jax_fit`).
- :func:`poi_uncertainty`: the expected uncertainty on the POI, from the inverse of the
  Hessian of -ln L at that point (no fit).

Both are compiled with ``jax.jit``, as the Optimise task calls them (run op by op, as a
plain call runs them, they take several times longer):

>>> import jax
>>> from analysis.stats.jax_model import from_workspace
>>> layout, yields = from_workspace(tiny_ws)
>>> z, dmu = (jax.jit(lambda y, f=f: f(layout, y))(yields) for f in (discovery_significance, poi_uncertainty))
>>> round(float(z), 4), round(float(dmu), 4)
(1.5262, 0.6843)
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp

from analysis.stats.jax_fit import conditional_fit
from analysis.stats.jax_model import Layout, aux_data, expected_main, init_pars, logpdf



def asimov_pars(layout: Layout) -> jnp.ndarray:
    """The nominal parameters with the POI at 1."""
    return init_pars(layout).at[layout.index(layout.poi)].set(1.0)


def asimov(layout: Layout, yields: Mapping) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(main data, aux data) expected at :func:`asimov_pars`.

    >>> from analysis.stats.jax_model import from_workspace
    >>> main, aux = asimov(*from_workspace(tiny_ws))
    >>> [round(v, 6) for v in main.tolist()], aux.tolist()      # signal + background; alphas, gammas
    ([44.0, 39.0, 25.0], [0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    """
    pars = asimov_pars(layout)
    return expected_main(layout, yields, pars), aux_data(layout, pars)


def q0(layout: Layout, yields: Mapping) -> jnp.ndarray:
    """The discovery test statistic on the Asimov data (POI = 1): 2 (NLL(POI = 0,
    profiled) - NLL(nominal))."""
    main, aux = asimov(layout, yields)
    best = logpdf(layout, yields, asimov_pars(layout), main, aux)
    background_only = conditional_fit(layout, yields, main, aux, {layout.poi: 0.0})
    return 2.0 * (best - logpdf(layout, yields, background_only, main, aux))


def discovery_significance(layout: Layout, yields: Mapping) -> jnp.ndarray:
    """Z = sqrt(q0) of the Asimov data (see the module's text)."""
    return jnp.sqrt(jnp.maximum(q0(layout, yields), 0.0))


def poi_uncertainty(layout: Layout, yields: Mapping) -> jnp.ndarray:
    """The expected uncertainty on the POI: sqrt of the POI's diagonal element of the
    inverse Hessian of -ln L at the Asimov best fit."""
    main, aux = asimov(layout, yields)
    hessian = jax.hessian(lambda p: -logpdf(layout, yields, p, main, aux))(asimov_pars(layout))
    n_head = len(layout.norm_factors) + len(layout.alphas)     # the gammas of bins without a staterror
    unused = jnp.concatenate([jnp.zeros(n_head), 1.0 - jnp.asarray(layout.staterror_bins)])   # act on nothing
    hessian = hessian + jnp.diag(unused)
    poi = layout.index(layout.poi)
    return jnp.sqrt(jnp.linalg.inv(hessian)[poi, poi])
