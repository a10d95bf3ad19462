"""Maximum-likelihood fits of a pyhf workspace through cabinetry, with a plain-JSON result.

cabinetry steers (model and data from the workspace, MIGRAD + HESSE + MINOS, the
saturated-model goodness of fit), pyhf computes. :class:`FitResult` keeps what later
stages need (plots, tables, comparisons) and serialises to plain JSON, never pickles.

>>> result = fit_workspace(workspace, {"strategy": 1, "minos": ["ttbar_norm"]})  # doctest: +SKIP
>>> f"{result.poi} = {result.bestfit:.3f} +- {result.uncertainty:.3f}"             # doctest: +SKIP
'ttbar_norm = 0.954 +- 0.089'
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

FORMAT = "heirloom.fit-result"
VERSION = 1
_PULLED_KINDS = {"normsys", "histosys"}     # Gaussian-constrained around 0 +- 1


class FitError(RuntimeError):
    """The fit did not give a valid minimum (or a usable uncertainty of the POI)."""


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

    def to_cabinetry(self):
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

    >>> fit_workspace(ws, {"minos": ["ttbar_norm"]}).minos["ttbar_norm"]   # doctest: +SKIP
    (-0.087, 0.091)
    """
    import cabinetry
    import pyhf

    fit_cfg = dict(fit_cfg or {})
    asimov = bool(fit_cfg.get("asimov", False))
    model, data = cabinetry.model_utils.model_and_data(dict(workspace), asimov=asimov)
    poi = model.config.poi_name
    if poi is None:
        raise FitError("the workspace's measurement defines no POI")
    minos = list(fit_cfg.get("minos") or [])
    unknown = [name for name in minos if name not in model.config.par_names]
    if unknown:
        raise FitError(f"MINOS parameters {unknown} are not parameters of the model "
                       f"(known: {model.config.par_names})")
    strategy = fit_cfg.get("strategy")
    backend = pyhf.get_backend()       # cabinetry does not restore the optimizer if a fit raises
    try:
        result = cabinetry.fit.fit(model, data, minos=minos or None, goodness_of_fit=True,
                                   strategy=strategy, tolerance=fit_cfg.get("tolerance"),
                                   maxiter=fit_cfg.get("maxiter"))
    except pyhf.exceptions.FailedMinimization as err:
        raise FitError(f"MINUIT found no valid minimum: {getattr(err.result, 'message', err)}") from err
    finally:
        pyhf.set_backend(*backend)
    i_poi = model.config.par_names.index(poi)
    bestfit, error = float(result.bestfit[i_poi]), float(result.uncertainty[i_poi])
    if not (math.isfinite(bestfit) and math.isfinite(error) and error > 0):
        raise FitError(f"fit gave {poi} = {bestfit} +- {error}: no usable uncertainty (HESSE failed?)")
    if strategy is None:
        strategy = 0 if pyhf.tensorlib.default_do_grad else 1     # what pyhf picks
    gof = float(result.goodness_of_fit)
    return FitResult(
        poi=poi, bestfit=bestfit, uncertainty=error, minos=result.minos_uncertainty,
        labels=tuple(result.labels), values=tuple(result.bestfit), errors=tuple(result.uncertainty),
        correlation=tuple(map(tuple, result.corr_mat)), kinds=_kinds(model),
        best_twice_nll=float(result.best_twice_nll),
        goodness_of_fit=gof if math.isfinite(gof) and gof >= 0 else None,
        converged=True, strategy=int(strategy), tolerance=fit_cfg.get("tolerance"), asimov=asimov,
    )


def pulls(fit_result: FitResult) -> list[tuple[str, float, float]]:
    """(name, value, error) of the Gaussian-constrained nuisance parameters.

    Leaves out the POI, free norm factors, fixed parameters and the per-bin gammas
    (staterror/shapesys, which are centred at 1).

    >>> pulls(result)[0]                                                   # doctest: +SKIP
    ('btag_var_0', 0.12, 0.97)
    """
    out = []
    for name, value, error, kind in zip(fit_result.labels, fit_result.values, fit_result.errors,
                                        fit_result.kinds):
        if name == fit_result.poi or error == 0.0 or not set(kind.split("+")) <= _PULLED_KINDS:
            continue
        out.append((name, value, error))
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
