"""Heirloom law tasks: Generate -> Skim -> Select -> Histogram -> Histograms -> Fit -> Plot, Fit ->
Ranking and Significance, All (everything a config produces) (and
-> Limit for a new signal, -> AGCHistograms for the AGC's own tools), and
PublishedLikelihood -> CLsScan -> ExclusionPlot (a published likelihood)."""

from tasks.agc_layout import AGCHistograms
from tasks.batch.workflow import BatchBranches  # noqa: F401  (--workflow slurm|htcondor: a family as batch jobs)
from tasks.branches import Branches  # noqa: F401  (law run Branches: one family's tasks together)
from tasks.inputs import Generate, Skim
from tasks.likelihood import CLsScan, ExclusionPlot, PublishedLikelihood
from tasks.reinterpret import Limit
from tasks.plots import Plot
from tasks.results import ExternalHistograms, Fit, Histograms
from tasks.select import Histogram, Select
from tasks.statistics import All, Ranking, Significance

__all__ = ["Generate", "Skim", "Select", "Histogram", "Histograms", "ExternalHistograms", "Fit", "Ranking",
           "Significance", "Plot", "Limit", "All",
           "AGCHistograms",
           "PublishedLikelihood", "CLsScan", "ExclusionPlot"]
