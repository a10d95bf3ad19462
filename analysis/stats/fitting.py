"""Maximum-likelihood fits of a pyhf workspace through cabinetry, with plain-JSON results.

cabinetry steers (model and data from the workspace, MIGRAD + HESSE + MINOS, the
saturated-model goodness of fit, impact ranking, discovery significance), pyhf
computes. :class:`FitResult`, :class:`Ranking` and :class:`Significance` keep what later
stages need (plots, tables, comparisons) and serialise to plain JSON, never pickles.

Every minimisation (the fit, each fit of the ranking, those of the significance) uses
the analysis's minimiser settings: ``fit_cfg`` keys ``strategy``, ``tolerance``, ``maxiter``.

>>> result = fit_workspace(ws, {"strategy": 1, "minos": ["ttbar_norm"]})
>>> f"{result.poi} = {result.bestfit:.3f} +- {result.uncertainty:.3f}"
'ttbar_norm = 1.051 +- 0.056'
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Mapping

from analysis.errors import FitError

FORMAT = "heirloom.fit-result"
VERSION = 1
RANKING_FORMAT = "heirloom.ranking"
SIGNIFICANCE_FORMAT = "heirloom.significance"
_PULLED_KINDS = {"normsys", "histosys"}     # Gaussian-constrained around 0 +- 1


@dataclass(frozen=True)
class FitResult:
    """A maximum-likelihood fit result (all sequences are tuples; JSON has lists).

    ``kinds`` gives the pyhf modifier type(s) of each parameter ("normfactor",
    "histosys+normsys", "staterror", ...); ``goodness_of_fit`` is the saturated-model
    p-value (None when undefined); ``minos`` maps a name to (down, up) errors.

    >>> r = FitResult("mu", 1.0, 0.1, {}, ("mu",), (1.0,), (0.1,), ((1.0,),), ("normfactor",), 3.0)
    >>> FitResult.from_json(r.to_json()) == r
    True
    """

    poi: str
    bestfit: float
    uncertainty: float
    minos: Mapping[str, tuple[float, float]]
    labels: tuple[str, ...]
    values: tuple[float, ...]
    errors: tuple[float, ...]
    correlation: tuple[tuple[float, ...], ...]
    kinds: tuple[str, ...]
    best_twice_nll: float
    goodness_of_fit: float | None = None
    converged: bool = True
    strategy: int | None = None
    tolerance: float | None = None
    asimov: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)
    maxiter: int | None = None

    def __post_init__(self) -> None:
        fix = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        fix("minos", {str(k): (float(v[0]), float(v[1])) for k, v in dict(self.minos).items()})
        fix("labels", tuple(str(x) for x in self.labels))
        fix("values", tuple(float(x) for x in self.values))
        fix("errors", tuple(float(x) for x in self.errors))
        fix("correlation", tuple(tuple(float(x) for x in row) for row in self.correlation))
        fix("kinds", tuple(str(x) for x in self.kinds))
        n = len(self.labels)
        if not (len(self.values) == len(self.errors) == len(self.kinds) == len(self.correlation) == n):
            raise ValueError("labels, values, errors, kinds and correlation must have the same length")

    def parameter(self, name: str) -> tuple[float, float]:
        """(best-fit value, Hessian error) of a parameter.

        >>> r = FitResult("mu", 1.0, 0.1, {}, ("mu",), (1.0,), (0.1,), ((1.0,),), ("normfactor",), 3.0)
        >>> r.parameter("mu")
        (1.0, 0.1)
        """
        i = self.labels.index(name)
        return self.values[i], self.errors[i]

    def to_dict(self) -> dict:
        """Plain-JSON-compatible dict (NaN/inf become None)."""
        data = asdict(self)
        data["minos"] = {k: list(v) for k, v in self.minos.items()}
        return {"format": FORMAT, "version": VERSION, **_finite(data)}

    def to_json(self, indent: int | None = 2) -> str:
        """Plain JSON text, keys sorted (stable across runs)."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping) -> "FitResult":
        data = dict(data)
        if data.pop("format", FORMAT) != FORMAT or data.pop("version", VERSION) > VERSION:
            raise ValueError("not a heirloom fit result of a known format version")
        data["errors"] = [math.nan if e is None else e for e in data["errors"]]
        data["correlation"] = [[math.nan if c is None else c for c in row] for row in data["correlation"]]
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "FitResult":
        return cls.from_dict(json.loads(text))

    def to_cabinetry(self) -> Any:
        """The equivalent ``cabinetry.fit.FitResults`` (for cabinetry's plots and tables)."""
        import numpy as np
        from cabinetry.fit.results_containers import FitResults

        return FitResults(np.asarray(self.values), np.asarray(self.errors), list(self.labels),
                          np.asarray(self.correlation), self.best_twice_nll,
                          -1 if self.goodness_of_fit is None else self.goodness_of_fit, dict(self.minos))


