"""Independent jobs of a statistics step (the ranking's parameters, the limit's tests),
here or in forked worker processes.

Workers are forked, so they start with what this process holds (the model, pyhf's
backend); ``initializer`` runs in each of them first when given. Results come in the
order the jobs finish, each with the arguments it was called with:

>>> sorted(spread(pow, [(2, 3), (3, 2)], workers=2))
[((2, 3), 8), ((3, 2), 9)]
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from typing import Any, Callable, Iterator


def spread(job: Callable, jobs: list[tuple], workers: int, *, initializer: Callable | None = None,
           initargs: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """``(args, job(*args))`` for every ``args`` of ``jobs``: in this process when
    ``workers`` is 1, there is one job, or this process is a daemon (which may not fork);
    else in ``min(workers, len(jobs))`` forked processes (the module's example shows a call)."""
    if workers <= 1 or len(jobs) < 2 or multiprocessing.current_process().daemon:
        for args in jobs:
            yield args, job(*args)
        return
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context,
                                                initializer=initializer, initargs=initargs) as pool:
        futures = {pool.submit(job, *args): args for args in jobs}
        for future in concurrent.futures.as_completed(futures):
            yield futures[future], future.result()
