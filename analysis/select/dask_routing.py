"""coffea's Dask executor with its chunks routed to GPU-labelled workers.

coffea's ``DaskExecutor`` submits the chunks with ``Client.map`` and merges the outputs with
further ``Client.map`` calls (a tree reduction); it has no way to pass Dask resources. Rather
than copy its ``__call__``, :class:`RoutedDaskExecutor` hands it a client that adds
``resources=`` to the map of the chunks (not to the merges, which need no GPU) and wraps the
chunk function in a :class:`~analysis.select.dask_cluster.DeviceStep`, so that every worker
records which chunks it ran. Imported only when a device step runs on Dask (it imports coffea).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from coffea.processor import DaskExecutor
from coffea.processor.executor import _reduce

from analysis.select.dask_cluster import DeviceStep, collect_records, new_run


class RoutingClient:
    """A ``distributed.Client`` whose ``map`` of anything but coffea's merge step carries
    ``resources`` and runs as a recorded device step; everything else is the client's own.

    >>> from analysis.select.dask_cluster import GPU, ClusterSpec, dask_client, new_run
    >>> client = dask_client(spec=ClusterSpec(workers=2, gpu_workers=1))
    >>> futures = RoutingClient(client, GPU, "probe", new_run()).map(abs, [-1, -2])
    >>> [f.result() for f in futures], RoutingClient(client, GPU, "probe", "x").scheduler is client.scheduler
    ([1, 2], True)
    """

    def __init__(self, client: Any, resources: dict | None, step: str, run: str):
        self._client, self._resources, self._step, self._run = client, resources, step, run

    def map(self, function: Callable, *iterables: Any, **kwargs: Any) -> Any:
        if not isinstance(function, _reduce):
            function = DeviceStep(function, self._step, self._run)
            if self._resources:
                kwargs["resources"] = dict(self._resources)
        return self._client.map(function, *iterables, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@dataclass
class RoutedDaskExecutor(DaskExecutor):
    """A ``DaskExecutor`` whose chunks ask for ``resources`` (e.g. ``{"GPU": 1}``); after a
    call, ``records`` lists the worker that ran each chunk (shared with coffea's copies).

    >>> from analysis.select.dask_cluster import GPU, ClusterSpec, dask_client
    >>> executor = RoutedDaskExecutor(client=dask_client(spec=ClusterSpec(workers=2, gpu_workers=1)),
    ...                               status=False, resources=GPU)
    >>> executor([-1, -2, -3], abs, None), sorted({r["worker"] for r in executor.records})
    ((6, 0), ['gpu-0'])
    """

    client: Any = None
    resources: dict | None = None
    step: str = "select_chunk"
    records: list = field(default_factory=list)

    def __call__(self, items: Any, function: Callable, accumulator: Any) -> Any:
        client: Any = self.client
        run = new_run()
        self.client = RoutingClient(client, self.resources, self.step, run)
        try:
            return super().__call__(items, function, accumulator)
        finally:
            self.client = client
            self.records.extend(collect_records(client, run))
