"""Upper limits on a new signal's strength: the reinterpretation of an analysis (RECAST style).

A fork of an analysis adds the signal as a dataset and a ``limit:`` section::

    limit:
      signal: {datasets: [zprime], label: "Z' (1 TeV)"}
      poi: mu_zprime            # the signal strength, a new free parameter
      cl: 0.95
      bracket: [0.05, 5.0]      # where the observed and expected limits are searched (tolerance: 0.001), or
      scan: {low: 0, high: 5, points: 21}   # CLs on a grid, limits interpolated (faster)

The signal is not a sample of ``model:``, so the generated pseudo-data and every
background output keep their keys; the limit model is the fit model plus the signal
sample (normalised by the new POI, with every systematic that applies to its datasets),
and the analysis's own POI becomes a free normalisation. CLs uses the asymptotic q~_mu
test statistic (pyhf's formulas). The fits that do not depend on the POI (the
background-only fit that makes the Asimov data, the free fits) run once
(:mod:`analysis.stats.cls_search`); each tested POI value then costs two fits. The observed
and expected (-2..+2 sigma) limits come from a secant search of all six at once, started
from their Wald estimates, whose tests are spread over worker processes, or, with
``scan:``, from CLs on a grid interpolated linearly (as
``pyhf.infer.intervals.upper_limits.upper_limit``), both with MINUIT's MIGRAD (without
HESSE, whose uncertainties no test reads) and the minimiser settings of ``fit:``.
Progress lines count the limits found (or the grid's points):

>>> result = upper_limit(tiny_ws, {"cl": 0.95, "bracket": [0.1, 5]})   # a 3-bin workspace, POI mu
... # doctest: +ELLIPSIS
Limit: 6/6 limits (100 %) [##########], ... s in all
>>> round(result.observed, 3), [round(x, 3) for x in result.expected]
(2.198, [0.698, 0.945, 1.332, 1.899, 2.617])
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Mapping

from analysis.config.model import AnalysisConfig
from analysis.progress import Progress, to_stdout
from analysis.stats import cls_search
from analysis.stats.fitting import FitError, guarded_minimisation, minimiser_settings

SIGNAL_SAMPLE = "signal"
PROGRESS_EVERY = 10.0                   # seconds between progress lines
LIMITS = len(cls_search.LIMITS)          # observed, expected -2..+2 sigma
TOLERANCE = 0.001                       # each limit's precision in the POI (limit.tolerance)
ROUNDS = 12                             # rounds of the secant search before it gives up


@dataclass
class LimitResult:
    """Observed and expected (-2, -1, 0, +1, +2 sigma) upper limits on the POI, and the
    CLs scan they come from."""

    poi: str
    cl: float
    observed: float
    expected: list
    scan: dict = field(default_factory=dict)      # poi values -> observed/expected CLs
    seconds: float = field(default=0.0, compare=False)       # wall clock: provenance, not result
    format: str = "heirloom.limit"
    version: int = 1

    def to_json(self, indent: int | None = 2) -> str:
        record = {k: v for k, v in asdict(self).items() if k != "seconds"}    # timing: in provenance
        return json.dumps(record, indent=indent, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "LimitResult":
        return cls(**json.loads(text))

    def excludes(self, mu: float = 1.0) -> bool:
        """Whether the observed limit excludes signal strength ``mu`` (1: the nominal signal)."""
        return self.observed < mu


def section(cfg: AnalysisConfig) -> dict:
    """The config's ``limit:`` section (a located error when it has none)."""
    limit = cfg.section("limit")
    if not limit:
        raise cfg.error("this config has no 'limit' section: add one with the signal to set a limit on", "limit")
    return limit


