"""The impact ranking, one parameter at a time, spread over worker processes.

The impact of a parameter is the shift of the POI when the parameter is held at its best
fit value plus or minus its pre-fit or post-fit uncertainty and everything else is fitted
again: four fits per parameter, the same fits as ``cabinetry.fit.ranking`` (which runs
them one after the other), each started from the best fit, without the HESSE step
whose uncertainties the ranking does not read. The parameters are
independent, so :func:`rank` hands them to ``workers`` processes and prints progress with
an estimate of the time left.

>>> from analysis.stats.fitting import fit_workspace
>>> ranking = rank(tiny_ws, fit_workspace(tiny_ws), {"strategy": 2}, progress=None)
>>> ranking.labels, round(ranking.postfit_up[0], 3)
(('bkg_norm', 'lumi', 'jes'), -0.38)
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

from analysis.progress import Progress, to_stdout
from analysis.stats.fitting import (FitResult, Ranking, _model_and_data, _resolved, guarded_minimisation,
                                    minimiser_settings)
from analysis.stats.parallel import spread

PROGRESS_EVERY = 5.0                    # seconds between progress lines

#: what a worker process needs, set once per process (the model is built there, not sent)
_CONTEXT: dict[str, Any] = {}


def rank(workspace: Mapping, fit_result: FitResult, fit_cfg: Mapping | None = None, *, workers: int = 1,
         progress: Callable[[str], None] | None = to_stdout) -> Ranking:
    """Impacts of every free parameter but the POI, most important first (decreasing
    largest post-fit impact); ``workers`` processes share the parameters. ``progress``
    receives a line (:mod:`analysis.progress`: ``Ranking: 12/33 parameters (36 %) ...,
    about 44.0 s left``) at most every 5 s and at the end; ``None``: silent. Raises
    :class:`~analysis.errors.FitError` when a fit fails (the module's example shows a call)."""
    fit_cfg = dict(fit_cfg or {})
    t0 = time.time()
    _set_context(dict(workspace), fit_cfg, fit_result.to_dict())
    model, poi_index = _CONTEXT["model"], _CONTEXT["poi_index"]
    if list(fit_result.labels) != list(model.config.par_names):
        raise ValueError("the fit result's parameters do not match the workspace's model")
    indices = [i for i in range(len(fit_result.labels)) if i != poi_index]
    counter = Progress(len(indices), progress, label="Ranking", unit="parameters", every=PROGRESS_EVERY)
    impacts = dict(_spread(indices, workers, fit_cfg, workspace, fit_result, counter))
    rows = [impacts[i] for i in indices]
    order = sorted(range(len(indices)), key=lambda k: -max(abs(rows[k][2]), abs(rows[k][3])))
    pick = lambda values: tuple(values[k] for k in order)  # noqa: E731
    column = lambda n: pick([row[n] for row in rows])  # noqa: E731
    return Ranking(poi=fit_result.poi, labels=pick([fit_result.labels[i] for i in indices]),
                   bestfit=pick([fit_result.values[i] for i in indices]),
                   uncertainty=pick([fit_result.errors[i] for i in indices]),
                   prefit_up=column(0), prefit_down=column(1), postfit_up=column(2), postfit_down=column(3),
                   seconds=round(time.time() - t0, 3), **_resolved(minimiser_settings(fit_cfg)))


def _spread(indices: list[int], workers: int, fit_cfg: dict, workspace: Mapping, fit_result: FitResult,
            counter: Progress):
    """(index, impacts) of every parameter, in this process or in ``workers`` processes
    (each builds the model once, :func:`_set_context`)."""
    for (index,), impacts in spread(parameter_impacts, [(i,) for i in indices], workers, initializer=_set_context,
                                    initargs=(dict(workspace), fit_cfg, fit_result.to_dict())):
        yield index, impacts
        counter.tick()


def _set_context(workspace: dict, fit_cfg: dict, fit_result: dict) -> None:
    """Build the model once in this process (the pool's initializer, or the caller)."""
    from cabinetry import model_utils

    model, data = _model_and_data(workspace, fit_cfg)
    result = FitResult.from_dict(fit_result)
    _CONTEXT.update(model=model, data=data, settings=minimiser_settings(fit_cfg), result=result,
                    prefit=[float(x) for x in model_utils.prefit_uncertainties(model)],
                    poi_index=model.config.poi_index)


def parameter_impacts(index: int) -> tuple[float, float, float, float]:
    """POI shifts with parameter ``index`` held at best fit +- pre-fit and +- post-fit
    uncertainty (0 where that uncertainty is 0: unconstrained or fixed parameters)."""
    model, data, result = _CONTEXT["model"], _CONTEXT["data"], _CONTEXT["result"]
    bestfit, poi_index = list(result.values), _CONTEXT["poi_index"]
    fixed = list(model.config.suggested_fixed())
    fixed[index] = True
    shifts = []
    for value in (bestfit[index] + _CONTEXT["prefit"][index], bestfit[index] - _CONTEXT["prefit"][index],
                  bestfit[index] + result.errors[index], bestfit[index] - result.errors[index]):
        if value == bestfit[index]:
            shifts.append(0.0)
            continue
        start = list(bestfit)
        start[index] = value
        with guarded_minimisation(f"a fit of the impact ranking ({result.labels[index]})"):
            refit = _poi_fit(model, data, start, fixed, _CONTEXT["settings"])
        shifts.append(float(refit[poi_index]) - bestfit[poi_index])
    return shifts[0], shifts[1], shifts[2], shifts[3]


def _poi_fit(model, data, start: list[float], fixed: list[bool], settings: Mapping):
    """The best-fit parameters as ``cabinetry.fit.fit`` finds them (pyhf's MINUIT, print
    level 1, the same options), without the HESSE step whose uncertainties the ranking
    never reads (:mod:`analysis.stats.lean_minuit`): the same values, bit for bit."""
    import pyhf

    from analysis.stats.lean_minuit import installed

    options = {"maxiter": settings.get("maxiter"), "tolerance": settings.get("tolerance")}
    if settings.get("strategy") is not None:             # as cabinetry: pyhf takes no strategy=None
        options["strategy"] = settings["strategy"]
    with installed(verbose=1):
        return pyhf.infer.mle.fit(data, model, init_pars=start, fixed_params=fixed, par_bounds=None, **options)
