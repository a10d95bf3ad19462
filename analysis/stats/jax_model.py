"""The HistFactory model that Fit writes, in JAX: expected data and log-likelihood that
gradients flow through.

pyhf's JAX backend evaluates a model but cannot be differentiated through building it
(its templates are constants), so an optimisation of the cuts that make the templates
needs the model written over arrays. This module covers what Heirloom's Fit builds
(:func:`analysis.stats.statmodel.build_workspace`): ``normfactor``, ``normsys``
(pyhf's code 4), ``histosys`` (code 4p) and ``staterror``, in pyhf's conventions, so that
the same parameters give the same log-likelihood as pyhf's model of the workspace
(tests/test_jax_model.py). Any other modifier is refused by name.

A model is two parts: the :class:`Layout` (names, which sample sits in which channel,
which modifier acts where: plain Python, fixed while optimising) and the yields (a dict
of arrays: nominal templates, their statistical uncertainties, the normsys factors and
the histosys templates), which is what an optimisation differentiates. Channels'
bins are laid end to end, so every template is a row over all bins.

>>> layout, yields = from_workspace(tiny_ws)
>>> layout.poi, layout.parameters[:2]
('mu', ('mu', 'bkg_norm'))
>>> float(logpdf(layout, yields, init_pars(layout), main_data(tiny_ws, layout))) < 0
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as onp

from analysis.errors import FitError

jax.config.update("jax_enable_x64", True)

SUPPORTED = ("normfactor", "normsys", "histosys", "staterror")
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
#: the smallest expected rate of a bin: a histosys extrapolated far can make a rate negative,
#: where pyhf's likelihood is NaN; here it is then tiny, so a fit is pushed back, not lost
RATE_FLOOR = 1e-300


@dataclass(frozen=True)
class Layout:
    """What stays fixed while yields change: channel bins, samples and parameters.

    ``samples``: (channel, sample) per template row; ``channel_of_bin``: the channel
    index of every global bin; ``norm_factors``/``alphas``: parameter names;
    ``normfactor_mask``: (factor, row) 0/1; ``staterror_rows``: 0/1 per row,
    ``staterror_bins``: 0/1 per bin (its channel has a staterror);
    ``bounds``/``inits``: per parameter name.
    """

    channels: tuple[str, ...]
    bins: tuple[int, ...]
    samples: tuple[tuple[str, str], ...]
    poi: str
    norm_factors: tuple[str, ...]
    alphas: tuple[str, ...]
    normfactor_mask: tuple[tuple[float, ...], ...]
    staterror_rows: tuple[float, ...]
    staterror_bins: tuple[float, ...]
    bounds: tuple[tuple[str, tuple[float, float]], ...]
    inits: tuple[tuple[str, float], ...]

    @property
    def n_bins(self) -> int:
        return sum(self.bins)

    @property
    def parameters(self) -> tuple[str, ...]:
        """Parameter names in the order of a parameter vector: the normalisation factors,
        the nuisance parameters of normsys/histosys, then one staterror gamma per bin
        (``staterror[<bin>]``)."""
        return self.norm_factors + self.alphas + tuple(f"staterror[{b}]" for b in range(self.n_bins))

    def index(self, name: str) -> int:
        return self.parameters.index(name)


def from_workspace(spec: Mapping) -> tuple[Layout, dict]:
    """The layout and the yields (numpy arrays) of a pyhf workspace's first measurement.

    >>> layout, yields = from_workspace(tiny_ws)
    >>> yields["nominal"].shape == (len(layout.samples), layout.n_bins)
    True
    """
    channels = [c["name"] for c in spec["channels"]]
    bins = [len(c["samples"][0]["data"]) for c in spec["channels"]]
    offsets = onp.cumsum([0] + bins)
    rows = [(c["name"], s["name"]) for c in spec["channels"] for s in c["samples"]]
    mods = [(ci, s, m) for ci, c in enumerate(spec["channels"]) for s in c["samples"] for m in s["modifiers"]]
    for _, sample, m in mods:
        if m["type"] not in SUPPORTED:
            raise FitError(f"modifier '{m['name']}' of sample '{sample['name']}' has type '{m['type']}': "
                           f"the differentiable model supports {', '.join(SUPPORTED)}")
    norm_factors = sorted({m["name"] for _, _, m in mods if m["type"] == "normfactor"})
    alphas = sorted({m["name"] for _, _, m in mods if m["type"] in ("normsys", "histosys")})
    n_rows, n_bins = len(rows), int(offsets[-1])
    y = {"nominal": onp.zeros((n_rows, n_bins)), "stat_unc": onp.zeros((n_rows, n_bins)),
         "normsys_hi": onp.ones((len(alphas), n_rows)), "normsys_lo": onp.ones((len(alphas), n_rows))}
    y["histosys_hi"] = onp.zeros((len(alphas), n_rows, n_bins))
    y["histosys_lo"] = onp.zeros((len(alphas), n_rows, n_bins))
    nf_mask = onp.zeros((len(norm_factors), n_rows))
    stat_rows = onp.zeros(n_rows)
    _one_staterror_per_channel(spec)
    row = 0
    for ci, channel in enumerate(spec["channels"]):
        span = slice(offsets[ci], offsets[ci + 1])
        for sample in channel["samples"]:
            nominal = onp.asarray(sample["data"], dtype=float)
            y["nominal"][row, span] = nominal
            y["histosys_hi"][:, row, span] = nominal
            y["histosys_lo"][:, row, span] = nominal
            for m in sample["modifiers"]:
                _fill_modifier(m, row, span, y, nf_mask, stat_rows, norm_factors, alphas)
            row += 1
    bounds, inits = _parameter_settings(spec, norm_factors, alphas, n_bins)
    poi = spec["measurements"][0]["config"]["poi"]
    stat_bins = onp.zeros(n_bins)
    for ci, channel in enumerate(spec["channels"]):
        if any(m["type"] == "staterror" for s in channel["samples"] for m in s["modifiers"]):
            stat_bins[offsets[ci]:offsets[ci + 1]] = 1.0
    layout = Layout(tuple(channels), tuple(bins), tuple(rows), poi, tuple(norm_factors), tuple(alphas),
                    tuple(map(tuple, nf_mask.tolist())), tuple(stat_rows.tolist()), tuple(stat_bins.tolist()),
                    bounds, inits)
    return layout, y


def _one_staterror_per_channel(spec: Mapping) -> None:
    """One gamma per bin needs at most one staterror modifier per channel, used by no other."""
    owner: dict = {}
    for channel in spec["channels"]:
        names = {m["name"] for s in channel["samples"] for m in s["modifiers"] if m["type"] == "staterror"}
        if len(names) > 1 or any(owner.setdefault(n, channel["name"]) != channel["name"] for n in names):
            raise FitError(f"channel '{channel['name']}': the differentiable model needs one staterror "
                           f"modifier per channel, of that channel only (found {sorted(names)})")


def _fill_modifier(m, row, span, y, nf_mask, stat_rows, norm_factors, alphas) -> None:
    kind, name = m["type"], m["name"]
    if kind == "normfactor":
        nf_mask[norm_factors.index(name), row] = 1.0
    elif kind == "normsys":
        y["normsys_hi"][alphas.index(name), row] = m["data"]["hi"]
        y["normsys_lo"][alphas.index(name), row] = m["data"]["lo"]
    elif kind == "histosys":
        y["histosys_hi"][alphas.index(name), row, span] = m["data"]["hi_data"]
        y["histosys_lo"][alphas.index(name), row, span] = m["data"]["lo_data"]
    else:                                                   # staterror
        y["stat_unc"][row, span] = m["data"]
        stat_rows[row] = 1.0


def _parameter_settings(spec: Mapping, norm_factors, alphas, n_bins) -> tuple:
    """pyhf's defaults, overridden by the measurement's parameter settings."""
    bounds = {**{n: (0.0, 10.0) for n in norm_factors}, **{a: (-5.0, 5.0) for a in alphas}}
    inits = {**{n: 1.0 for n in norm_factors}, **{a: 0.0 for a in alphas}}
    for par in spec["measurements"][0]["config"].get("parameters", []):
        if par["name"] in bounds:
            if "bounds" in par:
                low, high = map(float, par["bounds"][0])
                bounds[par["name"]] = (low, high)
            if "inits" in par:
                inits[par["name"]] = float(par["inits"][0])
    return tuple(bounds.items()), tuple(inits.items())


def init_values(layout: Layout) -> onp.ndarray:
    """The parameter vector of the nominal model (inits; every gamma 1), in numpy.

    >>> init_values(from_workspace(tiny_ws)[0]).tolist()      # mu, 3 alphas, 3 gammas
    [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    """
    inits = dict(layout.inits)
    head = [inits[n] for n in layout.norm_factors + layout.alphas]
    return onp.concatenate([onp.asarray(head, dtype=float), onp.ones(layout.n_bins)])


def init_pars(layout: Layout) -> jnp.ndarray:
    """:func:`init_values` as a jax array."""
    return jnp.asarray(init_values(layout))


def main_data(spec: Mapping, layout: Layout) -> jnp.ndarray:
    """The workspace's observations, channel by channel, as one vector over all bins."""
    observed = {o["name"]: o["data"] for o in spec["observations"]}
    return jnp.asarray([v for channel in layout.channels for v in observed[channel]], dtype=float)


def code4(alpha, hi, lo):
    """pyhf's normsys interpolation (code 4): exponential outside |alpha| < 1, a
    polynomial of degree 6 inside that matches value, slope and curvature at +-1.

    >>> round(float(code4(jnp.asarray(1.0), 1.1, 0.9)), 12), round(float(code4(jnp.asarray(0.0), 1.1, 0.9)), 12)
    (1.1, 1.0)
    """
    log_hi, log_lo = jnp.log(hi), jnp.log(lo)
    rhs = jnp.stack([hi - 1, lo - 1, hi * log_hi, -lo * log_lo, hi * log_hi ** 2, lo * log_lo ** 2])
    coefficients = jnp.tensordot(jnp.asarray(_CODE4_INVERSE), rhs, axes=1)
    powers = jnp.stack([alpha ** k for k in range(1, 7)])
    powers = powers.reshape(powers.shape + (1,) * (coefficients.ndim - powers.ndim))
    inside = 1.0 + jnp.sum(coefficients * powers, axis=0)
    safe = jnp.where(jnp.abs(alpha) >= 1, alpha, 1.0)      # no NaN gradients from the unused side
    outside = jnp.where(alpha >= 1, hi ** safe, lo ** (-safe))
    return jnp.where(jnp.abs(alpha) >= 1, outside, inside)


def _code4_inverse() -> onp.ndarray:
    """The inverse of the conditions on 1 + sum a_k alpha^k at alpha = +1 and -1: value,
    first and second derivative (rows), for the coefficients a_1..a_6."""
    rows = []
    for derivative in range(3):
        for x in (1.0, -1.0):
            rows.append([math.perm(k, derivative) * x ** (k - derivative) for k in range(1, 7)])
    return onp.linalg.inv(onp.asarray(rows))


_CODE4_INVERSE = _code4_inverse()


def code4p(alpha, up, down):
    """pyhf's histosys interpolation (code 4p) of the shifts ``up`` = hi - nominal and
    ``down`` = nominal - lo: linear outside |alpha| < 1, a polynomial inside.

    >>> float(code4p(jnp.asarray(-2.0), 3.0, 1.0)), float(code4p(jnp.asarray(1.0), 3.0, 1.0))
    (-2.0, 3.0)
    """
    mean, asym = 0.5 * (up + down), 0.0625 * (up - down)
    a2 = alpha * alpha
    inside = alpha * mean + a2 * (a2 * (3 * a2 - 10) + 15) * asym
    return jnp.where(alpha > 1, alpha * up, jnp.where(alpha < -1, alpha * down, inside))


def expected_main(layout: Layout, yields: Mapping, pars) -> jnp.ndarray:
    """Expected events in every bin: per sample (nominal + histosys shifts) x normfactors
    x normsys factors x staterror gammas, summed over samples (pyhf's order of operations).

    >>> layout, yields = from_workspace(tiny_ws)
    >>> bool(jnp.allclose(expected_main(layout, yields, init_pars(layout)), yields["nominal"].sum(axis=0)))
    True
    """
    n_f, n_a = len(layout.norm_factors), len(layout.alphas)
    factors, alphas, gammas = pars[:n_f], pars[n_f:n_f + n_a], pars[n_f + n_a:]
    nominal = jnp.asarray(yields["nominal"])
    rate = nominal
    if n_a:
        hi, lo = jnp.asarray(yields["histosys_hi"]), jnp.asarray(yields["histosys_lo"])
        shifts = code4p(alphas[:, None, None], hi - nominal, nominal - lo)
        rate = nominal + shifts.sum(axis=0)
        normsys = code4(alphas[:, None], jnp.asarray(yields["normsys_hi"]), jnp.asarray(yields["normsys_lo"]))
        rate = rate * jnp.prod(normsys, axis=0)[:, None]
    if n_f:
        mask = jnp.asarray(layout.normfactor_mask)
        rate = rate * jnp.prod(jnp.where(mask > 0, factors[:, None], 1.0), axis=0)[:, None]
    stat_rows = jnp.asarray(layout.staterror_rows)[:, None] > 0
    rate = rate * jnp.where(stat_rows, gammas[None, :], 1.0)
    return rate.sum(axis=0)


def staterror_sigmas(layout: Layout, yields: Mapping) -> jnp.ndarray:
    """The relative width of each bin's gamma: sqrt(sum of the squared uncertainties) /
    sum of the nominal yields of the samples with a staterror; 1 where that sum is 0
    (pyhf fixes such a gamma at 1; its value then changes nothing)."""
    rows = jnp.asarray(layout.staterror_rows)[:, None]
    total = jnp.sum(rows * jnp.asarray(yields["nominal"]), axis=0)
    variance = jnp.sum(rows * jnp.asarray(yields["stat_unc"]) ** 2, axis=0)
    safe = jnp.where(total > 0, total, 1.0)
    return jnp.where(total > 0, jnp.sqrt(variance) / safe, 1.0)


def aux_data(layout: Layout, pars) -> jnp.ndarray:
    """The auxiliary data of the constraints at ``pars`` (pyhf's expected aux data):
    the alphas, then the gammas."""
    n_f = len(layout.norm_factors)
    return pars[n_f:]


def logpdf(layout: Layout, yields: Mapping, pars, main, aux=None) -> jnp.ndarray:
    """log L: Poisson terms of the main data plus the Gaussian constraints of the alphas
    (width 1) and of the gammas of bins with a staterror (``aux``: default the nominal
    centres, 0 and 1).

    >>> layout, yields = from_workspace(tiny_ws)
    >>> pars = init_pars(layout)
    >>> bool(logpdf(layout, yields, pars, expected_main(layout, yields, pars)) > \
logpdf(layout, yields, pars.at[0].set(2.0), expected_main(layout, yields, pars)))
    True
    """
    n_f, n_a = len(layout.norm_factors), len(layout.alphas)
    if aux is None:
        aux = aux_data(layout, init_pars(layout))
    rate = jnp.maximum(expected_main(layout, yields, pars), RATE_FLOOR)    # pyhf: NaN where a rate is < 0
    main = jnp.asarray(main)
    poisson = jax.scipy.special.xlogy(main, rate) - rate - jax.scipy.special.gammaln(main + 1.0)
    alphas, gammas = pars[n_f:n_f + n_a], pars[n_f + n_a:]
    gauss_alpha = -0.5 * (aux[:n_a] - alphas) ** 2 - _LOG_SQRT_2PI
    sigmas = staterror_sigmas(layout, yields)
    gauss_gamma = -0.5 * ((aux[n_a:] - gammas) / sigmas) ** 2 - jnp.log(sigmas) - _LOG_SQRT_2PI
    return poisson.sum() + gauss_alpha.sum() + jnp.sum(jnp.asarray(layout.staterror_bins) * gauss_gamma)
