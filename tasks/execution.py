"""Where a run's work goes: luigi's global ``execution`` options (``--executor``,
``--cores``, ...), the process counts they give, and whether tracebacks are wanted.

A module of its own so that :mod:`tasks.progress`, which :mod:`tasks.base` imports, can
ask for them without importing the tasks.
"""

from __future__ import annotations

import os
import sys

import luigi
import luigi.interface


class execution(luigi.Config):  # noqa: N801  (luigi names config sections after the class)
    """Where the event loops run: ``--executor``, ``--scheduler`` (and luigi's ``--workers``);
    for Dask also ``--cluster local|slurm|htcondor``, ``--jobs N`` (batch jobs, one worker
    each) and ``--gpu-workers K`` (local workers that advertise ``GPU=1``): docs/dask-batch.md.

    Global options, not task parameters: they are result-neutral, so they never enter a
    content address, and ``law run`` accepts them for any task. Defaults can also be set
    in a ``[luigi_execution]`` section of law.cfg (law hands ``luigi_*`` sections to luigi).
    """

    use_cmdline_section = False
    #: shown in every task's --help (luigi lists other global options only with --help-all)
    shown = {"always_in_help": True}
    executor = luigi.ChoiceParameter(choices=("iterative", "futures", "dask"), default="iterative", **shown,
                                     description="where the event loop runs: iterative, futures or dask")
    scheduler = luigi.Parameter(default="", **shown, description="Dask scheduler address (tcp://host:port); "
                                "a local cluster when empty")
    cluster = luigi.ChoiceParameter(choices=("local", "slurm", "htcondor"), default="local", **shown,
                                    description="with --executor dask and no --scheduler: a local cluster, or "
                                    "Dask workers in slurm or htcondor batch jobs (dask-jobqueue)")
    jobs = luigi.IntParameter(default=0, **shown,
                              description="--cluster slurm|htcondor: batch jobs, one Dask worker each")
    cores = luigi.IntParameter(default=0, **shown, description="processes that one task spreads its work over: "
                               "the event loop's pool or local Dask cluster (default: --workers, which says how "
                               "many tasks run at once), the ranking's fits and the limit's hypothesis tests "
                               "(default: the cores this process may use)")
    gpu_workers = luigi.IntParameter(default=0, **shown, description="--cluster local: of the --workers, this many "
                                     "advertise the Dask resource GPU=1 (device: cuda steps run there)")
    debug = luigi.BoolParameter(default=False, **shown, description="print full tracebacks (also HEIRLOOM_DEBUG=1); "
                                "without it a failure is one line and the tracebacks go to the run's log")

    def dask_options(self) -> dict:
        """The Dask options for provenance (only with ``--executor dask``)."""
        if self.executor != "dask":
            return {}
        return {"cluster": "remote" if self.scheduler else self.cluster, "jobs": self.jobs or None,
                "gpu_workers": self.gpu_workers or None}


def debugging() -> bool:
    """Tracebacks wanted (``--debug`` or ``HEIRLOOM_DEBUG=1``): otherwise a failure is one
    line, and its traceback goes to the run's log (:mod:`tasks.progress`)."""
    if os.environ.get("HEIRLOOM_DEBUG", "") not in ("", "0") or "--debug" in sys.argv:
        return True
    try:
        return bool(execution().debug)
    except Exception:               # before luigi parsed its command line
        return False


def current_workers() -> int:
    """The worker count given to ``law run ... --workers N`` (luigi's own option): how many
    tasks run at once."""
    try:
        return max(1, int(luigi.interface.core().workers))
    except Exception:
        return 1


def pool_size() -> int:
    """How many processes one task spreads its work over (``--cores N``; default: the
    ``--workers`` count). ``--workers 1 --cores 2`` runs one task at a time on a pool of
    two, without luigi forking a process per task."""
    cores = _cores_option()
    return cores if cores > 0 else current_workers()


def fit_pool_size() -> int:
    """How many processes a statistics step spreads its independent fits over (the
    ranking's parameters, the limit's hypothesis tests): ``--cores N`` when given, else the
    larger of ``--workers`` and the cores this process may run on (its CPU affinity: a
    batch slot's cores, not the whole node's). Their results are the same bytes for any
    number of processes, and the fits are pure computation, so the default is to use the
    cores there are: ``law run Limit`` needs no option to use them.

    >>> fit_pool_size() >= 1
    True
    """
    cores = _cores_option()
    if cores > 0:
        return cores
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(current_workers(), available)


def _cores_option() -> int:
    """``--cores`` as given (0: not given, or before luigi parsed its command line)."""
    try:
        return int(execution().cores)
    except Exception:
        return 0