def check_config(cfg: AnalysisConfig) -> None:
    """The signal's datasets exist, are MC, and are not also a sample of the model (which
    would put them into the pseudo-data and every background fit)."""
    limit = cfg.data.get("limit")
    if not limit:
        return
    model = cfg.data.get("model")
    if not model:
        raise cfg.error("a limit needs the analysis's 'model' (the background model)", "limit")
    in_model = {d for sample in model.get("samples", {}).values() for d in sample["datasets"]}
    for i, dataset in enumerate(limit["signal"]["datasets"]):
        where = ("limit", "signal", "datasets", i)
        if dataset not in cfg.datasets:
            raise cfg.error(f"unknown dataset '{dataset}'", *where)
        if cfg.datasets[dataset]["kind"] != "mc":
            raise cfg.error(f"the signal dataset '{dataset}' must be of kind mc", *where)
        if dataset in in_model:
            raise cfg.error(f"'{dataset}' is also in model.samples: a signal enters only the limit", *where)
    names = set(model.get("norm_factors", {})) | set(cfg.systematics)
    if limit["poi"] in names:
        raise cfg.error(f"the signal strength '{limit['poi']}' is already a parameter of the model", "limit", "poi")


def limit_model(cfg: AnalysisConfig) -> dict:
    """The fit model (:func:`analysis.stats.modelspec.fit_model`) plus the signal sample, with the
    limit's POI as its free normalisation."""
    from analysis.stats.modelspec import fit_model

    limit = section(cfg)
    signal = limit["signal"]
    model = fit_model(cfg, extra_samples={SIGNAL_SAMPLE: {"datasets": list(signal["datasets"]),
                                                          "label": signal.get("label", SIGNAL_SAMPLE)}})
    model["norm_factors"] = {**model.get("norm_factors", {}),
                             limit["poi"]: {"samples": [SIGNAL_SAMPLE], "nominal": 1.0,
                                            "bounds": list(limit.get("bounds", [0.0, 100.0]))}}
    model["poi"] = limit["poi"]
    return model


def upper_limit(workspace: Mapping, limit_cfg: Mapping, fit_cfg: Mapping | None = None, *, workers: int = 1,
                progress: Callable[[str], None] | None = to_stdout) -> LimitResult:
    """Observed and expected CLs upper limits on the workspace's POI: a root search
    (:func:`root_limits`) or, when ``limit_cfg`` has ``scan``, a grid (:func:`grid_limits`),
    spread over ``workers`` processes; the same result for any number of them. ``progress``
    receives a line at most every 10 s and at the end; ``None``: silent (the module's
    example shows a call)."""
    import cabinetry
    import pyhf

    from analysis.stats import lean_minuit

    t0 = time.time()
    model, data = cabinetry.model_utils.model_and_data(dict(workspace))
    cl = float(limit_cfg.get("cl", 0.95))
    settings = {k: v for k, v in minimiser_settings(fit_cfg).items() if v is not None}
    with _uncaptured(progress) as report, guarded_minimisation("the limit scan"):
        pyhf.set_backend("numpy", lean_minuit.optimizer(verbose=0, **settings))     # no HESSE: not read
        probe = None if "scan" in limit_cfg else _probe(*_bracket(limit_cfg, model))
        curve = cls_search.prepare(model, data, probe=probe, workers=workers)
        if "scan" in limit_cfg:
            result = grid_limits(curve, limit_cfg["scan"], cl, workers=workers, report=report)
        else:
            result = root_limits(curve, limit_cfg, cl, workers=workers, report=report)
    result.seconds = round(time.time() - t0, 3)
    return result


