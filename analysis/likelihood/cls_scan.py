"""CLs of every signal point of a published likelihood, spread over an executor.

For each point the signal patch is applied to the background-only workspace and
``pyhf.infer.hypotest`` gives the observed CLs and the expected band (-2, -1, 0, +1, +2
sigma) at the tested signal strength. The points run

* ``iterative``: one after the other, in this process;
* ``futures``: in a process pool forked from this process (the workspace is handed to
  each worker once, when it starts);
* ``dask``: on a ``dask.distributed`` cluster (``analysis.select.executors.dask_client``); the
  workspace is scattered to the workers once, each task carries one patch.

Every executor runs the same computation, so the executor enters no content address.
Each hypothesis test runs with numpy's and scipy's OpenBLAS on one thread
(``analysis/stats/blas.py``): with more threads the order of floating-point sums, and through
the minimiser CLs itself (by up to 4e-5), would depend on where a point ran.

>>> labels = likelihood.patchset["metadata"]["labels"]
>>> points = scan(likelihood.background_only, likelihood.patchset["patches"][2:4], ScanSettings(), labels)
... # doctest: +ELLIPSIS
CLsScan: 2/2 points (100 %) [##########], ... s in all
>>> [(p.name, round(p.cls_obs, 4), p.excluded) for p in points], points[0].values
([('sbottom_600_300', 0.0144, True), ('sbottom_800_100', 0.1299, False)], {'m_sbottom': 600, 'm_neutralino2': 300})
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple, Sequence

from analysis.errors import FitError
from analysis.progress import Progress, to_stdout

EXECUTORS = ("iterative", "futures", "dask")
CLS_LIMIT = 0.05                        # a point is excluded at 95 % CL when CLs < 0.05
SIGMAS = (-2, -1, 0, 1, 2)              # the expected band, in the order pyhf returns it
PROGRESS_EVERY = 10.0                   # seconds between progress lines


class ScanSettings(NamedTuple):
    """How each point is tested (all of it enters CLsScan's key)."""

    test_statistic: str = "qtilde"
    poi_value: float = 1.0
    calculator: str = "asymptotics"


@dataclass(frozen=True)
class PointCLs:
    """One signal point: its name, its label values, observed CLs and expected band."""

    name: str
    values: dict                        # label -> value, e.g. {"m_sbottom": 1300, ...}
    cls_obs: float
    cls_exp: tuple                      # CLs at -2, -1, 0, +1, +2 sigma

    @property
    def excluded(self) -> bool:
        return self.cls_obs < CLS_LIMIT

    @property
    def excluded_expected(self) -> bool:
        return self.cls_exp[2] < CLS_LIMIT

    def row(self) -> dict:
        """The point as a row of ``cls.json``: values, CLs, and the exclusion flags."""
        return {"name": self.name, **self.values, "cls_obs": self.cls_obs, "cls_exp": list(self.cls_exp),
                "excluded": self.excluded, "excluded_expected": self.excluded_expected}


class PointError(FitError):
    """The hypothesis test of one point failed; names the point."""


# ---- one point ---------------------------------------------------------------------------
def hypotest(background_only: dict, patch: dict, settings: ScanSettings) -> tuple:
    """(observed CLs, [expected CLs at -2..+2 sigma]) of one PatchSet entry.

    >>> observed, expected = hypotest(bkg, {"metadata": {"name": "p", "values": [1]}, "patch": ops}, ScanSettings())
    >>> round(observed, 3), [round(cls, 3) for cls in expected]    # +2 sigma is 0.80645: at 4 digits, a coin toss
    (0.224, [0.03, 0.088, 0.23, 0.5, 0.806])
    """
    import pyhf

    from analysis.stats.blas import single_thread

    workspace = pyhf.Workspace(pyhf.patchset.Patch(patch).apply(background_only))
    model = workspace.model()
    with single_thread():                   # the same bits on every executor (see analysis/stats/blas.py)
        observed, expected = pyhf.infer.hypotest(settings.poi_value, workspace.data(model), model,
                                                 test_stat=settings.test_statistic, calctype=settings.calculator,
                                                 return_expected_set=True)
    return float(observed), [float(value) for value in expected]


# ---- all points --------------------------------------------------------------------------
def scan(background_only: dict, patches: list, settings: ScanSettings, labels: Sequence[str], *,
         executor: str = "iterative", workers: int = 1, scheduler: str | None = None,
         report: Callable[[str], None] | None = None) -> list:
    """:class:`PointCLs` of every PatchSet entry of ``patches``, in their order; ``labels``
    name the entries' values. ``report`` receives progress lines (default: printed), at
    most every 10 s and at the end (:mod:`analysis.progress`: ``CLsScan: 12/40 points
    (30 %) [###.......], 6.0 s elapsed, about 14.0 s left``).

    >>> points = scan(bkg, patches[:3], ScanSettings(), ["m1", "m2"], executor="futures", workers=2)
    ... # doctest: +ELLIPSIS
    CLsScan: 3/3 points (100 %) [##########], ... s in all
    >>> [(p.name, p.values["m1"], p.excluded) for p in points]
    [('sbottom_1000_300', 1000, False), ('sbottom_1000_200', 1000, False), ('sbottom_1000_100', 1000, False)]
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor '{executor}' (choose from {', '.join(EXECUTORS)})")
    run = {"iterative": _run_iterative, "futures": _run_pool, "dask": _run_dask}[executor]
    progress = Progress(len(patches), report or to_stdout, label="CLsScan", unit="points", every=PROGRESS_EVERY)
    outcomes: dict = {}
    for index, outcome in run(background_only, patches, settings, max(1, workers), scheduler):
        outcomes[index] = outcome
        progress.tick()
    return [PointCLs(patch["metadata"]["name"], dict(zip(labels, patch["metadata"]["values"])),
                     outcomes[i][0], tuple(outcomes[i][1])) for i, patch in enumerate(patches)]


def _guarded(background_only: dict, patch: dict, settings: ScanSettings) -> tuple:
    try:
        return hypotest(background_only, patch, settings)
    except Exception as err:
        raise PointError(f"point '{patch['metadata']['name']}': {type(err).__name__}: {err}") from None


def _run_iterative(background_only, patches, settings, workers, scheduler) -> Iterator:
    for index, patch in enumerate(patches):
        yield index, _guarded(background_only, patch, settings)


_WORKER_BACKGROUND: dict = {}          # futures: the workspace of this pool worker


def _remember(background_only: dict) -> None:
    _WORKER_BACKGROUND["spec"] = background_only


def _pool_point(patch: dict, settings: ScanSettings) -> tuple:
    return _guarded(_WORKER_BACKGROUND["spec"], patch, settings)


def _run_pool(background_only, patches, settings, workers, scheduler) -> Iterator:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("fork")        # workers start with pyhf imported
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_remember,
                             initargs=(background_only,)) as pool:
        futures = {pool.submit(_pool_point, patch, settings): i for i, patch in enumerate(patches)}
        for future in as_completed(futures):
            yield futures[future], future.result()


def _run_dask(background_only, patches, settings, workers, scheduler) -> Iterator:
    from distributed import as_completed

    from analysis.select.executors import dask_client

    client = dask_client(workers, scheduler)
    workspace = client.scatter(background_only, broadcast=True, hash=False)   # sent once per worker
    run = uuid.uuid4().hex[:8]
    futures = [client.submit(_guarded, workspace, patch, settings, pure=False,
                             key=f"cls-{patch['metadata']['name']}-{run}") for patch in patches]
    index = {future.key: i for i, future in enumerate(futures)}
    try:
        for future in as_completed(futures):
            yield index[future.key], future.result()
    finally:
        client.cancel(futures + [workspace])


# ---- the table -----------------------------------------------------------------------------
def table(points: list, labels: Sequence[str], settings: ScanSettings) -> dict:
    """The content of ``cls.json``: settings, labels and one row per point.

    >>> table([], ["m"], ScanSettings())["cls_limit"]
    0.05
    """
    return {"labels": list(labels), "settings": dict(settings._asdict()), "cls_limit": CLS_LIMIT,
            "expected_sigmas": list(SIGMAS), "points": [p.row() for p in points]}


def write_table(content: dict, path: str | os.PathLike) -> None:
    with open(path, "w") as handle:
        json.dump(content, handle, indent=1)


def read_points(content: dict) -> list:
    """The :class:`PointCLs` of a ``cls.json`` content (inverse of :func:`table`)."""
    labels = content["labels"]
    return [PointCLs(row["name"], {label: row[label] for label in labels}, row["cls_obs"], tuple(row["cls_exp"]))
            for row in content["points"]]
