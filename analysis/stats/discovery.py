"""The discovery significance of the POI, as a number even where a p-value underflows.

The test of POI = 0 with the q0 test statistic (``pyhf.infer.hypotest``, what
``cabinetry.fit.significance`` runs, with the same settings), its asymptotic p-values
turned into significances (``method="hypotest"``). Its fits read no uncertainty, so they
run MINUIT's MIGRAD without HESSE (:mod:`analysis.stats.lean_minuit`): the same values,
and no failure where MIGRAD found the minimum but HESSE's matrix at it is not positive
definite (the AGC's background-only fits). A strong signal gives p-values below the
smallest double (about 1e-308, Z about 37.5), so the p-value is 0 and Z infinite. There
:func:`significance` takes Z from the test statistic itself (Z = sqrt(q0), the same
asymptotic formula: p = 1 - Phi(Z)), on the data for the observed and on the Asimov data
with POI = 1 for the expected significance, and keeps each p-value as its base-10 log
(``method="q0"``).

>>> result = significance(tiny_ws, {"strategy": 2})
>>> round(result.observed_significance, 2), round(result.observed_log10_p_value, 2), result.method
(1.5, -1.17, 'hypotest')
>>> describe(38.2, -319.4)
'38.20 sigma (p = 10^-319.4)'
"""

from __future__ import annotations

import math
import time
from typing import Mapping

from analysis.stats.fitting import Significance, _model_and_data, _resolved, guarded_minimisation, minimiser_settings


def significance(workspace: Mapping, fit_cfg: Mapping | None = None) -> Significance:
    """Observed and expected discovery significance of the POI, with the minimiser
    settings of ``fit_cfg`` (see the module's text)."""
    from scipy.stats import norm

    fit_cfg = dict(fit_cfg or {})
    model, data = _model_and_data(workspace, fit_cfg)
    settings = minimiser_settings(fit_cfg)
    t0 = time.time()
    with guarded_minimisation("a fit of the significance"):
        observed_p, expected_p = p_values(model, data, settings)
    observed, expected = float(norm.isf(observed_p, 0, 1)), float(norm.isf(expected_p, 0, 1))
    method = "hypotest"
    if not (math.isfinite(observed) and math.isfinite(expected)):
        with guarded_minimisation("a fit of the significance's test statistic"):
            observed, expected = _z_from_q0(model, data, settings)
        method = "q0"
    return Significance(poi=model.config.poi_name, observed_p_value=observed_p,
                        observed_significance=observed, expected_p_value=expected_p,
                        expected_significance=expected, observed_log10_p_value=log10_p_value(observed),
                        expected_log10_p_value=log10_p_value(expected), method=method,
                        seconds=round(time.time() - t0, 3), **_resolved(settings))


def p_values(model, data, settings: Mapping) -> tuple[float, float]:
    """The observed and expected p-values of POI = 0 (q0, asymptotic formulae), as
    ``cabinetry.fit.significance`` computes them (``pyhf.infer.hypotest`` with MINUIT at
    print level 1 and ``settings``), with MIGRAD alone; pyhf's backend is left as it was.

    >>> model, data = tiny_model_and_data
    >>> [round(p, 4) for p in p_values(model, data, {"strategy": 2})]
    [0.067, 0.064]
    """
    import pyhf

    from analysis.stats.lean_minuit import installed

    with installed(verbose=1, **settings):
        observed, expected = pyhf.infer.hypotest(0.0, data, model, test_stat="q0", return_expected=True)
    return float(observed), float(expected)


def _z_from_q0(model, data, settings: Mapping) -> tuple[float, float]:
    """(observed Z, expected Z) = sqrt(q0) on the data and on the Asimov data (POI = 1)."""
    import pyhf

    from analysis.stats.lean_minuit import installed

    init, bounds, fixed = model.config.suggested_init(), model.config.suggested_bounds(), \
        model.config.suggested_fixed()
    with installed(verbose=1, **settings):
        q0 = float(pyhf.infer.test_statistics.q0(0.0, data, model, init, bounds, fixed))
        asimov = pyhf.infer.calculators.generate_asimov_data(1.0, data, model, init, bounds, fixed)
        q0_asimov = float(pyhf.infer.test_statistics.q0(0.0, asimov, model, init, bounds, fixed))
    return math.sqrt(max(q0, 0.0)), math.sqrt(max(q0_asimov, 0.0))


def log10_p_value(z: float | None) -> float | None:
    """log10 of the one-sided p-value of a significance ``z`` (finite far beyond 1e-308).

    >>> round(log10_p_value(1.6448536), 4), round(log10_p_value(40.0), 1)
    (-1.301, -349.4)
    """
    if z is None or not math.isfinite(z):
        return None
    from scipy.special import log_ndtr

    return float(log_ndtr(-z)) / math.log(10)


def describe(z: float | None, log10_p: float | None) -> str:
    """``2.35 sigma (p = 0.0094)`` or, for a tiny p-value, ``38.20 sigma (p = 10^-319.4)``."""
    if z is None:
        return "not defined"
    if log10_p is None or log10_p > -4:
        return f"{z:.2f} sigma (p = {10 ** (log10_p or 0):.2g})"
    return f"{z:.2f} sigma (p = 10^{log10_p:.1f})"