def fit_workspace(workspace: Mapping, fit_cfg: Mapping | None = None) -> FitResult:
    """Fit a pyhf workspace (dict) with ``cabinetry.fit.fit``; raises :class:`FitError`.

    ``fit_cfg`` keys: ``strategy`` (MINUIT 0/1/2, None: pyhf's default), ``tolerance``,
    ``maxiter``, ``minos`` (parameter names), ``asimov`` (fit the Asimov data set).
    ``extra["hessian_check"]`` of the result: :func:`hessian_check` of the POI error.

    >>> down, up = fit_workspace(ws, {"minos": ["ttbar_norm"]}).minos["ttbar_norm"]
    >>> round(down, 3), round(up, 3)
    (-0.054, 0.057)
    """
    import cabinetry
    import pyhf

    fit_cfg = dict(fit_cfg or {})
    asimov = bool(fit_cfg.get("asimov", False))
    model, data = _model_and_data(workspace, fit_cfg)
    poi = model.config.poi_name
    minos = list(fit_cfg.get("minos") or [])
    unknown = [name for name in minos if name not in model.config.par_names]
    if unknown:
        raise FitError(f"MINOS parameters {unknown} are not parameters of the model "
                       f"(known: {model.config.par_names})")
    strategy = fit_cfg.get("strategy")
    with guarded_minimisation("the fit"):
        result = cabinetry.fit.fit(model, data, minos=minos or None, goodness_of_fit=True,
                                   **minimiser_settings(fit_cfg))
    i_poi = model.config.par_names.index(poi)
    bestfit, error = float(result.bestfit[i_poi]), float(result.uncertainty[i_poi])
    if not (math.isfinite(bestfit) and math.isfinite(error) and error > 0):
        raise FitError(f"fit gave {poi} = {bestfit} +- {error}: no usable uncertainty (HESSE failed?)")
    if strategy is None:
        strategy = 0 if pyhf.tensorlib.default_do_grad else 1     # what pyhf picks
    gof = float(result.goodness_of_fit)
    check = hessian_check(model, data, result.bestfit, result.uncertainty, i_poi)
    return FitResult(
        poi=poi, bestfit=bestfit, uncertainty=error, minos=result.minos_uncertainty,
        labels=tuple(result.labels), values=tuple(result.bestfit), errors=tuple(result.uncertainty),
        correlation=tuple(map(tuple, result.corr_mat)), kinds=_kinds(model),
        best_twice_nll=float(result.best_twice_nll),
        goodness_of_fit=gof if math.isfinite(gof) and gof >= 0 else None,
        converged=True, strategy=int(strategy), tolerance=fit_cfg.get("tolerance"), asimov=asimov,
        maxiter=fit_cfg.get("maxiter"), extra={"hessian_check": check} if check else {},
    )


#: models with more free parameters skip :func:`hessian_check` (it costs ~2 n^2 likelihood calls)
HESSIAN_CHECK_MAX_PARAMETERS = 100


def hessian_check(model: Any, data: Any, bestfit: Any, errors: Any, poi_index: int,
                  rel_step: float = 0.01) -> dict | None:
    """The POI's Hessian uncertainty from central finite differences of -log L at the best
    fit (steps: ``rel_step`` x each parameter's MINUIT error), as a cross-check of MINUIT's.

    MINUIT's HESSE aims at a few per cent accuracy of the second derivatives, with steps
    of its own choosing; where -log L is not quadratic on that scale (the AGC fit: the
    curvature at 0.1 sigma differs by 2-4 % from that at 0.01 sigma) its POI error scatters
    with the strategy, tolerance and parameter order (the AGC 5-files fit: 0.088 .. 0.095
    for one likelihood whose curvature gives 0.092). With steps of 0.01 sigma this value
    is stable to 3 digits. None when the model has more than
    :data:`HESSIAN_CHECK_MAX_PARAMETERS` free parameters or the matrix is not positive
    definite.

    >>> import cabinetry
    >>> pdf, data = cabinetry.model_utils.model_and_data(ws)
    >>> check = hessian_check(pdf, data, fit_result.values, fit_result.errors, fit_result.labels.index(fit_result.poi))
    >>> round(check["poi_uncertainty"], 4), round(check["minuit_poi_uncertainty"], 4)
    (0.0557, 0.0557)
    >>> abs(check["relative_difference"]) < 1e-3          # this likelihood is quadratic near the minimum
    True
    """
    import numpy as np

    x0 = np.asarray(bestfit, dtype=float)
    errors = np.asarray(errors, dtype=float)
    free = [i for i, fixed in enumerate(model.config.suggested_fixed()) if not fixed]
    if poi_index not in free or len(free) > HESSIAN_CHECK_MAX_PARAMETERS:
        return None
    steps = rel_step * np.where(errors[free] > 0, errors[free], 0.01)

    def nll(shifts: dict) -> float:
        x = x0.copy()
        for i, shift in shifts.items():
            x[free[i]] += shift * steps[i]
        return -float(np.asarray(model.logpdf(x, data)).ravel()[0])

    n = len(free)
    f0 = nll({})
    hessian = np.zeros((n, n))
    for a in range(n):
        hessian[a, a] = (nll({a: 1}) - 2 * f0 + nll({a: -1})) / steps[a] ** 2
        for b in range(a):
            hessian[a, b] = hessian[b, a] = (nll({a: 1, b: 1}) - nll({a: 1, b: -1}) - nll({a: -1, b: 1})
                                             + nll({a: -1, b: -1})) / (4 * steps[a] * steps[b])
    try:
        np.linalg.cholesky(hessian)
        covariance = np.linalg.inv(hessian)
    except np.linalg.LinAlgError:
        return None
    error = float(np.sqrt(covariance[free.index(poi_index), free.index(poi_index)]))
    minuit = float(errors[poi_index])
    return {"poi_uncertainty": error, "minuit_poi_uncertainty": minuit,
            "relative_difference": (minuit - error) / error}


