"""Skim one chunk of a raw file: loose preselection pushed down, only needed branches kept.

The input is a ROOT TTree or a parquet file (one row per event); the output is always a
NanoAOD-like ROOT TTree (flat ``nJet``, ``Jet_pt`` ... branches), so Select reads every
skim the same way, with coffea's NanoAOD schema and its vector behaviours.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.io.columns import group_collections
from analysis.io.fileid import COUNT, InputFileError, open_parquet, parquet_columns, reading
from analysis.io.root_file import recreate
from analysis.lang.expr import Expression


@dataclass(frozen=True)
class SkimStats:
    events_in: int
    events_out: int
    sumw_in: float
    sumw_out: float


def read_chunk(path: str, tree: str, branches: list, start: int, stop: int) -> dict:
    """Read ``branches`` of entries [start, stop) as a dict of awkward arrays. ``path``
    may be a URL (root://, s3://, https://): read in place, transient errors retried.

    >>> read_chunk(nano, "Events", ["nJet"], 0, 3)["nJet"].tolist()
    [2, 5, 4]
    """
    import uproot

    def read() -> dict:
        with uproot.open(path) as handle:
            return handle[tree].arrays(branches, entry_start=start, entry_stop=stop, how=dict)

    return reading(path, f"reading entries {start} to {stop}", read)


def read_parquet_chunk(path: str, branches: list, start: int, stop: int) -> dict:
    """Read ``branches`` (NanoAOD-style names, see ``fileid.parquet_columns``) of rows
    [start, stop) of a parquet file as a dict of awkward arrays.

    Only the row groups that overlap the range and the columns (or struct fields) that
    the branches come from are read. Nested columns are flattened: ``Jet.pt`` of a list
    of structs ``Jet`` becomes ``Jet_pt``, its length ``nJet``.

    >>> chunk = read_parquet_chunk(events_parquet, ["nJet", "Jet_pt"], 10, 60)   # a Jet column of structs
    >>> chunk["nJet"][:3].tolist(), chunk["Jet_pt"]
    ([5, 3, 4], <Array [[193, 178, 30, 28.6, 17.2], ..., [81.4, ...]] type='50 * var * float32'>)
    """
    import awkward as ak

    def read() -> tuple:
        with open_parquet(path) as handle:
            sources = parquet_columns(handle.schema_arrow)
            columns, groups, first = _parquet_plan(handle, sources, branches, start, stop)
        return sources, first, ak.from_parquet(path, columns=columns, row_groups=groups or None)

    sources, first, table = reading(path, f"reading rows {start} to {stop}", read)
    out = {}
    for name in branches:
        column, field = sources[name]
        value = table[column][start - first: stop - first]
        if field == COUNT:
            value = ak.num(value, axis=1)
        elif field is not None:
            value = value[field]
        out[name] = _no_missing(value, path, name)
    return out


def _parquet_plan(handle, sources: dict, branches: list, start: int, stop: int) -> tuple[list, list, int]:
    """The columns to read for ``branches``, the row groups that overlap [start, stop) (the
    first one for an empty range) and the first row of the first of them."""
    import numpy as np

    missing = [b for b in branches if b not in sources]
    if missing:
        raise KeyError(f"no column {missing[0]!r}")
    fields: dict[str, set[str | None]] = {}
    for name in branches:
        column, field = sources[name]
        if field == COUNT:             # a list-of-structs length: read one of its fields
            field = next(f.name for f in handle.schema_arrow.field(column).type.value_type)
        fields.setdefault(column, set()).add(field)
    columns = sorted({c if None in f else f"{c}.{x}" for c, f in fields.items() for x in f})
    sizes = [handle.metadata.row_group(i).num_rows for i in range(handle.num_row_groups)]
    edges = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
    groups = [i for i in range(len(sizes)) if edges[i] < stop and edges[i + 1] > start] or [0][:len(sizes)]
    return columns, groups, int(edges[groups[0]]) if groups else 0


def _no_missing(array, path: str, name: str):
    """``array`` without option types (parquet columns are often declared nullable);
    a null value is an error: a TTree branch cannot hold one."""
    import awkward as ak

    if "?" not in str(array.type):
        return array
    if any(ak.any(ak.is_none(array, axis=axis)) for axis in range(array.ndim)):
        raise InputFileError(path, f"column {name!r} has missing (null) values")
    array = ak.fill_none(array, 0, axis=-1)          # no None left: only the types change
    for axis in range(array.ndim - 2, -1, -1):
        array = ak.fill_none(array, [], axis=axis)
    return array


#: the tree name of every skim, whatever the input's tree is called
SKIM_TREE = "Events"


def content_digest(arrays: dict) -> str:
    """BLAKE3 of named arrays' buffers (what a written file holds, for its UUID).

    >>> import numpy as np
    >>> content_digest({"x": np.arange(3)}) == content_digest({"x": np.arange(3)})
    True
    """
    import awkward as ak
    from blake3 import blake3

    digest = blake3()
    for name in sorted(arrays):
        form, length, buffers = ak.to_buffers(ak.Array(arrays[name]) if not isinstance(arrays[name], ak.Array)
                                              else arrays[name])
        digest.update(f"{name}|{form.to_json()}|{length}".encode())
        for key in sorted(buffers):
            digest.update(memoryview(buffers[key]).cast("B"))
    return digest.hexdigest()


def write_tree(path: Path, arrays: dict, tree: str = SKIM_TREE, compression: Any = None) -> None:
    """Write flat NanoAOD branches as a TTree (``mktree`` + ``extend``, never an RNTuple).

    Collections with a counter (``nJet`` + ``Jet_*``) are written as jagged records so the
    counter is regenerated; the file is written under a temporary name then renamed.
    ``compression``: an uproot compression (default LZ4 level 1: of the compressions,
    benchmarks/skim_compression.py measured it the fastest to write and to read back, for
    files 1.37 times ZSTD's; none at all is faster still, for files 1.3 times larger).
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
    # LZ4 decompresses several times faster than uproot's default zlib; skims are read often
    with recreate(path, content_digest(grouped), compression=compression or uproot.LZ4(1)) as handle:
        types = {name: array.type.content if hasattr(array, "type") else array.dtype
                 for name, array in grouped.items()}
        out = handle.mktree(tree, types, counter_name=lambda counted: "n" + counted,
                            field_name=lambda outer, inner: inner if outer == "" else outer + "_" + inner)
        out.extend(grouped)


#: uproot compressions that read back about as fast as a skim's LZ4 (ZLIB and LZMA do not)
FAST_TO_READ = ("LZ4", "ZSTD")
#: what a Skim writes instead of ``skim.root`` when it keeps every event of a fast-to-read file
VIEW_FILE = "view.json"


def fast_to_reread(path: str, tree: str, branches: list) -> bool:
    """Whether every one of ``branches`` is stored uncompressed, LZ4 or ZSTD: a skim that
    keeps every event can then refer to the file instead of copying it, at no cost to the
    Selects that read it again at every cut change.

    >>> fast_to_reread(nano, "Events", ["nJet", "Jet_pt"])     # generate.py writes ZLIB
    False

    The answer is kept per process for the file as it is (its size and modification time):
    a file's chunks ask once.
    """
    stat = os.stat(path)
    return _fast_to_reread(str(path), tree, tuple(branches), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _fast_to_reread(path: str, tree: str, branches: tuple, size: int, mtime_ns: int) -> bool:
    import uproot

    with uproot.open(path) as handle:
        events = handle[tree]
        kinds = set()
        for name in branches:       # a branch's own setting; uproot writes 0 there and uses the file's
            branch = events[name]
            packed = branch.compressed_bytes < branch.uncompressed_bytes
            compression = branch.compression or (handle.file.compression if packed else None)
            kinds.add(type(compression).__name__ if compression else "none")
    return kinds <= {"none", *FAST_TO_READ}


def skim_chunk(source: str, tree: str, branches: list, start: int, stop: int,
               preselection: Expression | None, event_weight: Expression | None, output: Path,
               format: str = "root", *, decide_with: list | None = None) -> SkimStats:
    """Skim entries [start, stop) of ``source`` (its tree ``tree``) into ``output`` (tree ``Events``).

    ``preselection`` and ``event_weight``: compiled Expressions (or None) evaluated over
    the raw branches grouped into collections; the sums of event weights before and after
    the preselection are recorded (the MC normalisation when events are weighted). ``format``: ``"root"`` (read the TTree ``tree``) or
    ``"parquet"`` (rows [start, stop) of a parquet file).

    ``decide_with``: the branches those two read (:func:`analysis.io.columns.expression_branches`),
    given when the skim may refer to its input instead of copying it. They are read first;
    when every event passes, nothing else is read and ``view.json`` (the tree and the entry
    range) is written instead of ``output``.

    >>> skim_chunk(nano, "Events", ["nJet", "Jet_pt"], 0, 1000, None, None, outdir / "s.root")
    SkimStats(events_in=1000, events_out=1000, sumw_in=1000.0, sumw_out=1000.0)
    >>> branches = ["nJet", "Jet_pt", "nElectron", "Electron_pt", "nMuon", "Muon_pt"]
    >>> skim_chunk(nano, "Events", branches, 0, 1000, cfg.expression("skim", "preselection"), None, outdir / "s.root")
    SkimStats(events_in=1000, events_out=540, sumw_in=1000.0, sumw_out=540.0)
    >>> skim_chunk(nano, "Events", ["nJet", "Jet_pt"], 0, 1000, None, None, outdir / "v.root", decide_with=[])
    SkimStats(events_in=1000, events_out=1000, sumw_in=1000.0, sumw_out=1000.0)
    >>> sorted(p.name for p in outdir.iterdir())
    ['s.root', 'view.json']
    """
    import awkward as ak
    import numpy as np

    first = branches if decide_with is None else [b for b in branches if b in set(decide_with)]
    arrays = _read(source, tree, first, start, stop, format) if first else {}
    n_in = stop - start
    namespace = group_collections(arrays) if (preselection is not None or event_weight is not None) else {}
    weights = np.ones(n_in)
    if event_weight is not None:
        weights = weights * np.asarray(ak.to_numpy(event_weight.evaluate(namespace)), dtype=np.float64)
    mask = np.ones(n_in, dtype=bool)
    if preselection is not None:
        mask = np.asarray(ak.to_numpy(ak.fill_none(preselection.evaluate(namespace), False)), dtype=bool)
    stats = SkimStats(n_in, int(mask.sum()), float(weights.sum()), float(weights[mask].sum()))
    keeps_all = bool(mask.all())
    if decide_with is not None and keeps_all:
        view = {"tree": tree, "entries": [start, stop]}
        (output.parent / VIEW_FILE).write_text(json.dumps(view, indent=1))
        return stats
    rest = [b for b in branches if b not in arrays]
    arrays.update(_read(source, tree, rest, start, stop, format) if rest else {})
    arrays = {name: arrays[name] if keeps_all else arrays[name][mask] for name in branches}
    write_tree(output, arrays, SKIM_TREE)
    return stats


def _read(source: str, tree: str, branches: list, start: int, stop: int, format: str) -> dict:
    if format == "parquet":
        return read_parquet_chunk(source, branches, start, stop)
    return read_chunk(source, tree, branches, start, stop)
