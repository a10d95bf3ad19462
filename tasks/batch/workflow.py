"""``BatchBranches``: the tasks of one family under a top task, as law workflow branches.

``law run Histograms --config C --workflow slurm`` (or ``htcondor``) makes, for each task
family below Histograms (Generate, Skim, Select, Histogram), one law remote workflow whose
branches are that family's tasks. law submits them (``--tasks-per-job``,
``--parallel-jobs``), polls (``--poll-interval``) and resubmits failed jobs
(``--retries``); a family's jobs start when the families it reads are complete. Each job
runs from the submission's code snapshot in the submitter's environment
(:mod:`tasks.batch.submission`), recomputes its task's key, refuses to run when it differs
from the submitted key, and commits into the store atomically, so a retried job is
idempotent. Histograms itself then runs in the submitting process.

    law run Histograms --config configs/demo.yaml --workflow slurm --tasks-per-job 2
"""

from __future__ import annotations

from pathlib import Path

import law
import luigi

from analysis.batch.law_jobs import htcondor_job_config, slurm_job_config
from analysis.batch.resources import family_resources
from analysis.errors import StoreError
from analysis.load import load_config
from tasks.batch import submission
from tasks.branches import family_tasks, tops, tree

law.contrib.load("slurm", "htcondor")

_TASKS_CACHE: dict = {}


def _family_tasks(config: str, family: str, of: str) -> list:
    """The tasks of ``family`` under the top task ``of`` (cached per process: a job's
    branch instances all walk the same tree)."""
    key = (config, family, of)
    if key not in _TASKS_CACHE:
        _TASKS_CACHE[key] = family_tasks(tops(of, config), family)
    return _TASKS_CACHE[key]


class BatchBranches(law.LocalWorkflow, law.slurm.SlurmWorkflow, law.htcondor.HTCondorWorkflow):
    """One task family under ``--of`` as a workflow: branch *i* is the family's *i*-th task."""

    config = luigi.Parameter(description="the analysis config (YAML)")
    family = luigi.Parameter(description="the task family whose tasks are the branches, e.g. Skim")
    of = luigi.Parameter(description="the top task whose dependency tree is walked")
    submission = luigi.Parameter(description="digest of the batch submission (tasks.batch.submission)")

    # a job's branches are chosen by law; the submission fixes their keys
    exclude_params_branch = set()

    @classmethod
    def for_top(cls, top) -> list:
        """The workflows that run everything below ``top`` (one per family), after fixing the
        submission: keys, code snapshot, environment."""
        digest = submission.prepare(top)
        record = submission.load(digest)
        families = [f for f in record["keys"] if f != top.task_family]
        params = {"workflow": top.workflow, "tasks_per_job": top.tasks_per_job, "retries": top.retries,
                  "parallel_jobs": top.parallel_jobs, "poll_interval": top.poll_interval}
        return [cls(config=record["config"], family=family, of=top.task_family, submission=digest, **params)
                for family in families]

    # ---- the branches --------------------------------------------------------------
    def create_branch_map(self):
        return dict(enumerate(t.label() for t in _family_tasks(self.config, self.family, self.of)))

    def branch_task(self):
        return _family_tasks(self.config, self.family, self.of)[self.branch]

    def workflow_requires(self):
        reqs = super().workflow_requires()
        below = {child.task_family for task in _family_tasks(self.config, self.family, self.of)
                 for child in task.input_tasks().values()}
        for family in sorted(below):
            reqs[family] = self.req(self, family=family, branch=-1, _exclude={"branches"})
        return reqs

    def requires(self):
        return {}

    def output(self):
        return self.branch_task().output()

    def complete(self):
        if self.is_workflow():
            return super().complete()
        return self.branch_task().complete()

    def workflow_complete(self):
        """The family is complete when each of its tasks is, in the store as the task sees it
        (a remote store included), not when the branches' folders exist here: with a remote
        store the jobs' outputs never reach this machine's cache."""
        return all(task.complete() for task in _family_tasks(self.config, self.family, self.of))

    def run(self):
        task = self.branch_task()
        record = submission.load(self.submission)
        submission.check_key(task, record)
        missing = [t.task_family + "[" + t.label() + "]" for t in task.input_tasks().values() if not t.complete()]
        if missing:
            raise StoreError(f"{task.task_family}[{task.label()}]: inputs {', '.join(missing)} are not in the store "
                             f"this job sees ({record['store']})")
        if not task.complete():
            task.run()

    # ---- where jobs start and what they get ----------------------------------------
    def _control_dir(self) -> law.LocalDirectoryTarget:
        record = submission.load(self.submission)
        batch = Path(record.get("batch_root") or submission.batch_root(Path(record["store"])))
        return law.LocalDirectoryTarget(str(batch / "jobs" / self.submission / self.family))

    def _resources(self):
        return family_resources(load_config(self.config), self.family)

    def slurm_output_directory(self):
        return self._control_dir()

    def htcondor_output_directory(self):
        return self._control_dir()

    def slurm_bootstrap_file(self):
        return law.JobInputFile(str(submission.bootstrap_file(self.submission)), copy=False)

    def htcondor_bootstrap_file(self):
        return law.JobInputFile(str(submission.bootstrap_file(self.submission)), copy=False)

    def _job_files(self, kwargs: dict) -> dict:
        """Job scripts beside the submission's job data, not in a temporary folder."""
        kwargs.setdefault("dir", str(Path(self._control_dir().abspath) / "files"))
        kwargs.setdefault("mkdtemp", False)
        return kwargs

    def slurm_create_job_file_factory(self, **kwargs):
        return super().slurm_create_job_file_factory(**self._job_files(kwargs))

    def htcondor_create_job_file_factory(self, **kwargs):
        return super().htcondor_create_job_file_factory(**self._job_files(kwargs))

    @staticmethod
    def _log_name(job_num, branches) -> str:
        return f"logs/job{job_num}_branches{branches[0]}-{branches[-1]}.txt"

    def slurm_job_config(self, config, job_num, branches):
        config.stdout = config.stderr = self._log_name(job_num, branches)
        return slurm_job_config(config, self._resources())

    def htcondor_job_config(self, config, job_num, branches):
        config.stdout = config.stderr = self._log_name(job_num, branches)
        config = htcondor_job_config(config, self._resources())
        config.custom_content.append(("getenv", "true"))       # the submitter's PATH, HOME, ...
        return config
