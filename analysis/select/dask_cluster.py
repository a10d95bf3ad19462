"""Dask clusters for the event loop and the device steps: local, a given scheduler, or batch.

``--executor dask`` reaches a cluster in one of three ways (all result-neutral, never in a key):

- ``--scheduler tcp://HOST:PORT``: a cluster someone started (``dask scheduler``, and
  ``dask worker ADDRESS --resources GPU=1`` for a GPU-labelled worker);
- ``--cluster local`` (default): a local cluster of ``--workers N`` processes, of which
  ``--gpu-workers K`` advertise the resource ``GPU=1``;
- ``--cluster slurm|htcondor --jobs N``: N batch jobs, each a Dask worker, submitted through
  dask-jobqueue (:func:`analysis.batch.dask_clusters.make_cluster`) with the task family's
  ``resources:``; a job that has GPUs advertises them (``--resources GPU=k``).

A device step (work that declares ``device: cuda``) is submitted with the Dask resource
``{"GPU": 1}``, so the scheduler gives it only to a worker that advertises a GPU. The
annotation travels with ``Client.submit``/``Client.map`` straight into the scheduler's task
states: these calls send a low-level graph that no optimisation pass rewrites (a test reads
the restrictions back from the scheduler). Each device step records, on the worker that ran
it, the worker's name, address and advertised resources; :func:`collect_records` gathers them
for the provenance record.
"""

from __future__ import annotations

import atexit
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from analysis.errors import HeirloomError
from analysis.store.objects import store_root

CLUSTERS = ("local", "slurm", "htcondor")
#: the Dask resource a device (``cuda``) step asks for
GPU = {"GPU": 1}
#: the longest wait (s) for the first batch worker (``HEIRLOOM_DASK_WAIT`` changes it)
WAIT_S = 1800.0
#: seconds between progress lines while waiting for batch workers
SAY_EVERY = 15.0

_CLUSTERS: dict[tuple, tuple[Any, Any, dict]] = {}     # spec key -> (cluster, client, info)
_RECORDS: dict[str, list] = {}                          # on a worker: run id -> records of its device steps


@dataclass(frozen=True)
class ClusterSpec:
    """Which Dask cluster: ``kind`` local/slurm/htcondor, ``workers`` (local), ``gpu_workers``
    (local workers that advertise ``GPU=1``), ``scheduler`` (an existing cluster), ``jobs``
    and ``resources`` (batch: how many jobs and what one job asks for).

    >>> ClusterSpec(kind="slurm", jobs=4).key(), ClusterSpec(workers=2, gpu_workers=1).key()
    (('slurm', 4, None), ('local', 2, 1))
    """

    kind: str = "local"
    workers: int = 1
    scheduler: str | None = None
    jobs: int = 0
    gpu_workers: int = 0
    resources: Any = None

    def key(self) -> tuple:
        if self.scheduler:
            return ("remote", self.scheduler)
        if self.kind == "local":
            return ("local", self.workers, self.gpu_workers)
        return (self.kind, self.jobs, self.resources)


def dask_client(workers: int = 1, scheduler: str | None = None, spec: ClusterSpec | None = None) -> Any:
    """A ``distributed.Client`` to the cluster of ``spec`` (by default a local cluster of
    ``workers``, or ``scheduler`` if given), started once per process.

    >>> client = dask_client(spec=ClusterSpec(workers=2, gpu_workers=1))
    >>> sorted(w["name"] for w in cluster_record(client)["workers"])
    ['cpu-0', 'gpu-0']
    >>> [w["resources"] for w in cluster_record(client)["workers"] if w["name"] == "gpu-0"]
    [{'GPU': 1}]
    """
    spec = spec or ClusterSpec(workers=workers, scheduler=scheduler)
    key = spec.key()
    if key not in _CLUSTERS:
        t0 = time.monotonic()
        if spec.scheduler:
            from distributed import Client

            cluster, client = None, Client(spec.scheduler, timeout="30s")
            startup = time.monotonic() - t0
        elif spec.kind == "local":
            cluster, client = _start_local(spec)
            startup = time.monotonic() - t0
        else:
            cluster, client = _start_batch(spec)
            startup = _first_worker(client, spec, t0)
        _CLUSTERS[key] = (cluster, client, {"startup_s": round(startup, 3)})
    return _CLUSTERS[key][1]


