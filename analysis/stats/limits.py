"""Upper limits on a new signal's strength: the reinterpretation of an analysis (RECAST style).

A fork of an analysis adds the signal as a dataset and a ``limit:`` section::

    limit:
      signal: {datasets: [zprime], label: "Z' (1 TeV)"}
      poi: mu_zprime            # the signal strength, a new free parameter
      cl: 0.95
      bracket: [0.05, 5.0]      # where the observed and expected limits are searched, or
      scan: {low: 0, high: 5, points: 21}   # CLs on a grid, limits interpolated (faster)

The signal is not a sample of ``model:``, so the generated pseudo-data and every
background output keep their keys; the limit model is the fit model plus the signal
sample (normalised by the new POI, with every systematic that applies to its datasets),
and the analysis's own POI becomes a free normalisation. CLs uses the asymptotic q~_mu
test statistic; the observed and expected (-2..+2 sigma) limits come from a root search
(``cabinetry.fit.limit``, about 50 hypothesis tests) or, with ``scan:``, from CLs on a grid
interpolated linearly (``pyhf.infer.intervals.upper_limits.upper_limit``, one test per
point), both with MINUIT and the minimiser settings of ``fit:``. The hypothesis tests are
counted in progress lines (:mod:`analysis.progress`), against the number a grid has or
an estimate of what a root search needs:

>>> result = upper_limit(tiny_ws, {"cl": 0.95, "bracket": [0.1, 5]})   # a 3-bin workspace, POI mu
... # doctest: +ELLIPSIS
Limit: .../... hypothesis tests (100 %) [##########], ... s in all
>>> round(result.observed, 3), [round(x, 3) for x in result.expected]
(2.198, [0.699, 0.946, 1.333, 1.897, 2.619])
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
from analysis.stats.fitting import FitError, guarded_minimisation, minimiser_settings

SIGNAL_SAMPLE = "signal"
PROGRESS_EVERY = 10.0                   # seconds between progress lines
LIMITS = 6                              # a root search per limit: observed, expected -2..+2 sigma


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


def upper_limit(workspace: Mapping, limit_cfg: Mapping, fit_cfg: Mapping | None = None, *,
                progress: Callable[[str], None] | None = to_stdout) -> LimitResult:
    """Observed and expected CLs upper limits on the workspace's POI: a root search
    (``cabinetry.fit.limit``) or, when ``limit_cfg`` has ``scan``, a grid. ``progress``
    receives a line at most every 10 s and at the end (``Limit: 12/~32 hypothesis tests
    ..., about 10.0 s left``); ``None``: silent (the module's example shows a call)."""
    import cabinetry

    t0 = time.time()
    model, data = cabinetry.model_utils.model_and_data(dict(workspace))
    cl = float(limit_cfg.get("cl", 0.95))
    if "scan" in limit_cfg:
        result = _grid_limit(model, data, limit_cfg["scan"], cl, fit_cfg, progress)
    else:
        result = _root_limit(model, data, limit_cfg, cl, fit_cfg, progress)
    result.seconds = round(time.time() - t0, 3)
    return result


def _root_limit(model, data, limit_cfg: Mapping, cl: float, fit_cfg: Mapping | None, progress) -> LimitResult:
    import cabinetry
    import pyhf

    bracket, tolerance = limit_cfg.get("bracket"), float(limit_cfg.get("tolerance", 0.01))
    low, high = bracket or (0.1, model.config.suggested_bounds()[model.config.poi_index][1])   # cabinetry's default
    width = float(high) - float(low)
    with _uncaptured(progress) as report:
        counter = Progress(root_search_tests(width, tolerance), report, label="Limit", unit="hypothesis tests",
                           every=PROGRESS_EVERY, estimated=True)
        with guarded_minimisation("the limit scan"), _counted(pyhf.infer, counter):
            try:
                result = cabinetry.fit.limit(model, data, bracket=bracket, confidence_level=cl,
                                             poi_tolerance=tolerance, **minimiser_settings(fit_cfg))
            except ValueError as err:        # no sign change in the bracket
                raise FitError(f"no CLs = {1 - cl:.2f} crossing found: {err} (widen limit.bracket)") from err
        counter.finish()
    scan = {"poi_values": [float(x) for x in result.poi_values],
            "observed_CLs": [float(x) for x in result.observed_CLs],
            "expected_CLs": [[float(x) for x in row] for row in result.expected_CLs]}
    return LimitResult(poi=model.config.poi_name, cl=cl, observed=float(result.observed_limit),
                       expected=[float(x) for x in result.expected_limit], scan=scan)


def root_search_tests(width: float, tolerance: float) -> int:
    """An estimate of the hypothesis tests of a root search over a bracket ``width`` wide, to
    ``tolerance``: the bracket's two ends, then per limit half the steps bisection would
    need (Brent's method converges faster, and the later limits start from narrower
    brackets: small workspaces took 22 to 40 tests where this says 20 to 50).

    >>> root_search_tests(4.9, 0.01)
    32
    """
    bisections = math.ceil(math.log2(max(abs(width), tolerance) / tolerance))
    return 2 + LIMITS * max(1, math.ceil(bisections / 2))


@contextmanager
def _counted(module: Any, counter: Progress) -> Iterator[None]:
    """``module.hypotest`` (where the limit search finds pyhf's) ticks ``counter`` once per
    hypothesis test while inside; restored on the way out."""
    original = module.hypotest

    def hypotest(*args, **kwargs):
        outcome = original(*args, **kwargs)
        counter.tick()
        return outcome

    module.hypotest = hypotest
    try:
        yield
    finally:
        module.hypotest = original


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


def _grid_limit(model, data, scan: Mapping, cl: float, fit_cfg: Mapping | None, progress) -> LimitResult:
    import numpy as np
    import pyhf
    from pyhf.infer.intervals import upper_limits

    settings = {k: v for k, v in minimiser_settings(fit_cfg).items() if v is not None}
    grid = np.linspace(float(scan["low"]), float(scan["high"]), int(scan["points"]))
    with _uncaptured(progress) as report:
        counter = Progress(len(grid), report, label="Limit", unit="hypothesis tests", every=PROGRESS_EVERY)
        with guarded_minimisation("the limit scan"), _counted(upper_limits, counter):
            pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(verbose=0, **settings))
            observed, expected, (_, results) = upper_limits.upper_limit(
                data, model, scan=grid, level=1 - cl, return_results=True)
        counter.finish()
    edge = [float(x) for x in (observed, *expected) if float(x) >= grid[-1]]
    if edge:
        raise FitError(f"a limit reaches the end of limit.scan ({grid[-1]}): raise limit.scan.high")
    scan_out = {"poi_values": [float(x) for x in grid],
                "observed_CLs": [float(obs) for obs, _ in results],
                "expected_CLs": [[float(x) for x in exp] for _, exp in results]}
    return LimitResult(poi=model.config.poi_name, cl=cl, observed=float(observed),
                       expected=[float(x) for x in expected], scan=scan_out)


def to_cabinetry(result: LimitResult) -> Any:
    """The cabinetry LimitResults of ``result`` (for ``cabinetry.visualize.limit``)."""
    import numpy as np
    from cabinetry.fit.results_containers import LimitResults

    return LimitResults(observed_limit=result.observed, expected_limit=np.asarray(result.expected),
                        observed_CLs=np.asarray(result.scan["observed_CLs"]),
                        expected_CLs=np.asarray(result.scan["expected_CLs"]),
                        poi_values=np.asarray(result.scan["poi_values"]), confidence_level=result.cl)
