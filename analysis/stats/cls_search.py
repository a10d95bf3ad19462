"""CLs as a function of a signal strength, with the fits that do not depend on it run once.

pyhf's asymptotic hypothesis test (``pyhf.infer.hypotest`` with ``qtilde``, what
``cabinetry.fit.limit`` calls some fifty times) runs five fits for each signal strength
mu: the free fits to the data and to the Asimov data, the fit that makes the Asimov data
(background only, mu = 0), and the fits with mu fixed to the data and to the Asimov
data. Only the last two depend on mu. :func:`prepare` runs the other three once;
:func:`cls_at` then runs two fits per mu (none where the free fit's mu lies above it:
q~ is 0 there) and turns the test statistics into CLs with pyhf's own
:class:`~pyhf.infer.calculators.AsymptoticCalculator`, so its numbers are ``hypotest``'s.
:func:`cls_points` tests several mu at once, each fit a job of its own for worker
processes, and :func:`prepare` runs its fits two at a time on two workers:

>>> import pyhf
>>> model, data = tiny_model_and_data                      # a 3-bin model, POI mu
>>> curve = prepare(model, data)
>>> observed, expected = cls_at(curve, 1.5)
>>> reference = pyhf.infer.hypotest(1.5, data, model, par_bounds=curve.bounds, return_expected_set=True)
>>> bool(abs(observed - float(reference[0])) < 1e-9)
True

:func:`wald_estimates` guesses the six limits (observed, expected -2..+2 sigma) from one
such test, in the Wald approximation (q_mu,A = (mu / sigma)^2), so that a root search
(:mod:`analysis.stats.limits`) starts with a narrow bracket around each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Iterator, Sequence

from analysis.stats.parallel import spread

LIMITS = ("observed", "expected -2 sigma", "expected -1 sigma", "expected", "expected +1 sigma",
          "expected +2 sigma")


@dataclass(frozen=True)
class Curve:
    """What every point of the CLs curve shares: the model, the data and the Asimov data,
    the free fits to both (-2 log L and the POI's best fit value), and the Asimov tests run
    while preparing it (``probes``: (mu, sqrt(q~_mu,A)))."""

    model: Any
    data: tuple
    asimov: tuple
    init: tuple
    bounds: tuple
    fixed: tuple
    free_data: tuple[float, float]            # (-2 log L, POI) of the free fit to the data
    free_asimov: tuple[float, float]          # the same for the Asimov data
    probes: tuple = ()


#: what the fits of the curve being prepared or tested need, for the forked workers
_SHARED: dict[str, Any] = {}


def prepare(model: Any, data: Sequence[float], *, init: Sequence[float] | None = None,
            bounds: Sequence | None = None, fixed: Sequence[bool] | None = None, probe: float | None = None,
            workers: int = 1) -> Curve:
    """The three fits that do not depend on the signal strength, with the POI bounded below
    by 0 (as the ``qtilde`` test statistic needs; cabinetry does the same), and the Asimov
    test at ``probe`` when given (kept in ``probes``). With ``workers`` > 1 the free fit to
    the data runs beside the fit that makes the Asimov data, then the free fit to the Asimov
    data beside the probe's test. Uses pyhf's current backend and optimizer (the module's
    example shows a call)."""
    config = model.config
    bounds = [tuple(b) for b in (bounds or config.suggested_bounds())]
    poi = config.poi_index
    if bounds[poi][0] < 0:
        bounds[poi] = (0.0, bounds[poi][1])
    _SHARED.update(model=model, init=list(init or config.suggested_init()), bounds=bounds,
                   fixed=list(fixed or config.suggested_fixed()), data=tuple(float(x) for x in data))
    _SHARED["asimov"], free_data = _fits([("asimov",), ("free", "data")], workers)
    second = [("free", "asimov")] + ([("fixed", "asimov", probe)] if probe is not None else [])
    free_asimov, *probed = _fits(second, workers)
    curve = Curve(model=model, data=_SHARED["data"], asimov=_SHARED["asimov"], init=tuple(_SHARED["init"]),
                  bounds=tuple(bounds), fixed=tuple(_SHARED["fixed"]), free_data=free_data, free_asimov=free_asimov)
    if probe is None:
        return curve
    return replace(curve, probes=((probe, math.sqrt(_qtilde(curve, probe, probed[0], asimov=True))),))


def qtilde(curve: Curve, mu: float, *, asimov: bool = False) -> float:
    """The test statistic q~_mu of the data (or the Asimov data): 2 (-log L(mu) + log L(best)),
    0 where the best fit lies above mu (without a fit), as ``pyhf.infer.test_statistics.qmu_tilde``."""
    if _above(curve, mu, asimov):
        return 0.0
    _share(curve)
    return _qtilde(curve, mu, _fit(("fixed", "asimov" if asimov else "data", mu)), asimov=asimov)


def cls_at(curve: Curve, mu: float) -> tuple[float, list[float]]:
    """Observed CLs and the expected CLs (-2..+2 sigma) at signal strength ``mu`` > 0: two
    fits (mu fixed, to the data and to the Asimov data)."""
    return cls_from(curve, mu, math.sqrt(qtilde(curve, mu)), math.sqrt(qtilde(curve, mu, asimov=True)))


def cls_points(curve: Curve, mus: Sequence[float],
               workers: int = 1) -> Iterator[tuple[float, tuple[float, list[float]]]]:
    """``(mu, cls_at(curve, mu))`` for every ``mu``, in the order they are complete: each fit
    (mu fixed, to the data or to the Asimov data) is a job of its own for ``workers``
    processes, so that an odd number of points keeps both of two workers busy.

    >>> model, data = tiny_model_and_data
    >>> curve = prepare(model, data)
    >>> dict(cls_points(curve, [1.0, 2.0], workers=2))[2.0] == cls_at(curve, 2.0)
    True
    """
    _share(curve)
    roots: dict[float, dict[bool, float]] = {mu: {a: 0.0 for a in (False, True) if _above(curve, mu, a)} for mu in mus}
    jobs = [("fixed", "asimov" if a else "data", mu) for mu in mus for a in (False, True) if a not in roots[mu]]
    for mu in mus:
        if len(roots[mu]) == 2:                  # both best fits above mu: CLs without a fit
            yield mu, cls_from(curve, mu, 0.0, 0.0)
    for ((_, which, mu),), twice_nll in spread(_fit, [(job,) for job in jobs], workers):
        roots[mu][which == "asimov"] = math.sqrt(_qtilde(curve, mu, twice_nll, asimov=which == "asimov"))
        if len(roots[mu]) == 2:
            yield mu, cls_from(curve, mu, roots[mu][False], roots[mu][True])


def _above(curve: Curve, mu: float, asimov: bool) -> bool:
    """Whether the free fit's POI lies above ``mu`` (q~_mu is then 0)."""
    return (curve.free_asimov if asimov else curve.free_data)[1] > mu


def _qtilde(curve: Curve, mu: float, fixed_nll: float, *, asimov: bool) -> float:
    free_nll, free_poi = curve.free_asimov if asimov else curve.free_data
    return 0.0 if free_poi > mu else max(fixed_nll - free_nll, 0.0)


def _share(curve: Curve) -> None:
    _SHARED.update(model=curve.model, init=list(curve.init), bounds=list(curve.bounds), fixed=list(curve.fixed),
                   data=curve.data, asimov=curve.asimov)


def _fits(jobs: list[tuple], workers: int) -> list:
    """The results of fit ``jobs`` (:func:`_fit`), in their order, here or in ``workers`` processes."""
    results = {job: result for (job,), result in spread(_fit, [(job,) for job in jobs], workers)}
    return [results[job] for job in jobs]


def _fit(job: tuple) -> Any:
    """One fit of :data:`_SHARED`'s model: ``("asimov",)`` the Asimov data (background only),
    ``("free", dataset)`` (-2 log L, POI) of the free fit, ``("fixed", dataset, mu)`` -2 log L
    with the POI fixed at ``mu``; ``dataset`` is ``"data"`` or ``"asimov"``."""
    import pyhf

    model, init, bounds, fixed = (_SHARED[key] for key in ("model", "init", "bounds", "fixed"))
    if job[0] == "asimov":
        asimov = pyhf.infer.calculators.generate_asimov_data(0.0, list(_SHARED["data"]), model, init, bounds, fixed)
        return tuple(float(x) for x in asimov)
    dataset = list(_SHARED[job[1]])
    if job[0] == "free":
        pars, twice_nll = pyhf.infer.mle.fit(dataset, model, init, bounds, fixed, return_fitted_val=True)
        return float(twice_nll), float(pars[model.config.poi_index])
    _, twice_nll = pyhf.infer.mle.fixed_poi_fit(job[2], dataset, model, init, bounds, fixed, return_fitted_val=True)
    return float(twice_nll)


def cls_from(curve: Curve, mu: float, sqrt_q: float, sqrt_q_asimov: float) -> tuple[float, list[float]]:
    """CLs from the square roots of the test statistics, by pyhf's asymptotic formulas
    (:meth:`AsymptoticCalculator.pvalues` and ``expected_pvalues``)."""
    import pyhf

    calculator = pyhf.infer.calculators.AsymptoticCalculator(list(curve.data), curve.model, list(curve.init),
                                                             list(curve.bounds), list(curve.fixed),
                                                             test_stat="qtilde")
    tensorlib = pyhf.tensorlib
    calculator.sqrtqmuA_v = tensorlib.astensor(sqrt_q_asimov)
    if sqrt_q <= sqrt_q_asimov:                      # pyhf's qtilde case split (its '<=', issue #1992)
        teststat = sqrt_q - sqrt_q_asimov
    else:
        teststat = (sqrt_q ** 2 - sqrt_q_asimov ** 2) / (2 * sqrt_q_asimov)
    signal, background = calculator.distributions(mu)
    observed = calculator.pvalues(tensorlib.astensor(teststat), signal, background)[2]
    expected = calculator.expected_pvalues(signal, background)[2]
    return float(observed), [float(x) for x in expected]


def wald_estimates(curve: Curve, mu: float, sqrt_q_asimov: float, cl: float) -> list[float]:
    """The six limits (observed, expected -2..+2 sigma) as the Wald approximation gives them
    from one test at ``mu``: sigma = mu / sqrt(q_mu,A), q_mu,A = (mu' / sigma)^2 and
    q_mu = ((mu' - mu_hat) / sigma)^2 above the best fit mu_hat. Guesses, not results: the
    root search starts from them.

    >>> model, data = tiny_model_and_data
    >>> curve = prepare(model, data)
    >>> [round(x, 2) for x in wald_estimates(curve, 1.0, math.sqrt(qtilde(curve, 1.0, asimov=True)), 0.95)]
    [2.11, 0.71, 0.95, 1.31, 1.83, 2.45]
    """
    from scipy.optimize import brentq

    sigma = mu / max(sqrt_q_asimov, 1e-9)
    mu_hat = curve.free_data[1]

    def cls(value: float, which: int) -> float:
        sqrt_q = max(value - mu_hat, 0.0) / sigma
        observed, expected = cls_from(curve, value, sqrt_q, value / sigma)
        return (observed if which == 0 else expected[which - 1]) - (1.0 - cl)

    estimates = []
    for which in range(len(LIMITS)):
        low, high = 1e-6 * sigma, sigma
        while cls(high, which) > 0 and high < 1e6 * sigma:           # CLs falls with mu: widen to a crossing
            high *= 2
        estimates.append(float(brentq(cls, low, high, args=(which,), xtol=1e-6 * sigma)))
    return estimates
