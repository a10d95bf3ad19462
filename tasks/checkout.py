"""Where the checkout is, for ``law run`` and ``heirloom`` started from any folder.

law reads ``law.cfg`` and the task index from the working directory unless
``LAW_CONFIG_FILE`` and ``LAW_INDEX_FILE`` say otherwise, and the store defaults to
``store/``. ``setup.sh`` puts a one-line ``heirloom_law.pth`` into the environment, so
that every ``law`` and ``heirloom`` process calls :func:`at_startup` first: it finds the
checkout (the nearest folder above the working directory with a ``law.cfg`` next to
``tasks/``, else the checkout this package is installed from), points law at its
``law.cfg`` and index and the store at its ``store/`` (each only when not set already),
and answers a mistyped ``law run TASK`` with the closest task name and the list.

Nothing here imports the analysis, and only ``law run`` imports law's command line
(which the ``law`` command imports next anyway): :func:`ending_promptly` makes the process
end as soon as the run has. The interpreter's own teardown after a run that loaded
awkward, coffea and uproot (their threads and objects) took 1.4 s of a 7 s run, for
nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

INSTALLED = Path(__file__).resolve().parents[1]           # the checkout of this package
COMMANDS = ("law", "heirloom")


def find_root(start: Path | None = None) -> Path:
    """The checkout ``start`` (default: the working directory) lies in, else the installed one.

    >>> find_root(INSTALLED / "docs") == INSTALLED
    True
    """
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "law.cfg").is_file() and (folder / "tasks").is_dir():
            return folder
    return INSTALLED


def setup_environment(root: Path | None = None, environ=os.environ) -> Path:
    """Point law and the store at the checkout in ``environ`` (only what is not set
    already); the checkout.

    >>> env = {"HEIRLOOM_STORE": "s3://group/heirloom"}
    >>> setup_environment(INSTALLED, env) == INSTALLED
    True
    >>> env["LAW_INDEX_FILE"] == str(INSTALLED / ".law" / "index"), env["HEIRLOOM_STORE"]
    (True, 's3://group/heirloom')
    """
    root = root or find_root()
    environ.setdefault("LAW_CONFIG_FILE", str(root / "law.cfg"))
    environ.setdefault("LAW_INDEX_FILE", str(root / ".law" / "index"))
    environ.setdefault("HEIRLOOM_STORE", str(root / "store"))
    return root


def task_families(index_file: str | os.PathLike) -> list[str]:
    """The task names ``law run`` knows, from law's index (``module:Family:params`` lines)."""
    try:
        lines = Path(index_file).read_text().splitlines()
    except OSError:
        return []
    families = [line.split(":", 2)[1] for line in lines if line.count(":") >= 2]
    return [name for name in families if not name.startswith(("Heirloom", "Batch"))]


def unknown_task(name: str, families: list[str]) -> str | None:
    """The message for a ``law run`` of a task that does not exist, else ``None``.

    >>> print(unknown_task("Plott", ["Select", "Plot", "Fit"]))
    law run: no task 'Plott'; did you mean 'Plot'?
      the tasks: Select, Plot, Fit
    >>> unknown_task("Plot", ["Plot"]) is None
    True
    """
    if not families or name in families or "." in name or name.startswith("-"):
        return None
    import difflib

    lowered = {family.lower(): family for family in families}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.5)
    hint = f"; did you mean '{lowered[close[0]]}'?" if close else ""
    return f"law run: no task '{name}'{hint}\n  the tasks: {', '.join(families)}"


def at_startup(argv: list[str] | None = None) -> None:
    """Run from ``heirloom_law.pth`` at interpreter start: acts for ``law`` and ``heirloom``
    only, and never lets an error of its own stop the command."""
    argv = sys.argv if argv is None else argv
    if not argv or Path(argv[0]).name not in COMMANDS:
        return
    try:
        setup_environment()
        if Path(argv[0]).name == "law" and len(argv) > 2 and argv[1] == "run":
            message = unknown_task(argv[2], task_families(os.environ["LAW_INDEX_FILE"]))
            if message:                     # site is still importing: no SystemExit here
                print(message, file=sys.stderr, flush=True)
                os._exit(2)
            import law.cli

            law.cli.run = ending_promptly(law.cli.run)
    except (OSError, ImportError):
        return


def ending_promptly(run):
    """``run`` (law's command line) that ends the process when it is done: exit handlers
    run, logs and streams are flushed, and then the process exits with the run's status
    without the interpreter's teardown.

    >>> ending_promptly(lambda argv=None: 0).__name__
    'run_then_end'
    """
    def run_then_end(argv=None):
        try:
            code = run(argv)
        except SystemExit as stop:          # luigi ends a run with sys.exit(status)
            code = stop.code
        if code is None:
            code = 0
        elif not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        end(code)

    return run_then_end


def end(code: int) -> None:
    """Exit now with ``code``, after what a normal exit would do that anyone can see: the
    exit handlers (Dask clusters closed, ...), logging's handlers and the standard streams
    flushed."""
    import atexit
    import logging

    atexit._run_exitfuncs()                 # noqa: SLF001  (what interpreter shutdown would run)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
