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
__all__ = ["EXECUTORS", "ClusterSpec", "dask_client", "forked_pool", "make_executor"]


def forked_pool(max_workers: int) -> ProcessPoolExecutor:
    """A process pool whose workers are forked from this process, so they start with
    coffea and awkward already imported (a fresh interpreter per worker costs seconds)."""
    import multiprocessing

    return ProcessPoolExecutor(max_workers=max_workers, mp_context=multiprocessing.get_context("fork"))


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
    >>> type(executor).__name__, executor.workers, executor.pool is forked_pool, executor.retries
    ('FuturesExecutor', 2, True, 0)
    """
    from coffea import processor

    if progress is None:
        progress = sys.stderr.isatty()
    if name == "iterative":
        return processor.IterativeExecutor(status=progress, retries=0)
    if name == "futures":
        return processor.FuturesExecutor(workers=max(1, workers), pool=forked_pool, status=progress, retries=0)
    if name == "dask":
        client = dask_client(max(1, workers), scheduler, cluster)
        if resources is None:
            return processor.DaskExecutor(client=client, status=progress, retries=0)
        from analysis.select.dask_routing import RoutedDaskExecutor

        return RoutedDaskExecutor(client=client, status=progress, resources=resources or None, retries=0)
    raise ValueError(f"unknown executor '{name}' (choose from {', '.join(EXECUTORS)})")
