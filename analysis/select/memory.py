"""Chunk sizes from a memory budget (``select.memory_mb``: megabytes per worker process).

Select's event loop holds one chunk at a time in each process: the branches as read, the
objects, masks and columns made of them, and those of every systematic variation. What a
chunk adds to the process grows with its events times the bytes an event's branches take
once read (the skims' uncompressed size per entry), times a working factor
(:data:`WORKING_FACTOR`), on top of what the loop itself brings (:data:`LOOP_MB`: coffea's
imports and buffers). Both were measured with benchmarks/memory_budget.py on the AGC
analysis with all its systematics, the heaviest configuration of the project, and carry a
margin. The chunk size for a budget is what fits above what the process already holds:

>>> chunk_for_budget(2000, held_mb=500, bytes_per_event=400, largest=200_000)
200000
>>> chunk_for_budget(800, held_mb=500, bytes_per_event=400, largest=200_000)
187500
>>> chunk_for_budget(700, held_mb=500, bytes_per_event=400, largest=200_000)
62500

A budget that leaves no room for :data:`SMALLEST_CHUNK` events is refused before the loop
starts (:class:`MemoryBudgetError`); after it, :func:`peak_mb` tells whether the run kept
to the budget.
"""

from __future__ import annotations

import os

from analysis.errors import MemoryBudgetError  # noqa: F401  (raised by chunk_for_budget)
from analysis.io.budget import SMALLEST_CHUNK, bytes_per_event, events_for_budget, peak_mb  # noqa: F401

#: memory a chunk takes per byte of its branches as read: 0.33 measured, with a margin
#: (benchmarks/memory_budget.py)
WORKING_FACTOR = 2.0
#: what the event loop adds before its first chunk grows: about 100 MB measured
LOOP_MB = 150.0


def chunk_for_budget(budget_mb: float, held_mb: float, bytes_per_event: float, largest: int) -> int:
    """Events per chunk that fit ``budget_mb`` above the ``held_mb`` the process holds
    before the loop, at most ``largest`` (``select.chunk_size``). Raises
    :class:`MemoryBudgetError` when fewer than :data:`SMALLEST_CHUNK` events fit (the
    module's example shows a call)."""
    return events_for_budget(budget_mb, held_mb + LOOP_MB, bytes_per_event, WORKING_FACTOR, largest)


def held_mb() -> float:
    """Resident memory of this process now, in MB (Linux's /proc; else its peak so far)."""
    try:
        with open(f"/proc/{os.getpid()}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return peak_mb()
