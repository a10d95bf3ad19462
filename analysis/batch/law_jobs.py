"""Resources into law's job configs (``law.contrib.htcondor`` and ``law.contrib.slurm``).

law builds the job file itself (``HTCondorJobFileFactory`` / ``SlurmJobFileFactory``) from a
config object that a workflow hands to its hook ``htcondor_job_config(self, config, job_num,
branches)`` (``slurm_job_config`` for Slurm) and expects back. Its ``custom_content`` is a
list of ``(key, value)`` pairs written after law's own lines: ``key = value`` in a JDL,
``#SBATCH --key=value`` in a Slurm script. Slurm's partition has an attribute of its own,
``config.partition`` (``#SBATCH --partition=...``; law's ``--slurm-partition`` sets it first).

These functions only touch those attributes: the library never imports law's tasks.
"""

from __future__ import annotations

from typing import Any

from analysis.batch.resources import Resources, jdl_resources, sbatch_options


def _set_content(config: Any, lines: list[tuple[str, str]]) -> None:
    """Put ``lines`` into ``config.custom_content``, replacing earlier lines of the same keys."""
    keys = {key.lower() for key, _ in lines}
    kept = [item for item in (config.custom_content or [])
            if not (isinstance(item, tuple) and len(item) == 2 and str(item[0]).lower() in keys)]
    config.custom_content = kept + lines


def htcondor_job_config(config: Any, res: Resources) -> Any:
    """Add the submit commands of ``res`` to law's HTCondor job config; returns ``config``.

    >>> from types import SimpleNamespace
    >>> c = SimpleNamespace(custom_content=[("initialdir", "/jobs"), ("request_cpus", "8")])
    >>> htcondor_job_config(c, Resources(cpus=2, gpus=1)).custom_content
    [('initialdir', '/jobs'), ('request_cpus', '2'), ('request_gpus', '1')]
    """
    _set_content(config, list(jdl_resources(res).items()))
    return config


def slurm_job_config(config: Any, res: Resources) -> Any:
    """Add the sbatch options of ``res`` to law's Slurm job config; returns ``config``.

    The partition goes to ``config.partition`` unless one is set there already (law's
    ``--slurm-partition`` on the command line wins over the config file).

    >>> from types import SimpleNamespace
    >>> c = SimpleNamespace(custom_content=[("chdir", "/jobs")], partition=None)
    >>> c = slurm_job_config(c, Resources(cpus=4, memory_mb=8192, walltime_s=7200, partition="gpu"))
    >>> c.custom_content, c.partition
    ([('chdir', '/jobs'), ('cpus-per-task', '4'), ('mem', '8192M'), ('time', '02:00:00')], 'gpu')
    """
    lines = []
    for option in sbatch_options(res):
        key, value = option[2:].split("=", 1)
        if key == "partition":
            if not getattr(config, "partition", None):
                config.partition = value
            continue
        lines.append((key, value))
    _set_content(config, lines)
    return config
