"""What a report is made of: plain data that the tasks layer gathers from the store.

A :class:`TaskEntry` is one task of the analysis's DAG: its family and label, its status
(``complete``, ``not run`` or ``damaged``), its key, the provenance record of its object
(when there is one) or the components its key would be made of (when it has not run),
and the files of its object that the report may show (:func:`shown`), in ``folder``.

>>> entry = TaskEntry("Fit", "all", NOT_RUN, key="ab" * 20)
>>> entry.ident, entry.status
(('Fit', 'all'), 'not run')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from analysis.errors import HeirloomError

COMPLETE, NOT_RUN, DAMAGED = "complete", "not run", "damaged"
STATUSES = (COMPLETE, NOT_RUN, DAMAGED)
#: files a report shows, by suffix, and the largest it reads (bytes)
SHOWN = {".png": 20_000_000, ".svg": 5_000_000, ".md": 2_000_000, ".csv": 2_000_000, ".tex": 2_000_000,
         ".json": 1_000_000}


@dataclass(frozen=True)
class TaskEntry:
    """One task of the DAG, as the report shows it."""

    family: str
    label: str
    status: str
    key: str | None = None
    problem: str | None = None                      # why damaged, or why the key is unknown
    requires: tuple[tuple[str, str], ...] = ()      # (family, label) of its inputs
    provenance: Mapping[str, Any] | None = None     # the object's record (complete, or damaged but readable)
    components: Mapping[str, Any] | None = None     # what its key is made of now (also when not run)
    folder: Path | None = None                      # where ``files`` are
    files: tuple[str, ...] = ()                     # output names the report may read (checked)
    note: str | None = None                         # e.g. a remote object that was not downloaded

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise HeirloomError(f"{self.family}[{self.label}]: unknown status {self.status!r} "
                                f"(one of {', '.join(STATUSES)})")
        if self.files and self.folder is None:
            raise HeirloomError(f"{self.family}[{self.label}]: files to show but no folder")

    @property
    def ident(self) -> tuple[str, str]:
        return (self.family, self.label)

    @property
    def title(self) -> str:
        return f"{self.family}[{self.label}]"


@dataclass(frozen=True)
class Report:
    """An analysis's report: where it comes from, and its tasks (dependencies first)."""

    analysis: str
    config: str
    store: str
    created: str
    tasks: tuple[TaskEntry, ...]
    families: tuple[str, ...] = ()                  # family order (stages); default: first appearance
    notes: tuple[str, ...] = field(default=())
    description: str = ""                           # the config's ``description``

    def family_order(self) -> list[str]:
        """Families in stage order, then any not named there, in order of appearance.

        >>> Report("a", "c.yaml", "store", "now", (TaskEntry("Fit", "all", NOT_RUN),), ("Skim",)).family_order()
        ['Skim', 'Fit']
        """
        order = list(self.families)
        order += [t.family for t in self.tasks if t.family not in order]
        return list(dict.fromkeys(order))

    def counts(self, family: str | None = None) -> dict[str, int]:
        """How many tasks (of ``family``, or all) have each status.

        >>> Report("a", "c", "s", "t", (TaskEntry("Fit", "all", DAMAGED),)).counts()
        {'complete': 0, 'not run': 0, 'damaged': 1}
        """
        chosen = [t for t in self.tasks if family is None or t.family == family]
        return {status: sum(t.status == status for t in chosen) for status in STATUSES}


def shown(name: str, size: int | None) -> bool:
    """Whether a report reads an output file: plots, tables and small JSON results, not data.

    >>> shown("4j2b_postfit.png", 60_000), shown("histograms.json", 40_000_000), shown("skim.root", 10)
    (True, False, False)
    >>> shown("../x.png", 1)
    False
    """
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        return False
    limit = SHOWN.get(path.suffix.lower())
    return limit is not None and (size is None or size <= limit)
