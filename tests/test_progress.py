"""Progress lines (analysis/progress.py): rate limited, always the last one, an estimate of
the time left, silent with report=None; used by the ranking, the CLs scan, the limit search
and the exporters (whose lines go to stderr)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from analysis.progress import Progress, duration, progress_line
from conftest import ROOT


class Clock:
    """A stopwatch the test sets by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def counter(total: int, every: float = 10.0, **options):
    clock, lines = Clock(), []
    progress = Progress(total, lines.append, label="Ranking", unit="parameters", every=every, clock=clock,
                        **options)
    return progress, clock, lines


def test_at_most_one_line_every_so_often_and_always_the_last():
    progress, clock, lines = counter(5, every=10)
    for seconds in (1, 2, 11, 12, 13):         # the times at which the steps end, from the start
        clock.now = 100 + seconds
        progress.tick()
    assert lines == ["Ranking: 3/5 parameters (60 %) [######....], 11.0 s elapsed, about 7.3 s left",
                     "Ranking: 5/5 parameters (100 %) [##########], 13.0 s in all"]
    progress.finish()                          # the last line was said: nothing more
    assert len(lines) == 2


def test_the_estimate_is_the_time_per_step_times_the_steps_left():
    progress, clock, lines = counter(33, every=0)
    clock.now = 100 + 41.0
    progress.tick(12)
    assert lines == ["Ranking: 12/33 parameters (36 %) [###.......], 41.0 s elapsed, about 1 min 11 s left"]
    assert progress_line("Ranking", 12, 33, "parameters", 41.0).endswith(", about 1 min 11 s left")


def test_without_a_reporter_it_counts_in_silence(capsys):
    clock = Clock()
    progress = Progress(3, None, every=0, clock=clock)
    for _ in range(3):
        clock.now += 1
        progress.tick()
    progress.finish()
    assert progress.done == 3 and capsys.readouterr() == ("", "")


def test_the_default_reporter_prints_whole_lines(capsys):
    clock = Clock()
    progress = Progress(2, label="CLsScan", unit="points", clock=clock)
    clock.now += 0.5
    progress.tick(2)
    out = capsys.readouterr().out
    assert out == "CLsScan: 2/2 points (100 %) [##########], 0.5 s in all\n" and "\r" not in out


def test_an_estimated_total_waits_for_finish_and_is_passed_quietly():
    progress, clock, lines = counter(4, every=5, estimated=True)
    clock.now += 5
    progress.tick()
    clock.now += 5
    progress.tick(3)                            # the estimate reached: not the end yet
    clock.now += 5
    progress.tick()                             # past it: no total, no time left
    clock.now += 1
    progress.finish()
    assert lines == ["Ranking: 1/~4 parameters (25 %) [##........], 5.0 s elapsed, about 15.0 s left",
                     "Ranking: 4 parameters, 10.0 s elapsed",
                     "Ranking: 5 parameters, 15.0 s elapsed",
                     "Ranking: 5/5 parameters (100 %) [##########], 16.0 s in all"]


def test_a_search_that_ends_early_says_so_once():
    progress, clock, lines = counter(56, every=10, estimated=True)
    for _ in range(33):
        clock.now += 0.1
        progress.tick()
    progress.finish()
    progress.finish()
    assert lines == ["Ranking: 33/33 parameters (100 %) [##########], 3.3 s in all"]


def test_an_exact_total_grows_with_extra_steps():
    progress, clock, lines = counter(2, every=100)
    progress.tick(3)
    assert lines == ["Ranking: 3/3 parameters (100 %) [##########], 0.0 s in all"]


@pytest.mark.parametrize("seconds, text", [(0, "0.0 s"), (59.94, "59.9 s"), (60, "1 min 00 s"),
                                           (3599, "59 min 59 s"), (3600, "1 h 00 min")])
def test_durations(seconds, text):
    assert duration(seconds) == text


HELD = """
import os
from analysis.progress import to_stdout
from analysis.stats.limits import _uncaptured
from analysis.stats.minuit_output import summarised
with _uncaptured(to_stdout) as say:
    with summarised("a test"):              # what the limit search runs in: stdout held to the end
        os.write(1, b"held by the capture\\n")
        say("progress")
"""


def test_limit_progress_lines_come_while_minuits_output_is_held():
    proc = subprocess.run([sys.executable, "-c", HELD], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["progress", "held by the capture"]


def test_the_export_walk_reports_to_its_reporter():
    from tasks.export import dag

    class Task:
        task_family = "Fit"

        def label(self):
            return "all"

        def key_params(self):
            return {}

        def input_tasks(self):
            return {}

    lines = []
    nodes = dag.walk(Task(), report=lines.append)
    assert [node.ident for node in nodes] == [("Fit", "all")]
    assert len(lines) == 1 and lines[0].startswith("Export: 1/1 tasks (100 %) [##########], ")
