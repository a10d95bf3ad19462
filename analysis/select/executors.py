"""Where the event loop runs: coffea's iterative, futures and Dask executors.

The choice is result-neutral: it never enters a content address. A Dask cluster is
either reached at ``--scheduler ADDRESS`` or started locally once per process.
"""

from __future__ import annotations

import atexit
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

EXECUTORS = ("iterative", "futures", "dask")
_LOCAL_CLUSTERS: dict[tuple[str, str | int], tuple[Any, Any]] = {}   # key -> (cluster, client)


def dask_client(workers: int, scheduler: str | None = None) -> Any:
    """A ``distributed.Client``: to ``scheduler`` if given, else to a local cluster.

    >>> client = dask_client(2)                 # a local cluster, started once per process
    >>> len(client.scheduler_info()["workers"]), dask_client(2) is client
    (2, True)
    """
    from distributed import Client, LocalCluster

    if scheduler:
        key: tuple[str, str | int] = ("remote", scheduler)
        if key not in _LOCAL_CLUSTERS:
            _LOCAL_CLUSTERS[key] = (None, Client(scheduler, timeout="30s"))
        return _LOCAL_CLUSTERS[key][1]
    key = ("local", workers)
    if key not in _LOCAL_CLUSTERS:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
        _LOCAL_CLUSTERS[key] = (cluster, Client(cluster))
    return _LOCAL_CLUSTERS[key][1]


def forked_pool(max_workers: int) -> ProcessPoolExecutor:
    """A process pool whose workers are forked from this process, so they start with
    coffea and awkward already imported (a fresh interpreter per worker costs seconds)."""
    import multiprocessing

    return ProcessPoolExecutor(max_workers=max_workers, mp_context=multiprocessing.get_context("fork"))


@atexit.register
def _close_clusters() -> None:
    for cluster, client in _LOCAL_CLUSTERS.values():
        try:
            client.close()
            if cluster is not None:
                cluster.close()
        except Exception:
            pass
    _LOCAL_CLUSTERS.clear()


def make_executor(name: str, workers: int = 1, scheduler: str | None = None,
                  progress: bool | None = None) -> Any:
    """A coffea executor by name.

    >>> executor = make_executor("futures", workers=2)
    >>> type(executor).__name__, executor.workers, executor.pool is forked_pool
    ('FuturesExecutor', 2, True)
    """
    from coffea import processor

    if progress is None:
        progress = sys.stderr.isatty()
    if name == "iterative":
        return processor.IterativeExecutor(status=progress)
    if name == "futures":
        return processor.FuturesExecutor(workers=max(1, workers), pool=forked_pool, status=progress)
    if name == "dask":
        return processor.DaskExecutor(client=dask_client(max(1, workers), scheduler), status=progress)
    raise ValueError(f"unknown executor '{name}' (choose from {', '.join(EXECUTORS)})")
