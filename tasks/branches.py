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


def family_tasks(top, family: str) -> list:
    """The tasks of ``family`` under ``top`` (itself included), in dependency order, each once.

    >>> from tasks import Plot                                        # doctest: +SKIP
    >>> [t.label() for t in family_tasks(Plot(config="configs/demo.yaml"), "Select")][:2]  # doctest: +SKIP
    ['ttbar', 'ttbar__scaleup']
    """
    found, seen = [], set()

    def visit(task) -> None:
        ident = (task.task_family, task.label())
        if ident in seen:
            return
        seen.add(ident)
        for child in task.input_tasks().values():
            visit(child)
        if task.task_family == family:
            found.append(task)

    visit(top)
    return found


class Branches(law.WrapperTask):
    """Every ``--family`` task in the dependency tree of ``--of`` (a task family name)."""

    config = luigi.Parameter(description="the analysis config (YAML)")
    family = luigi.Parameter(description="the task family to run, e.g. Skim")
    of = luigi.Parameter(default="Plot", description="the top task whose dependency tree is walked")

    def requires(self):
        import tasks

        top = getattr(tasks, self.of, None)
        if top is None or self.of not in tasks.__all__:
            raise ValueError(f"--of {self.of!r} is not a Heirloom task (one of {', '.join(tasks.__all__)})")
        branches = family_tasks(top(config=self.config), self.family)
        if not branches:
            raise ValueError(f"no {self.family} task under {self.of} for {self.config}")
        return branches
