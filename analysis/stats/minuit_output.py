"""MINUIT's own console output during a fit, kept readable.

cabinetry runs MINUIT with print level 1, so Minuit2 (C++) writes a warning line to the
process's stdout for every function evaluation that returns NaN: a fit that probes
parameter values where an expected yield turns negative (e.g. a symmetrised template
below zero, or the background-only fit of a significance) prints thousands of
``W FCN result is NaN for [ nan nan ... ]`` lines. :func:`summarised` captures file
descriptor 1 while a block runs, passes every other line through, and replaces the NaN
lines by one summary line.

>>> with summarised("the fit"):                # MINUIT writes to file descriptor 1 like this
...     _ = os.write(1, b"W FCN result is NaN for [ nan nan ]\\n" * 2341 + b"W MnHesse: matrix not pos. def.\\n")
W MnHesse: matrix not pos. def.
MINUIT (the fit): 2,341 evaluations returned NaN (parameter values with a negative expected yield); not shown
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Iterator

NAN_MARK = "FCN result is NaN"


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
    nan = 0
    for line in text.splitlines():
        if NAN_MARK in line:
            nan += 1
        else:
            print(line)
    if nan:
        print(f"MINUIT ({what}): {nan:,} evaluations returned NaN (parameter values with a negative "
              "expected yield); not shown")
    sys.stdout.flush()