def _start_local(spec: ClusterSpec) -> tuple[Any, Any]:
    """A local cluster; with ``gpu_workers`` some of its workers advertise ``GPU=1``."""
    from distributed import Client, LocalCluster, Nanny, Scheduler, SpecCluster

    total = max(1, spec.workers, spec.gpu_workers)
    cluster: Any
    if not spec.gpu_workers:
        cluster = LocalCluster(n_workers=total, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
        return cluster, Client(cluster)
    options = {"nthreads": 1, "silence_logs": 40, "dashboard": False}
    workers = {f"gpu-{i}": {"cls": Nanny, "options": {**options, "resources": dict(GPU)}}
               for i in range(spec.gpu_workers)}
    workers.update({f"cpu-{i}": {"cls": Nanny, "options": dict(options)} for i in range(total - spec.gpu_workers)})
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": "127.0.0.1:0", "dashboard": False,
                                               "host": "127.0.0.1"}}
    cluster = SpecCluster(workers=workers, scheduler=scheduler, silence_logs=40)
    client = Client(cluster)
    client.wait_for_workers(total, timeout=120)
    return cluster, client


def _start_batch(spec: ClusterSpec) -> tuple[Any, Any]:
    """``spec.jobs`` batch jobs through dask-jobqueue; returns once they are submitted."""
    from distributed import Client

    from analysis.batch.dask_clusters import make_cluster

    if spec.jobs < 1:
        raise HeirloomError(f"--cluster {spec.kind} needs --jobs N (how many batch jobs run Dask workers)")
    logs = store_root() / "batch" / "dask"          # the jobs' logs, not the working directory
    logs.mkdir(parents=True, exist_ok=True)
    cluster = make_cluster(spec.kind, spec.resources, 0, log_directory=str(logs))
    cluster.scale(jobs=spec.jobs)
    return cluster, Client(cluster)


def _first_worker(client: Any, spec: ClusterSpec, t0: float) -> float:
    """Seconds from the submission of the jobs until the first worker connected; a progress
    line every SAY_EVERY s; a HeirloomError when none comes within ``HEIRLOOM_DASK_WAIT`` s."""
    limit = float(os.environ.get("HEIRLOOM_DASK_WAIT", WAIT_S))
    said = t0
    while True:
        connected = len(client.scheduler_info()["workers"])
        waited = time.monotonic() - t0
        if connected:
            print(f"Dask[{spec.kind}]: first worker connected after {waited:.0f} s "
                  f"({connected}/{spec.jobs} jobs running)", flush=True)
            return waited
        if waited > limit:
            raise HeirloomError(f"no Dask worker connected within {limit:.0f} s of submitting {spec.jobs} "
                                f"{spec.kind} jobs (still queued? HEIRLOOM_DASK_WAIT sets the limit)")
        if time.monotonic() - said >= SAY_EVERY:
            said = time.monotonic()
            print(f"Dask[{spec.kind}]: waiting for workers: 0/{spec.jobs} connected after {waited:.0f} s "
                  f"(up to {limit:.0f} s)", flush=True)
        time.sleep(1.0)


def cluster_record(client: Any) -> dict:
    """What provenance says about a cluster: its startup time (s; for batch jobs from the
    submission of the jobs to the first worker) and its workers with their advertised resources.

    >>> record = cluster_record(dask_client(spec=ClusterSpec(workers=2, gpu_workers=1)))
    >>> record["startup_s"] > 0, sorted((w["name"], w["resources"]) for w in record["workers"])
    (True, [('cpu-0', {}), ('gpu-0', {'GPU': 1})])
    """
    info = next((i for _, c, i in _CLUSTERS.values() if c is client), {})
    workers = [{"name": str(w.get("name")), "address": address, "resources": dict(w.get("resources") or {})}
               for address, w in sorted(client.scheduler_info()["workers"].items())]
    return {**info, "workers": workers}


def gpu_addresses(client: Any) -> list:
    """Addresses of the workers that advertise at least the resources of :data:`GPU`.

    >>> client = dask_client(spec=ClusterSpec(workers=2, gpu_workers=1))
    >>> [client.scheduler_info()["workers"][a]["name"] for a in gpu_addresses(client)]
    ['gpu-0']
    """
    return [address for address, w in client.scheduler_info()["workers"].items()
            if all((w.get("resources") or {}).get(k, 0) >= v for k, v in GPU.items())]


