"""The coffea processor that runs a SelectionPlan over skimmed files with any executor."""

from __future__ import annotations

from coffea import processor
from coffea.nanoevents import NanoAODSchema

from analysis.selection import SelectionPlan, select_events

# a skim keeps only the branches an analysis reads, so NanoAOD cross-references
# (Jet_muonIdx1 ...) are routinely absent; set here so that worker processes see it too
NanoAODSchema.warn_missing_crossrefs = False


class SelectProcessor(processor.ProcessorABC):
    """Select events chunk by chunk; outputs are keyed by (file, entry start) so the
    merged result is ordered the same way whichever executor ran it."""

    def __init__(self, plan: SelectionPlan):
        self.plan = plan

    def process(self, events):
        result = select_events(events, self.plan)
        chunk = f"{events.metadata['filename']}#{int(events.metadata['entrystart']):012d}"
        return {
            "chunks": {chunk: {f"{v}|{r}": columns for (v, r), columns in result.groups.items()}},
            "cutflow_events": dict(result.cutflow_events),
            "cutflow_weights": dict(result.cutflow_weights),
            "events": len(events),
        }

    def postprocess(self, accumulator):
        return accumulator


def run_selection(files: list, plan: SelectionPlan, executor, *, tree: str = "Events",
                  chunksize: int = 200_000) -> dict:
    """Run the selection over ``files`` with a coffea executor; returns the merged output.

    >>> out = run_selection(["skim0.root"], plan, make_executor("iterative"))   # doctest: +SKIP
    >>> out["events"]                                                           # doctest: +SKIP
    120345
    """
    runner = processor.Runner(executor=executor, pre_executor=processor.IterativeExecutor(status=False),
                              schema=NanoAODSchema, chunksize=chunksize)
    fileset = {"dataset": {"files": {str(path): tree for path in files}}}
    return runner(fileset, processor_instance=SelectProcessor(plan), treename=tree)
