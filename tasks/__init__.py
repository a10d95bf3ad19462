"""Heirloom law tasks: Generate -> Skim -> Select -> Histogram -> Histograms -> Fit -> Plot."""

from tasks.inputs import Generate, Skim
from tasks.results import ExternalHistograms, Fit, Histograms, Plot
from tasks.select import Histogram, Select

__all__ = ["Generate", "Skim", "Select", "Histogram", "Histograms", "ExternalHistograms", "Fit", "Plot"]
