"""numpy, imported on first use.

Loading a config compiles and checks every expression but computes nothing, and a no-op
``law run`` does no more than load its config and hash: numpy's import was a fifth of
its time. Modules on that path take ``np`` from here; the first attribute looked up
imports numpy.

>>> from analysis.lazy import np
>>> np.arange(3).tolist()
[0, 1, 2]
"""

from __future__ import annotations

from typing import Any


class _Numpy:
    """Stands for the numpy module until an attribute is looked up."""

    def __getattr__(self, name: str) -> Any:
        import numpy

        return getattr(numpy, name)


np: Any = _Numpy()