@dataclass(frozen=True)
class Ranking:
    """Impacts of each parameter on the POI (cabinetry's ``RankingResults``), most
    important first: the POI shift when the parameter is fixed at its best-fit value
    +- its pre-fit (``prefit_*``) or post-fit (``postfit_*``) uncertainty.

    >>> r = Ranking("mu", ("a",), (0.1,), (0.9,), (0.02,), (-0.02,), (0.018,), (-0.017,))
    >>> Ranking.from_json(r.to_json()) == r
    True
    """

    poi: str
    labels: tuple[str, ...]
    bestfit: tuple[float, ...]
    uncertainty: tuple[float, ...]
    prefit_up: tuple[float, ...]
    prefit_down: tuple[float, ...]
    postfit_up: tuple[float, ...]
    postfit_down: tuple[float, ...]
    strategy: int | None = None
    tolerance: float | None = None
    maxiter: int | None = None
    seconds: float | None = field(default=None, compare=False)   # wall clock: provenance, not result

    def __post_init__(self) -> None:
        fix = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        fix("labels", tuple(str(x) for x in self.labels))
        for name in ("bestfit", "uncertainty", "prefit_up", "prefit_down", "postfit_up", "postfit_down"):
            values = tuple(float(x) for x in getattr(self, name))
            if len(values) != len(self.labels):
                raise ValueError(f"{name} must have one entry per label")
            fix(name, values)

    def impacts(self) -> list[tuple[str, float, float, float, float]]:
        """(name, prefit up, prefit down, postfit up, postfit down), in ranking order."""
        return list(zip(self.labels, self.prefit_up, self.prefit_down, self.postfit_up, self.postfit_down))

    def to_dict(self) -> dict:
        return {"format": RANKING_FORMAT, "version": VERSION, **_finite(_timeless(asdict(self)))}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping) -> "Ranking":
        data = dict(data)
        if data.pop("format", RANKING_FORMAT) != RANKING_FORMAT or data.pop("version", VERSION) > VERSION:
            raise ValueError("not a heirloom ranking of a known format version")
        for name in ("bestfit", "uncertainty", "prefit_up", "prefit_down", "postfit_up", "postfit_down"):
            data[name] = [math.nan if x is None else x for x in data[name]]
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "Ranking":
        return cls.from_dict(json.loads(text))

    def to_cabinetry(self) -> Any:
        """The equivalent ``cabinetry.fit.RankingResults`` (for cabinetry's ranking plot)."""
        import numpy as np
        from cabinetry.fit.results_containers import RankingResults

        return RankingResults(np.asarray(self.bestfit), np.asarray(self.uncertainty), list(self.labels),
                              np.asarray(self.prefit_up), np.asarray(self.prefit_down),
                              np.asarray(self.postfit_up), np.asarray(self.postfit_down))


def _timeless(record: dict) -> dict:
    """A result without its wall-clock time (that goes in provenance): one key, one set of bytes."""
    return {k: v for k, v in record.items() if k != "seconds"}


