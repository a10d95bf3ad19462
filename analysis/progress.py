"""Progress lines with an estimate of the time left, for the long loops of an analysis.

The impact ranking, the CLs scan of a published likelihood, the CLs upper-limit search and
the exporters count their steps with a :class:`Progress`. It writes at most one line every
``every`` seconds, and always the last one; each is a whole line (no carriage-return
redraws), so a log file reads like the terminal. The time left is the time so far per step
times the steps left:

>>> clock = iter([0.0, 4.0, 12.0, 30.0]).__next__       # the seconds a stopwatch would read
>>> progress = Progress(3, label="Ranking", unit="parameters", every=10, clock=clock)
>>> progress.tick()                                         # 4 s: too soon for a line
>>> progress.tick()
Ranking: 2/3 parameters (66 %) [######....], 12.0 s elapsed, about 6.0 s left
>>> progress.tick()
Ranking: 3/3 parameters (100 %) [##########], 30.0 s in all

A total that is only an estimate (a root search's steps) is shown with ``~``; the search
says when it is done (:meth:`Progress.finish`), and a count past the estimate is shown
without one. ``report=None`` counts in silence.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

BAR_WIDTH = 10
Report = Callable[[str], None]


def to_stdout(line: str) -> None:
    """Print ``line`` at once (a log file or a pipe sees it while the loop runs)."""
    print(line, file=sys.stdout, flush=True)


def to_stderr(line: str) -> None:
    """Print ``line`` to stderr at once (for commands whose stdout is their result)."""
    print(line, file=sys.stderr, flush=True)


def duration(seconds: float) -> str:
    """A time span as people read it.

    >>> duration(41.04), duration(725), duration(7380)
    ('41.0 s', '12 min 05 s', '2 h 03 min')
    """
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def progress_line(label: str, done: int, total: int | None, unit: str, elapsed: float, *,
                  estimated: bool = False) -> str:
    """One progress line: ``done`` of ``total`` steps (``None``: not known) after ``elapsed``
    seconds; the last one (``done == total``) gives the time in all, the others the time left.

    >>> progress_line("Export", 12, 48, "tasks", 3.0)
    'Export: 12/48 tasks (25 %) [##........], 3.0 s elapsed, about 9.0 s left'
    >>> progress_line("Limit", 12, 40, "hypothesis tests", 3.0, estimated=True)
    'Limit: 12/~40 hypothesis tests (30 %) [###.......], 3.0 s elapsed, about 7.0 s left'
    >>> progress_line("Limit", 45, None, "hypothesis tests", 11.25)
    'Limit: 45 hypothesis tests, 11.2 s elapsed'
    """
    if total is None:
        return f"{label}: {done} {unit}, {duration(elapsed)} elapsed"
    share = done / total if total else 1.0
    filled = min(BAR_WIDTH, int(BAR_WIDTH * share))
    head = (f"{label}: {done}/{'~' if estimated else ''}{total} {unit} ({min(100, int(100 * share))} %) "
            f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}], ")
    if done >= total:
        return head + f"{duration(elapsed)} in all"
    left = elapsed / done * (total - done) if done else None
    return head + f"{duration(elapsed)} elapsed" + (f", about {duration(left)} left" if left is not None else "")


class Progress:
    """Counts finished steps of a loop and reports :func:`progress_line` s through ``report``
    (``None``: silent): at most one every ``every`` seconds, and the last one. ``clock``
    gives the time in seconds (tests pass a fake one); ``estimated``: ``total`` is a guess,
    and the loop calls :meth:`finish` when it ends (the module's example shows a loop)."""

    def __init__(self, total: int, report: Report | None = to_stdout, *, label: str = "Progress",
                 unit: str = "steps", every: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 estimated: bool = False):
        self.total, self.report, self.label, self.unit = total, report, label, unit
        self.every, self.clock, self.estimated = every, clock, estimated
        self.done, self.finished = 0, False
        self.start = self.last = clock()

    def tick(self, n: int = 1) -> None:
        """``n`` more steps done: a line when ``every`` seconds passed since the last one, or
        when the (exact) total is reached."""
        self.done += n
        if not self.estimated:
            self.total = max(self.total, self.done)
        now = self.clock()
        final = not self.estimated and self.done >= self.total
        if final or now - self.last >= self.every:
            self._say(now, final)

    def finish(self) -> None:
        """The loop ended (maybe before an estimated total): the last line, unless it was said."""
        if not self.finished:
            self.total = self.done
            self._say(self.clock(), True)

    def _say(self, now: float, final: bool) -> None:
        self.last, self.finished = now, final
        if self.report is None:
            return
        if final:
            line = progress_line(self.label, self.done, self.done, self.unit, now - self.start)
        else:
            total = self.total if self.done < self.total else None      # past an estimate: no total
            line = progress_line(self.label, self.done, total, self.unit, now - self.start,
                                 estimated=self.estimated)
        self.report(line)