def root_limits(curve: cls_search.Curve, limit_cfg: Mapping, cl: float, *, workers: int = 1,
                report: Callable[[str], None] | None = None) -> LimitResult:
    """The six limits by the secant method, all at once: each round tests, in parallel, the
    current estimate of every limit not yet found (two fits each, every test giving all six
    CLs values), and moves each estimate along the line through the two tested points
    nearest to it, in z = Phi^-1(CLs) (nearly linear in the POI). The first estimates are
    Wald's (:func:`~analysis.stats.cls_search.wald_estimates`, from one Asimov test); a
    limit is found when its next step is shorter than ``limit.tolerance`` (default 0.001).
    The search stays within ``limit.bracket``."""
    low, high = _bracket(limit_cfg, curve.model)
    tolerance = float(limit_cfg.get("tolerance", TOLERANCE))
    estimates = _first_estimates(curve, _probe(low, high), cl)
    counter = Progress(LIMITS, report, label="Limit", unit="limits", every=PROGRESS_EVERY)
    points: dict[float, tuple[float, list[float]]] = {}
    found: dict[int, float] = {}
    for _ in range(ROUNDS):
        todo = _new_points(points, [min(max(estimates[i], low), high) for i in range(LIMITS) if i not in found],
                           tolerance)
        if not todo:                          # an estimate stuck at the bracket's end: the crossing is beyond
            for which in set(range(LIMITS)) - set(found):
                _within(estimates[which], low, high, which)
        points.update(cls_search.cls_points(curve, todo, workers))
        for which in range(LIMITS):
            if which in found:
                continue
            estimates[which], step = _secant(points, which, estimates[which], cl)
            if abs(step) < tolerance:
                found[which] = _within(estimates[which], low, high, which)
                counter.tick()
        if len(found) == LIMITS:
            break
    else:
        missing = ", ".join(cls_search.LIMITS[i] for i in range(LIMITS) if i not in found)
        raise FitError(f"the limit search did not converge in {ROUNDS} rounds ({missing}): check limit.bracket")
    return LimitResult(poi=curve.model.config.poi_name, cl=cl, observed=found[0],
                       expected=[found[i] for i in range(1, LIMITS)], scan=_scan(points))


def _bracket(limit_cfg: Mapping, model: Any) -> tuple[float, float]:
    """Where the limits are searched: ``limit.bracket``, else 0.1 to the POI's upper bound;
    a bracket from 0 starts just above it (CLs is 1 at mu = 0)."""
    default = (0.1, model.config.suggested_bounds()[model.config.poi_index][1])
    low, high = (float(x) for x in limit_cfg.get("bracket") or default)
    return max(low, high * 1e-4), high


def _probe(low: float, high: float) -> float:
    """Where the first Asimov test goes: the bracket's geometric middle."""
    return math.sqrt(low * high)


def _first_estimates(curve: cls_search.Curve, probe: float, cl: float) -> list[float]:
    """Wald's estimates of the six limits from an Asimov test at ``probe`` (run while the
    curve was prepared), and again from one at the expected limit so found when that is
    more than 20 % away (the approximation holds best near its probe)."""
    def estimates_at(mu: float) -> list[float]:
        sqrt_q = dict(curve.probes).get(mu)
        if sqrt_q is None:
            sqrt_q = math.sqrt(cls_search.qtilde(curve, mu, asimov=True))
        return cls_search.wald_estimates(curve, mu, sqrt_q, cl)

    estimates = estimates_at(probe)
    median = estimates[3]
    return estimates_at(_rounded(median)) if abs(median / probe - 1) > 0.2 else estimates


def _new_points(points: Mapping[float, Any], estimates: list[float], tolerance: float) -> list[float]:
    """The estimates worth a test: not within half the tolerance of a tested point or of
    one another."""
    todo: list[float] = []
    for mu in sorted(_rounded(x) for x in estimates):
        if all(abs(mu - other) >= tolerance / 2 for other in (*points, *todo)):
            todo.append(mu)
    return todo


def _secant(points: Mapping[float, tuple[float, list[float]]], which: int, estimate: float,
            cl: float) -> tuple[float, float]:
    """The next estimate of limit ``which`` and the step to it: where the line through the
    two tested points nearest to ``estimate`` crosses z = Phi^-1(1 - CL)."""
    nearest = sorted(points, key=lambda mu: (abs(mu - estimate), mu))[:2]
    if len(nearest) < 2:
        return estimate, math.inf
    (a, za), (b, zb) = ((mu, _z(points[mu], which) - _z_target(cl)) for mu in nearest)
    if za == zb:
        return estimate, math.inf
    root = math.exp(math.log(b) - zb * (math.log(b) - math.log(a)) / (zb - za))     # in log mu: straighter
    root = min(max(root, nearest[1] / 4, estimate / 4), 4 * max(nearest[1], estimate))     # one step at most x4
    return root, root - min(nearest, key=lambda mu: abs(mu - root))