@dataclass(frozen=True)
class Significance:
    """Discovery significance of the POI (test of POI = 0 with q0, asymptotic formulae).

    Where the p-value underflows to 0, the significance comes from the test statistic
    (Z = sqrt(q0), ``method="q0"``) and the p-value is kept in log form
    (``*_log10_p_value``): a number, never infinite (:mod:`analysis.stats.discovery`).

    >>> s = Significance("mu", 0.01, 2.33, 0.02, 2.05)
    >>> Significance.from_json(s.to_json()) == s
    True
    """

    poi: str
    observed_p_value: float
    observed_significance: float | None
    expected_p_value: float
    expected_significance: float | None
    strategy: int | None = None
    tolerance: float | None = None
    maxiter: int | None = None
    seconds: float | None = field(default=None, compare=False)   # wall clock: provenance, not result
    observed_log10_p_value: float | None = None   # log10 of the p-value, finite where it underflows
    expected_log10_p_value: float | None = None
    method: str = "hypotest"                      # "q0": Z = sqrt(q0), where the p-value underflows

    def __post_init__(self) -> None:
        for name in ("observed_significance", "expected_significance"):
            value = getattr(self, name)
            finite = value is not None and math.isfinite(float(value))
            object.__setattr__(self, name, float(value) if finite else None)   # frozen

    def to_dict(self) -> dict:
        return {"format": SIGNIFICANCE_FORMAT, "version": VERSION, **_finite(_timeless(asdict(self)))}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping) -> "Significance":
        data = dict(data)
        if data.pop("format", SIGNIFICANCE_FORMAT) != SIGNIFICANCE_FORMAT or data.pop("version", VERSION) > VERSION:
            raise ValueError("not a heirloom significance of a known format version")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "Significance":
        return cls.from_dict(json.loads(text))


def minimiser_settings(fit_cfg: Mapping | None) -> dict:
    """``strategy``, ``tolerance`` and ``maxiter`` of ``fit_cfg`` as cabinetry keyword arguments.

    >>> minimiser_settings({"strategy": 2, "minos": ["mu"]})
    {'strategy': 2, 'tolerance': None, 'maxiter': None}
    """
    fit_cfg = fit_cfg or {}
    return {key: fit_cfg.get(key) for key in ("strategy", "tolerance", "maxiter")}


def pulls(fit_result: FitResult) -> list[tuple[str, float, float]]:
    """(name, value, error) of the Gaussian-constrained nuisance parameters.

    Leaves out the POI, free norm factors, fixed parameters and the per-bin gammas
    (staterror/shapesys, which are centred at 1).

    >>> [name for name, _, _ in pulls(fit_result)]        # not the POI, nor the staterror gammas
    ['btag_var_0', 'btag_var_1', 'jes', 'lumi']
    >>> name, value, error = pulls(fit_result)[0]
    >>> name, round(value, 2), round(error, 2)
    ('btag_var_0', -0.57, 0.81)
    """
    out = []
    for name, value, error, kind in zip(fit_result.labels, fit_result.values, fit_result.errors,
                                        fit_result.kinds):
        if name == fit_result.poi or error == 0.0 or not set(kind.split("+")) <= _PULLED_KINDS:
            continue
        out.append((name, value, error))
    return out


def _model_and_data(workspace: Mapping, fit_cfg: Mapping):
    """pyhf model and data (Asimov data if ``fit_cfg["asimov"]``); raises FitError without POI."""
    import cabinetry

    model, data = cabinetry.model_utils.model_and_data(dict(workspace), asimov=bool(fit_cfg.get("asimov", False)))
    if model.config.poi_name is None:
        raise FitError("the workspace's measurement defines no POI")
    return model, data


@contextlib.contextmanager
def guarded_minimisation(what: str) -> Iterator[None]:
    """pyhf's optimizer restored afterwards (cabinetry does not when a fit raises), a
    failed minimisation as :class:`FitError`, and MINUIT's NaN warnings summarised
    (:mod:`analysis.stats.minuit_output`)."""
    import pyhf

    from analysis.stats.minuit_output import summarised

    backend = pyhf.get_backend()
    quiet = logging.getLogger("pyhf.optimize.mixins")      # it logs the whole failed result, traceback included
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        with summarised(what):
            yield
    except pyhf.exceptions.FailedMinimization as err:
        raise FitError(f"MINUIT found no valid minimum in {what}: {getattr(err.result, 'message', err)}") from err
    finally:
        quiet.setLevel(level)
        pyhf.set_backend(*backend)


def _resolved(settings: Mapping) -> dict:
    """The settings as used: a strategy of None is what pyhf picks (0 with autodiff, else 1)."""
    import pyhf

    out = dict(settings)
    if out["strategy"] is None:
        out["strategy"] = 0 if pyhf.tensorlib.default_do_grad else 1
    return out


def _kinds(model) -> tuple[str, ...]:
    """Modifier type(s) behind every entry of ``model.config.par_names``."""
    types: dict[str, set] = {}
    for name, kind in model.config.modifiers:
        types.setdefault(name, set()).add(kind)
    kinds = []
    for name in model.config.par_order:                       # the order of par_names
        n = model.config.param_set(name).n_parameters
        kinds += ["+".join(sorted(types.get(name, {"unknown"})))] * n
    return tuple(kinds)


def _finite(value):
    """Recursively turn NaN/inf into None and tuples into lists (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
