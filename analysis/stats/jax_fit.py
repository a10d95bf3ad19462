"""A bounded maximum-likelihood fit of the differentiable model, with its gradient.

pyhf's fits keep every parameter inside its bounds (normalisation factors [0, 10],
alphas [-5, 5], gammas [1e-10, 10] unless the measurement says otherwise), and a
background-only fit of a strong signal drives nuisance parameters onto them: the
AGC model's has seven at a bound. The fit therefore runs in two steps:

1. **Where the optimum is**: scipy's L-BFGS-B, bounded, from the nominal parameters
   (pyhf's start), on the value and gradient of -ln L compiled by jax. It runs on the
   host (``jax.pure_callback``) with the yields' values only, so it finds the point and
   which parameters sit on a bound, but carries no gradient.
2. **The optimum as a function of the yields**: with the parameters at a bound held
   there (they stay there under a small change of the yields), optimistix's BFGS
   polishes the free ones from that point to :data:`FIT_TOLERANCE`, and its implicit
   adjoint differentiates the result with respect to the yields without unrolling
   any step of either minimiser.

>>> from analysis.stats.jax_model import from_workspace
>>> from analysis.stats.jax_objectives import asimov
>>> layout, yields = from_workspace(tiny_ws)
>>> pars = conditional_fit(layout, yields, *asimov(layout, yields), {"mu": 0.0})
>>> float(pars[0]), round(float(pars[layout.index("bkg_norm")]), 3)
(0.0, 0.886)
"""

from __future__ import annotations

import functools
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as onp
import optimistix as optx

from analysis.errors import FitError
from analysis.stats.jax_model import Layout, init_values, logpdf, staterror_sigmas

#: convergence of the polishing step (relative and absolute, on the parameters and -ln L)
FIT_TOLERANCE = 1e-12
MAX_STEPS = 2000
#: a parameter this close to a bound (relative to the bound, or absolute near 0) is on it
ON_BOUND = 1e-9


def _positive(layout: Layout) -> onp.ndarray:
    """True for parameters polished through their logarithm (normalisation factors, gammas)."""
    n_f, n_a = len(layout.norm_factors), len(layout.alphas)
    return onp.concatenate([onp.ones(n_f), onp.zeros(n_a), onp.ones(layout.n_bins)]) > 0


def bounds(layout: Layout) -> tuple[onp.ndarray, onp.ndarray]:
    """(lower, upper) per parameter: the layout's bounds; gammas pyhf's [1e-10, 10].

    >>> from analysis.stats.jax_model import from_workspace
    >>> [b.tolist()[:2] for b in bounds(from_workspace(tiny_ws)[0])]
    [[0.0, -5.0], [10.0, 5.0]]
    """
    named = dict(layout.bounds)
    pairs = [named[n] for n in layout.norm_factors + layout.alphas] + [(1e-10, 10.0)] * layout.n_bins
    return onp.asarray([p[0] for p in pairs], dtype=float), onp.asarray([p[1] for p in pairs], dtype=float)


@functools.lru_cache(maxsize=8)
def _compiled(layout: Layout):
    """(-ln L and its gradient in the parameters, jitted; the polishing objective): made
    once per layout, so that jax traces each once."""
    positive = _positive(layout)

    @jax.jit
    def value_and_grad(pars, yields, main, aux):
        return jax.value_and_grad(lambda p: -logpdf(layout, yields, p, main, aux))(pars)

    def polish(z, args):
        yields, main, aux, held, values = args
        pinned = 0.5 * jnp.sum(jnp.where(held, z, 0.0) ** 2)     # held coordinates: curvature 1, for the adjoint
        return pinned - logpdf(layout, yields, _unpack(z, positive, held, values), main, aux)
    return value_and_grad, polish


def _unpack(z, positive, held, values):
    free = jnp.where(positive, jnp.exp(z), z)
    return jnp.where(held, values, free)


def _search(layout: Layout, held: onp.ndarray, values, yields, main, aux) -> tuple[onp.ndarray, onp.ndarray]:
    """Step 1 on the host: the bounded optimum (L-BFGS-B) and the parameters held there."""
    from scipy.optimize import minimize

    value_and_grad = _compiled(layout)[0]
    lower, upper = bounds(layout)
    values = onp.asarray(values)
    lower, upper = onp.where(held, values, lower), onp.where(held, values, upper)
    scale = _scale(layout, yields)
    yields, main, aux = jax.tree_util.tree_map(jnp.asarray, (yields, main, aux))   # converted once, not per call

    def fun(scaled):
        value, grad = value_and_grad(scaled * scale, yields, main, aux)
        return float(value), onp.asarray(grad) * scale

    result = minimize(fun, onp.clip(values, lower, upper) / scale, jac=True, method="L-BFGS-B",
                      bounds=list(zip(lower / scale, upper / scale)),
                      options={"maxiter": 10_000, "ftol": 1e-13, "gtol": 1e-8})
    if not onp.all(onp.isfinite(result.x)):
        raise FitError(f"the differentiable model's fit failed: {result.message}")
    result.x = result.x * scale
    near = ON_BOUND * onp.maximum(1.0, onp.abs(lower)), ON_BOUND * onp.maximum(1.0, onp.abs(upper))
    on_bound = (result.x - lower <= near[0]) | (upper - result.x <= near[1])
    return result.x, held | on_bound


def _scale(layout: Layout, yields) -> onp.ndarray:
    """The search's unit of each parameter: 1, but a gamma's constraint width where its bin
    has a staterror (a width of 1 % makes its curvature 10^4 times an alpha's, and
    L-BFGS-B took hundreds of iterations on such an ill-conditioned problem)."""
    n_head = len(layout.norm_factors) + len(layout.alphas)
    sigmas = onp.asarray(staterror_sigmas(layout, yields))
    gammas = onp.where(onp.asarray(layout.staterror_bins) > 0, sigmas, 1.0)
    return onp.concatenate([onp.ones(n_head), onp.where(gammas > 0, gammas, 1.0)])


def conditional_fit(layout: Layout, yields: Mapping, main, aux, fixed: Mapping[str, float]) -> jnp.ndarray:
    """The parameters that maximise L within their bounds, with ``fixed`` ({name: value})
    held; differentiable with respect to ``yields``, ``main`` and ``aux`` (see the
    module's text)."""
    n_head = len(layout.norm_factors) + len(layout.alphas)
    idle = [False] * n_head + [not used for used in layout.staterror_bins]    # gammas of bins without staterror
    held = onp.asarray([name in fixed or i for name, i in zip(layout.parameters, idle)])
    values = init_values(layout)
    for name, value in fixed.items():
        values[layout.index(name)] = value
    shapes = (jax.ShapeDtypeStruct(values.shape, values.dtype), jax.ShapeDtypeStruct(held.shape, bool))
    constant = jax.lax.stop_gradient
    start, held_at = jax.pure_callback(functools.partial(_search, layout, held, values), shapes,
                                       constant(yields), constant(main), constant(aux))
    positive = _positive(layout)
    z0 = jnp.where(positive, jnp.log(jnp.clip(start, 1e-300, None)), start)
    solver: optx.AbstractMinimiser = optx.BFGS(rtol=FIT_TOLERANCE, atol=FIT_TOLERANCE)
    solution = optx.minimise(_compiled(layout)[1], solver, z0, args=(yields, main, aux, held_at, start),
                             max_steps=MAX_STEPS)
    return _unpack(solution.value, positive, held_at, start)
