"""The base of every Heirloom task: a config parameter, a content address, atomic commits.

A task subclass says what it reads (``config_excerpt``), which parameters decide its
result (``key_params``), what it needs (``requires``) and how it produces its files
(``produce``). The code that decides its result is not declared: it is derived from the
source (:mod:`analysis.store.code_identity`): the task's own class and everything it
reaches through imports in ``analysis/`` and ``tasks/``, fingerprinted from a normalised
form. The base turns that into a key (format 2, ``docs/explanation.md``), an output
folder in the store that appears atomically, a provenance record and a line in the run
log. Heavy libraries are imported inside ``produce`` only, so task discovery and a no-op
rerun stay fast.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from pathlib import Path

import law
import luigi

from analysis.config import ConfigError
from analysis.io.fileid import Manifest
from analysis.load import load_config
from analysis.errors import ExpressionError, HeirloomError, StoreError
from analysis.store import integrity, locks
from analysis.store import objects as store
from analysis.store.code_cache import CodeCache
from analysis.store.code_identity import graph_for
from analysis.store.environment import environment
from analysis.store.provenance import build_record, git_state_of, job_context, now
from analysis.store.remote import remote_store
from analysis.store.user_cache import cache_file
from tasks.execution import current_workers, debugging, execution, pool_size  # noqa: F401  (re-exported)
from tasks import progress  # noqa: F401  (law run's progress lines, failure summary and log: tasks/progress.py)

#: the layout of a key's components; bumped when it changes (``heirloom why`` says so)
KEY_FORMAT = 2
PROJECT = Path(__file__).resolve().parent.parent
CODE_ROOTS = {"analysis": PROJECT / "analysis", "tasks": PROJECT / "tasks"}
#: the imports that static analysis cannot follow, and where their code enters keys instead
#: (tests/test_key_soundness.py proves the list complete)
DYNAMIC_IMPORTS = {
    "analysis.lang.plugins": "a config's plugin files, imported by path: their normalised source enters "
                             "the key of every task whose expressions call them (AnalysisConfig.plugins_used)",
    "tasks": "the lazy lookup of task classes by name (tasks.Plot, tasks.load_all) for the command line: "
             "no task's computation goes through it, and each task class's key covers its own module",
    "tasks.progress": "each task class's warm_imports, imported once in the main process before luigi or the "
                      "run's pool forks: modules the tasks import again themselves, so nothing computes through it",
}
_CODE: dict = {}
_CODE_CACHES: dict = {}
_MANIFESTS: dict = {}


def code_identity(task_class: type) -> dict:
    """The identity of the code that decides a task class's results, and (for provenance
    and ``heirloom why``, not the key) the units it covers with their fingerprints.

    >>> from tasks.select import Select
    >>> ident = code_identity(Select)
    >>> len(ident["identity"]), "tasks.select:Select" in ident["units"]
    (64, True)
    """
    if task_class not in _CODE:
        cache = _code_cache()
        name = f"{task_class.__module__}:{task_class.__qualname__}"
        record = cache.get(name)
        if record is None:
            graph = graph_for(CODE_ROOTS)
            closure = graph.closure(graph.unit_of(task_class))
            record = {"identity": graph.identity(closure),
                      "units": {str(u): graph.fingerprint(u)[:16] for u in sorted(closure)}}
            cache.put(name, record)
            cache.save()
        _CODE[task_class] = record
    return _CODE[task_class]


def _code_cache() -> CodeCache:
    """The store's cache of code identities for the project's files as they are now."""
    key = (store.store_root(), tuple(sorted((k, str(v)) for k, v in CODE_ROOTS.items())))
    if key not in _CODE_CACHES:
        _CODE_CACHES.clear()
        _CODE_CACHES[key] = CodeCache(store.store_root() / "manifests" / "code.json", CODE_ROOTS,
                                      fallback=cache_file("code.json"))
    return _CODE_CACHES[key]


def manifest() -> Manifest:
    root = store.store_root()
    if root not in _MANIFESTS:
        _MANIFESTS[root] = Manifest(root, cache_file("files.json"))
    return _MANIFESTS[root]


def check_input_names(cfg, strict: bool = True) -> None:
    """Check the config against its input files before any task runs
    (:func:`analysis.load.check_inputs`): a misspelt branch stops ``law run``, or a tool
    that makes tasks, at once with the config line. ``strict`` (``law run``'s command
    line) also a missing or unreadable file and an expression that fails on the files'
    types (not in a batch job: the submitting run checked them); a tool that only computes
    keys (``heirloom why``, ``gc``) meets an unreadable file where it reads it."""
    from analysis.load import check_inputs

    checks = None
    if strict and not job_context():        # the store's record of passed checks, and the user's
        checks = [store.store_root() / "manifests" / "checks.json", *filter(None, [cache_file("checks.json")])]
    check_inputs(cfg, manifest(), checks, strict=strict)


_CHECKED: dict = {}     # (config path, strict) -> the loaded config whose inputs were checked in this process


class ConfigParameter(luigi.Parameter):
    """Path of an analysis config; a bad config or input stops ``law run`` with one located line.
    luigi parses it for every task it makes (law's ``req``): the inputs are checked once
    per process and config (a changed config file is a new config object)."""

    def parse(self, value):
        from luigi.cmdline_parser import CmdlineParser

        strict = CmdlineParser.get_instance() is not None          # parsing law run's command line
        try:
            cfg = load_config(value)
            if _CHECKED.get((str(value), strict)) is not cfg:
                check_input_names(cfg, strict)
                _CHECKED[(str(value), strict)] = cfg
        except HeirloomError as err:
            if debugging():
                raise
            kind = "config error" if isinstance(err, ConfigError) else type(err).__name__
            print(f"heirloom: {kind}: {err}", file=sys.stderr)
            raise SystemExit(2)
        return value


def used_files(cfg) -> list:
    """The files a run of ``cfg`` reads besides data: its ``extends:`` chain, its plugins
    and its correction files (provenance names those git does not hold as committed)."""
    return [*cfg.files, *(plugin.source_path for plugin in cfg.plugins.values()), *cfg.correction_files().values()]


#: parameters that say where the work runs, never what it computes: no key, not passed down
BATCH_PARAMS = {"workflow", "tasks_per_job", "parallel_jobs", "retries", "poll_interval"}


class HeirloomTask(law.Task):
    """Base task: content-addressed output at ``<store>/objects/<Family>/<key>``.

    ``--workflow slurm|htcondor`` runs every task below this one as batch jobs, one task
    family after the other, through law's remote workflows (:mod:`tasks.batch`); this task
    itself then runs here. ``local`` (the default) runs them all in this process.
    """

    config = ConfigParameter(description="analysis config (YAML)")
    workflow = luigi.ChoiceParameter(choices=("local", "slurm", "htcondor"), default="local", significant=False,
                                     description="run the tasks below this one as batch jobs: slurm or htcondor")
    tasks_per_job = luigi.IntParameter(default=1, significant=False, description="batch: tasks in one job")
    parallel_jobs = luigi.IntParameter(default=-1, significant=False,
                                       description="batch: jobs queued or running at once (-1: no limit)")
    retries = luigi.IntParameter(default=2, significant=False, description="batch: resubmissions of a failed job")
    poll_interval = law.DurationParameter(default=0.5, unit="m", significant=False,
                                          description="batch: time between status queries (default: 30s)")

    format_version = 1
    exclude_params_req = set(BATCH_PARAMS)

    # ---- what a subclass describes --------------------------------------------------
    def key_params(self) -> dict:
        """Result-relevant parameters besides the config (e.g. dataset, chunk)."""
        return {}

    def config_excerpt(self) -> dict:
        """The part of the config this task's result depends on."""
        return {}

    def plugin_paths(self) -> list:
        """Config key paths of the expressions this task evaluates (for plugin fingerprints)."""
        return []

    def raw_inputs(self) -> dict:
        """Raw files this task reads directly: ``{name: FileIdentity}``."""
        return {}

    def produce(self, outdir: Path, inputs: dict) -> dict:
        """Write the outputs into ``outdir``; return extra provenance (e.g. events)."""
        raise NotImplementedError

    def label(self) -> str:
        """Human-readable name in ``store/by-name``."""
        return "__".join(str(v) for v in self.key_params().values()) or "all"

    # ---- machinery ------------------------------------------------------------------
    def deps(self):
        """What luigi schedules first: the inputs, or with ``--workflow slurm|htcondor``
        one batch workflow per task family below this task."""
        if self.workflow == "local":
            return list(self.input_tasks().values())       # requires() once per task: the key asks too
        from tasks.batch.workflow import BatchBranches

        return BatchBranches.for_top(self)

    @property
    def cfg(self):
        cached = self.__dict__.get("_cfg")
        if cached is None:
            cached = self.__dict__["_cfg"] = load_config(self.config)
        return cached

    def input_tasks(self) -> dict:
        """``requires()`` as a dict of name -> task, made once per task instance (a task's
        parameters and config decide it; its key, its run and the progress line ask again)."""
        cached = self.__dict__.get("_input_tasks")
        if cached is None:
            reqs = self.requires()
            if isinstance(reqs, dict):
                cached = dict(reqs)
            elif isinstance(reqs, (list, tuple)):
                cached = {str(i): r for i, r in enumerate(reqs)}
            else:
                cached = {"input": reqs} if reqs is not None else {}
            self.__dict__["_input_tasks"] = cached
        return cached

    def components(self) -> dict:
        """The record whose hash is this task's key (cached per task instance)."""
        cached = getattr(self, "_components", None)
        if cached is not None:
            return cached
        inputs = {name: {"task": task.task_family, "key": task.key()} for name, task in self.input_tasks().items()}
        inputs.update({name: ident.key() for name, ident in self.raw_inputs().items()})
        components = {
            "key_format": KEY_FORMAT,
            "task": self.task_family,
            "format": self.format_version,
            "params": self.key_params(),
            "config": self.config_excerpt(),
            "code": {
                "identity": code_identity(type(self))["identity"],
                "plugins": self.cfg.plugins_used(self.plugin_paths()),
            },
            "environment": environment(),
            "inputs": inputs,
        }
        manifest().save()
        self._components = components
        return components

    def key(self) -> str:
        cached = getattr(self, "_key", None)
        if cached is None:
            cached = self._key = store.compute_key(self.components())
        return cached

    def store_entry(self) -> store.Entry:
        """Where this task's output is: the store itself, or a read-only upstream store
        that holds it complete (``$HEIRLOOM_STORE_UPSTREAM``); else where it will be."""
        local = store.entry(self.task_family, self.key())
        roots = store.upstream_roots()
        if not roots or integrity.incomplete(local) is None:      # no upstream: no extra check
            return local
        for root in roots:
            found = store.entry(self.task_family, self.key(), root)
            if integrity.incomplete(found) is None:
                return found
        return local

    def read_entry(self) -> store.Entry:
        """This task's complete output where it can be read: for a remote store, in the
        local cache (downloaded and checked first when it is not there yet)."""
        found = self.store_entry()
        shared = remote_store()
        if shared is not None and found.root == store.store_root():
            shared.fetch(found)
        return found

    def output(self):
        return law.LocalDirectoryTarget(str(self.store_entry().path))

    def complete(self) -> bool:
        """Complete when the object has a valid provenance record whose files all exist
        with their recorded sizes (no hashing: a no-op rerun stays fast); with a remote
        store, also when the object is committed there (one listing per task family)."""
        if integrity.incomplete(self.store_entry()) is None:
            return True
        shared = remote_store()
        return shared is not None and shared.complete(self.task_family, self.key())

    def on_failure(self, exception):
        """The report sent to the main process (:mod:`tasks.progress`): the traceback (for
        the run's log, and the terminal with ``--debug``), then one line that says what
        went wrong (the terminal's): a Heirloom error's message, else the exception's type
        and the first line of its message."""
        return f"{super().on_failure(exception)}\n{self.failure_line(exception)}"

    def failure_line(self, exception) -> str:
        """What went wrong in one line: a Heirloom error's message (an expression's with the
        config file, line and key that hold it), else the exception's type and the first
        line of its message; awkward's pointers into its C++ source left out."""
        lines = str(exception).strip().splitlines() or [""]
        line = lines[0] if isinstance(exception, HeirloomError) else f"{type(exception).__name__}: {lines[0]}"
        line = re.sub(r" \(in compiled code: [^)]*\)", "", line).rstrip(": ")
        if isinstance(exception, ExpressionError) and exception.expression is not None:
            paths = [path for path, e in self.cfg._compiled.items() if e.text == exception.expression]
            if paths:
                line = str(self.cfg.error(re.sub(r" in expression .*$", "", line), *paths[0]))
        return line

    def run(self):
        target = self.store_entry()
        store.by_name(target.root, self.cfg.name, self.task_family, self.label())   # names stay inside
        store.check_layout(target.root)
        locks.clean_stale_staging(target.root)
        with locks.hold(target.root, self.task_family, self.key(), is_done=self.complete,
                        on_wait=self._waiting) as mine:
            if not mine or self.complete():
                self.publish_message(f"{self.task_family}[{self.label()}]: reused, computed by another process")
                return
            if target.path.exists():
                self._set_aside(target, integrity.damage(target) or ["unfinished"])
            self._check_inputs()
            self._compute(target)

    def _waiting(self, holder: dict) -> None:
        print(f"heirloom: {self.task_family}[{self.label()}] is being computed by {holder.get('host')}:"
              f"{holder.get('pid')}; waiting to reuse it", file=sys.stderr, flush=True)

    def _set_aside(self, entry: store.Entry, problems: list) -> None:
        """Quarantine a damaged object, with one warning line that names it."""
        try:
            where = integrity.quarantine(entry, problems)
        except FileNotFoundError:               # another process moved it first
            return
        print(f"heirloom: WARNING: {entry.family} object {entry.key[:12]} is damaged ({'; '.join(problems)[:200]}): "
              f"moved to {where}; recomputing it", file=sys.stderr, flush=True)

    def _check_inputs(self) -> None:
        """Rehash the objects this task reads; a damaged one is quarantined and recomputed
        here, never used."""
        for task in self.input_tasks().values():
            entry = task.read_entry()
            if not integrity.damage(entry):
                continue
            if entry.root != store.store_root():
                raise StoreError(f"{entry.family} object {entry.key[:12]} in the read-only store {entry.root} is "
                                 f"damaged ({'; '.join(integrity.damage(entry))[:200]}); repair that store or "
                                 "leave it out of HEIRLOOM_STORE_UPSTREAM")
            with locks.hold(entry.root, entry.family, entry.key, on_wait=task._waiting,
                            is_done=lambda e=entry: not integrity.damage(e)) as mine:
                problems = integrity.damage(entry, recheck=True) if mine else []
                if problems and entry.path.exists():      # under its lock: nobody is repairing it
                    self._set_aside(entry, problems)
            if problems:
                task.run()

    def _compute(self, target: store.Entry) -> None:
        started, t0 = now(), time.time()
        inputs = {name: task.read_entry().path for name, task in self.input_tasks().items()}
        shared = remote_store()
        with store.staging(target, publish=shared.publish if shared else None) as stage:
            extra = self.produce(stage, inputs) or {}
            events = extra.pop("events", None)
            record = build_record(
                key=self.key(), components=self.components(),
                inputs={name: {"task": t.task_family, "key": t.key()} for name, t in self.input_tasks().items()}
                | {name: {"file": ident.path, "name": getattr(ident, "name", None) or Path(ident.path).name,
                          **ident.key()}
                   for name, ident in self.raw_inputs().items()},
                started=started, outputs=stage, events=events,
                extra={"analysis": self.cfg.name, "config_file": str(self.config),
                       "code_units": code_identity(type(self))["units"],
                       "executor": {"name": execution().executor, "workers": pool_size(),
                                    "parallel_tasks": current_workers(),
                                    "scheduler": execution().scheduler or None, **execution().dask_options(),
                                    **extra.pop("executor", {})},
                       "batch": job_context(), "git": git_state_of(used_files(self.cfg)), **extra})
            (stage / "provenance.json").write_text(json.dumps(record, indent=1, sort_keys=True))
        if shared is not None:
            shared.after_commit(target)
        store.link_by_name(target, self.cfg.name, self.label())
        store.log_run(target.root, {"task": self.task_family, "label": self.label(), "key": self.key(),
                                    "analysis": self.cfg.name, "seconds": round(time.time() - t0, 3),
                                    "finished": now()})
        logging.getLogger("heirloom.run").info(f"{self.task_family}[{self.label()}] done in {time.time() - t0:.1f} s "
                                               f"-> {target.path}")        # the run's log only

