"""What ``law run`` says while it runs: task k of N, one line for a no-op, one line per
failure, and the run's full log in the store.

luigi runs tasks in worker processes (``--workers N``) whose events the main process does
not see, but the main process's Worker learns of every task's end from its result queue.
:class:`ProgressWorker` is luigi's Worker with hooks there, built by luigi's own worker
factory (:func:`install`). At scheduling it counts the tasks that will run (N) and those
up to date; then, as each result arrives, it prints ``[k/N 12.1 s] Skim[ttbar__0] done in
0.4 s``. A no-op prints ``45 tasks up to date`` and nothing else. With ``--workflow slurm``
the batch workflows are the tasks counted here (their jobs report in their own logs).

Whatever a run prints also goes to ``<store>/logs/<time>-<pid>.log``, with every
traceback. On the terminal a failure is one line (``--debug`` or ``HEIRLOOM_DEBUG=1``
show the traceback), and a failed run ends with a summary: which tasks failed, one line
each, how many did not run because of them, and where the log is.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import luigi.configuration
import luigi.interface
import luigi.task
import luigi.worker
from luigi.scheduler import DONE, FAILED, PENDING

from tasks import skim_pool
from tasks.execution import pool_size

#: logs kept in ``<store>/logs`` (the oldest go first)
KEEP_LOGS = 100
_STARTED = time.time()


def plural(n: int, word: str) -> str:
    """``1 task``, ``2 tasks``.

    >>> plural(1, "task"), plural(45, "task")
    ('1 task', '45 tasks')
    """
    return f"{n} {word}{'' if n == 1 else 's'}"


def one_line(text: str) -> str:
    """The line of an error report that says what went wrong: a Heirloom error's one
    line, or a traceback's last line; at most 300 characters.

    >>> one_line("Runtime error:\\nTraceback (most recent call last):\\n  File 'x'\\nValueError: bad cut\\n")
    'ValueError: bad cut'
    """
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    line = lines[-1] if lines else "failed"
    return line if len(line) <= 300 else line[:297] + "..."


class _OnlyHidden(logging.Filter):
    """The log's own copy of a record: only those the terminal does not show (tracebacks);
    the rest reaches the log through ``tee``."""

    def __init__(self, debugging: Callable[[], bool]):
        super().__init__()
        self._debugging = debugging

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is not None and not self._debugging()


class _NoTracebacks(logging.Filter):
    """On the terminal, a failure is one line: its traceback goes to the log only."""

    def __init__(self, debugging: Callable[[], bool]):
        super().__init__()
        self._debugging = debugging

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is None or self._debugging()


class Progress:
    """The main process's view of one run (see the module's docstring)."""

    def __init__(self, label: Callable[[Any], str], debugging: Callable[[], bool], logs: Callable[[], Path]):
        self.label, self.debugging, self.logs = label, debugging, logs
        self.to_run: dict[str, str] = {}           # task id -> label, in scheduling order
        self.warm_imports: set[str] = set()         # modules the tasks to run will import
        self.up_to_date: dict[str, Any] = {}       # task id -> task, complete at scheduling
        self.finished: list[str] = []
        self.failed: dict[str, str] = {}           # label -> one line
        self.started: dict[str, float] = {}
        self.log_path: Path | None = None
        self._log: Any = None
        self._tees: list = []                      # (descriptor, its saved copy, tee process)

    # ---- events of the main process ----------------------------------------------------
    def status(self, task: Any, task_id: str, status: str, runnable: Any, expl: Any) -> None:
        """luigi told the scheduler a task's status: at scheduling (``runnable`` a bool) or
        at its end (``runnable`` None)."""
        name = self.label(task) if task is not None else task_id
        if runnable is not None and status == DONE:
            self.up_to_date[task_id] = task
        elif runnable and status == PENDING:
            self.to_run.setdefault(task_id, name)
            if task is not None:
                skim_pool.expect(task)
                self.warm_imports.update(getattr(task, "warm_imports", ()))
        elif runnable is None and status == DONE and task_id in self.to_run:
            self.finished.append(task_id)
            took = time.time() - self.started.get(task_id, time.time())
            self.say(f"[{len(self.finished) + len(self.failed)}/{len(self.to_run)} {self.elapsed():.1f} s] "
                     f"{name} done in {took:.1f} s")
        elif status == FAILED:
            self.fail(name, _explanation(expl))

    def fail(self, name: str, explanation: str, scheduling: bool = False) -> None:
        """A task failed (or could not be scheduled): one line now, its report in the log."""
        self.open_log()
        if scheduling:          # a task's traceback is in luigi's record of it (see open_log)
            self.write_log(f"{name} cannot be scheduled:\n{explanation}\n")
        line = one_line(explanation)
        self.failed[name] = line
        done = len(self.finished) + len(self.failed)
        where = "cannot be scheduled" if scheduling else "FAILED"
        prefix = "heirloom:" if scheduling else f"[{done}/{max(len(self.to_run), done)} {self.elapsed():.1f} s]"
        self.say(f"{prefix} {name} {where}: {line}", sys.stderr)      # (--debug: luigi printed the traceback)

    def warm_up(self, task_processes: int) -> None:
        """Before luigi forks a process per task (``--workers N``) or a task forks the run's
        pool (``--cores N``): import here what the tasks to run will import (their
        ``warm_imports``), once, so that every forked process starts with it instead of
        importing it again (pandas, coffea and pyarrow take about a second each time)."""
        if task_processes > 1 or pool_size() > 1:
            import importlib

            for name in sorted(self.warm_imports):
                importlib.import_module(name)

    def started_task(self, task_id: str) -> None:
        self.started[task_id] = time.time()

    def begin(self) -> None:
        """Scheduling is over: a no-op says so in one line; a run opens its log."""
        if not self.to_run:
            if not self.failed:
                print(f"{plural(dag_size(self.up_to_date.values()), 'task')} up to date", flush=True)
            return
        self.open_log()
        self.say(f"{plural(len(self.to_run), 'task')} to run ({len(self.up_to_date)} up to date); "
                 f"log: {self.shown_log()}")

    def end(self) -> None:
        """The summary: nothing more on success; on failure, one line per failed task."""
        if not self.failed:
            if self.to_run:
                self.say(f"{plural(len(self.finished), 'task')} done in {self.elapsed():.1f} s")
            return
        not_run = len(self.to_run) - len(self.finished) - len(self.failed)
        after = f", {not_run} not run (they need {'it' if len(self.failed) == 1 else 'them'})" if not_run > 0 else ""
        self.say(f"heirloom: {plural(len(self.failed), 'task')} failed{after}:", sys.stderr)
        for name, line in self.failed.items():
            self.say(f"  {name}: {line}", sys.stderr)
        if self.log_path is not None:
            self.say(f"heirloom: full log (tracebacks included): {self.shown_log()}", sys.stderr)

    # ---- output ---------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.time() - _STARTED

    def say(self, line: str, stream: Any = None) -> None:
        print(line, file=stream or sys.stdout, flush=True)

    def write_log(self, text: str) -> None:
        if self._log is not None:
            self._log.write(text)
            self._log.flush()

    def shown_log(self) -> str:
        path = self.log_path
        if path is None:
            return "-"
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    def open_log(self) -> None:
        """``<store>/logs/<time>-<pid>.log``: from here on, what this process and its forked
        workers write (through ``tee``), every traceback (through logging, also those the
        terminal does not show) and where each task's output went; the oldest logs beyond
        :data:`KEEP_LOGS` go."""
        if self._log is not None:
            return
        folder = self.logs()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.log_path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
            self._log = open(self.log_path, "a", buffering=1)
        except OSError:
            self.log_path = None
            return
        for old in sorted(folder.glob("*.log"))[:-KEEP_LOGS]:
            old.unlink(missing_ok=True)
        self._log.write(f"law {' '.join(sys.argv[1:])}\n")
        handler = logging.StreamHandler(self._log)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler.addFilter(_OnlyHidden(self.debugging))
        for name in ("luigi-interface", "luigi", "law"):
            logging.getLogger(name).addHandler(handler)
        run = logging.getLogger("heirloom.run")        # tasks' lines for the log only (where outputs went)
        run.setLevel(logging.INFO)
        run.propagate = False
        run.addHandler(logging.StreamHandler(self._log))
        self._tee()

    def _tee(self) -> None:
        """Send file descriptors 1 and 2 through ``tee -a <log>``: Python, C code and forked
        workers alike (``tee`` ignores the terminal's Ctrl-C, and ends when they all have)."""
        sys.stdout.flush()
        sys.stderr.flush()
        for fd in (1, 2):
            saved = os.dup(fd)
            try:
                tee = subprocess.Popen(["tee", "-a", str(self.log_path)], stdin=subprocess.PIPE, stdout=saved,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
            except OSError:                 # no tee: the log keeps the tracebacks only
                os.close(saved)
                return
            assert tee.stdin is not None
            os.dup2(tee.stdin.fileno(), fd)
            tee.stdin.close()
            self._tees.append((fd, saved, tee))

    def close_log(self) -> None:
        """Give the terminal back its descriptors; ``tee`` writes what is left and ends."""
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved, _ in self._tees:
            os.dup2(saved, fd)
            os.close(saved)
        for *_, tee in self._tees:
            try:
                tee.wait(timeout=2)
            except subprocess.TimeoutExpired:   # a worker still holds it open: it ends with that worker
                pass
        self._tees.clear()

    def quiet_tracebacks(self) -> None:
        """Terminal handlers print no traceback unless debugging (the log keeps them)."""
        quiet = _NoTracebacks(self.debugging)
        for name in ("luigi-interface", "luigi", "law", ""):
            for handler in logging.getLogger(name).handlers:
                if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                    handler.addFilter(quiet)


def dag_size(roots: Any) -> int:
    """How many tasks ``roots`` and everything below them are (luigi checks only what is
    above a complete task, so a no-op knows its root alone).

    >>> import tasks
    >>> dag_size([tasks.Select(config="configs/demo.yaml", dataset="ttbar")])    # Generate, 2 Skims, Select
    4
    """
    seen: set = set()
    stack = [task for task in roots if task is not None]
    while stack:
        task = stack.pop()
        if task.task_id in seen:
            continue
        seen.add(task.task_id)
        try:
            stack.extend(luigi.task.flatten(task.deps()))
        except Exception:               # a task that cannot list its inputs: counted alone
            continue
    return len(seen)


def _explanation(expl: Any) -> str:
    """The failure report luigi sent (a JSON string of ``on_failure``'s return value)."""
    try:
        value = json.loads(expl) if isinstance(expl, str) else expl
    except ValueError:
        value = expl
    return str(value or "failed")


class ProgressWorker(luigi.worker.Worker):
    """luigi's Worker, telling :class:`Progress` what happens (in the main process only)."""

    progress_factory: Callable[[], Progress] | None = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.heirloom = type(self).progress_factory() if type(self).progress_factory else None

    def _add_task(self, *args: Any, **kwargs: Any) -> Any:
        if self.heirloom is not None:
            task_id = kwargs.get("task_id", "")
            self.heirloom.status(self._scheduled_tasks.get(task_id), task_id, kwargs.get("status", ""),
                                 kwargs.get("runnable"), kwargs.get("expl"))
        return super()._add_task(*args, **kwargs)

    def _run_task(self, task_id: str) -> Any:
        if self.heirloom is not None and task_id not in self._running_tasks:
            self.heirloom.started_task(task_id)
        return super()._run_task(task_id)

    def _log_complete_error(self, task: Any, tb: str) -> None:
        self._scheduling_error(task, tb, super()._log_complete_error)

    def _log_dependency_error(self, task: Any, tb: str) -> None:
        self._scheduling_error(task, tb, super()._log_dependency_error)

    def _scheduling_error(self, task: Any, tb: str, luigi_says: Callable[[Any, str], None]) -> None:
        if self.heirloom is None or self.heirloom.debugging():
            luigi_says(task, tb)
        if self.heirloom is not None:
            self.heirloom.fail(self.heirloom.label(task), tb, scheduling=True)

    def run(self) -> bool:
        if self.heirloom is None:
            return super().run()
        self.heirloom.quiet_tracebacks()
        self.heirloom.begin()
        self.heirloom.warm_up(self.worker_processes)
        try:
            return super().run()
        finally:
            self.heirloom.end()
            _end_run_pools()
            self.heirloom.close_log()


def _end_run_pools() -> None:
    """The run's process pool (``--executor futures``) ends with the run: its workers hold
    the log's pipe open, and nothing of theirs is needed after it."""
    executors = sys.modules.get("analysis.select.executors")
    if executors is not None:
        executors.shutdown_run_pools()
    skim_pool.discard()           # chunks a stopped run handed over and never took


def debugging() -> bool:
    """Tracebacks on the terminal: ``--debug``, ``HEIRLOOM_DEBUG=1`` or ``debug`` in law.cfg's
    ``[luigi_execution]`` (the same switch as ``tasks.execution.debugging``)."""
    if os.environ.get("HEIRLOOM_DEBUG", "") not in ("", "0") or "--debug" in sys.argv:
        return True
    try:
        return luigi.configuration.get_config().getboolean("execution", "debug", False)
    except Exception:
        return False


def label(task: Any) -> str:
    """``Skim[ttbar__0]``: how progress lines and failure summaries name a task.

    >>> import tasks
    >>> label(tasks.Skim(config="configs/demo.yaml", dataset="ttbar", chunk=0))
    'Skim[ttbar__0]'
    """
    named = getattr(task, "label", None)
    try:
        if callable(named):
            return f"{task.task_family}[{named()}]"
        parts = [str(getattr(task, name)) for name in ("family", "branch")       # a batch workflow
                 if getattr(task, name, None) not in (None, -1)]
        return f"{task.task_family}[{'#'.join(parts) or 'all'}]"
    except Exception:
        return str(task)


def _logs() -> Path:
    from analysis.store.objects import store_root

    return store_root() / "logs"


def install(progress_factory: Callable[[], Progress]) -> None:
    """Make luigi's worker factory build :class:`ProgressWorker` s (``law run`` uses it)."""
    ProgressWorker.progress_factory = progress_factory

    def create_worker(self: Any, scheduler: Any, worker_processes: int, assistant: bool = False) -> Any:
        return ProgressWorker(scheduler=scheduler, worker_processes=worker_processes, assistant=assistant)

    luigi.interface._WorkerSchedulerFactory.create_worker = create_worker  # type: ignore[method-assign]


install(lambda: Progress(label, debugging, _logs))
__all__ = ["Progress", "ProgressWorker", "debugging", "install", "label", "one_line", "plural"]
