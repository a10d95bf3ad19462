"""numpy's and scipy's BLAS on one thread, for results that do not depend on where they ran.

A multi-threaded BLAS sums in an order that depends on its thread count, and a minimiser
turns those last-bit differences into differences of up to its tolerance: CLs of the
same point differed by up to 4e-5 between this process (2 BLAS threads) and a Dask
worker (1 thread). :func:`single_thread` limits every BLAS loaded in the process to one
thread while a computation runs (threadpoolctl), so every executor gives the same bits.

>>> from threadpoolctl import threadpool_info
>>> with single_thread():
...     print({pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"})
{1}
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def single_thread() -> Iterator[None]:
    """Run the block with every loaded BLAS on one thread; restore the counts after."""
    import numpy  # noqa: F401  (its BLAS must be loaded to be limited)
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
