"""What one job of a task family asks of a worker node: the config's ``resources:`` section.

``resources:`` maps task family names (``Skim``, ``Select``, ``Fit``, ...) and ``default``
(every family) to ``cpus``, ``memory``, ``gpus``, ``walltime`` and ``partition``; a family's
entry is merged over ``default`` key by key. Resources are result-neutral: they never enter a
task's content key, so changing them never reruns anything.

Units: memory is held in MiB (``memory_mb``) and every suffix is binary, as Slurm's ``--mem``
and HTCondor's ``request_memory`` read it: ``4GB`` = ``4G`` = ``4GiB`` = 4096 MiB,
``2000MB`` = 2000 MiB, ``512K`` = 0.5 MiB rounded up to 1 MiB. A bare integer is MiB.
Walltime is held in seconds; the config gives a string: ``"HH:MM:SS"``, ``"MM:SS"``,
``"D-HH:MM:SS"`` or a number of minutes (``"90"``, Slurm's reading of a bare number). An
unquoted ``45:00`` is refused: YAML 1.1 reads it as the base-60 integer 2700, which would
otherwise pass for 2700 minutes. :func:`parse_walltime` itself also takes an int of minutes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from analysis.config.schema import WALLTIME_EXPECTED

if TYPE_CHECKING:
    from analysis.config.model import AnalysisConfig

#: the entry of ``resources:`` that applies to every task family
DEFAULT = "default"

#: the task families a ``resources:`` entry may name (tests/test_batch_resources.py checks that
#: every task of ``tasks/`` is here: the library cannot import the tasks to ask them)
TASK_FAMILIES = ("AGCHistograms", "CLsScan", "ExclusionPlot", "ExternalHistograms", "Fit", "Generate",
                 "Histogram", "Histograms", "Limit", "LooseSelect", "Optimise", "Plot", "PublishedLikelihood",
                 "Ranking", "Select", "Significance", "Skim")

#: MiB per unit; the suffix may end in ``B`` or ``iB`` (``4G``, ``4GB``, ``4GiB``: all 4096 MiB)
_MEMORY_UNITS = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
_MEMORY = re.compile(r"^ *([0-9]+(?:\.[0-9]*)?|\.[0-9]+) *(?:([KMGT])(?:i?B)?)? *\Z", re.IGNORECASE)
_PARTITION = re.compile(r"^[A-Za-z0-9_.,+-]+\Z")
_MINUTES = re.compile(r"^ *([0-9]+) *\Z")
_MM_SS = re.compile(r"^ *([0-9]+):([0-9]{2}) *\Z")
_HH_MM_SS = re.compile(r"^ *(?:([0-9]+)-)?([0-9]+):([0-9]{2}):([0-9]{2}) *\Z")


@dataclass(frozen=True)
class Resources:
    """What one batch job asks for: cores, memory (MiB), GPUs, walltime (s), a partition.

    ``partition`` is the Slurm partition (``--partition``) and, on HTCondor, the accounting
    group (``accounting_group``); ``None`` leaves the site's default.

    >>> Resources(cpus=2, memory_mb=4096)
    Resources(cpus=2, memory_mb=4096, gpus=0, walltime_s=None, partition=None)
    """

    cpus: int = 1
    memory_mb: int | None = None
    gpus: int = 0
    walltime_s: int | None = None
    partition: str | None = None


def parse_memory(text: str | int) -> int:
    """MiB of a memory size: binary suffixes K, M, G, T (with ``B`` or ``iB``); an int is MiB.

    >>> parse_memory("4GB"), parse_memory("2000MB"), parse_memory("1.5GiB"), parse_memory(512)
    (4096, 2000, 1536, 512)
    >>> parse_memory("4 gigs")
    Traceback (most recent call last):
    ValueError: '4 gigs' is not a memory size like 4GB, 2000MB or 1.5GiB
    """
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise ValueError(f"{text!r} is not a memory size like 4GB, 2000MB or 1.5GiB")
    if isinstance(text, int):
        value, unit = float(text), "M"
    else:
        match = _MEMORY.match(text)
        if not match:
            raise ValueError(f"{text!r} is not a memory size like 4GB, 2000MB or 1.5GiB")
        value, unit = float(match.group(1)), (match.group(2) or "M").upper()
    mib = math.ceil(value * _MEMORY_UNITS[unit])
    if mib < 1:
        raise ValueError(f"{text!r}: memory must be at least 1 MiB")
    return mib


def parse_walltime(value: str | int) -> int:
    """Seconds of a walltime: ``HH:MM:SS``, ``MM:SS``, ``D-HH:MM:SS`` or an int of minutes.

    >>> parse_walltime("01:30:00"), parse_walltime("45:00"), parse_walltime(90), parse_walltime("1-00:00:00")
    (5400, 2700, 5400, 86400)
    >>> parse_walltime("1h")
    Traceback (most recent call last):
    ValueError: '1h' is not a walltime like 01:30:00 (HH:MM:SS), 45:00 (MM:SS) or 90 (minutes)
    """
    bad = ValueError(f"{value!r} is not a walltime like 01:30:00 (HH:MM:SS), 45:00 (MM:SS) or 90 (minutes)")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise bad
    if isinstance(value, int):
        seconds = value * 60
    elif match := _MINUTES.match(value):
        seconds = int(match.group(1)) * 60
    elif match := _MM_SS.match(value):
        minutes, secs = (int(g) for g in match.groups())
        if secs >= 60:
            raise bad
        seconds = minutes * 60 + secs
    elif match := _HH_MM_SS.match(value):
        days, hours, minutes, secs = (int(g or 0) for g in match.groups())
        if minutes >= 60 or secs >= 60:
            raise bad
        seconds = ((days * 24 + hours) * 60 + minutes) * 60 + secs
    else:
        raise bad
    if seconds < 1:
        raise ValueError(f"{value!r}: walltime must be positive")
    return seconds


def _parse_entry(key: str, value: Any) -> Any:
    """One ``resources`` value into its Resources field (ValueError when it is wrong)."""
    if key in ("cpus", "gpus"):
        least = 1 if key == "cpus" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{value!r}: '{key}' must be an integer >= {least}")
        return value
    if key == "memory":
        return parse_memory(value)
    if key == "walltime":
        if not isinstance(value, str):          # YAML made 45:00 the number 2700: refuse, do not guess
            raise ValueError(f"{value!r} is not {WALLTIME_EXPECTED}")
        return parse_walltime(value)
    if key == "partition":
        if not isinstance(value, str) or not _PARTITION.match(value):
            raise ValueError(f"{value!r} is not a partition name (letters, digits and _ . , + -)")
        return value
    raise ValueError(f"unknown key '{key}' (allowed here: cpus, gpus, memory, partition, walltime)")


_FIELD = {"cpus": "cpus", "memory": "memory_mb", "gpus": "gpus", "walltime": "walltime_s", "partition": "partition"}


def family_resources(cfg: AnalysisConfig | None, family: str) -> Resources:
    """The resources of ``family``: its entry merged over ``default``, key by key.

    No ``resources:`` section (or no ``cfg``) gives ``Resources()``. A wrong value is a
    ConfigError naming its key (``resources.Skim.memory``) and line.

    >>> family_resources(cfg, "Skim")
    Resources(cpus=1, memory_mb=None, gpus=0, walltime_s=None, partition=None)
    >>> from pathlib import Path
    >>> from analysis.config.model import AnalysisConfig
    >>> c = AnalysisConfig(Path("c.yaml"), {"resources": {"default": {"memory": "2GB", "walltime": "30"},
    ...                    "Fit": {"gpus": 1, "memory": "8GB", "partition": "gpu"}}}, {}, [])
    >>> family_resources(c, "Fit")
    Resources(cpus=1, memory_mb=8192, gpus=1, walltime_s=1800, partition='gpu')
    >>> family_resources(c, "Skim").memory_mb
    2048
    """
    section = (cfg.data.get("resources") if cfg is not None else None) or {}
    values: dict[str, Any] = {}
    for entry in (DEFAULT, family):
        spec = section.get(entry) or {}
        for key, value in spec.items():
            try:
                values[_FIELD.get(key, key)] = _parse_entry(key, value)
            except ValueError as err:
                assert cfg is not None
                raise cfg.error(str(err), "resources", entry, key) from None
    return Resources(**values)


def check_resources(cfg: AnalysisConfig, families: Iterable[str] = TASK_FAMILIES) -> None:
    """Parse every entry of ``resources:`` (a ConfigError names key and line of a bad one);
    an entry naming none of ``families`` (nor ``default``) is an error.

    >>> check_resources(cfg)
    >>> from pathlib import Path
    >>> from analysis.config.model import AnalysisConfig
    >>> c = AnalysisConfig(Path("c.yaml"), {"resources": {"Skimm": {"cpus": 2}}}, {}, [])
    >>> check_resources(c, ["Skim", "Select"])
    Traceback (most recent call last):
    analysis.errors.ConfigError: c.yaml: key 'resources.Skimm': unknown task family 'Skimm' (known: Select, Skim)
    """
    section = cfg.data.get("resources") or {}
    families = list(families)
    for entry in section:
        if entry != DEFAULT and entry not in families:
            raise cfg.error(f"unknown task family '{entry}' (known: {', '.join(sorted(families))})",
                            "resources", entry)
        family_resources(cfg, entry)


def format_walltime(seconds: int) -> str:
    """``[D-]HH:MM:SS`` (days when it reaches 24 hours, as Slurm writes it).

    >>> format_walltime(5400), format_walltime(93784)
    ('01:30:00', '1-02:03:04')
    """
    days, rest = divmod(seconds, 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{text}" if days else text


def sbatch_options(res: Resources) -> list[str]:
    """Slurm ``sbatch`` options asking for ``res`` (memory in MiB: ``--mem=4096M``).

    >>> sbatch_options(Resources(cpus=2, memory_mb=4096, gpus=1, walltime_s=3600, partition="gpu"))
    ['--cpus-per-task=2', '--mem=4096M', '--gres=gpu:1', '--time=01:00:00', '--partition=gpu']
    >>> sbatch_options(Resources())
    ['--cpus-per-task=1']
    """
    options = [f"--cpus-per-task={res.cpus}"]
    if res.memory_mb is not None:
        options.append(f"--mem={res.memory_mb}M")
    if res.gpus:
        options.append(f"--gres=gpu:{res.gpus}")
    if res.walltime_s is not None:
        options.append(f"--time={format_walltime(res.walltime_s)}")
    if res.partition:
        options.append(f"--partition={res.partition}")
    return options


def jdl_resources(res: Resources) -> dict[str, str]:
    """HTCondor submit-description commands asking for ``res``.

    ``request_memory`` is in MiB (HTCondor's default unit), ``+MaxRuntime`` in seconds (the
    job attribute many pools, e.g. CERN's, read as the requested walltime), ``partition``
    becomes ``accounting_group``.

    >>> jdl_resources(Resources(cpus=2, memory_mb=4096, gpus=1, walltime_s=3600, partition="cms.gpu"))
    {'request_cpus': '2', 'request_memory': '4096', 'request_gpus': '1', '+MaxRuntime': '3600', 'accounting_group': 'cms.gpu'}
    >>> jdl_resources(Resources())
    {'request_cpus': '1'}
    """
    lines = {"request_cpus": str(res.cpus)}
    if res.memory_mb is not None:
        lines["request_memory"] = str(res.memory_mb)
    if res.gpus:
        lines["request_gpus"] = str(res.gpus)
    if res.walltime_s is not None:
        lines["+MaxRuntime"] = str(res.walltime_s)
    if res.partition:
        lines["accounting_group"] = res.partition
    return lines


__all__ = ["DEFAULT", "TASK_FAMILIES", "Resources", "check_resources", "family_resources", "format_walltime",
           "jdl_resources", "parse_memory", "parse_walltime", "sbatch_options"]
