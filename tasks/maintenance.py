"""Store upkeep behind ``heirloom verify`` and ``heirloom gc``.

    heirloom verify --all                      rehash every object; quarantine and name damaged ones (exit 1)
    heirloom verify --config C --report-only   the objects of C's DAG; only name damaged ones
    heirloom gc --config C [--config D]        dry run: objects that no given config reaches
    heirloom gc --older-than 30 --delete       delete objects older than 30 days

An object is damaged when it is incomplete (``analysis.store.integrity``) or a file's
sha256 differs from its provenance record. ``gc`` removes whole objects (and the
``by-name`` links that pointed at them); it never touches input data.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from analysis.errors import HeirloomError
from analysis.store import integrity
from analysis.store import objects as store


@dataclass(frozen=True)
class Finding:
    entry: store.Entry
    problems: tuple[str, ...]


def all_entries(root: Path) -> list[store.Entry]:
    """Every object folder in the store (complete or not), sorted by family and key."""
    found = []
    for folder in sorted((root / "objects").glob("*/??/*")):
        if folder.is_dir() and not folder.is_symlink():
            try:
                found.append(store.entry(folder.parent.parent.name, folder.name, root))
            except HeirloomError:
                continue                      # not a store object: left alone
    return found


def final_tasks(config: str) -> list:
    """The tasks a config ends in (their DAGs cover everything it computes)."""
    import tasks
    from analysis.load import load_config

    cfg = load_config(config)
    if "likelihood" in cfg.data:
        return [tasks.ExclusionPlot(config=config)]
    external = bool(cfg.data.get("external_histograms"))
    finals = [tasks.ExternalHistograms(config=config) if external else tasks.Histograms(config=config),
              tasks.Plot(config=config)]
    if cfg.data.get("model"):
        fit = cfg.section("fit", default={})
        finals += [task(config=config) for task, switch in ((tasks.Ranking, "ranking"),
                                                             (tasks.Significance, "significance"))
                   if fit.get(switch, True)]
    if cfg.data.get("limit"):
        finals.append(tasks.Limit(config=config))
    if not cfg.data.get("external_histograms"):
        finals.append(tasks.AGCHistograms(config=config))
    return finals


def reachable(configs: list[str]) -> set[tuple[str, str]]:
    """(family, key) of every task in the DAGs of ``configs``."""
    keys: set[tuple[str, str]] = set()
    seen: set = set()

    def visit(task) -> None:
        ident = (task.task_family, task.label(), task.config)
        if ident in seen:
            return
        seen.add(ident)
        try:
            keys.add((task.task_family, task.key()))
        except HeirloomError as err:         # never guess: gc would delete what the config needs
            raise HeirloomError(f"cannot compute the key of {task.task_family}[{task.label()}] of {task.config} "
                                f"({err}); fix that first: nothing was removed or checked") from None
        for child in task.input_tasks().values():
            visit(child)

    for config in configs:
        for task in final_tasks(config):
            visit(task)
    return keys


def verify(root: Path, entries: list[store.Entry], *, quarantine: bool = False,
           progress=print) -> list[Finding]:
    """Rehash ``entries``; return the damaged ones (moved aside with ``quarantine``)."""
    findings = []
    for number, entry in enumerate(entries, 1):
        problems = integrity.damage(entry, recheck=True)
        if problems:
            findings.append(Finding(entry, tuple(problems)))
            where = f"; moved to {integrity.quarantine(entry, problems)}" if quarantine else ""
            progress(f"DAMAGED  {entry.family}/{entry.key}: {'; '.join(problems)}{where}")
        elif number % 200 == 0:
            progress(f"... {number}/{len(entries)} objects checked")
    return findings


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def collect(root: Path, *, keep: set | None, older_than_days: float | None) -> list[tuple[store.Entry, int]]:
    """Objects to remove: not in ``keep`` (when given) and older than the age (when given)."""
    cutoff = time.time() - older_than_days * 86400 if older_than_days is not None else None
    chosen = []
    for entry in all_entries(root):
        if keep is not None and (entry.family, entry.key) in keep:
            continue
        if cutoff is not None and entry.path.stat().st_mtime > cutoff:
            continue
        chosen.append((entry, folder_bytes(entry.path)))
    return chosen


def remove(root: Path, chosen: list[tuple[store.Entry, int]]) -> int:
    """Delete the chosen objects and the ``by-name`` links that pointed at them."""
    gone = {str(entry.path.resolve()) for entry, _ in chosen}
    for entry, _ in chosen:
        store.inside(root / "objects", entry.path)
        shutil.rmtree(entry.path)
    links = root / "by-name"
    for link in links.glob("*/*/*") if links.is_dir() else []:
        if link.is_symlink() and str(link.resolve()) in gone:
            link.unlink()
    return len(chosen)


def human(size: float) -> str:
    """``12.3 MB``.

    >>> human(1234567)
    '1.2 MB'
    """
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"
