"""MINUIT's own console output during a fit, kept readable.

cabinetry runs MINUIT with print level 1, so Minuit2 (C++) writes a warning line to the
process's stdout for every function evaluation that returns NaN: a fit that probes
parameter values where an expected yield turns negative (e.g. a symmetrised template
below zero, or the background-only fit of a significance) prints thousands of
``W FCN result is NaN for [ nan nan ... ]`` lines, and warnings such as
``FunctionMinimum is invalid after second try`` on fits that then converge. :func:`summarised`
captures file descriptor 1 while a block runs, passes every other line through, and
replaces MINUIT's lines by one summary line per block: what it said, how often.

>>> with summarised("the fit"):                # MINUIT writes to file descriptor 1 like this
...     _ = os.write(1, b"W FCN result is NaN for [ nan nan ]\\n" * 2341 + b"W MnHesse: matrix not pos. def.\\n")
MINUIT (the fit): 1 warning(s): "matrix not pos. def."; 2,341 evaluations returned NaN (parameter values with a negative expected yield)
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections import Counter
from typing import Iterator

NAN_MARK = "FCN result is NaN"
#: a line Minuit2 writes itself: a level letter and the reporting class, e.g.
#: ``W VariableMetricBuilder Reached machine accuracy limit``, ``W MnHesse: matrix not pos. def.``
MINUIT_LINE = re.compile(r"^[IWE] (?:Mn|VariableMetric|FunctionMinimum|Numerical|Migrad|Minuit|Hesse|Simplex)\w*:? ?(.*)$")


@contextlib.contextmanager
def summarised(what: str) -> Iterator[None]:
    """Run the block with stdout (the file descriptor) captured; then print what it wrote,
    without MINUIT's NaN warnings, and a count of those."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:                       # no file descriptor 1 (embedded interpreters)
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            capture.seek(0)
            _report(capture.read().decode(errors="replace"), what)


def _report(text: str, what: str) -> None:
    """Print the captured text: other lines as they were, MINUIT's own in one line."""
    nan, messages = 0, Counter[str]()
    for line in text.splitlines():
        if NAN_MARK in line:
            nan += 1
        elif MINUIT_LINE.match(line):
            messages[MINUIT_LINE.match(line).group(1).strip()] += 1      # type: ignore[union-attr]
        elif line.strip():
            print(line)
    parts = []
    if messages:
        common = ", ".join(f'"{m[:70]}"' + (f" x{n}" if n > 1 else "") for m, n in messages.most_common(2))
        more = len(messages) - 2
        parts.append(f"{sum(messages.values())} warning(s): {common}" + (f" and {more} other(s)" if more > 0 else ""))
    if nan:
        parts.append(f"{nan:,} evaluations returned NaN (parameter values with a negative expected yield)")
    if parts:
        print(f"MINUIT ({what}): " + "; ".join(parts))
    sys.stdout.flush()