def _z(values: tuple[float, list[float]], which: int) -> float:
    from scipy.stats import norm

    cls = values[0] if which == 0 else values[1][which - 1]
    return float(norm.ppf(min(max(cls, 1e-300), 1.0 - 1e-16)))


def _z_target(cl: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1.0 - cl))


def _rounded(mu: float) -> float:
    """A POI value to test, to 12 significant digits (the same on every machine and worker)."""
    return float(f"{mu:.12g}")


def _within(root: float, low: float, high: float, which: int) -> float:
    if not low <= root <= high:
        edge = "below" if root < low else "above"
        raise FitError(f"the {cls_search.LIMITS[which]} limit lies {edge} limit.bracket [{low}, {high}] "
                       f"(CLs does not cross 1 - CL inside it): widen it")
    return root


def grid_limits(curve: cls_search.Curve, scan: Mapping, cl: float, *, workers: int = 1,
                report: Callable[[str], None] | None = None) -> LimitResult:
    """CLs at every point of ``limit.scan`` and the limits where it crosses 1 - CL, linearly
    interpolated (as ``pyhf.infer.intervals.upper_limits.upper_limit`` does)."""
    import numpy as np

    grid = [float(x) for x in np.linspace(float(scan["low"]), float(scan["high"]), int(scan["points"]))]
    counter = Progress(len(grid), report, label="Limit", unit="hypothesis tests", every=PROGRESS_EVERY)
    points = {}
    for mu, values in cls_search.cls_points(curve, grid, workers):
        points[mu] = values
        counter.tick()
    scan_out = _scan(points)
    curves = [scan_out["observed_CLs"]] + [list(row) for row in zip(*scan_out["expected_CLs"])]
    limits = [float(np.interp(1 - cl, values[::-1], grid[::-1])) for values in curves]
    if any(limit >= grid[-1] for limit in limits):
        raise FitError(f"a limit reaches the end of limit.scan ({grid[-1]}): raise limit.scan.high")
    return LimitResult(poi=curve.model.config.poi_name, cl=cl, observed=limits[0], expected=limits[1:],
                       scan=scan_out)


def _scan(points: Mapping[float, tuple[float, list[float]]]) -> dict:
    """The tested points in increasing POI order, as LimitResult.scan holds them."""
    order = sorted(points)
    return {"poi_values": order, "observed_CLs": [points[mu][0] for mu in order],
            "expected_CLs": [list(points[mu][1]) for mu in order]}


@contextmanager
def _uncaptured(report: Callable[[str], None] | None) -> Iterator[Callable[[str], None] | None]:
    """``report`` writing to file descriptor 1 as it is now, also while the search runs with
    it captured (:func:`~analysis.stats.minuit_output.summarised` holds MINUIT's output to
    the end): so that the progress lines come while the search runs, not after it."""
    if report is None:
        yield None
        return
    sys.stdout.flush()
    try:
        outside = os.dup(1)
    except OSError:                       # no file descriptor 1 (embedded interpreters)
        yield report
        return

    def say(line: str) -> None:
        sys.stdout.flush()
        inside = os.dup(1)
        os.dup2(outside, 1)
        try:
            report(line)
            sys.stdout.flush()
        finally:
            os.dup2(inside, 1)
            os.close(inside)

    try:
        yield say
    finally:
        os.close(outside)


def to_cabinetry(result: LimitResult) -> Any:
    """The cabinetry LimitResults of ``result`` (for ``cabinetry.visualize.limit``)."""
    import numpy as np
    from cabinetry.fit.results_containers import LimitResults

    return LimitResults(observed_limit=result.observed, expected_limit=np.asarray(result.expected),
                        observed_CLs=np.asarray(result.scan["observed_CLs"]),
                        expected_CLs=np.asarray(result.scan["expected_CLs"]),
                        poi_values=np.asarray(result.scan["poi_values"]), confidence_level=result.cl)
