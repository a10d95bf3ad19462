"""Events per chunk from a memory budget, and the memory a process used.

A chunk of events costs memory in proportion to its events times the bytes an event's
branches take once read (their uncompressed size per entry, from the file's metadata:
nothing is decompressed), times a working factor that depends on what is done with them.
Above a fixed overhead (what the process holds before its first chunk), a budget in MB
then gives the chunk size:

>>> events_for_budget(1000, overhead_mb=400, bytes_per_event=300, factor=4.0, largest=500_000)
500000
>>> events_for_budget(800, overhead_mb=400, bytes_per_event=300, factor=4.0, largest=500_000)
333333

Skim's budget (``skim.memory_mb``) decides where the Skim chunks start and stop, so it must
give the same chunks on every machine: its overhead and factor are the constants below
(measured by benchmarks/memory_budget.py --skim), not what this process happens to hold.
Select's (``select.memory_mb``, :mod:`analysis.select.memory`) only sets how many events
its loop reads at a time, which no result depends on, so it measures what it holds.
"""

from __future__ import annotations

import functools
import math
import os
import resource
import tempfile
from typing import Any, Iterable

from analysis.errors import MemoryBudgetError

#: memory a Skim chunk takes per byte of its branches as read: read, masked, written
#: (2.3 to 3.2 measured on the AGC's 27 branches between chunks of 25,000 and 400,000
#: events, with a margin; benchmarks/memory_budget.py --skim)
SKIM_FACTOR = 3.5
#: what a process holds before it skims its first chunk: law, the config, awkward and
#: uproot (361 MB measured in ``law run Skim``, with a margin)
SKIM_OVERHEAD_MB = 400.0
#: fewer events per chunk than this and the per-chunk overhead dominates
SMALLEST_CHUNK = 1_000
#: events generated to measure a generated dataset's bytes per event
SAMPLE_EVENTS = 2_000


def events_for_budget(budget_mb: float, overhead_mb: float, bytes_per_event: float, factor: float,
                      largest: int) -> int:
    """Events per chunk that fit ``budget_mb`` above ``overhead_mb``, at most ``largest``.
    Raises :class:`MemoryBudgetError` when fewer than :data:`SMALLEST_CHUNK` fit (the
    module's example shows a call)."""
    room = (budget_mb - overhead_mb) * 1e6
    per_event = max(bytes_per_event, 1.0) * factor
    fitting = math.floor(room / per_event) if room > 0 else 0
    if fitting < SMALLEST_CHUNK:
        need = overhead_mb + SMALLEST_CHUNK * per_event / 1e6
        raise MemoryBudgetError(f"a budget of {budget_mb:.0f} MB per worker leaves no room for a chunk: the process "
                                f"holds {overhead_mb:.0f} MB before the first event, and {SMALLEST_CHUNK} events need "
                                f"about {need:.0f} MB in all")
    return min(largest, fitting)


def skim_chunk_size(budget_mb: float, bytes_per_event: float, largest: int) -> int:
    """Events per Skim chunk for ``skim.memory_mb`` (deterministic: see the module's text).

    >>> skim_chunk_size(1000, bytes_per_event=400, largest=200_000)
    200000
    >>> skim_chunk_size(500, bytes_per_event=400, largest=200_000)
    71428
    """
    return events_for_budget(budget_mb, SKIM_OVERHEAD_MB, bytes_per_event, SKIM_FACTOR, largest)


def bytes_per_event(files: Iterable, tree: str = "Events", branches: Iterable[str] | None = None) -> float:
    """Uncompressed bytes per entry of every branch (or of ``branches``) of ``files``
    (ROOT files, or ``(path, tree)`` pairs; from the baskets' headers, nothing is
    decompressed).

    >>> round(bytes_per_event([nano])), round(bytes_per_event([(nano, "Events")], branches=["nJet", "Jet_pt"]))
    (280, 28)
    """
    import uproot

    total, entries = 0, 0
    wanted = None if branches is None else set(branches)
    for item in files:
        path, name = (item, tree) if isinstance(item, str) else item
        with uproot.open(path) as handle:
            events = handle[name]
            total += sum(branch.uncompressed_bytes for branch in events.itervalues(recursive=True)
                         if wanted is None or branch.name in wanted)
            entries += events.num_entries
    return total / entries if entries else 0.0


