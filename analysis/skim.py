"""Skim one chunk of a raw file: loose preselection pushed down, only needed branches kept."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from analysis.columns import group_collections
from analysis.fileid import InputFileError


@dataclass(frozen=True)
class SkimStats:
    events_in: int
    events_out: int
    sumw_in: float
    sumw_out: float


def read_chunk(path: str, tree: str, branches: list, start: int, stop: int) -> dict:
    """Read ``branches`` of entries [start, stop) as a dict of awkward arrays."""
    import uproot

    try:
        with uproot.open(path) as handle:
            arrays = handle[tree].arrays(branches, entry_start=start, entry_stop=stop, how=dict)
    except Exception as err:
        raise InputFileError(path, f"{type(err).__name__}: {err}") from None
    return arrays


def write_tree(path: Path, arrays: dict, tree: str = "Events") -> None:
    """Write flat NanoAOD branches as a TTree (``mktree`` + ``extend``, never an RNTuple).

    Collections with a counter (``nJet`` + ``Jet_*``) are written as jagged records so the
    counter is regenerated; the file is written under a temporary name then renamed.
    """
    import awkward as ak
    import uproot

    grouped: dict = {}
    jagged: dict = {}
    for name, array in arrays.items():
        prefix, _, field = name.partition("_")
        if field and f"n{prefix}" in arrays:
            jagged.setdefault(prefix, {})[field] = array
        elif name.startswith("n") and name[1:] in {b.partition("_")[0] for b in arrays if "_" in b}:
            continue  # counters are rewritten by uproot from the jagged records
        else:
            grouped[name] = array
    for prefix, fields in jagged.items():
        grouped[prefix] = ak.zip(fields)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # LZ4 decompresses several times faster than uproot's default zlib; skims are read often
    with uproot.recreate(tmp, compression=uproot.LZ4(1)) as handle:
        types = {name: array.type.content if hasattr(array, "type") else array.dtype
                 for name, array in grouped.items()}
        out = handle.mktree(tree, types, counter_name=lambda counted: "n" + counted,
                            field_name=lambda outer, inner: inner if outer == "" else outer + "_" + inner)
        out.extend(grouped)
    os.replace(tmp, path)


def skim_chunk(source: str, tree: str, branches: list, start: int, stop: int,
               preselection, weight_branch: str | None, output: Path) -> SkimStats:
    """Skim entries [start, stop) of ``source`` into ``output`` (a ROOT TTree).

    ``preselection``: a compiled Expression (or None) evaluated over the raw branches
    grouped into collections.

    >>> skim_chunk("nano.root", "Events", ["nJet", "Jet_pt"], 0, 1000, None, None, Path("s.root"))  # doctest: +SKIP
    SkimStats(events_in=1000, events_out=1000, sumw_in=1000.0, sumw_out=1000.0)
    """
    import awkward as ak
    import numpy as np

    arrays = read_chunk(source, tree, branches, start, stop)
    n_in = stop - start
    weights = np.asarray(arrays[weight_branch], dtype=np.float64) if weight_branch in arrays else np.ones(n_in)
    if preselection is not None:
        mask = preselection.evaluate(group_collections(arrays))
        mask = np.asarray(ak.to_numpy(ak.fill_none(mask, False)), dtype=bool)
        arrays = {name: array[mask] for name, array in arrays.items()}
    else:
        mask = np.ones(n_in, dtype=bool)
    write_tree(output, arrays, tree)
    return SkimStats(n_in, int(mask.sum()), float(weights.sum()), float(weights[mask].sum()))