def device_resources(client: Any, what: str) -> dict | None:
    """:data:`GPU` when some worker advertises it; else ``None`` and one warning line (the
    step runs on any worker, with the numpy fallback: same results, no GPU).

    >>> device_resources(dask_client(spec=ClusterSpec(workers=2, gpu_workers=1)), "Histogram[ttbar]")
    {'GPU': 1}
    """
    if gpu_addresses(client):
        return dict(GPU)
    print(f"heirloom: WARNING: {what} asks for device cuda but no Dask worker advertises GPU=1 "
          "(dask worker --resources GPU=1, or --gpu-workers N): running it on any worker", flush=True)
    return None


class DeviceStep:
    """A function run as a device step: on the worker it records which worker ran it
    (:func:`collect_records` gathers the records of a run).

    >>> DeviceStep(abs, "probe", new_run())(-2)          # outside Dask: the record is empty
    2
    """

    def __init__(self, function: Callable, step: str, run: str):
        self.function, self.step, self.run = function, step, run

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.function(*args, **kwargs)
        _RECORDS.setdefault(self.run, []).append({"step": self.step, "item": _describe(args), **where()})
        return out


def where() -> dict:
    """The worker this runs on: name, address, host and advertised resources (empty outside Dask).

    >>> where()
    {}
    """
    import socket

    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return {}
    return {"worker": str(worker.name), "address": worker.address, "host": socket.gethostname(),
            "resources": dict(worker.state.total_resources)}


def _describe(args: tuple) -> str | None:
    """A short name of a coffea work item (``folder/file#entrystart``), else ``None``. coffea's Dask
    executor passes ``(item, processor)`` when it broadcasts the processor (heavy_input)."""
    item: Any = args[0] if args else None
    if isinstance(item, tuple) and item:
        item = item[0]
    if hasattr(item, "filename") and hasattr(item, "entrystart"):
        folder, name = os.path.split(str(item.filename))
        return f"{os.path.basename(folder)}/{name}#{int(item.entrystart)}"
    return None


def _take_records(run: str) -> list:
    return _RECORDS.pop(run, [])


def new_run() -> str:
    """A fresh id for the records of one run of device steps.

    >>> len(new_run()), new_run() != new_run()
    (32, True)
    """
    return uuid.uuid4().hex


def collect_records(client: Any, run: str) -> list:
    """The records of run ``run``'s device steps, from every worker (removed there).

    >>> client, run = dask_client(spec=ClusterSpec(workers=2, gpu_workers=1)), new_run()
    >>> [f.result() for f in client.map(DeviceStep(abs, "probe", run), [-1, -2], resources=GPU)]
    [1, 2]
    >>> [(r["step"], r["worker"]) for r in collect_records(client, run)]
    [('probe', 'gpu-0'), ('probe', 'gpu-0')]
    """
    found = client.run(_take_records, run, on_error="ignore")
    return sorted((r for records in found.values() for r in records), key=lambda r: (r["step"], str(r["item"])))


def run_on_device(client: Any, function: Callable, *args: Any, step: str, what: str) -> tuple[Any, list]:
    """``function(*args)`` on a GPU-labelled worker (any worker when there is none, with a
    warning); returns its result and the record of the worker that ran it.

    >>> client = dask_client(spec=ClusterSpec(workers=2, gpu_workers=1))
    >>> result, records = run_on_device(client, abs, -3, step="probe", what="abs")
    >>> result, [(r["worker"], r["resources"]) for r in records]
    (3, [('gpu-0', {'GPU': 1})])
    """
    run = new_run()
    future = client.submit(DeviceStep(function, step, run), *args, resources=device_resources(client, what),
                           pure=False)
    try:
        return future.result(), collect_records(client, run)
    finally:
        future.release()


@atexit.register
def close_clusters() -> None:
    """Close every cluster and client this process started."""
    for cluster, client, _ in _CLUSTERS.values():
        try:
            client.close()
            if cluster is not None:
                cluster.close()
        except Exception:
            pass
    _CLUSTERS.clear()