def parquet_bytes_per_event(path: str, branches: Iterable[str]) -> float:
    """Uncompressed bytes per row of the columns that ``branches`` (NanoAOD-style names:
    ``Jet_pt`` of a list of structs ``Jet``) come from, from the row groups' metadata (a
    whole collection counts when one of its fields is read).

    >>> 0 < parquet_bytes_per_event(events_parquet, ["nJet", "Jet_pt"]) < parquet_bytes_per_event(
    ...     events_parquet, ["nJet", "Jet_pt", "MET_pt", "Muon_pt"])
    True
    """
    from analysis.io.fileid import open_parquet

    tops = {name.split("_", 1)[0] for name in branches} | {name[1:] for name in branches if name.startswith("n")}
    tops |= set(branches)
    with open_parquet(path) as handle:
        meta = handle.metadata
        total = sum(meta.row_group(g).column(c).total_uncompressed_size
                    for g in range(meta.num_row_groups) for c in range(meta.num_columns)
                    if meta.row_group(g).column(c).path_in_schema.split(".", 1)[0] in tops)
        return total / meta.num_rows if meta.num_rows else 0.0


@functools.lru_cache(maxsize=256)
def input_bytes_per_event(identity: Any, tree: str, branches: tuple) -> float:
    """Bytes per event of ``branches`` in one input file (a FileIdentity: ROOT or Parquet),
    from its metadata, once per file content and process.

    >>> from analysis.io.fileid import Manifest
    >>> round(input_bytes_per_event(Manifest(outdir / "store").identify(nano), "Events", ("nJet", "Jet_pt")))
    28
    """
    if identity.format == "parquet":
        return parquet_bytes_per_event(identity.path, branches)
    return bytes_per_event([(identity.path, tree)], branches=branches)


def spec_bytes_per_event(spec: dict, branches: tuple) -> float:
    """Bytes per event of ``branches`` in the file a generator spec
    (:func:`analysis.io.datasets.generator_spec`) makes: its heaviest process's."""
    import json

    processes = tuple(sorted(v["process"] for v in spec["mixture"].values())) if "mixture" in spec \
        else (spec["process"],)
    return generated_bytes_per_event(processes, json.dumps(spec["params"], sort_keys=True), branches)


@functools.lru_cache(maxsize=64)
def generated_bytes_per_event(processes: tuple, params_json: str, branches: tuple) -> float:
    """Bytes per event of ``branches`` of generated events: the heaviest of ``processes``,
    measured on :data:`SAMPLE_EVENTS` events written as the generator writes them. The
    answer is kept in the user's cache (``generated_sizes.json``) under the generator's
    code, so that planning the Skims of a later run (a no-op too) generates nothing.

    >>> round(generated_bytes_per_event(("ttbar",), "{}", ("nJet", "Jet_pt")))
    28
    """
    import hashlib
    import json

    from analysis.store.user_cache import cache_file, load_dict, save_dict

    key = hashlib.sha256(json.dumps([processes, params_json, branches, _generator_code()]).encode()).hexdigest()[:32]
    path = cache_file("generated_sizes.json")
    known = load_dict(path)
    if isinstance(known.get(key), float):
        return known[key]
    value = _measure_generated(processes, params_json, branches)
    if path is not None:
        save_dict(path, {**known, key: value})
    return value


def _generator_code() -> str:
    """A digest of what generated files are made by: the random streams
    (:func:`analysis.io.datasets._drawing_code`), the generator's module and uproot's version."""
    import hashlib
    from importlib.metadata import version
    from pathlib import Path

    from analysis.io.datasets import _drawing_code

    digest = hashlib.sha256(f"{_drawing_code()} {version('uproot')}".encode())
    digest.update((Path(__file__).parent / "generate.py").read_bytes())
    return digest.hexdigest()


def _measure_generated(processes: tuple, params_json: str, branches: tuple) -> float:
    import json

    from analysis.io.generate import generate_events, write_nanoaod

    heaviest = 0.0
    with tempfile.TemporaryDirectory(prefix="heirloom-sample-") as tmp:
        for process in processes:
            path = os.path.join(tmp, f"{process}.root")
            write_nanoaod(path, generate_events(process, SAMPLE_EVENTS, seed=1, params=json.loads(params_json)))
            heaviest = max(heaviest, bytes_per_event([path], branches=branches))
    return heaviest


def reset_peak() -> None:
    """Start measuring this process's peak resident memory afresh (Linux: the kernel's
    high-water mark, reset through /proc/self/clear_refs); elsewhere nothing is reset."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def peak_mb() -> float:
    """The peak resident memory of this process since :func:`reset_peak` (or since it
    started), in MB.

    >>> reset_peak(); peak_mb() > 0
    True
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except (OSError, ValueError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6     # KiB on Linux
