"""Heirloom law tasks: Generate -> Skim -> Select -> Histogram -> Histograms -> Fit -> Plot, Fit ->
Ranking and Significance, All (everything a config produces) (and
-> Limit for a new signal, -> AGCHistograms for the AGC's own tools), and
PublishedLikelihood -> CLsScan -> ExclusionPlot (a published likelihood), and
LooseSelect + Fit -> Optimise (gradient-based optimisation of the cuts).

The task classes are imported on first use (``tasks.Plot``), so that a command which needs
none of them (``heirloom show``, the start-up hook in :mod:`tasks.checkout`) does not pay
for law, coffea and dask. law finds them through the modules that ``law.cfg`` lists.
"""

from importlib import import_module

MODULES = {"Generate": "inputs", "Skim": "inputs", "Select": "select", "Histogram": "select",
           "Histograms": "results", "ExternalHistograms": "results", "Fit": "results",
           "Ranking": "statistics", "Significance": "statistics", "All": "statistics",
           "Plot": "plots", "Limit": "reinterpret", "AGCHistograms": "agc_layout",
           "PublishedLikelihood": "likelihood", "CLsScan": "likelihood", "ExclusionPlot": "likelihood",
           "Branches": "branches", "BatchBranches": "batch.workflow",
           "LooseSelect": "optimise", "Optimise": "optimise"}

__all__ = ["Generate", "Skim", "Select", "Histogram", "Histograms", "ExternalHistograms", "Fit", "Ranking",
           "Significance", "Plot", "Limit", "All",
           "AGCHistograms",
           "PublishedLikelihood", "CLsScan", "ExclusionPlot", "LooseSelect", "Optimise"]


def __getattr__(name: str):
    if name not in MODULES:
        raise AttributeError(f"module 'tasks' has no attribute {name!r}")
    return getattr(import_module(f"tasks.{MODULES[name]}"), name)


def load_all() -> None:
    """Import every task module (luigi then knows every task family by name)."""
    for module in sorted(set(MODULES.values())):
        import_module(f"tasks.{module}")
