"""The coffea processor that runs a SelectionPlan over skimmed files with any executor."""

from __future__ import annotations

from typing import Any, NamedTuple

from coffea import processor
from coffea.nanoevents import NanoAODSchema
from coffea.processor.executor import WorkItem

from analysis.errors import HeirloomError, InputFileError
from analysis.select.memory import peak_mb
from analysis.select.selection import SelectionPlan, select_events
from analysis.names import group_key

# a skim keeps only the branches an analysis reads, so NanoAOD cross-references
# (Jet_muonIdx1 ...) are routinely absent; set here so that worker processes see it too
NanoAODSchema.warn_missing_crossrefs = False


class SelectProcessor(processor.ProcessorABC):
    """Select events chunk by chunk; outputs are keyed by (the file's place in the list of
    files, entry start), so the merged result is ordered the same way whichever executor
    ran it and wherever the files are (a store's paths hold keys, which change with the
    code: sums in another order would differ in their last bits)."""

    def __init__(self, plan: SelectionPlan, order: dict):
        self.plan = plan
        self.order = order                  # path -> its place in the list of files

    def process(self, events: Any) -> dict:
        result = select_events(events, self.plan)
        chunk = f"{self.order[events.metadata['filename']]:06d}#{int(events.metadata['entrystart']):012d}"
        return {
            "chunks": {chunk: {group_key(v, r): columns for (v, r), columns in result.groups.items()}},
            "cutflow_events": dict(result.cutflow_events),
            "cutflow_weights": dict(result.cutflow_weights),
            "events": len(events),
            "peak_mb": {chunk: peak_mb()},       # of the process that ran the chunk (a worker's, too)
        }

    def postprocess(self, accumulator: dict) -> dict:
        return accumulator


#: attempts after the first of a chunk whose error is transient (see :func:`transient`)
TRANSIENT_RETRIES = 2


def _chain(err: BaseException | None) -> list:
    seen: list = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or err.__context__
    return seen


def transient(err: BaseException) -> bool:
    """Whether retrying a chunk may help: an OSError (a file system or network hiccup)
    with no Heirloom error in its chain. An error of the analysis (an expression, a
    plugin, a type) or of a damaged input file is deterministic: a retry repeats it.

    >>> transient(ConnectionResetError("peer")), transient(ValueError("x")), transient(InputFileError("a", "truncated"))
    (True, False, False)
    """
    chain = _chain(err)
    return any(isinstance(e, OSError) for e in chain) and not any(isinstance(e, HeirloomError) for e in chain)


class _Runner(processor.Runner):
    """coffea's Runner, retrying a chunk only when its error is :func:`transient`
    (coffea retries every error, so a typo in a cut used to run four times)."""

    @staticmethod
    def automatic_retries(retries: int, skipbadfiles: Any, func: Any, *args: Any, **kwargs: Any) -> Any:
        for attempt in range(TRANSIENT_RETRIES + 1):
            try:
                return processor.Runner.automatic_retries(0, skipbadfiles, func, *args, **kwargs)
            except Exception as err:
                if attempt == TRANSIENT_RETRIES or not transient(err):
                    raise
        return None


class Source(NamedTuple):
    """Entries [start, stop) of one file's tree (``stop`` None: to its end) for the event loop.
    ``entries``: the tree's entries when known (a skim's, from its stats): the file is then
    not opened to plan the chunks."""

    path: str
    tree: str = "Events"
    start: int = 0
    stop: int | None = None
    entries: int | None = None


def _known(source: Source) -> tuple[bytes, int]:
    """(UUID, entries) of a source that says its entries, without opening it; the UUID is
    coffea's for a file it cannot ask (the MD5 of the name), a skim's name holds its key."""
    import hashlib

    assert source.entries is not None
    return hashlib.md5(source.path.encode()).digest(), source.entries


def _metadata_cache(sources: list) -> dict | None:
    """coffea's file metadata of the sources that say their entries: coffea then plans their
    chunks, as it would have, without opening them (None: none do, coffea's own cache)."""
    known = {}
    for source in sources:
        if source.entries is not None:
            uuid, entries = _known(source)
            known[processor.executor.FileMeta("dataset", source.path, source.tree)] = {"uuid": uuid,
                                                                                       "numentries": entries}
    return known or None


def work_items(sources: list, chunksize: int) -> list:
    """coffea WorkItems of at most ``chunksize`` entries over ``sources``, in their order.

    >>> [(w.entrystart, w.entrystop) for w in work_items([Source(nano, "Events", 100, 900)], 500)]
    [(100, 600), (600, 900)]
    """
    import uproot

    items = []
    for source in sources:
        if source.entries is not None:
            uuid, entries = _known(source)
        else:
            with uproot.open(source.path) as handle:
                uuid, entries = handle.file.fUUID, handle[source.tree].num_entries
        stop = entries if source.stop is None else source.stop
        for start in range(source.start, stop, chunksize):
            items.append(WorkItem("dataset", source.path, source.tree, start, min(start + chunksize, stop), uuid))
    return items


def run_selection(files: list, plan: SelectionPlan, executor: Any, *, tree: str = "Events",
                  chunksize: int = 200_000) -> dict:
    """Run the selection over ``files`` with a coffea executor; returns the merged output.
    ``files``: paths (the whole tree ``tree``) or :class:`Source` entry ranges.

    >>> executor = processor.IterativeExecutor(status=False)      # coffea draws its bars even so
    >>> out = run_selection([nano], plan, executor, chunksize=500)  # doctest: +ELLIPSIS
    Preprocessing ...
    Processing ...
    >>> out["events"], len(out["chunks"]), out["cutflow_events"]["four_jets"]
    (1000, 2, 208)
    """
    sources = [f if isinstance(f, Source) else Source(str(f), tree) for f in files]
    runner = _Runner(executor=executor, pre_executor=processor.IterativeExecutor(status=False),
                     schema=NanoAODSchema, chunksize=chunksize, metadata_cache=_metadata_cache(sources))
    if all(s.start == 0 and s.stop is None for s in sources):
        fileset: Any = {"dataset": {"files": {s.path: s.tree for s in sources}}}
    else:
        fileset = work_items(sources, chunksize)
    order: dict = {}
    for source in sources:
        order.setdefault(source.path, len(order))
    try:
        return runner(fileset, processor_instance=SelectProcessor(plan, order), treename=tree)
    except Exception as err:               # coffea wraps a chunk's error: say ours in one line
        cause: BaseException | None = err
        while cause is not None and not isinstance(cause, HeirloomError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise cause from None
