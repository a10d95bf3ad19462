"""Skims spread over the run's process pool (``--executor futures --cores N``).

luigi runs the tasks of one ``law run`` one after another in its worker, so the Skims
would use one core while the pool of ``--cores N`` waits for Select. Instead, the first
Skim that runs hands every Skim that the run scheduled (:func:`expect`; outside ``law run``
the chunks of its dataset), the largest first, to the run's pool
(:func:`analysis.select.executors.run_pool`); each chunk is skimmed into a folder of
its own under ``<store>/tmp`` (named like a staging folder, so a crash leaves nothing that
:func:`analysis.store.locks.clean_stale_staging` does not remove). When luigi reaches a Skim,
it takes its chunk's files (:func:`take`) and commits them as it commits one it computed:
same bytes, same key, same provenance; only where the work ran differs.

A chunk whose job failed is skimmed again in the task's own process, so an error (a
corrupt input file) is reported as it is without the pool, naming the file.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
import uuid
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from analysis.io.budget import peak_mb, reset_peak
from analysis.load import load_config

SKIM_FILE, STATS_FILE = "skim.root", "stats.json"      # or view.json instead of skim.root


@dataclass(frozen=True)
class SkimJob:
    """Everything one chunk's skim needs, as plain values (it crosses to a pool worker).

    ``preselection`` and ``event_weight``: the config key paths of those expressions (None:
    absent); the worker compiles them from ``config``. ``may_refer``: the chunk may be
    recorded as a view of its input instead of a copy when every event passes
    (:func:`analysis.io.skim.skim_chunk`).
    """

    config: str
    source: str
    tree: str
    branches: tuple
    start: int
    stop: int
    format: str
    preselection: tuple | None
    event_weight: tuple | None
    may_refer: bool = False


def run_job(cfg: Any, job: SkimJob, outdir: Path) -> dict:
    """Skim one chunk into ``outdir`` (``skim.root`` and ``stats.json``); returns the
    stats with the seconds it took.

    >>> job = SkimJob(str(cfg.path), nano, "Events", ("nJet", "Jet_pt"), 0, 500, "root", None, None)
    >>> stats = run_job(cfg, job, outdir)
    >>> stats["events_in"], stats["events_out"], sorted(p.name for p in outdir.iterdir())
    (500, 500, ['skim.root', 'stats.json'])
    """
    from analysis.io.columns import expression_branches
    from analysis.io.skim import fast_to_reread, skim_chunk

    t0 = time.time()
    reset_peak()
    paths = [path for path in (job.preselection, job.event_weight) if path]
    preselection = cfg.expression(*job.preselection) if job.preselection else None
    weight = cfg.expression(*job.event_weight) if job.event_weight else None
    refer = job.may_refer and fast_to_reread(job.source, job.tree, list(job.branches))
    stats = skim_chunk(job.source, job.tree, list(job.branches), job.start, job.stop, preselection, weight,
                       outdir / SKIM_FILE, format=job.format,
                       decide_with=expression_branches(cfg, paths, job.branches) if refer else None)
    (outdir / STATS_FILE).write_text(json.dumps(stats.__dict__, indent=1))
    return {**asdict(stats), "seconds": time.time() - t0, "peak_mb": peak_mb()}


_CONFIGS: dict[str, Any] = {}


def _in_worker(job: SkimJob, outdir: str) -> dict:
    """A pool worker's share: the config compiled once per worker (inherited when the pool
    was forked after it was read)."""
    cfg = _CONFIGS.get(job.config)
    if cfg is None:
        cfg = _CONFIGS[job.config] = load_config(job.config)
    return run_job(cfg, job, Path(outdir))


#: key -> (the folder its worker writes, its future), for the chunks handed to the pool
_PENDING: dict[str, tuple[Path, Future]] = {}
#: the Skim tasks this run will run (luigi's scheduling, :mod:`tasks.progress`)
_EXPECTED: list = []


def expect(task: Any) -> None:
    """Note a task that this run schedules to run: its Skims go to the pool together."""
    if task.task_family == "Skim":
        _EXPECTED.append(task)


def expected() -> list:
    """The Skim tasks this run scheduled (empty when it was not scheduled by ``law run``)."""
    return list(_EXPECTED)


def usable(executor: str, workers: int) -> bool:
    """Whether Skims go to the run's pool: ``--executor futures`` with more than one
    process, in law's main process (a task process luigi forked has no run pool).

    >>> usable("futures", 2), usable("futures", 1), usable("iterative", 2)
    (True, False, False)
    """
    return executor == "futures" and workers > 1 and multiprocessing.parent_process() is None


def start(chunks: list, workers: int, configs: dict) -> int:
    """Hand the chunks ``[(entry, job), ...]`` (a Skim's store entry and its SkimJob) that
    are not handed over yet to the run's pool of ``workers``; returns how many were.
    ``configs``: ``{path: loaded config}`` of the jobs' configs, which the pool's workers
    inherit when it forks here (a run can hold the Skims of a config and of its fork)."""
    from analysis.io import skim  # noqa: F401  (imported before the pool forks: its workers inherit it)
    from analysis.select.executors import run_pool

    new = sorted([(entry, job) for entry, job in chunks if entry.key not in _PENDING],
                 key=lambda pair: pair[1].start - pair[1].stop)      # the largest first: they end together
    if not new:
        return 0
    _CONFIGS.update(configs)
    pool = run_pool(workers)
    for entry, job in new:
        folder = entry.root / "tmp" / f"{entry.family}-{entry.key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        folder.mkdir(parents=True)
        _PENDING[entry.key] = (folder, pool.submit(_in_worker, job, str(folder)))
    return len(new)


def handed(key: str) -> bool:
    """Whether the chunk ``key`` was handed to the pool (and not taken yet)."""
    return key in _PENDING


def take(key: str, outdir: Path) -> dict | None:
    """The stats of the chunk ``key`` once its worker is done, its files moved into
    ``outdir``; None when it was not handed over or its job failed (skim it here)."""
    folder, future = _PENDING.pop(key, (None, None))
    if future is None:
        return None
    try:
        stats = future.result()
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        return None
    for path in folder.iterdir():
        path.rename(outdir / path.name)
    folder.rmdir()
    return stats


def discard() -> None:
    """Forget the chunks nobody took (a run that stopped early) and remove their folders."""
    for folder, future in _PENDING.values():
        future.cancel()
        shutil.rmtree(folder, ignore_errors=True)
    _PENDING.clear()
    _EXPECTED.clear()
