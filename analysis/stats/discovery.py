"""The discovery significance of the POI, as a number even where a p-value underflows.

``cabinetry.fit.significance`` tests POI = 0 with the q0 test statistic and turns the
asymptotic p-values into significances. A strong signal gives p-values below the
smallest double (about 1e-308, Z about 37.5), so the p-value is 0 and Z infinite. There
:func:`significance` takes Z from the test statistic itself (Z = sqrt(q0), the same
asymptotic formula: p = 1 - Phi(Z)), on the data for the observed and on the Asimov data
with POI = 1 for the expected significance, and keeps each p-value as its base-10 log.

>>> result = significance(tiny_ws, {"strategy": 2})
>>> round(result.observed_significance, 2), round(result.observed_log10_p_value, 2), result.method
(1.5, -1.17, 'cabinetry')
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
    import cabinetry

    fit_cfg = dict(fit_cfg or {})
    model, data = _model_and_data(workspace, fit_cfg)
    settings = minimiser_settings(fit_cfg)
    t0 = time.time()
    with guarded_minimisation("a fit of the significance"):
        result = cabinetry.fit.significance(model, data, **settings)
    observed, expected = float(result.observed_significance), float(result.expected_significance)
    method = "cabinetry"
    if not (math.isfinite(observed) and math.isfinite(expected)):
        with guarded_minimisation("a fit of the significance's test statistic"):
            observed, expected = _z_from_q0(model, data, settings)
        method = "q0"
    return Significance(poi=model.config.poi_name, observed_p_value=float(result.observed_p_value),
                        observed_significance=observed, expected_p_value=float(result.expected_p_value),
                        expected_significance=expected, observed_log10_p_value=log10_p_value(observed),
                        expected_log10_p_value=log10_p_value(expected), method=method,
                        seconds=round(time.time() - t0, 3), **_resolved(settings))


def _z_from_q0(model, data, settings: Mapping) -> tuple[float, float]:
    """(observed Z, expected Z) = sqrt(q0) on the data and on the Asimov data (POI = 1)."""
    import pyhf

    backend = pyhf.get_backend()
    pyhf.set_backend(pyhf.tensorlib, pyhf.optimize.minuit_optimizer(verbose=1, **settings))
    try:
        init, bounds, fixed = model.config.suggested_init(), model.config.suggested_bounds(), \
            model.config.suggested_fixed()
        q0 = float(pyhf.infer.test_statistics.q0(0.0, data, model, init, bounds, fixed))
        asimov = pyhf.infer.calculators.generate_asimov_data(1.0, data, model, init, bounds, fixed)
        q0_asimov = float(pyhf.infer.test_statistics.q0(0.0, asimov, model, init, bounds, fixed))
    finally:
        pyhf.set_backend(*backend)
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
