"""MINUIT without HESSE, for the fits whose uncertainties nobody reads.

pyhf's MINUIT optimizer runs HESSE after every valid MIGRAD, for the uncertainties and
correlations a caller may ask it to return. The fits of the impact ranking, of a limit's
CLs curve and of the discovery significance read only best-fit values and -2 log L,
which HESSE does not change: it computes the covariance at the minimum MIGRAD found, a
fifth or more of a fit's function calls on the AGC's 35-parameter model. :func:`optimizer`
is pyhf's MINUIT optimizer with MIGRAD alone: the same minimiser, the same start, steps,
limits, strategy and tolerance, so the same values, bit for bit. A fit through it that
asks for uncertainties or correlations is refused rather than given MIGRAD's estimates:

>>> import pyhf
>>> model, data = tiny_model_and_data                      # a 3-bin model, POI mu
>>> backend = pyhf.get_backend()
>>> pyhf.set_backend("numpy", optimizer(strategy=2))
>>> lean = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
>>> pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(strategy=2))
>>> full = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
>>> bool((lean[0] == full[0]).all() and lean[1] == full[1])
True
>>> pyhf.set_backend(*backend)

A fit whose MIGRAD is valid but whose HESSE would fail (a Hessian that is not positive
definite at the minimum) succeeds here, where pyhf's optimizer raises.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import pyhf
import scipy.optimize


class _MigradOnly(pyhf.optimize.minuit_optimizer):
    """pyhf's ``minuit_optimizer`` whose minimisation stops after MIGRAD."""

    __slots__ = ()

    def minimize(self, *args, return_uncertainties: bool = False, return_correlations: bool = False,
                 **kwargs):
        if return_uncertainties or return_correlations:
            raise ValueError("this optimizer runs MIGRAD without HESSE: it cannot return uncertainties or "
                             "correlations; use pyhf.optimize.minuit_optimizer")
        return super().minimize(*args, **kwargs)

    def _minimize(self, minimizer, func, x0, do_grad=False, bounds=None, fixed_vals=None, options=None):
        options = dict(options or {})
        maxiter = options.pop("maxiter", self.maxiter)
        strategy = options.pop("strategy", self.strategy)
        tolerance = options.pop("tolerance", self.tolerance)
        if options:
            raise pyhf.exceptions.Unsupported(f"Unsupported options were passed in: {list(options)}.")
        minimizer.strategy = (0 if do_grad else 1) if strategy is None else strategy
        minimizer.tol = tolerance
        minimizer.migrad(ncall=maxiter)
        message = "Optimization terminated successfully."
        if not minimizer.valid:
            fmin = minimizer.fmin
            message = "Optimization failed." + (" Call limit was reached." if fmin.has_reached_call_limit else "") \
                + (" Estimated distance to minimum too large." if fmin.is_above_max_edm else "")
        return scipy.optimize.OptimizeResult(x=minimizer.values, unc=None, corr=None, hess_inv=None,
                                             success=minimizer.valid, fun=minimizer.fval, message=message,
                                             nfev=minimizer.nfcn, njev=minimizer.ngrad, minuit=minimizer)


def optimizer(**settings) -> pyhf.optimize.minuit_optimizer:
    """pyhf's MINUIT optimizer without HESSE; ``settings`` as ``minuit_optimizer`` takes them
    (``verbose``, ``strategy``, ``tolerance``, ``maxiter``; the module's example shows a call).

    >>> optimizer(verbose=0, strategy=2).strategy
    2
    """
    return _MigradOnly(**settings)


@contextlib.contextmanager
def installed(**settings) -> Iterator[None]:
    """pyhf's backend (its tensor library kept) with :func:`optimizer` for the block, and
    the previous backend back afterwards.

    >>> with installed(verbose=0):
    ...     type(pyhf.get_backend()[1]).__name__
    '_MigradOnly'
    """
    backend = pyhf.get_backend()
    pyhf.set_backend(pyhf.tensorlib, optimizer(**settings))
    try:
        yield
    finally:
        pyhf.set_backend(*backend)
