"""The dependency tree of a law task, flattened into nodes and per-family stages.

>>> nodes = walk(Plot(config="configs/demo.yaml"))            # doctest: +SKIP
>>> [(s.family, len(s.nodes)) for s in stages(nodes)][:2]    # doctest: +SKIP
[('Generate', 6), ('Skim', 11)]
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Callable

from analysis.progress import Progress, to_stderr
from tasks.branches import tree

PROGRESS_EVERY = 5.0                    # seconds between progress lines


@dataclass(frozen=True)
class Node:
    """One task of the DAG: its family, its parameters besides the config, what it needs."""

    family: str
    label: str
    params: tuple          # ((name, value), ...), in the task's own order
    requires: tuple        # ((family, label), ...)

    @property
    def ident(self) -> tuple:
        return (self.family, self.label)

    def cli_args(self) -> str:
        """The task's parameters as ``law run`` arguments, e.g. ``--dataset ttbar --chunk 0``."""
        return " ".join(f"--{name.replace('_', '-')} {shlex.quote(str(value))}" for name, value in self.params)


@dataclass(frozen=True)
class Stage:
    """Every task of one family (the branches a workflow scatters over)."""

    family: str
    nodes: tuple
    after: tuple           # families this stage's tasks need

    def args(self) -> list[str]:
        return [node.cli_args() for node in self.nodes]


def walk(task, report: Callable[[str], None] | None = to_stderr) -> list[Node]:
    """Every task under ``task`` (a task or a list of them; themselves included) as a Node,
    in the order of :func:`tasks.branches.tree` (dependencies before dependents, deterministic).
    ``report`` (default: stderr, so that stdout and the files written stay the same; ``None``:
    silent) gets ``Export: 12/48 tasks ... about 9.0 s left`` lines (:mod:`analysis.progress`)."""
    found = tree(task)
    progress = Progress(len(found), report, label="Export", unit="tasks", every=PROGRESS_EVERY)
    nodes = []
    for t in found:
        nodes.append(Node(t.task_family, t.label(), tuple(t.key_params().items()),
                          tuple((c.task_family, c.label()) for c in t.input_tasks().values())))
        progress.tick()
    return nodes


def stages(nodes: list[Node]) -> list[Stage]:
    """Group the nodes by family; a family comes after every family it needs (ties: the
    order in which their first task completes)."""
    families: dict[str, list[Node]] = {}
    for node in nodes:
        families.setdefault(node.family, []).append(node)
    first = list(families)
    needs = {family: sorted({f for node in members for f, _ in node.requires} - {family}, key=first.index)
             for family, members in families.items()}
    out: list[Stage] = []
    while len(out) < len(families):
        placed = {stage.family for stage in out}
        ready = [f for f in first if f not in placed and set(needs[f]) <= placed]
        if not ready:
            raise ValueError(f"task families depend on each other in a circle: {sorted(set(first) - placed)}")
        out.append(Stage(ready[0], tuple(families[ready[0]]), tuple(needs[ready[0]])))
    return out


def final_stages(stages_: list[Stage]) -> list[Stage]:
    """The stages no other stage needs (the results of a workflow), in stage order.

    >>> fit, plot = Stage("Fit", (), ()), Stage("Plot", (), ("Fit",))
    >>> [s.family for s in final_stages([fit, plot, Stage("Ranking", (), ("Fit",))])]
    ['Plot', 'Ranking']
    """
    needed = {family for stage in stages_ for family in stage.after}
    return [stage for stage in stages_ if stage.family not in needed]
