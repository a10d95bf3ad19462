"""``Branches``: every task of one family under a top task, run together.

An exported workflow runs one step per task family (``heirloom step Skim --of Plot``):
that step is ``law run Branches --family Skim --of Plot``, which requires every Skim task
that Plot's dependency tree holds, so law runs them in one process (``--workers`` in
parallel) and skips those already complete. It has no output of its own: it is complete
when its branches are.

    law run Branches --config configs/demo.yaml --family Skim --of Plot --workers 2
"""

from __future__ import annotations

import law
import luigi


def tops(of: str, config: str) -> list:
    """The task(s) that ``--of`` names: one task, or the tasks ``All`` wraps.

    >>> [t.task_family for t in tops("All", "configs/demo.yaml")]      # doctest: +SKIP
    ['Histograms', 'Plot', 'Ranking', 'Significance']
    """
    import tasks

    if of not in tasks.__all__:
        raise ValueError(f"--of {of!r} is not a Heirloom task (one of {', '.join(tasks.__all__)})")
    top = getattr(tasks, of)(config=config)
    return list(top.requires()) if isinstance(top, law.WrapperTask) else [top]


def tree(top) -> list:
    """Every task under ``top`` (a task or a list of them; themselves included), dependencies
    before dependents, each once, in a deterministic order (depth first, inputs in the
    order ``requires`` gives them).

    >>> from tasks import Plot                                        # doctest: +SKIP
    >>> [t.task_family for t in tree(Plot(config="configs/demo.yaml"))][:2]  # doctest: +SKIP
    ['Generate', 'Skim']
    """
    order: list = []
    seen: set = set()

    def visit(task) -> None:
        ident = (task.task_family, task.label())
        if ident in seen:
            return
        seen.add(ident)
        for child in task.input_tasks().values():
            visit(child)
        order.append(task)

    for root in top if isinstance(top, (list, tuple)) else [top]:
        visit(root)
    return order


def family_tasks(top, family: str) -> list:
    """The tasks of ``family`` under ``top``, in the order of :func:`tree`.

    >>> [t.label() for t in family_tasks(Plot(config="configs/demo.yaml"), "Select")][:2]  # doctest: +SKIP
    ['ttbar', 'ttbar__scaleup']
    """
    return [task for task in tree(top) if task.task_family == family]


class Branches(law.WrapperTask):
    """Every ``--family`` task in the dependency tree of ``--of`` (a task family name)."""

    config = luigi.Parameter(description="the analysis config (YAML)")
    family = luigi.Parameter(description="the task family to run, e.g. Skim")
    of = luigi.Parameter(default="All", description="the top task whose dependency tree is walked")

    def requires(self):
        branches = family_tasks(tops(self.of, self.config), self.family)
        if not branches:
            raise ValueError(f"no {self.family} task under {self.of} for {self.config}")
        return branches
