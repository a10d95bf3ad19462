"""Dask workers as batch jobs (dask-jobqueue): a SLURMCluster or HTCondorCluster whose jobs
ask for a task family's :class:`~analysis.batch.resources.Resources`.

One job is one Dask worker process with ``cpus`` threads. GPUs become a worker resource
(``--resources GPU=<n>``), so a task submitted with ``resources={"GPU": 1}`` only lands on a
worker that has one, and the job asks the batch system for them (``--gres=gpu:<n>`` on Slurm,
``request_gpus = <n>`` on HTCondor). Without ``memory`` a job asks for 2 GiB per core; without
``walltime`` dask-jobqueue's configured default applies (``jobqueue.<kind>.walltime``).
"""

from __future__ import annotations

from typing import Any

import dask.config

from analysis.batch.resources import Resources, format_walltime, jdl_resources

#: the batch systems :func:`make_cluster` knows
KINDS = ("slurm", "htcondor")
#: MiB of memory per core when ``resources:`` gives none
DEFAULT_MEMORY_PER_CORE_MB = 2048
#: disk per HTCondor job when neither the caller nor Dask's config (jobqueue.htcondor.disk) gives one
DEFAULT_DISK = "4GiB"


def cluster_options(kind: str, res: Resources) -> dict[str, Any]:
    """The keyword arguments of dask-jobqueue's cluster class of ``kind`` for ``res``.

    >>> opts = cluster_options("slurm", Resources(cpus=4, memory_mb=8192, gpus=1, walltime_s=3600, partition="gpu"))
    >>> opts["cores"], opts["memory"], opts["walltime"], opts["queue"], opts["job_extra_directives"]
    (4, '8192MiB', '01:00:00', 'gpu', ['--gres=gpu:1'])
    >>> cluster_options("htcondor", Resources(gpus=2, walltime_s=600))["job_extra_directives"]
    {'request_gpus': '2', 'MY.MaxRuntime': '600'}
    """
    if kind not in KINDS:
        raise ValueError(f"unknown cluster kind {kind!r} (known: {', '.join(KINDS)})")
    memory_mb = res.memory_mb if res.memory_mb is not None else DEFAULT_MEMORY_PER_CORE_MB * res.cpus
    options: dict[str, Any] = {"cores": res.cpus, "processes": 1, "memory": f"{memory_mb}MiB"}
    if res.gpus:
        options["worker_extra_args"] = ["--resources", f"GPU={res.gpus}"]
    if kind == "slurm":
        options["job_mem"] = f"{memory_mb}M"        # MiB, as sbatch_options writes it
        options["job_extra_directives"] = [f"--gres=gpu:{res.gpus}"] if res.gpus else []
        if res.walltime_s is not None:
            options["walltime"] = format_walltime(res.walltime_s)
        if res.partition:
            options["queue"] = res.partition
        return options
    # the submit commands of jdl_resources, but cores and memory, which HTCondorCluster sets itself
    options["job_extra_directives"] = {key.replace("+", "MY.", 1): value for key, value in jdl_resources(res).items()
                                       if key not in ("request_cpus", "request_memory")}
    if dask.config.get("jobqueue.htcondor.disk", None) is None:     # dask-jobqueue requires one
        options["disk"] = DEFAULT_DISK
    return options


def make_cluster(kind: str, res: Resources, jobs: int, **kw: Any) -> Any:
    """A started ``SLURMCluster`` or ``HTCondorCluster`` whose jobs ask for ``res``.

    ``kw`` goes to the cluster class and wins over what ``res`` sets (e.g. ``disk``,
    ``log_directory``, ``scheduler_options``, ``job_script_prologue``). With ``jobs > 0`` the
    cluster is scaled to that many jobs (``cluster.scale(jobs=jobs)``, which submits them);
    ``jobs=0`` submits nothing yet. The caller closes the cluster (``with`` or ``.close()``).

    >>> cluster_options("htcondor", Resources())["disk"]
    '4GiB'
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 0:
        raise ValueError(f"jobs {jobs!r}: a number of batch jobs >= 0")
    options = cluster_options(kind, res)
    options.update(kw)
    import dask_jobqueue

    cls = dask_jobqueue.SLURMCluster if kind == "slurm" else dask_jobqueue.HTCondorCluster
    cluster: Any = cls(**options)
    if jobs:
        cluster.scale(jobs=jobs)
    return cluster
