"""CLs as a function of a signal strength, with the fits that do not depend on it run once.

pyhf's asymptotic hypothesis test (``pyhf.infer.hypotest`` with ``qtilde``, what
``cabinetry.fit.limit`` calls some fifty times) runs five fits for each signal strength
mu: the free fits to the data and to the Asimov data, the fit that makes the Asimov data
(background only, mu = 0), and the fits with mu fixed to the data and to the Asimov
data. Only the last two depend on mu. :func:`prepare` runs the other three once;
:func:`cls_at` then runs two fits per mu and turns the test statistics into CLs with
pyhf's own :class:`~pyhf.infer.calculators.AsymptoticCalculator`, so its numbers are
``hypotest``'s:

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
from dataclasses import dataclass
from typing import Any, Sequence

LIMITS = ("observed", "expected -2 sigma", "expected -1 sigma", "expected", "expected +1 sigma",
          "expected +2 sigma")


@dataclass(frozen=True)
class Curve:
    """What every point of the CLs curve shares: the model, the data and the Asimov data,
    and the free fits to both (-2 log L and the POI's best fit value)."""

    model: Any
    data: tuple
    asimov: tuple
    init: tuple
    bounds: tuple
    fixed: tuple
    free_data: tuple[float, float]            # (-2 log L, POI) of the free fit to the data
    free_asimov: tuple[float, float]          # the same for the Asimov data


def prepare(model: Any, data: Sequence[float], *, init: Sequence[float] | None = None,
            bounds: Sequence | None = None, fixed: Sequence[bool] | None = None) -> Curve:
    """The three fits that do not depend on the signal strength, with the POI bounded below
    by 0 (as the ``qtilde`` test statistic needs; cabinetry does the same). Uses pyhf's
    current backend and optimizer (the module's example shows a call)."""
    import pyhf

    config = model.config
    init = list(init or config.suggested_init())
    bounds = [tuple(b) for b in (bounds or config.suggested_bounds())]
    fixed = list(fixed or config.suggested_fixed())
    poi = config.poi_index
    if bounds[poi][0] < 0:
        bounds[poi] = (0.0, bounds[poi][1])
    asimov = pyhf.infer.calculators.generate_asimov_data(0.0, data, model, init, bounds, fixed)

    def free_fit(dataset: Sequence[float]) -> tuple[float, float]:
        pars, twice_nll = pyhf.infer.mle.fit(list(dataset), model, init, bounds, fixed, return_fitted_val=True)
        return float(twice_nll), float(pars[poi])

    return Curve(model=model, data=tuple(float(x) for x in data), asimov=tuple(float(x) for x in asimov),
                 init=tuple(init), bounds=tuple(bounds), fixed=tuple(fixed), free_data=free_fit(data),
                 free_asimov=free_fit(asimov))


def qtilde(curve: Curve, mu: float, *, asimov: bool = False) -> float:
    """The test statistic q~_mu of the data (or the Asimov data): 2 (-log L(mu) + log L(best)),
    0 where the best fit lies above mu, as ``pyhf.infer.test_statistics.qmu_tilde``."""
    import pyhf

    dataset, (free_nll, free_poi) = (curve.asimov, curve.free_asimov) if asimov else (curve.data, curve.free_data)
    _, fixed_nll = pyhf.infer.mle.fixed_poi_fit(mu, list(dataset), curve.model, list(curve.init),
                                                list(curve.bounds), list(curve.fixed), return_fitted_val=True)
    return 0.0 if free_poi > mu else max(float(fixed_nll) - free_nll, 0.0)


def cls_at(curve: Curve, mu: float) -> tuple[float, list[float]]:
    """Observed CLs and the expected CLs (-2..+2 sigma) at signal strength ``mu`` > 0: two
    fits (mu fixed, to the data and to the Asimov data)."""
    return cls_from(curve, mu, math.sqrt(qtilde(curve, mu)), math.sqrt(qtilde(curve, mu, asimov=True)))


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
