"""The third-party packages whose versions enter every key (key format 2).

A result depends on the code that computes it, and some of that code is not Heirloom's.
Changing the version of one of these packages (a new ``requirements.lock``) therefore
reruns every task: a store never mixes results of two environments under one key.
Packages that only move data around unchanged (law, luigi, dask, PyYAML) are left out.

>>> sorted(RESULT_PACKAGES)[:3]
['awkward', 'awkward-cpp', 'boost-histogram']
>>> set(environment()) == set(RESULT_PACKAGES) | {"python"}
True
"""

from __future__ import annotations

import functools
import sys
from importlib import metadata

#: distribution name -> why its version decides results
RESULT_PACKAGES: dict[str, str] = {
    "numpy": "array arithmetic everywhere (sums, masks, random numbers of the generator)",
    "awkward": "jagged arrays: objects, cuts, reductions in every expression",
    "awkward-cpp": "awkward's compiled kernels (pinned apart from awkward)",
    "numba": "compiled kernels inside coffea and vector, where used",
    "uproot": "reads input and skim files, writes skims and templates (ROOT bytes)",
    "coffea": "NanoEvents behaviours (four-vectors, cross-references) and the processor loop",
    "vector": "four-vector arithmetic behind coffea's candidates (m_bjj)",
    "pyarrow": "Parquet inputs and Select's tables (bytes and dictionary encoding)",
    "lz4": "skim compression (the skim's bytes)",
    "boost-histogram": "histogram filling and storage",
    "hist": "histogram arithmetic and slicing",
    "uhi": "histogram serialisation (histograms.json)",
    "correctionlib": "evaluates corrections (b-tag weights) in expressions",
    "pyhf": "the likelihood, CLs and limits",
    "cabinetry": "templates, workspaces, fits, ranking and significance",
    "iminuit": "the minimiser of every fit",
    "scipy": "optimisers and root finding inside pyhf and cabinetry",
    "matplotlib": "every plot's pixels",
    "pillow": "encodes every PNG that matplotlib writes",
    "mplhep": "plot styles and histogram drawing",
}


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, str]:
    """``{distribution: version}`` of :data:`RESULT_PACKAGES` (``"absent"`` if not installed),
    and ``python``: the interpreter's major.minor version."""
    return {"python": "{}.{}".format(*sys.version_info[:2]), **versions(sorted(RESULT_PACKAGES))}


def versions(names) -> dict[str, str]:
    """``{distribution: version}`` of ``names`` (``"absent"`` if not installed).

    >>> versions(["numpy", "no-such-distribution"])["no-such-distribution"]
    'absent'
    """
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out
