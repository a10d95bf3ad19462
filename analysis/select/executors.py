"""Where the event loop runs: coffea's iterative, futures and Dask executors.

The choice is result-neutral: it never enters a content address. A Dask cluster is
reached at ``--scheduler ADDRESS``, started locally once per process, or made of batch jobs
(:mod:`analysis.select.dask_cluster`). With ``resources`` (a device step, e.g. an ML model
with ``device: cuda``), the Dask executor routes every chunk to a worker that advertises
them (:mod:`analysis.select.dask_routing`).
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from analysis.select.dask_cluster import ClusterSpec, close_clusters, dask_client

EXECUTORS = ("iterative", "futures", "dask")
__all__ = ["EXECUTORS", "ClusterSpec", "dask_client", "forked_pool", "make_executor", "run_pool"]


def forked_pool(max_workers: int) -> ProcessPoolExecutor:
    """A process pool whose workers are forked from this process, so they start with
    coffea and awkward already imported (a fresh interpreter per worker costs seconds)."""
    import multiprocessing

    return ProcessPoolExecutor(max_workers=max_workers, mp_context=multiprocessing.get_context("fork"))


#: the pools of this process, by size: forked once, used by every task of the run
_POOLS: dict[int, tuple[int, ProcessPoolExecutor]] = {}


def run_pool(workers: int) -> ProcessPoolExecutor:
    """The process pool of this run: forked at the first task that needs it and reused by
    every later one, so its workers pay their warm-up (imports, correction sets, plugins,
    coffea's first chunk) once per run, not once per task; shut down at the end of the
    run (:func:`shutdown_run_pools`) or when the process exits. Only for the main
    process: a task process that luigi forked (``--workers N``) ends with ``os._exit``, and
    workers it left behind would outlive it (:func:`make_executor` gives it a pool per call).

    >>> run_pool(2) is run_pool(2)
    True
    """
    import atexit
    import os

    owner, pool = _POOLS.get(workers, (0, None))
    if pool is None or owner != os.getpid() or getattr(pool, "_broken", False):
        pool = forked_pool(workers)
        if not _POOLS:
            atexit.register(shutdown_run_pools)
        _POOLS[workers] = (os.getpid(), pool)
    return pool


def shutdown_run_pools() -> None:
    """End the pools of :func:`run_pool` (law run does at the end of a run)."""
    import os

    for owner, pool in _POOLS.values():
        if owner == os.getpid():
            pool.shutdown(wait=True, cancel_futures=True)
    _POOLS.clear()


def _close_clusters() -> None:
    """Close the Dask clusters this process started (tasks/likelihood.py, forked workers)."""
    close_clusters()


def make_executor(name: str, workers: int = 1, scheduler: str | None = None,
                  progress: bool | None = None, *, cluster: ClusterSpec | None = None,
                  resources: dict | None = None) -> Any:
    """A coffea executor by name. For ``dask``: on the cluster of ``cluster`` (default: a
    local one of ``workers``, or ``scheduler``); with ``resources`` every chunk asks for them.
    None retries a failed chunk itself (coffea's default is three retries of any error):
    :func:`analysis.select.processor.run_selection` retries only transient errors.

    >>> executor = make_executor("futures", workers=2)
    >>> type(executor).__name__, executor.workers, executor.pool is run_pool(2), executor.retries
    ('FuturesExecutor', 2, True, 0)
    """
    from coffea import processor

    if progress is None:
        progress = sys.stderr.isatty()
    if name == "iterative":
        return processor.IterativeExecutor(status=progress, retries=0)
    if name == "futures":
        import multiprocessing

        forked_task = multiprocessing.parent_process() is not None         # luigi's --workers N: a pool per call
        pool = forked_pool if forked_task else run_pool(max(1, workers))
        return processor.FuturesExecutor(workers=max(1, workers), pool=pool, status=progress, retries=0)
    if name == "dask":
        client = dask_client(max(1, workers), scheduler, cluster)
        if resources is None:
            return processor.DaskExecutor(client=client, status=progress, retries=0)
        from analysis.select.dask_routing import RoutedDaskExecutor

        return RoutedDaskExecutor(client=client, status=progress, resources=resources or None, retries=0)
    raise ValueError(f"unknown executor '{name}' (choose from {', '.join(EXECUTORS)})")
